"""Tests for `fitter.fitting.fit_keypoints` (SMPLify-style fitting) and `fitter.result.FitResult`.

Synthetic COCO-17 keypoints are made by posing the anny body model, projecting its keypoints with
a known pinhole camera (camera frame: x right, y down, z forward, metres) and fitting them back.
Each fit runs once per module (fixtures); config "fast" is used wherever accuracy is not tested.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from fitter.fitting import PRESETS, FitConfig, fit_config, fit_keypoints
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project
from fitter.init import upright_start
from fitter.keypoints import keypoint_regressor
from fitter.result import FitResult
from fitter.synthetic import joint_errors, sample_cases

IMAGE_SIZE = (1280, 960)  # (W, H) pixels, the size sample_cases uses
PARAMS = ("betas", "body_pose", "global_orient", "transl")
ARRAYS = PARAMS + ("joints", "focal_length", "principal_point", "image_size", "reprojection_error_px",
                   "keypoints", "keypoints_2d_fit")  # fmt: skip


def facing_direction(global_orient: np.ndarray) -> np.ndarray:
    """(N,3) unit vector the body faces, camera frame (the model faces +Z in its own frame)."""
    rot = axis_angle_to_matrix(torch.as_tensor(np.asarray(global_orient), dtype=torch.float32))
    return (rot @ torch.tensor([0.0, 0.0, 1.0])).numpy()


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) angle in degrees between unit vectors a (N,3) and b (N,3)."""
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def project_coco17(model, betas, body_pose, global_orient, transl, focal) -> np.ndarray:
    """(N,17,3) clean COCO-17 keypoints (pixels + confidence 1) of the posed model."""
    reg = keypoint_regressor(model, "coco17")
    with torch.no_grad():
        params = (betas, body_pose, global_orient, transl)
        out = model(*(torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in params))
        pts = reg.from_vertices(out.joints, out.vertices)
        px = perspective_project(pts, torch.as_tensor(np.asarray(focal, dtype=np.float32)),
                                 torch.tensor([IMAGE_SIZE[0] / 2, IMAGE_SIZE[1] / 2]))  # fmt: skip
    return torch.cat([px, torch.ones_like(px[..., :1])], dim=-1).numpy()


def all_finite(result: FitResult) -> bool:
    return all(np.all(np.isfinite(getattr(result, name))) for name in ARRAYS)


# --------------------------------------------------------------------------------------------
# fixtures: each fit runs once per module


@pytest.fixture(scope="module")
def frontal_cases(anny_model) -> dict:
    """3 clean synthetic bodies (pose_scale 0.3, seed 0) roughly facing the camera (< 45 deg)."""
    cases = sample_cases(anny_model, 12, "coco17", seed=0, pose_scale=0.3)
    towards_camera = -facing_direction(cases["global_orient"])[:, 2]
    index = np.nonzero(towards_camera > 0.7)[0][:3]
    assert len(index) == 3, "seed 0 should give 3 bodies facing the camera among 12"
    return {k: (v[index] if k != "image_size" else v) for k, v in cases.items()}


@pytest.fixture(scope="module")
def clean_fit(anny_model, frontal_cases) -> FitResult:
    return fit_keypoints(frontal_cases["keypoints"], "coco17", frontal_cases["image_size"],
                         focal_length=frontal_cases["focal"], body_model=anny_model, config="default")  # fmt: skip


@pytest.fixture(scope="module")
def side_case(anny_model) -> dict:
    """One body turned 100 degrees from facing the camera (side-on, shoulders close in 2D), 5 m away."""
    cases = sample_cases(anny_model, 1, "coco17", seed=1, pose_scale=0.3)
    turn = torch.tensor([[0.0, math.radians(100.0), 0.0]])
    upright = torch.tensor([[math.pi, 0.0, 0.0]])
    global_orient = matrix_to_axis_angle(axis_angle_to_matrix(upright) @ axis_angle_to_matrix(turn)).numpy()
    transl = np.array([[0.1, 0.2, 5.0]], dtype=np.float32)
    focal = np.array([1000.0], dtype=np.float32)
    kp = project_coco17(anny_model, cases["betas"], cases["body_pose"], global_orient, transl, focal)
    return {"keypoints": kp, "global_orient": global_orient, "focal": focal}


