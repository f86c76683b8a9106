"""Fitting SMPL-X's face (SMPLify-X style): jaw pose and expression as fitted variables when the
model has them and the keypoints carry face51 points; the fast path that poses them; the
pipeline's face keypoint set. Model files: test-made stand-ins (tests/model_files.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_files import add_stick_face, random_model_arrays, skeleton_model_arrays, write_model_npz

from fitter.body import BodyModel, load_body_model
from fitter.geometry import perspective_project
from fitter.keypoints import keypoint_names, keypoint_regressor, keypoint_skin

FACE_SET = "coco17+hands42+face51"
NUM_BODY = 17 + 42  # points before the face's


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory) -> BodyModel:
    """A stick-figure SMPL-X on anny-hands' skeleton with a face (model_files.add_stick_face)."""
    from fitter.body.hands import finger_joint_ids

    hands = load_body_model("anny-hands")
    tips = {}
    for side in ("left", "right"):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            vid = hands.landmark_vertex_ids[f"{side}_{finger}_tip"]
            joint = finger_joint_ids(hands, side, finger)[2]
            tips[side[0] + finger] = (hands.v_template[vid].numpy(), hands.shapedirs[vid].numpy(), joint)
    rest, dirs = (hands.J_regressor @ hands.v_template).numpy(), hands.J_shapedirs.numpy()
    arrays = add_stick_face(skeleton_model_arrays(rest, dirs, "smplx", tips))
    return load_body_model(write_model_npz(arrays, tmp_path_factory.mktemp("smplx") / "smplx_face.npz"))


@pytest.fixture(scope="module")
def face_cases(face_model: BodyModel) -> dict:
    """4 bodies (hands too) facing the camera within 40 deg, jaws opened 3-20 deg, expressions
    N(0,1); clean FACE_SET keypoints from the full forward pass."""
    from fitter.synthetic import sample_hand_cases

    n = 4
    cases = sample_hand_cases(face_model, n, "coco17", seed=3, side_scale=0.3, max_yaw_deg=40)
    gen = torch.Generator().manual_seed(1003)
    jaw = torch.zeros(n, 3)
    jaw[:, 0] = 0.05 + 0.3 * torch.rand(n, generator=gen)
    jaw[:, 1:] = 0.03 * torch.randn(n, 2, generator=gen)
    expression = torch.randn(n, 10, generator=gen)
    t = {k: torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient", "transl", "hand_pose", "focal")}
    reg = keypoint_regressor(face_model, FACE_SET)
    with torch.no_grad():
        out = face_model(t["betas"], t["body_pose"], t["global_orient"], t["transl"], hand_pose=t["hand_pose"],
                         jaw_pose=jaw, expression=expression)  # fmt: skip
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), t["focal"],
                                 torch.as_tensor(cases["image_size"] / 2, dtype=torch.float32))  # fmt: skip
    conf = (reg.quality > 0).float()[None, :, None].expand(n, -1, 1)
    return cases | {"keypoints": torch.cat([px, conf], -1).numpy(), "jaw_pose": jaw.numpy(),
                    "expression": expression.numpy()}  # fmt: skip


def _fit(model: BodyModel, cases: dict, keypoints: np.ndarray | None = None, keypoint_set: str = FACE_SET, **kw):
    from fitter.fitting import fit_keypoints

    kp = cases["keypoints"] if keypoints is None else keypoints
    return fit_keypoints(kp, keypoint_set, image_size=cases["image_size"], focal_length=cases["focal"],
                         body_model=model, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def face_fit(face_model: BodyModel, face_cases: dict):
    return _fit(face_model, face_cases)


def test_fast_path_poses_jaw_and_expression_as_forward(tmp_path: Path) -> None:
    arrays = random_model_arrays("smplx", 200, seed=21)
    arrays["posedirs"] = np.zeros_like(arrays["posedirs"])  # the landmark fast path leaves pose correctives out
    model = load_body_model(write_model_npz(arrays, tmp_path / "smplx.npz"))
    gen = torch.Generator().manual_seed(0)
    inputs = {"betas": torch.randn(3, 10, generator=gen), "body_pose": 0.3 * torch.randn(3, 69, generator=gen),
              "global_orient": torch.randn(3, 3, generator=gen), "transl": torch.randn(3, 3, generator=gen),
              "hand_pose": 0.3 * torch.randn(3, 90, generator=gen)}  # fmt: skip
    jaw, expression = 0.3 * torch.randn(3, 3, generator=gen), 2.0 * torch.randn(3, 10, generator=gen)
    reg, skin = keypoint_skin(model, "smpl24+hands42+face51", with_expression=True)
    with torch.no_grad():
        full = model(**inputs, jaw_pose=jaw, expression=expression)
        joints, points = model.pose_face_landmarks(skin, **inputs, jaw_pose=jaw, expression=expression)
        neutral = model(**inputs)
    torch.testing.assert_close(points, reg.from_vertices(full.joints, full.vertices), atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, full.joints, atol=1e-5, rtol=0)
    assert (full.joints - neutral.joints).abs().max() > 1e-2  # expression moves the joints (J_regressor), as smplx
    jaw_var, expression_var = jaw.clone().requires_grad_(True), expression.clone().requires_grad_(True)
    model.pose_face_landmarks(skin, **inputs, jaw_pose=jaw_var, expression=expression_var)[1].sum().backward()
    assert jaw_var.grad.abs().sum() > 0 and expression_var.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="must be built with_expression"):
        model.pose_face_landmarks(keypoint_skin(model, "face51")[1], **inputs, jaw_pose=jaw, expression=expression)
    smplh = load_body_model(write_model_npz(random_model_arrays("smplh", 200), tmp_path / "smplh.npz"))
    with pytest.raises(ValueError, match="no expression blend shapes"):
        keypoint_skin(smplh, "face51", with_expression=True)


