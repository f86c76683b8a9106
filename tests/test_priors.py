"""Tests for the `priors` package: GMM prior (values, files, fitting, CLI), angle, shape and
joint-limit priors (values, gradients, anatomical signs in SMPL frames), prior-set selection."""

from __future__ import annotations

import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from smplx.lbs import batch_rigid_transform
from typer.testing import CliRunner

import priors
from fitter.geometry import axis_angle_to_matrix
from priors import (
    JOINT_LIMITS,
    MaxMixturePrior,
    angle_prior,
    default_prior_terms,
    fit_gmm,
    fit_gmm_file,
    joint_limit_angles,
    joint_limit_bounds,
    joint_limit_penalty,
    load_gmm,
    sample_within_limits,
    save_gmm,
    shape_prior,
    to_smpl_body_pose,
)
from priors.cli import app
from priors.joint_limits import angles_to_body_pose

LOG_2PI = math.log(2.0 * math.pi)


def _two_component_gmm():
    means = np.array([[0.0, 0.5, -0.2], [1.0, -0.5, 0.3]])
    covars = np.array(
        [
            [[0.20, 0.05, 0.00], [0.05, 0.10, 0.02], [0.00, 0.02, 0.30]],
            [[0.50, -0.10, 0.05], [-0.10, 0.40, 0.00], [0.05, 0.00, 0.20]],
        ]
    )
    weights = np.array([0.3, 0.7])
    return means, covars, weights


def _small_69d_gmm(num_components: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.2, size=(num_components, 69))
    factors = rng.normal(0.0, 0.1, size=(num_components, 69, 69))
    covars = factors @ np.swapaxes(factors, 1, 2) + 0.05 * np.eye(69)
    weights = rng.uniform(0.5, 1.5, size=num_components)
    return means, covars, weights / weights.sum()


# --------------------------------------------------------------------------------- GMM values
def test_max_mixture_1d_hand_computed():
    # Two 1-D components: N(0, 1) and N(3, 4), equal weights. At x = 0:
    #   comp 0: 0.5*0/1 - log 0.5 + 0.5 log 2pi + 0.5*(log 1 - log 1)        = 1.6121
    #   comp 1: 0.5*9/4 - log 0.5 + 0.5 log 2pi + 0.5*(log 4 - log 1)        = 3.4302
    prior = MaxMixturePrior([[0.0], [3.0]], [[[1.0]], [[4.0]]], [0.5, 0.5], dtype=torch.float64)
    expected_0 = math.log(2.0) + 0.5 * LOG_2PI
    expected_1 = 0.5 * 9.0 / 4.0 + math.log(2.0) + 0.5 * LOG_2PI + 0.5 * math.log(4.0)
    per_component = prior.component_nll(torch.tensor([[0.0]], dtype=torch.float64))
    assert per_component[0].tolist() == pytest.approx([expected_0, expected_1], abs=1e-12)
    assert prior(torch.tensor([[0.0]], dtype=torch.float64)).item() == pytest.approx(expected_0, abs=1e-12)
    # At x = 3 the second component wins: 0.5*0 + log 2 + 0.5 log 2pi + 0.5 log 4 vs 0.5*9 + ...
    value_at_3 = prior(torch.tensor([[3.0]], dtype=torch.float64)).item()
    assert value_at_3 == pytest.approx(math.log(2.0) + 0.5 * LOG_2PI + 0.5 * math.log(4.0), abs=1e-12)