@pytest.fixture(scope="module")
def batch_inputs(frontal_cases, side_case) -> dict:
    """Two frontal bodies with the side-on body between them (the only flip-tested item)."""
    kp = np.concatenate([frontal_cases["keypoints"][:1], side_case["keypoints"], frontal_cases["keypoints"][1:2]])
    focal = np.concatenate([frontal_cases["focal"][:1], side_case["focal"], frontal_cases["focal"][1:2]])
    return {"keypoints": kp.astype(np.float32), "focal": focal.astype(np.float32)}


def _fast_fit(model, keypoints, focal, config="fast", start=None) -> FitResult:
    return fit_keypoints(
        keypoints, "coco17", IMAGE_SIZE, focal_length=focal, body_model=model, config=config, start=start
    )


# SMPLify's upright start (no lifter), shortened: the path with the flip test
FRONTAL = fit_config("smplify", camera_iters=20, stage_iters=(15, 15, 40), pose_prior_weights=(404.0, 57.4, 4.78),
                     shape_prior_weights=(100.0, 10.0, 5.0), lr=0.08, restart_poses=())  # fmt: skip


@pytest.fixture(scope="module")
def batch_fit(anny_model, batch_inputs) -> FitResult:
    return _fast_fit(anny_model, batch_inputs["keypoints"], batch_inputs["focal"], FRONTAL)


@pytest.fixture(scope="module")
def single_fits(anny_model, batch_inputs) -> list[FitResult]:
    kp, focal = batch_inputs["keypoints"], batch_inputs["focal"]
    return [_fast_fit(anny_model, kp[i : i + 1], focal[i : i + 1], FRONTAL) for i in range(len(kp))]


# --------------------------------------------------------------------------------------------
# configuration presets (prior-weight annealing)


def test_presets_have_matching_stage_lengths():
    assert {"fast", "default", "accurate", "smplify"} <= set(PRESETS)
    for name in ("fast", "default", "accurate", "smplify"):
        cfg = PRESETS[name]
        assert isinstance(cfg, FitConfig) and cfg.name == name
        n = len(cfg.stage_iters)
        assert n >= 1 and len(cfg.pose_prior_weights) == n and len(cfg.shape_prior_weights) == n, name
        assert all(i > 0 for i in cfg.stage_iters) and cfg.camera_iters > 0, name
        # annealing: prior weights never increase from one stage to the next
        assert list(cfg.pose_prior_weights) == sorted(cfg.pose_prior_weights, reverse=True), name
        assert list(cfg.shape_prior_weights) == sorted(cfg.shape_prior_weights, reverse=True), name
    # "smplify" is SMPLify's published 4-stage schedule from a frontal start; the others start
    # from the keypoint lifter and run at SMPLify's final-stage weights
    assert PRESETS["smplify"].pose_prior_weights == (404.0, 404.0, 57.4, 4.78)
    assert PRESETS["smplify"].shape_prior_weights == (100.0, 50.0, 10.0, 5.0)
    assert PRESETS["smplify"].start == "upright" and PRESETS["default"].start == "lifter"
    for name in ("fast", "default", "accurate"):
        assert PRESETS[name].pose_prior_weights[-1] == 4.78 and PRESETS[name].shape_prior_weights[-1] == 5.0
    assert PRESETS["default"].sigma == 100.0


def test_fit_config_overrides_and_unknown_name():
    cfg = fit_config("fast", start="upright", anchor_weight=0.0)
    assert cfg.start == "upright" and cfg.anchor_weight == 0.0
    assert cfg.stage_iters == PRESETS["fast"].stage_iters
    assert PRESETS["fast"].start == "lifter" and PRESETS["fast"].anchor_weight == 10.0  # preset untouched
    with pytest.raises(ValueError, match="unknown config"):
        fit_config("fastest")


# --------------------------------------------------------------------------------------------
# accuracy on clean synthetic data (config "default")