def test_face_points_recover_jaw_and_expression(face_fit, face_cases: dict) -> None:
    assert face_fit.jaw_pose.shape == (4, 3) and face_fit.expression.shape == (4, 10)
    opening = np.degrees(face_cases["jaw_pose"][:, 0])
    error = np.degrees(np.linalg.norm(face_fit.jaw_pose - face_cases["jaw_pose"], axis=1))
    assert opening.mean() > 9.0 and error.mean() < 0.6 * opening.mean()  # a closed jaw would be off by the opening
    correlation = [np.corrcoef(f, t)[0, 1] for f, t in zip(face_fit.expression, face_cases["expression"])]
    assert min(correlation) > 0.9
    face_px = np.linalg.norm(
        face_fit.keypoints_2d_fit[:, NUM_BODY:] - face_cases["keypoints"][:, NUM_BODY:, :2], axis=-1
    )
    assert face_px.mean() < 4.0
    assert {"jaw_prior", "expression_prior"} <= set(face_fit.losses)


def test_without_face_points_jaw_and_expression_stay_zero(face_model: BodyModel, face_cases: dict) -> None:
    kp = face_cases["keypoints"][:2].copy()
    kp[0, NUM_BODY:, 2] = 0.0  # person 0: no face seen
    cases = face_cases | {"focal": face_cases["focal"][:2]}
    result = _fit(face_model, cases, kp, config="fast")
    assert np.all(result.jaw_pose[0] == 0.0) and np.all(result.expression[0] == 0.0)
    assert np.abs(result.jaw_pose[1]).max() > 0.01 and np.abs(result.expression[1]).max() > 0.1


def test_other_models_and_sets_fit_no_face(face_model: BodyModel, face_cases: dict) -> None:
    kp = face_cases["keypoints"][:1]
    cases = face_cases | {"focal": face_cases["focal"][:1]}
    no_face_set = _fit(face_model, cases, kp[:, :NUM_BODY], "coco17+hands42", config="fast")
    assert no_face_set.jaw_pose is None and no_face_set.expression is None and "jaw_prior" not in no_face_set.losses
    anny_hands = load_body_model("anny-hands")  # face51 has no counterpart there
    assert _fit(anny_hands, cases, kp, config="fast").jaw_pose is None


def test_fit_outputs_carry_jaw_and_expression(face_fit, tmp_path: Path) -> None:
    from fitter.result import FitResult

    path = face_fit.save(tmp_path / "fit.npz")
    with np.load(path) as npz:
        assert npz["jaw_pose"].shape == (4, 3) and npz["expression"].shape == (4, 10)
    loaded = FitResult.load(path)
    np.testing.assert_allclose(loaded.jaw_pose, face_fit.jaw_pose)
    np.testing.assert_allclose(loaded.expression, face_fit.expression)


def test_pipeline_adds_face_points_when_a_face_was_found() -> None:
    from fitter.detect.hands import HandsFace
    from fitter.pipeline.jobs import FACE_KEYPOINT_SET, HANDS_KEYPOINT_SET, _with_hands_and_face

    rng = np.random.default_rng(0)
    body = rng.uniform(0, 500, size=(2, 33, 3)).astype(np.float32)
    mesh = np.concatenate([rng.uniform(200, 300, size=(468, 2)), np.zeros((468, 1))], axis=1).astype(np.float32)
    face = HandsFace(hands=np.zeros((42, 3), np.float32), face_mesh=mesh, face_points=np.zeros((9, 3), np.float32))
    no_face = HandsFace(hands=np.zeros((42, 3), np.float32), face_mesh=None, face_points=np.zeros((9, 3), np.float32))
    points, kset = _with_hands_and_face(body, [face, no_face], face51=True)
    assert kset == FACE_KEYPOINT_SET and points.shape == (2, len(keypoint_names(FACE_KEYPOINT_SET)), 3)
    np.testing.assert_array_equal(points[0, 75:], face.face51)
    assert np.all(points[1, 75:, 2] == 0.0)  # no face found: confidence 0
    assert _with_hands_and_face(body, [no_face, no_face], face51=True)[1] == HANDS_KEYPOINT_SET
    assert _with_hands_and_face(body, [face, no_face])[1] == HANDS_KEYPOINT_SET  # models without a face
