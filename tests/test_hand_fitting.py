"""Fitting the fingers (SMPLify-X style): hand pose as a fitted variable when the model has
finger joints and the keypoints carry hands42, the finger joint limits, the curl prior, and the
thumb of `curl_hand_pose`'s fist."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitter.body import BodyModel, load_body_model
from fitter.body.hands import curl_hand_pose
from fitter.keypoints import keypoint_names, keypoint_regressor


@pytest.fixture(scope="module")
def hands_model() -> BodyModel:
    return load_body_model("anny-hands")


def _hand_points(model: BodyModel, hand_pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """hands42 points (3,) of the posed model (rest body), by name."""
    reg = keypoint_regressor(model, "hands42")
    with torch.no_grad():
        out = model(hand_pose=hand_pose)
    points = reg.from_vertices(out.joints, out.vertices)[0]
    return dict(zip(keypoint_names("hands42"), points))


@pytest.mark.parametrize("side", ["left", "right"])
def test_thumb_of_a_fist_folds_over_the_fingers(hands_model: BodyModel, side: str) -> None:
    def thumb_to_middle_phalanges(points: dict[str, torch.Tensor]) -> float:
        tip = points[f"{side}_thumb_tip"]
        mids = [(points[f"{side}_{f}_pip"] + points[f"{side}_{f}_dip"]) / 2 for f in ("index_finger", "middle_finger")]
        return min(float((tip - m).norm()) for m in mids)

    rest = thumb_to_middle_phalanges(_hand_points(hands_model, torch.zeros(1, 90)))
    fist = thumb_to_middle_phalanges(_hand_points(hands_model, curl_hand_pose(hands_model, 1.05)))
    assert rest > 0.08  # the flat hand's thumb is well away from the fingers
    assert fist < 0.03  # the fist's thumb tip lies on the index / middle middle phalanges


def test_landmark_and_joint_fast_paths_pose_the_fingers(hands_model: BodyModel) -> None:
    from fitter.keypoints import keypoint_skin

    gen = torch.Generator().manual_seed(4)
    inputs = {"betas": torch.randn(2, 10, generator=gen), "body_pose": 0.2 * torch.randn(2, 69, generator=gen),
              "global_orient": torch.randn(2, 3, generator=gen), "transl": torch.randn(2, 3, generator=gen)}  # fmt: skip
    hand_pose = 0.4 * torch.randn(2, 90, generator=gen)
    reg, skin = keypoint_skin(hands_model, "coco17+hands42")
    with torch.no_grad():
        full = hands_model(**inputs, hand_pose=hand_pose)
        _, points = hands_model.pose_landmarks(skin, **inputs, hand_pose=hand_pose)
        fast = hands_model.forward_joints(**inputs, vertex_ids=reg.vertex_ids, hand_pose=hand_pose)
    torch.testing.assert_close(points, reg.from_vertices(full.joints, full.vertices), atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.points, full.vertices[:, reg.vertex_ids], atol=1e-5, rtol=0)
    assert not torch.allclose(points, hands_model.pose_landmarks(skin, **inputs)[1], atol=1e-3)
    pose = hand_pose.clone().requires_grad_(True)  # the fused op passes gradients on to the hand pose
    hands_model.pose_landmarks(skin, **inputs, hand_pose=pose)[1].sum().backward()
    assert pose.grad is not None and pose.grad.abs().sum() > 0


def test_finger_limits_penalise_a_backwards_finger_not_a_curl(hands_model: BodyModel) -> None:
    from fitter.body.hands import flexion_axes, hand_joint_frames
    from priors.finger_limits import finger_limit_angles, finger_limit_penalty

    frames = hand_joint_frames(hands_model)
    fingers = [j for j in range(30) if j % 15 < 12]
    curl = curl_hand_pose(hands_model, 1.4, fingers) + curl_hand_pose(hands_model, 0.8, [12, 13, 14, 27, 28, 29])
    expected = torch.tensor([1.4 if j % 15 < 12 else 0.8 for j in range(30)])  # a firm fist: 80 deg, thumb 46
    assert torch.allclose(finger_limit_angles(curl, frames)[0, :, 0], expected, atol=1e-5)
    assert float(finger_limit_penalty(curl, frames)[0]) == 0.0
    assert float(finger_limit_penalty(torch.zeros(1, 90), frames)[0]) == 0.0  # the flat hand
    axes = flexion_axes(hands_model)
    backwards = torch.zeros(30, 3)
    backwards[16] = -1.0 * axes[16]  # right index PIP bent 57 deg backwards
    hyper = torch.zeros(30, 3)
    hyper[15] = -0.9 * axes[15]  # right index MCP hyperextended 52 deg (limit 30)
    twisted = torch.zeros(30, 3)
    twisted[4] = 0.7 * frames[4, 2]  # left middle PIP twisted 40 deg about its bone
    for pose, excess in ((backwards, 1.0), (hyper, 0.9 - 0.5236), (twisted, 0.7 - 0.1745)):
        assert float(finger_limit_penalty(pose.reshape(1, 90), frames)[0]) == pytest.approx(excess**2, rel=1e-3)


def test_sampled_finger_poses_lie_inside_the_limits(hands_model: BodyModel) -> None:
    from fitter.body.hands import hand_joint_frames
    from priors.finger_limits import finger_limit_angles, finger_limit_bounds, finger_limit_penalty, sample_finger_poses

    frames = hand_joint_frames(hands_model)
    poses = sample_finger_poses(64, frames, torch.Generator().manual_seed(0))
    assert torch.all(finger_limit_penalty(poses, frames) < 1e-10)
    angles = finger_limit_angles(poses, frames)
    lower, upper = finger_limit_bounds()
    spread = (angles.amax(0) - angles.amin(0)) / (upper - lower)
    assert torch.all(spread > 0.7)  # the draws cover the ranges


@pytest.mark.parametrize("body_set", ["coco17", "smpl24"])
def test_lifter_sees_the_same_points_with_hands_added(body_set: str) -> None:
    from fitter.regressors.lifter import lifter_points

    names = keypoint_names("coco17") + ["smpl_left_wrist", "smpl_right_wrist", "left_hand", "right_hand"]
    k = len(keypoint_names(body_set))
    kp = torch.as_tensor(np.random.default_rng(0).uniform(0, 500, size=(2, k + 42, 3)), dtype=torch.float32)
    with_hands = lifter_points(kp, f"{body_set}+hands42", names)
    body = lifter_points(kp[:, :k], body_set, names)
    torch.testing.assert_close(with_hands, body, atol=0, rtol=0)  # hand wrists fill no other wrist slot
    kp = kp[:, -42:]
    smpl_wrists = lifter_points(kp, "hands42", names)[:, 17:19]  # alone, they still stand in
    torch.testing.assert_close(smpl_wrists, kp[:, [0, 21]], atol=0, rtol=0)


# ------------------------------------------------------------------------------ fitting


def _fit(model: BodyModel, case: dict, keypoints=None, keypoint_set: str = "coco17+hands42", **kwargs):
    from fitter.fitting import fit_keypoints

    kp = case["keypoints"] if keypoints is None else keypoints
    return fit_keypoints(kp, keypoint_set, image_size=case["image_size"], focal_length=case["focal"],
                         body_model=model, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def hand_cases(hands_model: BodyModel) -> dict:
    from fitter.synthetic import sample_hand_cases

    return sample_hand_cases(hands_model, 2, "coco17", seed=7, side_scale=0.3, image_size=(1125, 1500))


def test_body_only_sets_fit_no_hands(hands_model: BodyModel, hand_cases: dict) -> None:
    result = _fit(hands_model, hand_cases, hand_cases["keypoints"][:, :17], "coco17", config="fast")
    assert result.hand_pose is None and "hand_prior" not in result.losses
    hands_only_on_anny = _fit(load_body_model("anny"), hand_cases, config="fast")  # no fingers to fit
    assert hands_only_on_anny.hand_pose is None


def test_missing_hands_keep_the_relaxed_prior_pose(hands_model: BodyModel, hand_cases: dict) -> None:
    from fitter.body.hands import relaxed_hand_pose

    kp = hand_cases["keypoints"].copy()
    kp[0, 17:38, 2] = 0.0  # person 0: left hand unseen
    kp[1, 17:, 2] = 0.0  # person 1: no hands at all
    result = _fit(hands_model, hand_cases, kp, config="fast")
    relaxed = relaxed_hand_pose(hands_model)[0].numpy()
    assert result.hand_pose.shape == (2, 90)
    np.testing.assert_allclose(result.hand_pose[0, :45], relaxed[:45], atol=1e-6)
    np.testing.assert_allclose(result.hand_pose[1], relaxed, atol=1e-6)
    assert np.abs(result.hand_pose[0, 45:] - relaxed[45:]).max() > 0.1  # the seen right hand moved


def _finger_error_deg(fitted: np.ndarray, truth: np.ndarray) -> float:
    """Mean geodesic angle (degrees) between fitted and true local finger rotations."""
    from fitter.geometry import rotation_angle_between

    a, b = (torch.as_tensor(p, dtype=torch.float32).reshape(-1, 3) for p in (fitted, truth))
    return float(np.degrees(rotation_angle_between(a, b).mean()))


def test_photo_sized_case_recovers_the_fingers(hands_model: BodyModel, hand_cases: dict) -> None:
    result = _fit(hands_model, hand_cases)
    flat_error = _finger_error_deg(np.zeros_like(result.hand_pose), hand_cases["hand_pose"])
    error = _finger_error_deg(result.hand_pose, hand_cases["hand_pose"])
    hand_px = np.linalg.norm(result.keypoints_2d_fit[:, 17:] - hand_cases["keypoints"][:, 17:, :2], axis=-1).mean()
    assert flat_error > 25.0  # the true fingers are far from flat
    assert error < 16.0 and hand_px < 2.5
    # the pipeline's reprojection of a result (overlays, benchmarks) poses the fitted fingers too
    from fitter.pipeline import project_keypoint_set

    projected = project_keypoint_set(result, hands_model, "hands42")
    np.testing.assert_allclose(projected, result.keypoints_2d_fit[:, 17:], atol=0.05)


@pytest.mark.parametrize("kind", ["smplh", "smplx"])
def test_smplh_and_smplx_files_fit_hands(hands_model: BodyModel, kind: str, tmp_path) -> None:
    from model_files import skeleton_model_arrays, write_model_npz

    from fitter.body.hands import finger_joint_ids
    from fitter.synthetic import sample_hand_cases

    rest = (hands_model.J_regressor @ hands_model.v_template).numpy()
    dirs = hands_model.J_shapedirs.numpy()
    tips = {}  # anny-hands' fingertip vertices, on the distal joints
    for side in ("left", "right"):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            vid = hands_model.landmark_vertex_ids[f"{side}_{finger}_tip"]
            joint = finger_joint_ids(hands_model, side, finger)[2]
            tips[side[0] + finger] = (hands_model.v_template[vid].numpy(), hands_model.shapedirs[vid].numpy(), joint)
    arrays = skeleton_model_arrays(rest, dirs, kind, tips)
    model = load_body_model(write_model_npz(arrays, tmp_path / f"{kind}.npz", compressed=True))
    assert model.hand_joint_ids.tolist() == list(range(22, 52) if kind == "smplh" else range(25, 55))
    cases = sample_hand_cases(model, 2, "smpl24", seed=3, side_scale=0.3, image_size=(1125, 1500))
    result = _fit(model, cases, keypoint_set="smpl24+hands42")
    assert result.hand_pose is not None and result.hand_pose.shape == (2, 90)
    seen = result.keypoints[..., 2] * np.asarray(keypoint_regressor(model, "smpl24+hands42").quality) > 0
    hand_px = np.linalg.norm(result.keypoints_2d_fit - cases["keypoints"][..., :2], axis=-1)[:, 24:][seen[:, 24:]]
    assert hand_px.mean() < 3.0
    assert _finger_error_deg(result.hand_pose, cases["hand_pose"]) < 0.6 * _finger_error_deg(
        np.zeros_like(result.hand_pose), cases["hand_pose"]
    )


def test_hand_solve_jacobian_matches_finite_differences(hands_model: BodyModel, hand_cases: dict) -> None:
    from fitter.fitting import fit_config
    from fitter.fitting.hand_layout import NUM
    from fitter.fitting.hand_solve import _Held, _point_factors, _Solver
    from fitter.fitting.params import Params
    from fitter.fitting.problem import Problem

    model = load_body_model("anny-hands").double()
    t = {k: torch.as_tensor(hand_cases[k]).double() for k in ("betas", "body_pose", "global_orient", "transl",
                                                              "hand_pose", "keypoints", "focal")}  # fmt: skip
    centre = torch.as_tensor(hand_cases["image_size"] / 2).double().expand(2, 2)
    problem = Problem.build(model, "coco17+hands42", t["keypoints"], t["focal"], centre)
    params = Params(t["betas"], t["body_pose"], t["global_orient"], t["transl"], 0.7 * t["hand_pose"],
                    problem.seen_hands()).double()  # fmt: skip
    config = fit_config("default")
    x = torch.cat([params.hand_pose.detach(), 0.1 * torch.randn(2, NUM - 90, generator=torch.Generator().manual_seed(1),
                                                                  dtype=torch.float64)], dim=1)  # fmt: skip
    held = _Held.of(params)
    solver = _Solver(problem, held, config, torch.ones(2, NUM, dtype=torch.float64))
    state = solver.forward(x)
    # the solver's pass (the body posed once, the arms and hands per pass) against the model's own
    _, _, proj = problem.points(held.betas, held.pose(x), held.orient_delta, held.transl,
                                orient_base=held.orient_start, hand_pose=held.hands(x))  # fmt: skip
    expected = (proj - problem.target) * _point_factors(problem, config)[..., None]
    torch.testing.assert_close(state.residual, expected, atol=1e-9, rtol=0)
    jac, residual = solver.side_jacobian(state)  # (2,B,2R,57) per side: its keypoints by its values
    sides, rows = solver.sides, solver.turns.side_points
    padded = torch.cat([expected, expected.new_zeros(2, 1, 2)], dim=1)
    torch.testing.assert_close(residual, padded[:, rows].transpose(0, 1).reshape(2, 2, -1), atol=1e-9, rtol=0)
    eps = 1e-6
    steps = eps * torch.eye(NUM, dtype=torch.float64)
    numeric = torch.stack([(solver.forward(x + steps[i]).residual - state.residual) / eps for i in range(NUM)], -1)
    numeric = torch.cat([numeric, numeric.new_zeros(2, 1, 2, NUM)], dim=1)  # (B,K+1,2,NUM)
    for side in range(2):  # its rows and columns; the other side's values move none of its keypoints
        block = numeric[:, rows[side]].reshape(2, -1, NUM)
        assert (jac[side] - block[..., sides[side]]).abs().max() < 1e-3 * block.abs().max()
        assert block[..., sides[1 - side]].abs().max() == 0


def test_hand_solve_stops_early_when_steps_stop_paying(hands_model: BodyModel, hand_cases: dict, monkeypatch) -> None:
    """With hand_solve_stop an item stops once a step gains less than that fraction of its
    cost; the solve ends when all have stopped, not far above the cost of the full run."""
    from fitter.fitting import fit_config
    from fitter.fitting.hand_layout import ARM, NUM
    from fitter.fitting.hand_solve import _Held, _levenberg_marquardt, _Solver
    from fitter.fitting.params import Params
    from fitter.fitting.problem import Problem

    t = {k: torch.as_tensor(hand_cases[k]) for k in ("betas", "body_pose", "global_orient", "transl", "keypoints",
                                                     "focal")}  # fmt: skip
    centre = torch.as_tensor(hand_cases["image_size"] / 2, dtype=torch.float32).expand(2, 2)
    problem = Problem.build(hands_model, "coco17+hands42", t["keypoints"], t["focal"], centre)
    params = Params(t["betas"], t["body_pose"], t["global_orient"], t["transl"], problem.hand_mean.expand(2, -1),
                    problem.seen_hands())  # fmt: skip
    held = _Held.of(params)
    x = torch.cat([held.hand_start, torch.zeros(2, len(ARM))], dim=1)
    solver = _Solver(problem, held, fit_config("default"), torch.ones(2, NUM))
    passes = []
    forward = _Solver.forward
    monkeypatch.setattr(_Solver, "forward", lambda self, x_: passes.append(len(x_)) or forward(self, x_))
    _, full = _levenberg_marquardt(solver, x.clone(), 40)
    full_passes = len(passes)
    passes.clear()
    _, early = _levenberg_marquardt(solver, x.clone(), 40, early_stop=1e-3)
    assert len(passes) < 0.6 * full_passes  # stopped well before the 40 steps
    start = forward(solver, x).cost
    assert torch.all(early.cost < 0.1 * start)  # it had converged: most of the cost is gone
    assert torch.all(early.cost <= 1.15 * full.cost)  # (the tail still gains: it is off by default)


def test_hand_solve_with_points_the_model_lacks(hands_model: BodyModel) -> None:
    """blazepose33's mouth corners have no point on anny-hands (they project from depth 0)."""
    from fitter.fitting import fit_config
    from fitter.fitting.hand_solve import solve_hands
    from fitter.fitting.params import Params
    from fitter.fitting.problem import Problem
    from fitter.synthetic import sample_hand_cases

    case = sample_hand_cases(hands_model, 2, "blazepose33", seed=5, side_scale=0.3, image_size=(1125, 1500))
    assert case["keypoints"][0, keypoint_names("blazepose33").index("mouth_left"), 2] == 0.0
    t = {k: torch.as_tensor(case[k]) for k in ("betas", "body_pose", "global_orient", "transl", "keypoints", "focal")}
    centre = torch.as_tensor(case["image_size"] / 2, dtype=torch.float32).expand(2, 2)
    problem = Problem.build(hands_model, "blazepose33+hands42", t["keypoints"], t["focal"], centre)
    params = Params(t["betas"], t["body_pose"], t["global_orient"], t["transl"], problem.hand_mean.expand(2, -1),
                    problem.seen_hands())  # fmt: skip

    def hand_px() -> float:
        with torch.no_grad():
            _, _, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                        orient_base=params.orient_start, hand_pose=params.hands)  # fmt: skip
        return float((proj - t["keypoints"][..., :2])[:, 33:].norm(dim=-1).mean())

    before = hand_px()
    solve_hands(problem, params, fit_config("default"), 10, (0.8,))
    assert before > 5.0 and hand_px() < 2.0