def test_clean_fit_reaches_2d_and_pa_mpjpe_targets(clean_fit, frontal_cases):
    assert clean_fit.status == ["ok"] * 3
    err2d = np.linalg.norm(clean_fit.keypoints_2d_fit - frontal_cases["keypoints"][..., :2], axis=-1).mean(1)
    _, pa_mpjpe = joint_errors(clean_fit.joints, frontal_cases["joints"])
    print(f"2D error px per body {np.round(err2d, 2)}, PA-MPJPE mm per body {np.round(pa_mpjpe, 1)}")
    assert err2d.mean() < 2.0, f"mean 2D error {err2d.mean():.2f} px (per body {np.round(err2d, 2)})"
    assert pa_mpjpe.mean() < 60.0, f"mean PA-MPJPE {pa_mpjpe.mean():.1f} mm (per body {np.round(pa_mpjpe, 1)})"


def test_reported_2d_fit_matches_the_fitted_parameters(clean_fit, anny_model):
    """keypoints_2d_fit is the projection of the returned parameters; the error is its mean distance."""
    kp2d = project_coco17(anny_model, *(getattr(clean_fit, k) for k in PARAMS), clean_fit.focal_length)[..., :2]
    np.testing.assert_allclose(clean_fit.keypoints_2d_fit, kp2d, atol=0.05)
    err = np.linalg.norm(clean_fit.keypoints_2d_fit - clean_fit.keypoints[..., :2], axis=-1).mean(1)
    np.testing.assert_allclose(clean_fit.reprojection_error_px, err, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        joints = anny_model(*(torch.as_tensor(getattr(clean_fit, k)) for k in PARAMS)).joints.numpy()
    np.testing.assert_allclose(clean_fit.joints, joints, atol=1e-5)


def test_clean_fit_depth_within_20_percent(clean_fit, frontal_cases):
    true_z = frontal_cases["transl"][:, 2]
    assert np.all(clean_fit.transl[:, 2] > 0)
    rel = np.abs(clean_fit.transl[:, 2] - true_z) / true_z
    assert np.all(rel < 0.2), f"depth {clean_fit.transl[:, 2]} vs true {true_z}"


def test_clean_fit_records_camera_and_is_finite(clean_fit, frontal_cases):
    assert all_finite(clean_fit)
    assert all(np.all(np.isfinite(v)) for v in clean_fit.losses.values())
    np.testing.assert_allclose(clean_fit.focal_length, frontal_cases["focal"], rtol=1e-6)
    np.testing.assert_allclose(clean_fit.principal_point, np.tile([640.0, 480.0], (3, 1)))
    assert clean_fit.info["focal_source"] == ["user"] * 3
    assert clean_fit.info["flip_tested"] == [False] * 3  # frontal bodies: shoulders far apart


# --------------------------------------------------------------------------------------------
# bad input


def test_nan_keypoints_raise_clear_error(anny_model, frontal_cases):
    kp = frontal_cases["keypoints"].copy()
    kp[1, 4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")
    kp[1, 4, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")


def test_zero_confidence_fails_that_person_alone(anny_model, frontal_cases):
    """A person without keypoints gets a failed status (finite parameters); the others are fitted as alone."""
    kp = frontal_cases["keypoints"].copy()
    kp[2, :, 2] = 0.0
    kp[1, 1:, 2] = 0.0  # one point is not enough either
    result = fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")
    assert result.status[0] == "ok" and all("fewer than 2 keypoints" in s for s in result.status[1:])
    assert all_finite(result)
    alone = fit_keypoints(kp[:1], "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")
    np.testing.assert_allclose(alone.body_pose[0], result.body_pose[0], atol=2e-3)
    nobody = fit_keypoints(np.zeros_like(kp[:1]), "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")
    assert nobody.status[0].startswith("failed") and all_finite(nobody)


@pytest.mark.parametrize("what", ["shape", "negative_confidence", "config"])
def test_other_bad_input_raises(anny_model, frontal_cases, what):
    kp = frontal_cases["keypoints"].copy()
    config = "fast"
    if what == "shape":
        kp = kp[:, :16]
    elif what == "negative_confidence":
        kp[0, 3, 2] = -0.5
    else:
        config = "slowest"
    with pytest.raises(ValueError):
        fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config=config)


# --------------------------------------------------------------------------------------------
# batching, flip test, determinism, NaN guard


def _assert_batch_equals_singles(batch_fit, single_fits):
    for i, single in enumerate(single_fits):
        assert single.status == [batch_fit.status[i]]
        assert single.info["flipped"] == [batch_fit.info["flipped"][i]]
        for name in PARAMS + ("joints",):
            # Items never interact, but float32 sums over different batch sizes differ in the last
            # bits and Adam's normalised steps can grow that to ~1e-3 on a parameter with ~0 gradient.
            np.testing.assert_allclose(getattr(single, name)[0], getattr(batch_fit, name)[i], atol=2e-3, rtol=0,
                                       err_msg=f"item {i} {name}")  # fmt: skip
        np.testing.assert_allclose(single.losses["total"][0], batch_fit.losses["total"][i], rtol=1e-3)


def test_batch_equals_single_items(batch_fit, single_fits):
    assert batch_fit.info["flip_tested"] == [False, True, False]  # the side-on item is duplicated
    _assert_batch_equals_singles(batch_fit, single_fits)


def test_batch_equals_single_items_from_lifter(anny_model, batch_inputs):
    kp, focal = batch_inputs["keypoints"], batch_inputs["focal"]
    batch = _fast_fit(anny_model, kp, focal)
    singles = [_fast_fit(anny_model, kp[i : i + 1], focal[i : i + 1]) for i in range(len(kp))]
    assert batch.info["started_from_lifter"] == [True] * 3 and batch.info["flip_tested"] == [False] * 3
    _assert_batch_equals_singles(batch, singles)


def test_same_inputs_give_identical_outputs(anny_model, batch_inputs, batch_fit):
    again = _fast_fit(anny_model, batch_inputs["keypoints"], batch_inputs["focal"], FRONTAL)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(again, name), getattr(batch_fit, name), err_msg=name)
    assert again.status == batch_fit.status and again.info["flipped"] == batch_fit.info["flipped"]


def test_flip_test_picks_better_orientation_for_side_view(anny_model, side_case, single_fits):
    flipped = single_fits[1]
    no_flip = functools.partial(upright_start, flip=False)
    plain = _fast_fit(anny_model, side_case["keypoints"], side_case["focal"], FRONTAL, start=no_flip)
    truth = facing_direction(side_case["global_orient"])
    err_flipped = angle_deg(facing_direction(flipped.global_orient), truth)[0]
    err_plain = angle_deg(facing_direction(plain.global_orient), truth)[0]
    # precondition: without the flip test this body is fitted facing the wrong way
    assert err_plain > 90.0, f"without flip test the facing error is only {err_plain:.0f} deg"
    assert flipped.info["flip_tested"] == [True] and flipped.info["flipped"] == [True]
    assert flipped.losses["total"][0] < plain.losses["total"][0]
    assert err_flipped < 45.0, f"facing error with flip test {err_flipped:.0f} deg"
    assert flipped.reprojection_error_px[0] < plain.reprojection_error_px[0]


def test_side_on_bodies_fitted_facing_the_right_way(anny_model):
    """Clean keypoints of near-profile bodies (turned 70 and -90 degrees): the fit faces the right way."""
    cases = sample_cases(anny_model, 1, "coco17", seed=1, pose_scale=0.3)
    upright = axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]]))
    turns = torch.tensor([[0.0, math.radians(70.0), 0.0], [0.0, math.radians(-90.0), 0.0]])
    global_orient = matrix_to_axis_angle(upright @ axis_angle_to_matrix(turns)).numpy()
    transl = np.array([[0.1, 0.2, 5.0]] * 2, dtype=np.float32)
    focal = np.array([1000.0, 1000.0], dtype=np.float32)
    kp = project_coco17(anny_model, np.repeat(cases["betas"], 2, 0), np.repeat(cases["body_pose"], 2, 0),
                        global_orient, transl, focal)  # fmt: skip
    result = _fast_fit(anny_model, kp, focal)
    err = angle_deg(facing_direction(result.global_orient), facing_direction(global_orient))
    assert np.all(err < 45.0), f"facing errors {np.round(err)} deg"