def test_max_mixture_full_covariance_matches_numpy():
    means, covars, weights = _two_component_gmm()
    prior = MaxMixturePrior(means, covars, weights, dtype=torch.float64)
    points = np.array([[0.0, 0.5, -0.2], [1.0, -0.5, 0.3], [0.4, 0.1, 0.9], [-2.0, 1.0, 0.0]])
    sqrt_dets = np.sqrt(np.linalg.det(covars))
    dim = means.shape[1]
    expected = []
    for x in points:
        costs = []
        for k in range(2):
            d = x - means[k]
            quad = d @ np.linalg.inv(covars[k]) @ d
            # SPIN/SMPLify-X constant: -log(w / ((2 pi)^(D/2) * sqrtdet / min sqrtdet))
            nll_weight = weights[k] / ((2 * np.pi) ** (dim / 2) * (sqrt_dets[k] / sqrt_dets.min()))
            costs.append(0.5 * quad - np.log(nll_weight))
        expected.append(min(costs))
    got = prior(torch.tensor(points)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # The smooth full mixture NLL against scipy's densities.
    density = sum(weights[k] * multivariate_normal(means[k], covars[k]).pdf(points) for k in range(2))
    np.testing.assert_allclose(prior.mixture_nll(torch.tensor(points)).numpy(), -np.log(density), rtol=1e-10)


def test_max_mixture_rotation_matrix_input_and_gradient():
    means, covars, weights = _small_69d_gmm()
    prior = MaxMixturePrior(means, covars, weights, dtype=torch.float64)
    pose = torch.tensor(means[1] + 0.05, dtype=torch.float64)[None].repeat(2, 1)
    pose[1] *= 0.5
    from_matrices = prior(axis_angle_to_matrix(pose.reshape(2, 23, 3)))
    torch.testing.assert_close(prior(pose), from_matrices)
    pose.requires_grad_(True)
    prior(pose).sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    assert prior.mean_pose().shape == (69,)


def test_gmm_rejects_bad_parameters():
    means, covars, weights = _two_component_gmm()
    with pytest.raises(ValueError, match="covars must be"):
        MaxMixturePrior(means, covars[:, :2, :2], weights)
    with pytest.raises(ValueError, match="weights must be"):
        MaxMixturePrior(means, covars, weights[:1])
    with pytest.raises(ValueError, match="> 0"):
        MaxMixturePrior(means, covars, np.array([0.0, 1.0]))
    not_pd = covars.copy()
    not_pd[0] = -np.eye(3)
    with pytest.raises(ValueError, match="positive definite"):
        MaxMixturePrior(means, not_pd, weights)
    prior = MaxMixturePrior(means, covars, weights)
    with pytest.raises(ValueError, match="3-dimensional"):
        prior(torch.zeros(2, 69))


# --------------------------------------------------------------------------------- GMM files
@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_save_and_load_gmm_roundtrip(tmp_path, suffix):
    means, covars, weights = _small_69d_gmm()
    path = save_gmm(tmp_path / f"gmm{suffix}", means, covars, weights)
    loaded = load_gmm(path)
    np.testing.assert_allclose(loaded.means, means)
    np.testing.assert_allclose(loaded.covars, covars)
    np.testing.assert_allclose(loaded.weights, weights)
    if suffix == ".pkl":  # plain pickle of a dict of numpy arrays, readable without this package
        with open(path, "rb") as handle:
            raw = pickle.load(handle)
        assert sorted(raw) == ["covars", "means", "weights"] and isinstance(raw["means"], np.ndarray)
    from_file = MaxMixturePrior.from_file(path, dtype=torch.float64)
    direct = MaxMixturePrior(means, covars, weights, dtype=torch.float64)
    pose = torch.tensor(means[:2] * 0.3)
    torch.testing.assert_close(from_file(pose), direct(pose))


def test_load_gmm_from_chumpy_pickle(tmp_path, monkeypatch):
    """A gmm_08-layout pickle whose arrays are chumpy `Ch` objects (as in SMPLify's file)."""

    class FakeCh:  # pickled as chumpy.ch.Ch with state {'x': array, ...}, like chumpy does
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "a": None, "_dirty_vars": set()}

    FakeCh.__module__, FakeCh.__qualname__, FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    means, covars, weights = _small_69d_gmm(num_components=2)
    with monkeypatch.context() as patch:
        fake_chumpy_ch = types.ModuleType("chumpy.ch")
        fake_chumpy_ch.Ch = FakeCh
        patch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
        patch.setitem(sys.modules, "chumpy.ch", fake_chumpy_ch)
        blob = pickle.dumps({"means": FakeCh(means), "covars": FakeCh(covars), "weights": weights}, protocol=2)
    assert b"chumpy.ch" in blob and "chumpy" not in sys.modules
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(blob)
    loaded = load_gmm(path)
    np.testing.assert_allclose(loaded.means, means)
    np.testing.assert_allclose(loaded.covars, covars)
    assert MaxMixturePrior.from_file(path).num_components == 2