def test_palms_only_poses_the_same_palm_points(hands_model: BodyModel, hand_cases: dict) -> None:
    """The Adam stages' problem keeps the body points and each hand's wrist, thumb base and four
    knuckles, posed exactly as in the whole problem (a sub-skin of the same pairs)."""
    from fitter.fitting.problem import Problem

    t = {k: torch.as_tensor(hand_cases[k]) for k in ("betas", "body_pose", "global_orient", "transl", "hand_pose",
                                                     "keypoints", "focal")}  # fmt: skip
    centre = torch.as_tensor(hand_cases["image_size"] / 2, dtype=torch.float32).expand(2, 2)
    whole = Problem.build(hands_model, "coco17+hands42", t["keypoints"], t["focal"], centre)
    palms = whole.palms_only()
    assert len(palms.names) == 17 + 12 and palms.names[:17] == whole.names[:17]
    assert palms.skin.pair_joint.shape[0] < whole.skin.pair_joint.shape[0]
    rows = [whole.names.index(n) for n in palms.names]
    pose = (t["betas"], t["body_pose"], t["global_orient"], t["transl"])
    _, _, proj_whole = whole.points(*pose, hand_pose=t["hand_pose"])
    _, _, proj_palms = palms.points(*pose, hand_pose=t["hand_pose"])
    torch.testing.assert_close(proj_palms, proj_whole[:, rows])
    torch.testing.assert_close(palms.target, whole.target[:, rows])
    assert palms.hand_mask.sum() == 12 and palms.hand_sides.sum(1).tolist() == [6.0, 6.0]
    other = 0.5 * t["hand_pose"]  # a new held hand pose: its rotations are not the remembered ones
    _, points, _ = palms.points(*pose, hand_pose=other)
    torch.testing.assert_close(points, hands_model.pose_landmarks(palms.skin, *pose, hand_pose=other)[1])


