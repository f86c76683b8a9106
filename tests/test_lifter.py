"""Tests for the COCO-17 keypoint lifter (fitter.regressors.lifter) and its training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fitter.body.poses import mean_body_pose
from fitter.fitting import fit_config, fit_keypoints
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from fitter.init import Start
from fitter.regressors.lifter import KeypointLifter, default_lifter_path, lifter_features, load_lifter
from fitter.synthetic import joint_errors, sample_cases
from fitter.training.lifter import LifterTrainConfig, sample_lifter_batch, train_lifter


def _rotation_angle_deg(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(N,) angle between rotation matrices a, b (N,3,3), degrees."""
    return np.degrees(matrix_to_axis_angle(a.transpose(1, 2) @ b).norm(dim=-1).numpy())


def test_features_ignore_where_and_how_big_the_person_is_except_box_terms():
    gen = torch.Generator().manual_seed(0)
    kp = torch.cat([torch.rand(2, 17, 2, generator=gen) * 300 + 200, torch.ones(2, 17, 1)], dim=-1)
    kp[1, 3, 2] = 0.0  # one missing point
    focal, center = torch.tensor([1000.0, 1000.0]), torch.tensor([[640.0, 480.0]] * 2)
    base = lifter_features(kp, focal, center)
    assert base.shape == (2, 17 * 3 + 3)
    moved = kp.clone()
    moved[..., :2] = (kp[..., :2] - 300) * 2 + 500  # shifted and twice as big
    other = lifter_features(moved, focal, center)
    torch.testing.assert_close(other[:, :51], base[:, :51], atol=1e-5, rtol=0)  # relative layout + confidences
    assert not torch.allclose(other[:, 51:], base[:, 51:])  # box centre / size differ
    assert base[1, 2 * 3 : 2 * 3 + 2].abs().sum() == 0  # the missing point's x, y are zeroed (row-major x,y pairs)
    assert base[1, 34 + 3] == 0 and base[0, 34 + 3] == 1  # its confidence


def test_untrained_lifter_outputs_rotations_at_identity():
    out = KeypointLifter(width=32, blocks=1)(torch.randn(4, 54))
    eye = torch.eye(3).expand(4, 23, 3, 3)
    torch.testing.assert_close(out["body_pose"], eye, atol=1e-6, rtol=0)
    assert out["betas"].shape == (4, 10) and out["global_orient"].shape == (4, 3, 3)


def test_shipped_lifter_finds_heading_and_beats_the_frontal_start(anny_model):
    """On clean synthetic bodies at any heading the shipped weights give the body's heading and a
    better starting pose than the frontal mean pose."""
    assert default_lifter_path().is_file()
    cases = sample_cases(anny_model, 24, "coco17", seed=3, pose_scale=0.5)
    lifter = load_lifter()
    assert lifter.body_model == "anny"
    kp = torch.as_tensor(cases["keypoints"])
    with torch.no_grad():
        out = lifter(lifter_features(kp, torch.as_tensor(cases["focal"]), torch.tensor([[640.0, 480.0]]).expand(24, 2)))
    truth = axis_angle_to_matrix(torch.as_tensor(cases["global_orient"]))
    err = _rotation_angle_deg(out["global_orient"], truth)
    assert np.mean(err < 45.0) >= 0.8, f"orientation errors {np.round(err)}"
    body_pose = matrix_to_axis_angle(out["body_pose"]).reshape(-1, 69)
    with torch.no_grad():
        lifted = anny_model(out["betas"], body_pose, torch.zeros(24, 3)).joints
        frontal = anny_model(None, mean_body_pose().expand(24, 69), torch.zeros(24, 3)).joints
    _, pa_lifted = joint_errors(lifted.numpy(), cases["joints"])
    _, pa_frontal = joint_errors(frontal.numpy(), cases["joints"])
    assert pa_lifted.mean() < 0.7 * pa_frontal.mean(), (pa_lifted.mean(), pa_frontal.mean())


