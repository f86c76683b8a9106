"""Motion-capture import (fitter.mocap), mirroring (fitter.body.mirror) and the shipped CMU pose
prior (priors.shipped). Inputs are a few frames of the shared CMU files (../shared/mocap/cmu,
used by path); tests that need them skip when the folder is absent. Calibrations use fewer
frames and steps than the CLI defaults (64 frames, 150 steps: within ~0.5 mm of the full
calibration on these files)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fitter.body.mirror import SMPL_MIRROR_JOINTS, mirror_body_pose
from fitter.body.model import SMPL_JOINT_NAMES

MOCAP_DIR = Path(__file__).resolve().parents[2] / "shared" / "mocap" / "cmu"
FILES = {"cmu_mb31": "cmu_mb31_10fps.npz", "daz43": "cmu_daz43_10fps.npz"}
# Measured on all frames (fitter mocap import, full calibration): 11.1 mm (31-joint), 9.5 mm (Daz).
MEAN_ERROR_MM = 15.0
FRAME_ERROR_MM = 25.0
TORSO = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
NO_DATA = ("left_collar", "right_collar", "left_hand", "right_hand")


@pytest.fixture(scope="module")
def cmu_dir() -> Path:
    if not all((MOCAP_DIR / name).is_file() for name in FILES.values()):
        pytest.skip(f"CMU motion capture not present at {MOCAP_DIR} (only in the project's workspace)")
    return MOCAP_DIR


@pytest.fixture(scope="module")
def calibrated(cmu_dir, anny_model):
    """kind -> (source motion, calibration) for both skeletons."""
    from fitter.mocap import calibrate, load_source

    out = {}
    for kind, name in FILES.items():
        motion = load_source(cmu_dir / name)
        out[kind] = (motion, calibrate(anny_model, motion, sample_frames=64, iterations=150))
    return out


def _frames(motion, count: int, motion_prefix: tuple[str, ...] | None = None) -> np.ndarray:
    frames = np.arange(motion.num_frames)
    if motion_prefix is not None:
        names = motion.motion_names[motion.frame_motion]
        frames = frames[np.char.startswith(names.astype(str), motion_prefix[0])
                        | np.char.startswith(names.astype(str), motion_prefix[-1])]  # fmt: skip
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


@pytest.mark.parametrize("kind", list(FILES))
def test_frames_match_source_joints(calibrated, anny_model, kind):
    from fitter.mocap import joint_errors, retarget, source_targets

    motion, calib = calibrated[kind]
    part = motion.subset(_frames(motion, 24))
    poses, _ = retarget(anny_model, calib, part)
    assert poses.shape == (24, 72) and np.isfinite(poses).all()
    points, _ = source_targets(part, calib.table)
    errors_mm = joint_errors(anny_model, calib, poses, points).numpy() * 1000
    assert errors_mm.mean() < MEAN_ERROR_MM, f"{kind}: mean joint error {errors_mm.mean():.1f} mm"
    assert errors_mm.mean(1).max() < FRAME_ERROR_MM, f"{kind}: worst frame {errors_mm.mean(1).max():.1f} mm"
    # every matched SMPL joint is close on average, not only the mean over joints
    assert errors_mm.mean(0).max() < 40.0, dict(zip(calib.position_names(), errors_mm.mean(0).round(1)))
    # the rotation copy alone (no inverse kinematics) is already near: the joint tables and the
    # frame conventions agree; the IK then only removes proportion differences
    start, _ = retarget(anny_model, calib, part, iterations=1)
    assert joint_errors(anny_model, calib, start, points).mean() * 1000 < 60.0


def test_euler_angles_follow_the_bvh_convention():
    """BVH: channels "ZYX" with angles (z, y, x) give R = Rz Ry Rx (column vectors), which is
    scipy's intrinsic (upper-case) sequence."""
    from scipy.spatial.transform import Rotation

    from fitter.mocap.skeleton import euler_to_matrix

    angles = np.random.default_rng(0).uniform(-170, 170, size=(16, 3))
    for order in ("ZYX", "ZXY"):
        expected = Rotation.from_euler(order, angles, degrees=True).as_matrix()
        np.testing.assert_allclose(euler_to_matrix(torch.as_tensor(angles), order).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("kind,trial", [("cmu_mb31", "02_01"), ("daz43", "07_01")])
def test_converted_walk_faces_its_path_and_bends_knees_forward(calibrated, anny_model, kind, trial):
    """Frame conventions end to end: a converted walk (CMU 02_01 in the 31-joint file, 07_01 in
    the Daz file) faces the way it travels (body +Z along the root path) and its knees flex about
    SMPL's +x (knee flexion), not sideways."""
    from fitter.geometry import axis_angle_to_matrix
    from fitter.mocap import retarget
    from fitter.mocap.importer import MATCHES_FILE, _read_matches, trial_names

    motion, calib = calibrated[kind]
    names = np.array(trial_names(motion, _read_matches(MOCAP_DIR / MATCHES_FILE)))
    part = motion.subset(np.flatnonzero(names[motion.frame_motion] == trial))
    assert part.num_frames > 20
    poses, trans = retarget(anny_model, calib, part)
    facing = (axis_angle_to_matrix(torch.as_tensor(poses[:, :3])) @ torch.tensor([0.0, 0.0, 1.0])).numpy()
    path = np.diff(trans, axis=0) * np.array([1.0, 0.0, 1.0])
    cosine = (facing[:-1] * path).sum(1) / np.linalg.norm(path, axis=1)
    assert cosine.mean() > 0.9, cosine.round(2)
    knees = poses[:, 3:].reshape(-1, 23, 3)[:, [3, 4]]  # left_knee, right_knee
    assert knees[..., 0].mean() > 0.3 and knees[..., 0].min() > -0.25
    assert np.abs(knees[..., 1:]).mean() < 0.15


@pytest.mark.parametrize("kind", list(FILES))
def test_rest_frame_maps_to_rest_pose(calibrated, anny_model, kind):
    """The all-zero source frame: torso within 8 deg of SMPL's rest, joints without source data
    at rest, nothing beyond 20 deg (the largest: CMU hips, whose rest skeleton has its legs
    splayed ~20 deg, and the Daz elbows, whose rest forearms point 17 deg forward)."""
    from fitter.mocap import joint_errors, retarget, source_targets
    from fitter.mocap.importer import rest_frame_angles

    motion, calib = calibrated[kind]
    angles = dict(zip(SMPL_JOINT_NAMES, rest_frame_angles(anny_model, calib, motion)))
    assert max(angles[name] for name in TORSO) < 8.0, angles
    assert max(angles[name] for name in NO_DATA) < 2.0, angles
    assert max(angles.values()) < 20.0, angles
    rest = motion.rest()
    pose, _ = retarget(anny_model, calib, rest)
    points, _ = source_targets(rest, calib.table)
    assert joint_errors(anny_model, calib, pose, points).mean() * 1000 < MEAN_ERROR_MM


def test_mirror_pose_mirrors_joints(anny_model):
    generator = torch.Generator().manual_seed(0)
    pose = 0.5 * torch.randn(6, 72, generator=generator)
    mirrored = mirror_body_pose(pose)
    assert SMPL_MIRROR_JOINTS[SMPL_JOINT_NAMES.index("left_elbow")] == SMPL_JOINT_NAMES.index("right_elbow")
    torch.testing.assert_close(mirror_body_pose(mirrored), pose)
    reflect = torch.tensor([-1.0, 1.0, 1.0])
    for body_only in (False, True):
        orient = None if body_only else pose[:, :3]
        orient_m = None if body_only else mirrored[:, :3]
        body_m = mirror_body_pose(pose[:, 3:]) if body_only else mirrored[:, 3:]
        joints = anny_model.forward_joints(body_pose=pose[:, 3:], global_orient=orient).joints
        joints_m = anny_model.forward_joints(body_pose=body_m, global_orient=orient_m).joints
        # joint i of the mirrored pose sits at the reflection of joint partner(i) of the pose
        expected = joints[:, SMPL_MIRROR_JOINTS] * reflect
        assert (joints_m - expected).norm(dim=-1).max() < 1e-3  # anny's rest is symmetric to < 1 mm
        assert (joints_m - joints).norm(dim=-1).max() > 0.05  # and it did change the pose
    numpy_pose = pose[:, 3:].numpy()
    np.testing.assert_allclose(mirror_body_pose(numpy_pose), mirror_body_pose(pose[:, 3:]).numpy())


def test_shipped_gmm_prefers_heldout_cmu_poses(calibrated, anny_model):
    import priors
    from fitter.mocap import retarget
    from priors.gmm import load_gmm

    params = load_gmm(priors.shipped_gmm_path())
    assert params.means.shape == (8, 69) and params.covars.shape == (8, 69, 69) and params.weights.shape == (8,)
    prior = priors.load_shipped_gmm()
    motion, calib = calibrated["daz43"]
    part = motion.subset(_frames(motion, 32, motion_prefix=("13_", "14_")))  # held-out subjects
    assert all(str(name)[:3] in ("13_", "14_") for name in motion.motion_names[part.frame_motion])
    poses, _ = retarget(anny_model, calib, part)
    heldout = prior(torch.as_tensor(poses[:, 3:]))
    random = prior(priors.sample_within_limits(256, generator=torch.Generator().manual_seed(0)))
    assert heldout.mean() < 0.1 * random.mean(), (heldout.mean(), random.mean())
    assert np.median(heldout.numpy()) < np.median(random.numpy())
    # the prior is left/right symmetric in effect: mirrored held-out poses score alike
    mirrored = prior(mirror_body_pose(torch.as_tensor(poses[:, 3:])))
    assert abs(float(mirrored.mean() - heldout.mean())) < 0.2 * float(heldout.mean())


def test_import_cli_writes_poses_that_fit_gmm_reads(cmu_dir, anny_model, tmp_path, monkeypatch):
    import fitter.body
    from fitter.cli.main import app
    from priors.gmm import load_gmm

    monkeypatch.setattr(fitter.body, "load_body_model", lambda name: anny_model)  # skip a second load
    out = tmp_path / "cmu_poses.npz"
    args = ["mocap", "import", str(cmu_dir), "--out", str(out), "--limit", "40",
            "--calibration-frames", "32", "--calibration-iterations", "60", "--iterations", "40"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    count = len(data["poses"])
    assert data["poses"].shape == (80, 72) and data["poses"].dtype == np.float32
    for key in ("subject", "motion", "frame", "source", "split", "error_mm"):
        assert data[key].shape == (count,), key
    assert set(data["source"]) == set(FILES.values())
    assert set(data["split"]) <= {"train", "heldout"}
    heldout = np.isin(data["subject"], (13, 14))
    assert ((data["split"] == "heldout") == heldout).all() and heldout.any() and (~heldout).any()
    unknown = data["subject"] == -1  # unnamed convseq2seq sequences: train
    assert unknown.any() and (data["split"][unknown] == "train").all()
    assert data["error_mm"].mean() < MEAN_ERROR_MM + 5.0
    # deduplicated: no Daz trial is also in the 31-joint file
    mb31 = set(data["motion"][data["source"] == FILES["cmu_mb31"]])
    daz = set(data["motion"][data["source"] == FILES["daz43"]])
    assert mb31 and daz and not (mb31 & daz)
    gmm = tmp_path / "gmm.npz"
    result = CliRunner().invoke(app, ["priors", "fit-gmm", str(out), "--components", "2", "--out", str(gmm)])
    assert result.exit_code == 0, result.output
    assert load_gmm(gmm).means.shape == (2, 69)
    # the shipped prior's recipe: train split only, mirrored
    result = CliRunner().invoke(app, ["mocap", "fit-gmm", str(out), "--components", "2", "--out", str(gmm)])
    assert result.exit_code == 0, result.output
    assert "heldout" in result.output and load_gmm(gmm).means.shape == (2, 69)


def test_dedup_drops_daz_copies_of_31_joint_trials(cmu_dir):
    from fitter.mocap import load_source
    from fitter.mocap.importer import MATCHES_FILE, _read_matches, trial_names

    matches = _read_matches(cmu_dir / MATCHES_FILE)
    assert len(matches) == 32 and matches["cs2s/test/basketball/basketball_1"] == "06_07"
    mb31 = trial_names(load_source(cmu_dir / FILES["cmu_mb31"]), matches)
    named = {t for t in mb31 if t}
    assert {"01_01", "16_01", "16_02", "06_07", "13_26", "14_12"} <= named and len(named) == 35
    daz = load_source(cmu_dir / FILES["daz43"])
    assert len(set(trial_names(daz, matches)) & named) == 33  # 32 matched sequences + 01_01


def test_hinge_twist_moves_sideways_elbow_bends_into_the_shoulder(anny_model):
    """An elbow bent about z (sideways: what position-driven IK produced for 70 % of CMU frames)
    becomes a hinge bend about y with the shoulder twisted; joints stay where they were; a real
    hinge bend and a nearly straight arm are left alone."""
    from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle
    from fitter.mocap.retarget import hinge_twist
    from priors.joint_limits import joint_limit_angles

    pose = torch.zeros(3, 24, 3)
    pose[:, 16] = torch.tensor([0.3, -0.2, -1.0])  # left shoulder: arm down and a little forward
    pose[0, 18] = torch.tensor([0.0, 0.0, 0.7])  # sideways bend (z), 40 deg
    pose[1, 18] = torch.tensor([0.0, -0.9, 0.0])  # a true hinge flexion (-y)
    pose[2, 18] = torch.tensor([0.0, 0.0, 0.03])  # nearly straight
    local = axis_angle_to_matrix(pose)
    with torch.no_grad():
        rest = anny_model.forward_joints(betas=torch.zeros(1, 10)).joints[0]
        fixed = hinge_twist(local, rest)
        before = anny_model.forward_joints(body_pose=local[:, 1:], global_orient=local[:, :1]).joints
        after = anny_model.forward_joints(body_pose=fixed[:, 1:], global_orient=fixed[:, :1]).joints
    assert (before - after).norm(dim=-1).max() < 1e-5  # every joint in place
    angles = joint_limit_angles(matrix_to_axis_angle(fixed[:, 1:]).reshape(3, 69)).reshape(3, 23, 3)
    assert abs(float(angles[0, 17, 2])) < math.radians(11)  # sideways bend within the allowed 10 deg
    assert float(angles[0, 17, 1]) < -math.radians(30)  # the rest became flexion (-y for the left elbow)
    shoulder_turn = (local[0, 16].transpose(0, 1) @ fixed[0, 16]).trace()
    assert shoulder_turn < 2.9  # the shoulder took the twist (angle > ~15 deg)
    torch.testing.assert_close(fixed[1:], local[1:], atol=1e-4, rtol=0)  # hinge bend, straight arm: unchanged


@pytest.mark.parametrize("kind", list(FILES))
def test_hinged_import_keeps_joints_and_elbow_ranges(calibrated, anny_model, kind):
    from fitter.mocap import retarget
    from priors.joint_limits import joint_limit_angles, joint_limit_bounds

    motion, calib = calibrated[kind]
    part = motion.subset(_frames(motion, 96))
    plain, _ = retarget(anny_model, calib, part, iterations=40)
    hinged, _ = retarget(anny_model, calib, part, iterations=40, hinges=True)
    betas = calib.betas[None].float().expand(len(plain), -1)
    with torch.no_grad():
        joints = [anny_model.forward_joints(betas=betas, body_pose=torch.as_tensor(p[:, 3:]),
                                            global_orient=torch.as_tensor(p[:, :3])).joints for p in (plain, hinged)]  # fmt: skip
    assert (joints[0] - joints[1]).norm(dim=-1).max() < 1e-4  # metres: the same joints
    lo, hi = (b.reshape(23, 3)[17:19, 2] for b in joint_limit_bounds())  # elbows' (joints 18, 19) sideways range

    def sideways(poses: np.ndarray) -> float:
        z = joint_limit_angles(torch.as_tensor(poses[:, 3:])).reshape(-1, 23, 3)[:, 17:19, 2]
        return float(((z < lo) | (z > hi)).float().mean())

    assert sideways(plain) > 0.3  # what IK on positions gives: elbows bent sideways (the twist misplaced)
    assert sideways(hinged) <= 0.02