def test_hands_meet_their_keypoints_after_the_silhouette_stage(hands_model: BodyModel, hand_cases: dict) -> None:
    """A silhouette whose arms disagree with the hand keypoints (arms raised 0.35 rad) pulls the
    arms in the silhouette stage; the fingers and arms are solved after it, so the fitted hands
    still meet their keypoints (as closely as in a fit without a mask)."""
    from fitter.fitting import FitTargets
    from fitter.render import render_mask

    pose = torch.as_tensor(hand_cases["body_pose"]).clone()
    for joint in (16, 17):  # SMPL shoulders: body_pose rows joint - 1
        pose[:, 3 * (joint - 1) + 2] += 0.35 if joint == 16 else -0.35
    with torch.no_grad():
        out = hands_model(torch.as_tensor(hand_cases["betas"]), pose, torch.as_tensor(hand_cases["global_orient"]),
                          torch.as_tensor(hand_cases["transl"]), hand_pose=torch.as_tensor(hand_cases["hand_pose"]))  # fmt: skip
    width, height = hand_cases["image_size"]
    masks = render_mask(out.vertices, hands_model.faces, torch.as_tensor(hand_cases["focal"]),
                        torch.tensor([width / 2, height / 2]), (width, height)).numpy()  # fmt: skip

    def hand_px(result) -> float:
        fitted = result.keypoints_2d_fit[:, 17:]
        return float(np.linalg.norm(fitted - hand_cases["keypoints"][:, 17:, :2], axis=-1).mean())

    plain = _fit(hands_model, hand_cases)
    with_mask = _fit(hands_model, hand_cases, targets=FitTargets(masks=list(masks)))
    assert with_mask.losses["silhouette"].max() > 0  # the silhouette stage ran
    assert hand_px(with_mask) < 1.2 * hand_px(plain) + 0.3