def test_degenerate_keypoints_give_finite_result(anny_model):
    """All keypoints on one pixel: nothing sensible to fit, but the parameters stay finite."""
    kp = np.zeros((1, 17, 3), dtype=np.float32)
    kp[..., :2] = (640.0, 480.0)
    kp[..., 2] = 1.0
    result = fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config="fast")
    assert result.status[0] == "ok" or result.status[0].startswith("failed")
    assert all_finite(result)
    assert not any(np.isnan(v).any() for v in result.losses.values())
    assert result.info["focal_source"] == ["diagonal"]


SHORT = dict(camera_iters=5, stage_iters=(10,), pose_prior_weights=(4.78,), shape_prior_weights=(5.0,))


@pytest.fixture(scope="module")
def diverged_fit(anny_model, frontal_cases) -> FitResult:
    """A step size that makes Adam blow up, in the first pass and in the retry."""
    cfg = fit_config("fast", lr=1e6, **SHORT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fitter.fitting.fit.NAN_RETRY_LR_SCALE", 1.0)
        return _fast_fit(anny_model, frontal_cases["keypoints"][:2], frontal_cases["focal"][:2], cfg)


def test_diverging_fit_is_marked_failed_with_finite_parameters(diverged_fit):
    assert all(s.startswith("failed") for s in diverged_fit.status), diverged_fit.status
    assert all_finite(diverged_fit)
    assert not any(np.isnan(v).any() for v in diverged_fit.losses.values())


def _reject_non_json_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def test_failed_result_saves_valid_json_sidecar(diverged_fit, tmp_path):
    """A failed item's losses are inf; the .json sidecar must still be standard JSON (no Infinity/NaN)."""
    path = diverged_fit.save(tmp_path / "failed.npz")
    loaded = FitResult.load(path)
    assert loaded.status == diverged_fit.status
    np.testing.assert_array_equal(loaded.losses["total"], diverged_fit.losses["total"])
    json.loads(path.with_suffix(".json").read_text(), parse_constant=_reject_non_json_constant)


def test_diverging_fit_recovers_at_lower_learning_rate(anny_model, frontal_cases, monkeypatch):
    """The NaN guard refits a diverged item from its start with lr x NAN_RETRY_LR_SCALE."""
    monkeypatch.setattr("fitter.fitting.fit.NAN_RETRY_LR_SCALE", 1e-8)
    cfg = fit_config("fast", lr=1e6, **SHORT)
    result = _fast_fit(anny_model, frontal_cases["keypoints"][:1], frontal_cases["focal"][:1], cfg)
    assert result.status == ["ok"]
    assert all_finite(result) and np.isfinite(result.losses["total"]).all()


# --------------------------------------------------------------------------------------------
# FitResult


def test_fit_result_save_load_round_trip(clean_fit, tmp_path):
    path = clean_fit.save(tmp_path / "fit.npz")
    assert path.is_file() and path.with_suffix(".json").is_file()
    loaded = FitResult.load(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(clean_fit, name), err_msg=name)
    assert loaded.keypoint_set == "coco17" and loaded.status == clean_fit.status
    assert loaded.info == json.loads(json.dumps(clean_fit.info))
    assert loaded.info["focal_source"] == ["user"] * 3 and loaded.info["config"]["name"] == "default"
    assert set(loaded.losses) == set(clean_fit.losses)
    for key, value in clean_fit.losses.items():
        np.testing.assert_array_equal(loaded.losses[key], value)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["status"] == clean_fit.status and sidecar["keypoint_set"] == "coco17"
    np.testing.assert_allclose(sidecar["transl"], clean_fit.transl, rtol=1e-6)


def test_fit_result_vertices_in_camera_frame(clean_fit, anny_model, tmp_path):
    verts = clean_fit.vertices()
    assert verts.shape == (3, anny_model.lbs_weights.shape[0], 3)
    assert np.all(verts[..., 2] > 0), "the body must be in front of the camera"
    # the mesh is around the fitted pelvis
    np.testing.assert_allclose(verts.mean(1), clean_fit.joints[:, 0], atol=0.3)
    assert clean_fit.faces.shape[1] == 3 and clean_fit.faces.max() < verts.shape[1]
    # a loaded result (no model attached) rebuilds the same mesh
    loaded = FitResult.load(clean_fit.save(tmp_path / "fit.npz"))
    np.testing.assert_allclose(loaded.vertices(), verts, atol=1e-5)


def test_fit_result_select(clean_fit):
    one = clean_fit.select(1)
    assert len(one) == 1 and one.status == [clean_fit.status[1]]
    np.testing.assert_array_equal(one.transl, clean_fit.transl[1:2])
    two = clean_fit.select([2, 0])
    np.testing.assert_array_equal(two.betas, clean_fit.betas[[2, 0]])
    np.testing.assert_array_equal(two.losses["total"], clean_fit.losses["total"][[2, 0]])


def test_fit_runs_on_one_torch_thread_and_restores_the_callers(anny_model, frontal_cases, monkeypatch):
    """torch's default (all cores) made library fits 30x slower on a busy 2-core machine: fit_keypoints
    uses one thread unless asked, and leaves the caller's setting as it was."""
    import fitter.fitting.fit as fit_module

    seen = []
    real_fit = fit_module._fit
    monkeypatch.setattr(fit_module, "_fit", lambda *args: seen.append(torch.get_num_threads()) or real_fit(*args))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kp = frontal_cases["keypoints"][:1]
        fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config=fit_config("fast", stage_iters=(1,)))
        assert torch.get_num_threads() == 2
        fit_keypoints(kp, "coco17", IMAGE_SIZE, body_model=anny_model, config=fit_config("fast", stage_iters=(1,)),
                      threads=None)  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]