def test_fit_starts_from_lifter_unless_turned_off(anny_model):
    cases = sample_cases(anny_model, 2, "coco17", seed=5, pose_scale=0.5)
    tiny = fit_config("fast", camera_iters=1, stage_iters=(1,), pose_prior_weights=(4.78,), shape_prior_weights=(5.0,))
    kw = dict(keypoint_set="coco17", image_size=cases["image_size"], focal_length=cases["focal"], body_model=anny_model)
    on = fit_keypoints(cases["keypoints"], config=tiny, **kw)
    off = fit_keypoints(cases["keypoints"], config=fit_config(tiny, start="upright"), **kw)
    assert on.info["started_from_lifter"] == [True, True]
    assert off.info["started_from_lifter"] == [False, False]
    given = fit_keypoints(cases["keypoints"], config=tiny, start=Start.from_arrays(cases["global_orient"]), **kw)
    assert given.info["started_from_lifter"] == [False, False]
    # fewer than 6 COCO-17 points seen: too little for the lifter, the frontal start is used
    sparse = cases["keypoints"].copy()
    sparse[0, 5:, 2] = 0.0  # 5 points left
    mixed = fit_keypoints(sparse, config=tiny, **kw)
    assert mixed.info["started_from_lifter"] == [False, True]


def test_lifter_from_other_keypoint_sets(anny_model):
    """BlazePose-33 keypoints reach the lifter through their COCO-17 names."""
    from fitter.geometry import perspective_project
    from fitter.keypoints import convert_keypoints, keypoint_regressor

    cases = sample_cases(anny_model, 1, "coco17", seed=7, pose_scale=0.5)
    reg = keypoint_regressor(anny_model, "blazepose33")
    with torch.no_grad():
        o = anny_model(*(torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient", "transl")))
        px = perspective_project(
            reg.from_vertices(o.joints, o.vertices), torch.as_tensor(cases["focal"]), torch.tensor([640.0, 480.0])
        )
    blaze = torch.cat([px, torch.ones_like(px[..., :1])], -1).numpy()
    tiny = fit_config("fast", camera_iters=1, stage_iters=(1,), pose_prior_weights=(4.78,), shape_prior_weights=(5.0,))
    kw = dict(image_size=cases["image_size"], focal_length=cases["focal"], body_model=anny_model, config=tiny)
    a = fit_keypoints(blaze, "blazepose33", **kw)
    b = fit_keypoints(convert_keypoints(blaze, "blazepose33", "coco17"), "coco17", **kw)
    assert a.info["started_from_lifter"] == [True]
    truth = axis_angle_to_matrix(torch.as_tensor(cases["global_orient"]))
    for res in (a, b):
        assert _rotation_angle_deg(axis_angle_to_matrix(torch.as_tensor(res.global_orient)), truth)[0] < 45.0


def test_training_writes_a_loadable_checkpoint(anny_model, tmp_path):
    gen = torch.Generator().manual_seed(0)
    batch = sample_lifter_batch(anny_model, 8, gen)
    assert batch["features"].shape == (8, 54) and batch["rotations"].shape == (8, 24, 3, 3)
    assert torch.isfinite(batch["features"]).all()
    path = tmp_path / "lifter.pt"
    record = train_lifter(anny_model, LifterTrainConfig(steps=3, batch_size=8, width=32, blocks=1), path)
    assert all(math.isfinite(v) for v in record["final_losses"].values())
    lifter = load_lifter(path)
    assert lifter.config == {"width": 32, "blocks": 1, "num_betas": 10} and lifter.body_model == "anny"
    with pytest.raises(FileNotFoundError, match="fitter train lifter"):
        load_lifter(tmp_path / "missing.pt")


def test_train_lifter_command(tmp_path, anny_model):
    from typer.testing import CliRunner

    from fitter.cli.train import app

    out = tmp_path / "cli_lifter.pt"
    runner = CliRunner()
    result = runner.invoke(app, ["lifter", "--steps", "2", "--batch-size", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    assert load_lifter(out).body_model == "anny"
    # continuing from those weights
    again = runner.invoke(
        app, ["lifter", "--steps", "1", "--batch-size", "8", "--init-from", str(out), "--out", str(tmp_path / "b.pt")]
    )
    assert again.exit_code == 0, again.output
    assert load_lifter(tmp_path / "b.pt").train_record["continued_from"]["steps"] == 2
    bad = runner.invoke(app, ["lifter", "--init-from", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "c.pt")])
    assert bad.exit_code == 1 and "no such file" in bad.output


def test_anchor_holds_the_pose_near_the_lifters(anny_model):
    """With the anchor term the fitted pose stays closer to the lifter's start than without."""
    cases = sample_cases(anny_model, 3, "coco17", seed=11, pose_scale=0.5)
    kp = cases["keypoints"].copy()
    kp[..., :2] += np.random.default_rng(0).normal(0, 6.0, kp[..., :2].shape)  # noisy points pull the pose away
    kw = dict(keypoint_set="coco17", image_size=cases["image_size"], focal_length=cases["focal"], body_model=anny_model)
    start = fit_keypoints(
        kp, config=fit_config("fast", camera_iters=0, stage_iters=(0,)), **kw
    ).body_pose  # the lifter's
    loose = fit_keypoints(kp, config=fit_config("default", anchor_weight=0.0), **kw).body_pose
    held = fit_keypoints(kp, config=fit_config("default", anchor_weight=30.0), **kw).body_pose
    moved_loose = np.linalg.norm(loose - start, axis=1)
    moved_held = np.linalg.norm(held - start, axis=1)
    assert np.all(moved_held < moved_loose), (moved_held, moved_loose)


def test_training_draws_bodies_from_a_pose_file(anny_model, tmp_path):
    """With an AMASS-style pose file, bodies are posed from it (here one distinctive pose)."""
    pose = np.zeros((1, 156), np.float32)  # AMASS SMPL-H row: global (3), 21 body joints, hands
    pose[0, 3 + 3 * 3] = 1.2  # left knee (SMPL joint 4) bent 1.2 rad about x
    np.savez(tmp_path / "walk_poses.npz", poses=np.repeat(pose, 5, axis=0))
    from priors.fit_gmm import load_pose_files

    bank = torch.as_tensor(load_pose_files(tmp_path / "walk_poses.npz"))
    batch = sample_lifter_batch(
        anny_model, 64, torch.Generator().manual_seed(0), pose_bank=bank, pose_file_fraction=0.5
    )
    body = batch["rotations"][:, 1:]  # (64,23,3,3)
    knee = matrix_to_axis_angle(body[:, 3])
    from_file = torch.isclose(knee[:, 0], torch.tensor(1.2), atol=1e-4) & (knee[:, 1:].abs() < 1e-4).all(1)
    assert 15 <= int(from_file.sum()) <= 49  # about half of 64
    record = train_lifter(anny_model, LifterTrainConfig(steps=1, batch_size=8, width=16, blocks=1,
                                                        poses=str(tmp_path)), tmp_path / "l.pt")  # fmt: skip
    assert record["pose_file_poses"] == 5


def test_lifter_points_by_name_each_set_in_its_own_slots():
    """A set's points fill the lifter slots of the same name; SMPL's hip joints never stand in for
    COCO's hips when the lifter has slots of its own for them (only a COCO-17 lifter aliases them)."""
    from fitter.keypoints import convert_keypoints, keypoint_names
    from fitter.regressors.lifter import lifter_points, union_point_names

    names = union_point_names()
    assert names[:17] == keypoint_names("coco17") and len(names) == len(set(names))
    for keypoint_set in ("coco17", "smpl24", "openpose25", "blazepose33", "h36m17", "lsp14"):
        assert set(keypoint_names(keypoint_set)) <= set(names)
    smpl = torch.rand(2, 24, 3) + 0.1
    slots = lifter_points(smpl, "smpl24", names)
    assert slots[:, names.index("left_hip")].abs().sum() == 0  # COCO's hip: not given by SMPL-24
    torch.testing.assert_close(slots[:, names.index("smpl_left_hip")], smpl[:, 1])
    assert int((slots[..., 2] > 0).sum(1)[0]) == 24
    # a COCO-17-only lifter reads other sets through the COCO names they stand in for (convert_keypoints)
    coco_only = lifter_points(smpl, "smpl24", keypoint_names("coco17"))
    np.testing.assert_allclose(coco_only.numpy(), convert_keypoints(smpl.numpy(), "smpl24", "coco17"))


def test_widened_lifter_answers_as_before_on_the_points_it_had():
    from fitter.regressors.lifter import union_point_names, widen_inputs

    old = KeypointLifter(width=32, blocks=1)
    torch.nn.init.normal_(old.out.weight, std=0.1)
    wide = widen_inputs(old, union_point_names())
    assert wide.point_names[:17] == old.point_names and wide.inp.in_features == 3 * len(wide.point_names) + 3
    kp = torch.cat([torch.rand(3, 17, 2) * 400 + 100, torch.ones(3, 17, 1)], dim=-1)
    focal, center = torch.full((3,), 1000.0), torch.full((3, 2), 300.0)
    a, b = old.lift(kp, "coco17", focal, center), wide.lift(kp, "coco17", focal, center)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)


def test_training_batches_show_several_keypoint_sets(anny_model):
    from fitter.regressors.lifter import LIFTER_INPUT_SETS, union_point_names
    from fitter.training.lifter import DEFAULT_SET_WEIGHTS, lifter_skin

    skin = lifter_skin(anny_model, LIFTER_INPUT_SETS)
    batch = sample_lifter_batch(anny_model, 64, torch.Generator().manual_seed(0), skin=skin, input_sets=LIFTER_INPUT_SETS,
                                input_set_weights=DEFAULT_SET_WEIGHTS)  # fmt: skip
    S = len(union_point_names())
    assert batch["features"].shape == (64, 3 * S + 3) and batch["points"].shape == (64, 24 + 17, 3)
    seen = batch["features"][:, 2 * S : 3 * S] > 0  # confidences
    smpl_hip, coco_hip = union_point_names().index("smpl_left_hip"), 11
    assert seen[:, smpl_hip].any() and seen[:, coco_hip].any()
    assert not (seen[:, smpl_hip] & seen[:, coco_hip]).any()  # never both: one set per body
    assert (seen.sum(1) >= 6).all()


def test_training_reads_only_the_train_split_of_a_mocap_file(anny_model, tmp_path):
    """`fitter mocap import` files carry a per-frame split; the lifter trains on the train frames only."""
    poses = np.zeros((6, 72), np.float32)
    poses[:4, 3 + 3 * 3] = 1.0  # train frames: left knee bent
    poses[4:, 3 + 3 * 3] = -2.0  # held-out frames
    np.savez(tmp_path / "cmu_poses.npz", poses=poses, split=np.array(["train"] * 4 + ["heldout"] * 2))
    record = train_lifter(anny_model, LifterTrainConfig(steps=1, batch_size=8, width=16, blocks=1,
                                                        poses=str(tmp_path / "cmu_poses.npz")), tmp_path / "l.pt")  # fmt: skip
    assert record["pose_file_poses"] == 4 and record["config"]["pose_split"] == "train"
    everything = train_lifter(anny_model, LifterTrainConfig(steps=1, batch_size=8, width=16, blocks=1, pose_split=None,
                                                            poses=str(tmp_path / "cmu_poses.npz")), tmp_path / "m.pt")  # fmt: skip
    assert everything["pose_file_poses"] == 6
    mirrored = train_lifter(anny_model, LifterTrainConfig(steps=1, batch_size=8, width=16, blocks=1, pose_mirror=True,
                                                          poses=str(tmp_path / "cmu_poses.npz")), tmp_path / "n.pt")  # fmt: skip
    assert mirrored["pose_file_poses"] == 2 * 4  # the train frames and their mirror images


def test_coco17_features_reach_a_wider_lifter_in_its_coco_slots():
    """lifter(lifter_features(coco17 points)) on a lifter with more slots answers as lift(..., "coco17")."""
    from fitter.regressors.lifter import union_point_names

    lifter = KeypointLifter(width=32, blocks=1, point_names=union_point_names())
    torch.nn.init.normal_(lifter.inp.weight, std=0.1)
    torch.nn.init.normal_(lifter.out.weight, std=0.1)
    kp = torch.cat([torch.rand(2, 17, 2) * 400 + 100, torch.ones(2, 17, 1)], dim=-1)
    kp[1, 4, 2] = 0.0
    focal, center = torch.full((2,), 900.0), torch.full((2, 2), 320.0)
    a, b = lifter(lifter_features(kp, focal, center)), lifter.lift(kp, "coco17", focal, center)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_mix_pose_parts_combines_whole_parts_of_real_poses():
    from fitter.body.poses import POSE_PARTS
    from fitter.synthetic import mix_pose_parts

    bank = torch.arange(5 * 69, dtype=torch.float32).view(5, 69) / 100.0  # 5 distinct poses
    gen = torch.Generator().manual_seed(0)
    whole = mix_pose_parts(bank, 50, gen, fraction=0.0)
    assert all(any(torch.equal(p, b) for b in bank) for p in whole)  # fraction 0: whole bank poses
    mixed = mix_pose_parts(bank, 200, gen, fraction=1.0).view(200, 23, 3)
    new_combinations = 0
    for pose in mixed:
        donors = []
        for joints in POSE_PARTS.values():
            part = pose[[j - 1 for j in joints]]
            matches = [i for i, b in enumerate(bank.view(5, 23, 3)) if torch.equal(b[[j - 1 for j in joints]], part)]
            assert len(matches) == 1, "every part is one bank pose's part, joint angles unchanged"
            donors.append(matches[0])
        new_combinations += len(set(donors)) > 1
    assert new_combinations > 150  # parts drawn independently: most poses combine several bank poses
    assert sorted(j for joints in POSE_PARTS.values() for j in joints) == list(range(1, 24))


def test_training_with_batch_workers_and_pose_mixing(anny_model, tmp_path):
    bank = tmp_path / "poses.npz"
    np.savez(bank, poses=np.random.default_rng(0).normal(0, 0.2, (40, 72)).astype(np.float32))
    config = LifterTrainConfig(steps=4, batch_size=8, width=32, blocks=1, poses=str(bank), pose_mix=0.5, workers=2)
    record = train_lifter(anny_model, config, tmp_path / "lifter.pt")
    assert record["steps"] == 4 and all(math.isfinite(v) for v in record["final_losses"].values())
    assert record["config"]["workers"] == 2 and load_lifter(tmp_path / "lifter.pt").config["width"] == 32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_training_on_cuda(anny_model, tmp_path):
    config = LifterTrainConfig(steps=3, batch_size=16, width=32, blocks=1, device="cuda", workers=1)
    record = train_lifter(anny_model, config, tmp_path / "lifter.pt")
    assert all(math.isfinite(v) for v in record["final_losses"].values())
    assert anny_model.v_template.device.type == "cpu"  # the caller's model stays where it was


def test_limbs_the_photo_cuts_off_start_from_the_mean_pose(anny_model):
    """A half-body photo: no knee, ankle or foot point seen. The lifter, trained with scattered
    points missing, guesses whole missing legs badly (CMU train bodies, legs hidden: knees bent
    52 deg on average against 34 true, legs 287 mm off after aligning the torsos; 214 mm from the
    mean pose); legs of which no point is seen start from the mean pose, as do arms. One limb
    hidden, the lifter infers it from the rest and keeps its answer."""
    from fitter.body.poses import POSE_PARTS
    from fitter.camera import resolve_camera
    from fitter.init import StartInputs, lifter_start
    from fitter.keypoints import keypoint_names

    cases = sample_cases(anny_model, 8, "blazepose33", seed=7, pose_scale=0.7)
    names = keypoint_names("blazepose33")
    kp = cases["keypoints"].copy()
    kp[:, [i for i, n in enumerate(names) if any(t in n for t in ("knee", "ankle", "heel", "foot", "toe"))], 2] = 0.0
    arm = ("elbow", "wrist", "pinky", "index", "thumb")
    kp[0, [i for i, n in enumerate(names) if n.split("_", 1)[-1] in arm], 2] = 0.0  # both arms
    kp[1, [i for i, n in enumerate(names) if n.startswith("right_") and n[6:] in arm], 2] = 0.0  # the right arm
    camera = resolve_camera(cases["image_size"], len(kp), cases["focal"])
    mean = mean_body_pose()
    start = lifter_start(StartInputs.build(kp, "blazepose33", camera, anny_model, mean, "cpu"))
    cols = lambda *parts: [3 * (j - 1) + k for part in parts for j in POSE_PARTS[part] for k in range(3)]  # noqa: E731
    legs, arms = cols("left_leg", "right_leg"), cols("left_arm", "right_arm")
    assert torch.allclose(start.body_pose[:, legs], mean[legs].expand(8, -1))
    assert torch.allclose(start.body_pose[0, arms], mean[arms])
    right = cols("right_arm")
    assert not torch.allclose(start.body_pose[1, right], mean[right]), "one arm hidden: the lifter's guess"
    assert not torch.allclose(start.body_pose[2:, arms], mean[arms].expand(6, -1)), "seen arms: the lifter's"


def test_a_person_lying_or_upside_down_starts_as_if_upright(anny_model):
    """The photo turned by 90 and 180 degrees about the principal point (a camera rolled about its
    axis): the start has the same body pose as for the upright photo, its orientation turned
    with the camera. The lifter never saw such bodies (it guessed 116 / 287 mm PA-MPJPE fits)."""
    from fitter.camera import resolve_camera
    from fitter.init import StartInputs, lifter_start
    from fitter.init.keypoint_starts import torso_roll
    from fitter.keypoints import keypoint_names

    names = keypoint_names("coco17")
    torso = np.zeros((1, 17, 2), np.float32)  # shoulders 10 px right of the hips: turned clockwise by 90 deg
    torso[0, [names.index("left_shoulder"), names.index("right_shoulder")]] = [[10.0, 1.0], [10.0, -1.0]]
    torso[0, [names.index("left_hip"), names.index("right_hip")]] = [[0.0, 1.0], [0.0, -1.0]]
    assert math.degrees(float(torso_roll(torch.as_tensor(torso), torch.ones(1, 17), names)[0])) == pytest.approx(90.0)
    size = (1000, 1000)
    cases = sample_cases(anny_model, 6, "coco17", seed=9, pose_scale=0.5, image_size=size)
    camera = resolve_camera(size, 6, cases["focal"])
    mean = mean_body_pose()
    upright = lifter_start(StartInputs.build(cases["keypoints"], "coco17", camera, anny_model, mean, "cpu"))
    for degrees in (90.0, 180.0):
        turn = math.radians(degrees)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        kp = cases["keypoints"].copy()
        kp[..., :2] = (kp[..., :2] - 500.0) @ rotation.T + 500.0
        rolled = lifter_start(StartInputs.build(kp, "coco17", camera, anny_model, mean, "cpu"))
        assert (rolled.body_pose - upright.body_pose).abs().max() < 0.15, degrees
        z_turn = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, turn]]))
        expected = z_turn @ axis_angle_to_matrix(upright.global_orient)
        assert _rotation_angle_deg(axis_angle_to_matrix(rolled.global_orient), expected).max() < 8.0, degrees