def test_an_arm_whose_hand_is_unseen_is_left_to_the_body_stages(hands_model: BodyModel, hand_cases: dict) -> None:
    """The finger solve moves an arm only to bring its seen hand to the hand's keypoints: with
    no hand seen, the body comes out as from a fit without the solve."""
    from fitter.fitting import fit_config

    kp = hand_cases["keypoints"].copy()
    kp[:, 17:, 2] = 0.0  # no hand seen
    with_solve = _fit(hands_model, hand_cases, kp, config="fast")
    without = _fit(hands_model, hand_cases, kp, config=fit_config("fast", hand_solve_iters=0, hand_polish_iters=0))
    np.testing.assert_array_equal(with_solve.body_pose, without.body_pose)


def test_the_hand_solve_weighs_hand_points_as_smplifyx_last_stage(hands_model: BodyModel, hand_cases: dict) -> None:
    """SMPLify-X weighs hand joints 2.0 in the stage that fits the fingers and less before: the
    hand solve weighs the hands42 points x hand_solve_keypoint_weight (2), the body stages x
    hand_keypoint_weight (1); the body points keep their weight in both."""
    from fitter.fitting import fit_config
    from fitter.fitting.hand_solve import _point_factors
    from fitter.fitting.losses import hand_point_weights
    from fitter.fitting.problem import Problem

    t = {k: torch.as_tensor(hand_cases[k]) for k in ("keypoints", "focal")}
    centre = torch.as_tensor(hand_cases["image_size"] / 2, dtype=torch.float32).expand(2, 2)
    problem = Problem.build(hands_model, "coco17+hands42", t["keypoints"], t["focal"], centre)
    config = fit_config("default")
    hand = problem.hand_mask.expand_as(problem.weights) > 0
    assert hand.sum() == 2 * 42 and not hand[:, :17].any()
    in_solve = _point_factors(problem, config) / problem.scale[:, None]
    torch.testing.assert_close(in_solve[hand], 2.0 * problem.weights[hand])
    torch.testing.assert_close(in_solve[~hand], problem.weights[~hand])
    in_body_stages = hand_point_weights(problem, problem.weights, config.hand_keypoint_weight)
    torch.testing.assert_close(in_body_stages, problem.weights)