def test_fit_result_hand_pose_saved_with_smplx_names(clean_fit, tmp_path):
    hands = np.random.default_rng(0).normal(0, 0.2, (3, 90)).astype(np.float32)
    with_hands = FitResult(**{name: getattr(clean_fit, name) for name in ARRAYS}, keypoint_set="coco17",
                           status=clean_fit.status, info=clean_fit.info, hand_pose=hands)  # fmt: skip
    path = with_hands.save(tmp_path / "hands.npz")
    with np.load(path) as data:
        np.testing.assert_array_equal(data["left_hand_pose"], hands[:, :45])
        np.testing.assert_array_equal(data["right_hand_pose"], hands[:, 45:])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    np.testing.assert_allclose(sidecar["right_hand_pose"], hands[:, 45:], rtol=1e-6)
    loaded = FitResult.load(path)
    np.testing.assert_array_equal(loaded.hand_pose, hands)
    assert "left_hand_pose" not in loaded.extras
    np.testing.assert_array_equal(loaded.select([2]).hand_pose, hands[2:])
    assert FitResult.load(clean_fit.save(tmp_path / "body.npz")).hand_pose is None


def test_polish_weakens_the_priors_only_for_keypoints_the_fit_already_meets(anny_model):
    """The polish stage (FitConfig.polish_iters) scales the priors by (rms / polish_noise)^2: the fit ends
    closer to exact SMPL-24 joints than after the same steps at full priors; keypoints with 8 px
    of noise keep the priors at full weight (scale 1)."""
    from fitter.fitting.params import Params
    from fitter.fitting.problem import Problem
    from fitter.fitting.stages import _prior_scale

    cases = sample_cases(anny_model, 6, "smpl24", seed=2, pose_scale=0.6)

    def fit_2d_error(**over) -> float:
        result = fit_keypoints(cases["keypoints"], "smpl24", cases["image_size"], focal_length=cases["focal"],
                               body_model=anny_model, config=fit_config("fast", **over))  # fmt: skip
        return float(np.linalg.norm(result.keypoints_2d_fit - cases["keypoints"][..., :2], axis=-1).mean())

    full_priors = fit_2d_error(polish_iters=60, polish_noise=1e-3)  # the same steps, priors x 1
    assert fit_2d_error(polish_iters=60) < full_priors - 0.1 < fit_2d_error() - 0.3
    t = {k: torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient", "transl", "focal")}
    noisy = torch.as_tensor(cases["keypoints"]).clone()
    noisy[..., :2] += 8.0 * torch.randn(noisy[..., :2].shape, generator=torch.Generator().manual_seed(0))
    centre = torch.tensor(cases["image_size"], dtype=torch.float32).expand(6, 2) / 2
    truth = Params(t["betas"], t["body_pose"], t["global_orient"], t["transl"])
    config = fit_config("accurate", polish_iters=100)
    exact_scale = _prior_scale(Problem.build(anny_model, "smpl24", torch.as_tensor(cases["keypoints"]), t["focal"], centre),
                               truth, config)  # fmt: skip
    noisy_scale = _prior_scale(Problem.build(anny_model, "smpl24", noisy, t["focal"], centre), truth, config)
    torch.testing.assert_close(exact_scale, torch.full((6,), config.polish_min_scale**2))
    torch.testing.assert_close(noisy_scale, torch.ones(6))
