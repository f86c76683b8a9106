"""Photo -> fitted body: detection on a project-rendered image, folder runs (failures, resume),
outputs that load back, multi-person keypoint files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fitter.cli.main import app
from fitter.result import FitResult

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "data" / "anny_walk.png"
TRUTH = ROOT / "examples" / "data" / "anny_walk_truth.npz"


@pytest.fixture(scope="module")
def rendered(anny_model):
    sys.path.insert(0, str(ROOT / "examples"))
    from render_example import render

    return render()


def _truth_coco(anny_model, truth):
    import torch

    from fitter.geometry import perspective_project
    from fitter.keypoints import keypoint_regressor

    reg = keypoint_regressor(anny_model, "coco17")
    args = [torch.as_tensor(truth[k]) for k in ("betas", "body_pose", "global_orient", "transl")]
    out = anny_model(*args)
    pts = reg.from_vertices(out.joints, out.vertices)
    w, h = truth["image_size"][0]
    return (
        perspective_project(pts, torch.as_tensor(truth["focal_length"]), torch.tensor([w / 2, h / 2]))[0]
        .detach()
        .numpy()
    )


def test_committed_example_matches_renderer(rendered):
    image, truth = rendered
    from fitter.io.images import read_image

    committed = read_image(EXAMPLE)
    assert committed.shape == image.shape
    assert np.abs(committed.astype(int) - image.astype(int)).mean() < 2.0
    saved = np.load(TRUTH)
    np.testing.assert_allclose(saved["joints"], truth["joints"], atol=1e-4)


def test_mediapipe_finds_person_in_rendered_image(rendered, anny_model):
    from fitter.detect import BlazePoseDetector
    from fitter.keypoints import convert_keypoints

    image, truth = rendered
    with BlazePoseDetector() as detector:
        det = detector.detect(image)
    assert det is not None, "mediapipe found nobody in the project-rendered image"
    coco = convert_keypoints(det.keypoints, "blazepose33", "coco17")
    expected = _truth_coco(anny_model, truth)
    body = [5, 6, 11, 12, 13, 14, 15, 16]  # shoulders, hips, knees, ankles
    height = expected[:, 1].max() - expected[:, 1].min()
    err = np.linalg.norm(coco[body, :2] - expected[body], axis=1)
    assert np.all(err < 0.08 * height), err
    # person mask covers the rendered body
    inter = np.logical_and(det.mask > 0.5, truth["mask"]).sum()
    assert inter / np.logical_or(det.mask > 0.5, truth["mask"]).sum() > 0.7


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, anny_model):
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    shutil.copy(EXAMPLE, root / "a.png")
    shutil.copy(EXAMPLE, root / "sub" / "b.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    out = root / "out"
    runner = CliRunner()
    args = ["fit", str(root), "--recursive", "--out", str(out), "--config", "fast", "--batch-size", "2"]
    first = runner.invoke(app, args)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    second = runner.invoke(app, args)
    return root, out, first, second, mtimes


def _text(result) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_folder_one_bad_image_fails_alone(folder_run):
    root, out, first, _, _ = folder_run
    assert first.exit_code == 1, first.output
    assert "broken.jpg" in _text(first)
    assert "2 fitted, 0 skipped (already done), 1 failed" in _text(first), _text(first)
    for stem in (out / "a", out / "sub" / "b"):
        for suffix in (".npz", ".json", ".obj"):
            assert stem.with_suffix(suffix).exists(), stem.with_suffix(suffix)
        assert (stem.parent / f"{stem.name}_overlay.png").exists()
    assert not list(out.glob("broken*"))


def test_rerun_skips_finished_images(folder_run):
    _, out, _, second, mtimes = folder_run
    assert "0 fitted, 2 skipped" in _text(second), _text(second)
    assert second.exit_code == 1  # the broken image still fails
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == mtimes


def test_outputs_load_back(folder_run, anny_model):
    _, out, _, _, _ = folder_run
    res = FitResult.load(out / "a.npz")
    assert len(res) == 1 and res.status == ["ok"]
    assert res.keypoint_set == "blazepose33"
    assert res.extras["coco17_2d"].shape == (17, 2)
    assert np.all(np.isfinite(res.body_pose)) and res.transl[0, 2] > 0
    sidecar = json.loads((out / "a.json").read_text())
    assert sidecar["status"] == ["ok"] and "camera frame" in sidecar["frames"]
    import trimesh

    mesh = trimesh.load(out / "a.obj", process=False)
    assert mesh.vertices.shape == (anny_model.num_vertices, 3)
    res.body_model = anny_model
    np.testing.assert_allclose(res.vertices()[0], mesh.vertices, atol=1e-4)
    # the fit is close to the rendering's truth
    truth = np.load(TRUTH)
    assert abs(res.transl[0, 2] - truth["transl"][0, 2]) < 0.6
    assert res.reprojection_error_px[0] < 15


def test_a_half_body_photo_is_fitted_from_what_it_shows(tmp_path, anny_model):
    """The example photo cut above the knees: mediapipe still places the legs, below the frame.
    Those guesses are no keypoints: they get confidence 0 and the fit follows the points in the
    photo (it used to fail as "most keypoints lie outside the image"), legs from the mean pose."""
    from PIL import Image

    from fitter.body.poses import POSE_PARTS
    from fitter.fitting.fit import prior_mean_pose
    from fitter.keypoints import keypoint_names
    from priors import default_prior_terms

    image = Image.open(EXAMPLE)
    image.crop((0, 0, image.width, image.height // 2)).save(tmp_path / "top.png")
    result = CliRunner().invoke(
        app, ["fit", str(tmp_path / "top.png"), "--out", str(tmp_path / "out"), "--config", "fast"]
    )
    assert result.exit_code == 0 and "1 fitted" in _text(result), _text(result)
    fit = FitResult.load(tmp_path / "out" / "top.npz")
    names = keypoint_names(fit.keypoint_set)
    knees = [names.index("left_knee"), names.index("right_knee"), names.index("left_ankle"), names.index("right_ankle")]
    assert np.all(fit.keypoints[0, knees, 2] == 0.0), "points below the frame were used"
    legs = [3 * (j - 1) + k for part in ("left_leg", "right_leg") for j in POSE_PARTS[part] for k in range(3)]
    mean = prior_mean_pose(default_prior_terms()).numpy()  # the pose prior's mean: where unseen legs start
    assert np.abs(fit.body_pose[0, legs] - mean[legs]).max() < 0.3, "the unseen legs left the prior's mean pose"


def test_multi_person_keypoint_file(tmp_path, anny_model, rendered):
    from fitter.io.keypoint_files import KeypointFile, write_keypoints_file

    image, truth = rendered
    coco = _truth_coco(anny_model, truth)
    kp = np.concatenate([coco, np.ones((17, 1))], axis=1).astype(np.float32)
    shifted = kp.copy()
    shifted[:, 0] += 150
    shutil.copy(EXAMPLE, tmp_path / "two.png")
    write_keypoints_file(tmp_path / "two.json", KeypointFile(np.stack([kp, shifted]), "coco17", np.array([3, 7])))
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "two.png"), "--keypoints", str(tmp_path / "two.json"),
                                      "--out", str(tmp_path / "out"), "--config", "fast", "--no-silhouette"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for pid in (3, 7):
        res = FitResult.load(tmp_path / "out" / f"two_p{pid}.npz")
        assert int(res.extras["person_id"][0]) == pid
    a, b = (FitResult.load(tmp_path / "out" / f"two_p{pid}.npz") for pid in (3, 7))
    assert b.keypoints_2d_fit[0, :, 0].mean() - a.keypoints_2d_fit[0, :, 0].mean() > 100


def test_missing_smpl_model_exits_nonzero(tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["fit", str(EXAMPLE), "--body-model", "smpl", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "SMPL neutral model file" in _text(result) and "smpl.is.tue.mpg.de" in _text(result)