def test_load_gmm_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_gmm(tmp_path / "missing.pkl")
    means, covars, weights = _two_component_gmm()
    np.savez(tmp_path / "nokey.npz", means=means, covars=covars)
    with pytest.raises(ValueError, match="missing key"):
        load_gmm(tmp_path / "nokey.npz")
    np.savez(tmp_path / "badshape.npz", means=means, covars=covars[0], weights=weights)
    with pytest.raises(ValueError, match="covars must be"):
        load_gmm(tmp_path / "badshape.npz")
    (tmp_path / "gmm.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown GMM file type"):
        load_gmm(tmp_path / "gmm.txt")
    with open(tmp_path / "list.pkl", "wb") as handle:
        pickle.dump([1, 2], handle)
    with pytest.raises(ValueError, match="pickled dict"):
        load_gmm(tmp_path / "list.pkl")
    with pytest.raises(ValueError, match="use .npz or .pkl"):
        save_gmm(tmp_path / "gmm.json", means, covars, weights)


# --------------------------------------------------------------------------------- GMM fitting
def _mixture_samples(n_per_component: int, width: int = 69, seed: int = 1):
    rng = np.random.default_rng(seed)
    mean_a = np.full(69, 0.3)
    mean_b = np.full(69, -0.3)
    mean_b[:10] = 0.5
    body = np.concatenate(
        [rng.normal(mean_a, 0.05, size=(n_per_component, 69)), rng.normal(mean_b, 0.08, size=(n_per_component, 69))]
    )
    if width == 72:
        body = np.concatenate([rng.normal(0, 1, size=(body.shape[0], 3)), body], axis=1)
    return body, mean_a, mean_b


def test_fit_gmm_recovers_two_component_means():
    samples, mean_a, mean_b = _mixture_samples(300)
    params = fit_gmm(samples, components=2, seed=0)
    assert params.means.shape == (2, 69) and params.covars.shape == (2, 69, 69) and params.weights.shape == (2,)
    order = np.argsort(params.means[:, 20])[::-1]  # component a has the larger value on dim 20
    np.testing.assert_allclose(params.means[order[0]], mean_a, atol=0.02)
    np.testing.assert_allclose(params.means[order[1]], mean_b, atol=0.03)
    np.testing.assert_allclose(params.weights, [0.5, 0.5], atol=0.01)
    np.testing.assert_allclose(np.sqrt(np.diagonal(params.covars[order[0]])), 0.05, atol=0.015)


def test_to_smpl_body_pose_column_layouts():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(4, 72))
    np.testing.assert_array_equal(to_smpl_body_pose(full), full[:, 3:])
    amass = rng.normal(size=(4, 156))  # 52 joints: global, 21 body, 30 hand joints
    body = to_smpl_body_pose(amass)
    np.testing.assert_array_equal(body[:, :63], amass[:, 3:66])
    np.testing.assert_array_equal(body[:, 63:], 0.0)
    smplx_poses = rng.normal(size=(4, 165))
    np.testing.assert_array_equal(to_smpl_body_pose(smplx_poses)[:, :63], smplx_poses[:, 3:66])
    with pytest.raises(ValueError, match="100 columns"):
        to_smpl_body_pose(np.zeros((3, 100)))
    with pytest.raises(ValueError, match="at least"):
        fit_gmm(np.zeros((3, 69)), components=2)


def test_fit_gmm_file_reads_folder_and_skips_shape_files(tmp_path):
    samples, _, _ = _mixture_samples(60, width=72)
    (tmp_path / "subject").mkdir()
    np.savez(tmp_path / "subject" / "walk_poses.npz", poses=samples[::2])
    np.savez(tmp_path / "subject" / "run_poses.npz", poses=samples[1::2])
    np.savez(tmp_path / "subject" / "shape.npz", betas=np.zeros(16))  # AMASS per-subject file
    messages = []
    params = fit_gmm_file(
        tmp_path, tmp_path / "out" / "gmm.pkl", components=2, max_samples=100, progress=messages.append
    )
    assert params.means.shape == (2, 69)
    assert load_gmm(tmp_path / "out" / "gmm.pkl").means.shape == (2, 69)
    assert any("fitting 2 components to 100 poses" in m for m in messages)
    with pytest.raises(ValueError, match="no 'poses' array"):
        fit_gmm_file(tmp_path / "subject" / "shape.npz", tmp_path / "x.npz", components=2)


# --------------------------------------------------------------------------------- CLI
def test_cli_fit_gmm_writes_loadable_file(tmp_path):
    samples, _, _ = _mixture_samples(50, width=72)
    np.savez(tmp_path / "poses.npz", poses=samples)
    out = tmp_path / "gmm.npz"
    result = CliRunner().invoke(app, ["fit-gmm", str(tmp_path / "poses.npz"), "--components", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    params = load_gmm(out)
    assert params.means.shape == (2, 69)


@pytest.mark.parametrize("case", ["missing", "bad_width", "bad_out"])
def test_cli_fit_gmm_bad_input_one_line_error(tmp_path, case):
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=np.zeros((20, 10)))
    args = {
        "missing": ["fit-gmm", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "g.npz")],
        "bad_width": ["fit-gmm", str(bad), "--components", "2", "--out", str(tmp_path / "g.npz")],
        "bad_out": ["fit-gmm", str(bad), "--out", str(tmp_path / "g.txt")],
    }[case]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output


