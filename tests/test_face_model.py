"""SMPL-X's face: jaw pose and expression in BodyModel.forward, the face51 keypoint set from the
file's landmark embedding, and FitResult's jaw_pose / expression. Model files are small random
stand-ins in the official layout (tests/model_files.py), compared with smplx itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_files import random_model_arrays, smplx_reference, write_model_npz
from smplx.lbs import vertices2landmarks

from fitter.body import BodyModel, load_body_model
from fitter.geometry import axis_angle_to_matrix
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.result import FitResult

NUM_VERTICES = 200


@pytest.fixture(scope="module")
def smplx_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], Path]:
    arrays = random_model_arrays("smplx", NUM_VERTICES, seed=21)
    return arrays, write_model_npz(arrays, tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="module")
def smplx_model(smplx_files: tuple[dict[str, np.ndarray], Path]) -> BodyModel:
    return load_body_model(smplx_files[1])


def _inputs(batch: int, seed: int = 3) -> dict[str, torch.Tensor]:
    """Random betas, body pose (21 SMPL-X body joints, SMPL's hand joints zero), orientation,
    translation, jaw pose (radians) and expression."""
    gen = torch.Generator().manual_seed(seed)
    body_pose = 0.4 * torch.randn(batch, 69, generator=gen)
    body_pose[:, 63:] = 0
    return {
        "betas": torch.randn(batch, 10, generator=gen),
        "body_pose": body_pose,
        "global_orient": 0.8 * torch.randn(batch, 3, generator=gen),
        "transl": torch.randn(batch, 3, generator=gen),
        "jaw_pose": 0.3 * torch.randn(batch, 3, generator=gen),
        "expression": 2.0 * torch.randn(batch, 10, generator=gen),
    }


def test_jaw_and_expression_equal_smplx(smplx_files, smplx_model: BodyModel) -> None:
    arrays, path = smplx_files
    assert smplx_model.num_expression == 10 and smplx_model.jaw_joint_id == 22
    inputs = _inputs(3)
    reference = smplx_reference("smplx", arrays, path, batch_size=3)
    with torch.no_grad():
        ours = smplx_model(**inputs)
        ref = reference(
            betas=inputs["betas"], body_pose=inputs["body_pose"][:, :63], global_orient=inputs["global_orient"],
            transl=inputs["transl"], jaw_pose=inputs["jaw_pose"], expression=inputs["expression"],
            left_hand_pose=torch.zeros(3, 45), right_hand_pose=torch.zeros(3, 45),
            leye_pose=torch.zeros(3, 3), reye_pose=torch.zeros(3, 3),
        )  # fmt: skip
        neutral = smplx_model(**{k: v for k, v in inputs.items() if k not in ("jaw_pose", "expression")})
    torch.testing.assert_close(ours.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.full_joints, ref.joints[:, :55], atol=1e-5, rtol=0)
    assert (ours.vertices - neutral.vertices).abs().max() > 1e-2  # the face moved
    # face51 = smplx's static landmarks (its joints 76..126), posed with jaw and expression
    face = keypoint_regressor(smplx_model, "face51")
    assert torch.all(face.quality == 1.0)
    torch.testing.assert_close(face.from_vertices(ours.joints, ours.vertices), ref.joints[:, 76:127], atol=1e-5, rtol=0)


def test_face51_is_the_files_static_embedding(smplx_files, smplx_model: BodyModel) -> None:
    arrays, _ = smplx_files
    body = {k: v for k, v in _inputs(2, seed=4).items() if k not in ("jaw_pose", "expression")}
    with torch.no_grad():
        out = smplx_model(**body)
        fast = smplx_model.forward_joints(**body, vertex_ids=keypoint_regressor(smplx_model, "face51").vertex_ids)
    face = keypoint_regressor(smplx_model, "face51")
    expected = vertices2landmarks(
        out.vertices, smplx_model.faces, torch.as_tensor(arrays["lmk_faces_idx"]).repeat(2, 1),
        torch.as_tensor(arrays["lmk_bary_coords"]).repeat(2, 1, 1),
    )  # fmt: skip
    torch.testing.assert_close(face.from_vertices(out.joints, out.vertices), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(face(fast.joints, fast.points), expected, atol=1e-5, rtol=0)  # the fast path too


def test_zero_jaw_and_expression_change_nothing_and_matrices_equal_axis_angle(smplx_model: BodyModel) -> None:
    inputs = _inputs(2, seed=5)
    plain = {k: v for k, v in inputs.items() if k not in ("jaw_pose", "expression")}
    with torch.no_grad():
        today = smplx_model(**plain)
        zero = smplx_model(**plain, jaw_pose=torch.zeros(2, 3), expression=torch.zeros(2, 10))
        short = smplx_model(**plain, expression=inputs["expression"][:, :4])  # fewer coefficients: zero-padded
        padded = smplx_model(**plain, expression=torch.nn.functional.pad(inputs["expression"][:, :4], (0, 6)))
        aa = smplx_model(**plain, jaw_pose=inputs["jaw_pose"])
        mat = smplx_model(**plain, jaw_pose=axis_angle_to_matrix(inputs["jaw_pose"])[:, None])
    torch.testing.assert_close(zero.vertices, today.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(short.vertices, padded.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(aa.vertices, mat.vertices, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"expression must be \(B,<=10\)"):
        smplx_model(**plain, expression=torch.zeros(2, 11))


@pytest.mark.parametrize("model_type", ["smpl", "smplh"])
def test_models_without_a_face_reject_jaw_and_expression(tmp_path: Path, model_type: str) -> None:
    model = load_body_model(write_model_npz(random_model_arrays(model_type, NUM_VERTICES), tmp_path / "m.npz"))
    assert model.num_expression == 0 and model.jaw_joint_id == -1
    with pytest.raises(ValueError, match="has no jaw joint"):
        model(jaw_pose=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="has no expression blend shapes"):
        model(expression=torch.zeros(1, 10))
    face = keypoint_regressor(model, "face51")  # no landmark embedding: no counterpart
    assert face.names == keypoint_names("face51") and torch.all(face.quality == 0)


def test_fit_result_saves_jaw_and_expression(tmp_path: Path, smplx_model: BodyModel) -> None:
    inputs = {k: v.numpy() for k, v in _inputs(2, seed=6).items()}
    result = FitResult(
        betas=inputs["betas"], body_pose=inputs["body_pose"], global_orient=inputs["global_orient"],
        transl=inputs["transl"], focal_length=np.full(2, 500.0), principal_point=np.zeros((2, 2)),
        image_size=np.full((2, 2), 100), joints=np.zeros((2, 24, 3)), reprojection_error_px=np.zeros(2),
        keypoints=np.zeros((2, 51, 3)), keypoints_2d_fit=np.zeros((2, 51, 2)), keypoint_set="face51",
        status=["ok", "ok"], body_model=smplx_model, jaw_pose=inputs["jaw_pose"], expression=inputs["expression"],
    )  # fmt: skip
    loaded = FitResult.load(result.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(loaded.jaw_pose, inputs["jaw_pose"])
    np.testing.assert_array_equal(loaded.expression, inputs["expression"])
    assert set(np.load(tmp_path / "r.npz").files) >= {"jaw_pose", "expression"} and loaded.extras == {}
    np.testing.assert_array_equal(result.select(1).jaw_pose, inputs["jaw_pose"][1:])
    with torch.no_grad():
        expected = smplx_model(**{k: torch.as_tensor(v) for k, v in inputs.items()}).vertices.numpy()
    np.testing.assert_allclose(result.vertices(), expected, atol=1e-6)
    plain = FitResult.load(
        FitResult(**{**result.__dict__, "jaw_pose": None, "expression": None}).save(tmp_path / "p.npz")
    )
    assert plain.jaw_pose is None and plain.expression is None