# --------------------------------------------------------------------------------- angle / shape
def test_angle_prior_matches_spin_full_pose_indices():
    body_pose = torch.randn(5, 69, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    full_pose = torch.cat([torch.randn(5, 3, dtype=torch.float64), body_pose], dim=1)
    signs = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    expected = torch.exp(full_pose[:, [55, 58, 12, 15]] * signs).pow(2).sum(dim=1)
    torch.testing.assert_close(angle_prior(body_pose), expected)


def test_angle_prior_penalises_hyperextension():
    def with_joint(joint: int, axis: int, angle: float) -> torch.Tensor:
        pose = torch.zeros(1, 69)
        pose[0, 3 * (joint - 1) + axis] = angle
        return pose

    left_knee, right_knee, left_elbow, right_elbow = 4, 5, 18, 19
    # Knees flex about +x (positive), elbows about y (left negative, right positive).
    assert angle_prior(with_joint(left_knee, 0, -0.5)) > angle_prior(with_joint(left_knee, 0, 1.2))
    assert angle_prior(with_joint(right_knee, 0, -0.5)) > angle_prior(with_joint(right_knee, 0, 1.2))
    assert angle_prior(with_joint(left_elbow, 1, 0.5)) > angle_prior(with_joint(left_elbow, 1, -1.2))
    assert angle_prior(with_joint(right_elbow, 1, -0.5)) > angle_prior(with_joint(right_elbow, 1, 1.2))
    assert angle_prior(torch.zeros(3, 69)).tolist() == [4.0, 4.0, 4.0]  # exp(0)^2 per joint


def test_shape_prior():
    betas = torch.tensor([[1.0, 2.0, 0.0], [0.5, -0.5, 1.0]])
    assert shape_prior(betas).tolist() == [5.0, 1.5]
    with pytest.raises(ValueError, match=r"\(B,K\)"):
        shape_prior(torch.zeros(3))


# --------------------------------------------------------------------------------- joint limits
# A toy SMPL-layout skeleton at rest (T-pose, metres, Y up, facing +Z, X to the body's left).
_REST_JOINTS = torch.tensor(
    [
        [0.0, 0.0, 0.0], [0.09, -0.08, 0.0], [-0.09, -0.08, 0.0], [0.0, 0.1, 0.0],
        [0.1, -0.45, 0.0], [-0.1, -0.45, 0.0], [0.0, 0.25, 0.0], [0.1, -0.85, 0.0],
        [-0.1, -0.85, 0.0], [0.0, 0.3, 0.0], [0.11, -0.9, 0.12], [-0.11, -0.9, 0.12],
        [0.0, 0.5, 0.0], [0.07, 0.42, 0.0], [-0.07, 0.42, 0.0], [0.0, 0.6, 0.0],
        [0.18, 0.44, 0.0], [-0.18, 0.44, 0.0], [0.43, 0.44, 0.0], [-0.43, 0.44, 0.0],
        [0.68, 0.44, 0.0], [-0.68, 0.44, 0.0], [0.76, 0.44, 0.0], [-0.76, 0.44, 0.0],
    ]
)  # fmt: skip
_PARENTS = torch.tensor([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])


def _posed_joints(body_pose: torch.Tensor) -> torch.Tensor:
    """Forward kinematics of the toy skeleton (root unrotated): (B,69) -> (B,24,3)."""
    rots = axis_angle_to_matrix(torch.cat([torch.zeros(body_pose.shape[0], 3), body_pose], 1).reshape(-1, 24, 3))
    joints, _ = batch_rigid_transform(
        rots, _REST_JOINTS.expand(body_pose.shape[0], 24, 3), _PARENTS, dtype=torch.float32
    )
    return joints


def _pose_with(joint: int, rotvec) -> torch.Tensor:
    pose = torch.zeros(1, 69)
    pose[0, 3 * (joint - 1) : 3 * joint] = torch.tensor(rotvec, dtype=torch.float32)
    return pose


def test_flexion_signs_in_smpl_frames():
    """Anatomical flexion moves the distal joint the right way and is inside the limits; the
    opposite sign (hyperextension) is outside. Forward is +Z, the body faces +Z."""
    half_pi = math.pi / 2
    cases = [  # (joint, child joint, flexion rotvec, forward sign of the child's z after flexion)
        (4, 7, [half_pi, 0, 0], -1.0),  # left knee: +x, ankle goes behind the knee
        (5, 8, [half_pi, 0, 0], -1.0),  # right knee
        (18, 20, [0, -half_pi, 0], 1.0),  # left elbow: -y, wrist comes forward
        (19, 21, [0, half_pi, 0], 1.0),  # right elbow: +y
        (1, 4, [-half_pi, 0, 0], 1.0),  # left hip flexion: -x, knee comes forward
        (3, 12, [0.4, 0, 0], 1.0),  # spine1 flexion: +x, neck comes forward
    ]
    for joint, child, rotvec, forward in cases:
        flexed = _pose_with(joint, rotvec)
        joints = _posed_joints(flexed)
        assert forward * (joints[0, child, 2] - joints[0, joint, 2]) > 0.05, (joint, child)
        assert joint_limit_penalty(flexed).item() == 0.0, joint
        assert joint_limit_penalty(_pose_with(joint, [-v for v in rotvec])).item() > 0.0, joint


def test_joint_limit_penalty_value_and_gradient_points_inside():
    pose = _pose_with(4, [-0.3, 0.0, 0.0])  # left knee hyper-extended by 0.3 rad
    pose.requires_grad_(True)
    penalty = joint_limit_penalty(pose)
    assert penalty.item() == pytest.approx(0.09, rel=1e-5)  # (0 - (-0.3))^2
    penalty.sum().backward()
    grad = pose.grad[0, 9:12]
    assert grad[0] < 0 and grad[1:].abs().max() < 1e-6  # descent increases the flexion angle
    stepped = (pose - 0.5 * pose.grad).detach()
    assert joint_limit_penalty(stepped).item() < penalty.item()
    rest = torch.zeros(4, 69, requires_grad=True)
    value = joint_limit_penalty(rest)
    value.sum().backward()
    assert value.tolist() == [0.0] * 4 and torch.isfinite(rest.grad).all()


def test_swing_twist_angles_of_composed_rotations():
    torch.manual_seed(0)
    # Left shoulder (bone axis x): swing about y then z-components, twist about x.
    swing = torch.tensor([0.0, -0.7, 0.4], dtype=torch.float64)
    twist = torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)
    rot = axis_angle_to_matrix(swing) @ axis_angle_to_matrix(twist)
    pose = torch.zeros(1, 23, 3, 3, dtype=torch.float64) + torch.eye(3, dtype=torch.float64)
    pose[0, 15] = rot  # SMPL joint 16 is body_pose joint 15
    angles = joint_limit_angles(pose)
    torch.testing.assert_close(angles[0, 15], torch.tensor([0.5, -0.7, 0.4], dtype=torch.float64))
    # A pure rotation about a single axis gives exactly its axis-angle component.
    single = _pose_with(7, [0.0, 0.0, 0.3]).double()  # left ankle twist (inversion/eversion)
    torch.testing.assert_close(joint_limit_angles(single)[0, 6], torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64))


def test_mirror_rule_left_right():
    names = list(JOINT_LIMITS)
    pairs = [(n, n.replace("left_", "right_")) for n in names if n.startswith("left_")]
    assert len(pairs) == 9
    for left, right in pairs:
        l_lim, r_lim = JOINT_LIMITS[left], JOINT_LIMITS[right]
        assert (r_lim.x.lower_deg, r_lim.x.upper_deg) == (l_lim.x.lower_deg, l_lim.x.upper_deg)
        for axis in ("y", "z"):
            lr, rr = getattr(l_lim, axis), getattr(r_lim, axis)
            assert (rr.lower_deg, rr.upper_deg) == (-lr.upper_deg, -lr.lower_deg)
    # Mirroring a pose (swap sides, negate y and z) leaves the penalty unchanged.
    pose = 1.2 * torch.randn(6, 23, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    index = {n: i for i, n in enumerate(names)}
    perm = list(range(23))
    for left, right in pairs:
        perm[index[left]], perm[index[right]] = index[right], index[left]
    mirrored = pose[:, perm] * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(joint_limit_penalty(pose.reshape(6, 69)), joint_limit_penalty(mirrored.reshape(6, 69)))
    assert joint_limit_penalty(pose.reshape(6, 69)).min() > 0


def test_sample_within_limits():
    first = sample_within_limits(64, torch.Generator().manual_seed(7), dtype=torch.float64)
    again = sample_within_limits(64, torch.Generator().manual_seed(7), dtype=torch.float64)
    assert first.shape == (64, 69) and torch.equal(first, again)
    assert joint_limit_penalty(first).abs().max() < 1e-12
    lower, upper = joint_limit_bounds(torch.float64)
    angles = joint_limit_angles(first)
    assert ((angles >= lower - 1e-9) & (angles <= upper + 1e-9)).all()
    # Spread over the ranges, not stuck at rest: each range is visited near both ends.
    span = (angles.amax(0) - angles.amin(0)) / (upper - lower)
    assert span.min() > 0.6
    torch.testing.assert_close(angles_to_body_pose(angles), first)


def test_every_limit_has_a_source_and_valid_range():
    assert [lim.smpl_index for lim in JOINT_LIMITS.values()] == list(range(1, 24))
    for lim in JOINT_LIMITS.values():
        for rng in lim.ranges:
            assert rng.lower_deg < rng.upper_deg and len(rng.source) > 20
    table = priors.joint_limits_table()
    assert "left_knee" in table and "AAOS" in table and len(table.splitlines()) == 1 + 23 * 3


# --------------------------------------------------------------------------------- prior sets
def test_default_prior_terms_is_the_shipped_cmu_gmm_with_joint_limits():
    prior_set = default_prior_terms(None)
    assert prior_set.name == "gmm" and prior_set.shipped and prior_set.gmm_path == str(priors.shipped_gmm_path())
    assert "shipped CMU" in prior_set.describe() and "gmm_cmu_08.npz" in prior_set.describe()
    assert "joint limits" in prior_set.describe()
    assert default_prior_terms("").describe() == prior_set.describe()
    pose = torch.zeros(3, 69)
    pose[0, 9] = -0.4  # hyper-extended left knee
    terms = prior_set(pose, torch.ones(3, 10))
    assert set(terms) == {"pose_gmm", "joint_limits", "angle", "shape"} == set(prior_set.term_names)
    torch.testing.assert_close(terms["pose_gmm"], priors.load_shipped_gmm()(pose))
    assert terms["joint_limits"][0] > 0 and terms["joint_limits"][1] == 0  # bounds: zero inside the limits


def test_default_prior_terms_without_gmm():
    prior_set = default_prior_terms("none")
    assert default_prior_terms("limits").name == prior_set.name
    assert prior_set.name == "limits+angle+shape+l2" and prior_set.describe() == "limits+angle+shape+l2"
    pose = torch.zeros(3, 69)
    pose[0, 9] = -0.4  # hyper-extended left knee
    terms = prior_set(pose, torch.ones(3, 10))
    assert set(terms) == {"joint_limits", "angle", "shape", "pose_l2"} == set(prior_set.term_names)
    assert all(t.shape == (3,) for t in terms.values())
    assert terms["joint_limits"][0] > 0 and terms["joint_limits"][1] == 0
    assert terms["shape"].tolist() == [10.0] * 3
    assert terms["pose_l2"][0].item() == pytest.approx(0.16)


def test_default_prior_terms_with_gmm(tmp_path):
    means, covars, weights = _small_69d_gmm()
    path = save_gmm(tmp_path / "gmm_08.npz", means, covars, weights)
    prior_set = default_prior_terms(str(path))
    assert prior_set.name == "gmm" and str(path) in prior_set.describe() and not prior_set.shipped
    pose = torch.zeros(2, 69, requires_grad=True)
    assert set(prior_set(pose, torch.zeros(2, 10))) == {"pose_gmm", "angle", "shape", "joint_limits"}
    smplify = default_prior_terms(str(path), joint_limits=False)  # SMPLify's own terms
    assert "joint limits" not in smplify.describe()
    terms = smplify(pose, torch.zeros(2, 10))
    assert set(terms) == {"pose_gmm", "angle", "shape"}
    expected = MaxMixturePrior(means, covars, weights)(pose)
    torch.testing.assert_close(terms["pose_gmm"], expected)
    sum(t.sum() for t in terms.values()).backward()
    assert torch.isfinite(pose.grad).all()
    with pytest.raises(FileNotFoundError):
        default_prior_terms(str(tmp_path / "missing.pkl"))
