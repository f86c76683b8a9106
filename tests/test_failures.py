"""What a user can get wrong or hit, each caught, named and recoverable (`fitter fit` on photos
with keypoint files: fast, no detector). One test per problem of the trust issue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fitter.cli.main import app
from fitter.io.keypoint_files import KeypointFile, write_keypoints_file
from fitter.synthetic import sample_cases

SIZE = (640, 480)


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def person(anny_model) -> np.ndarray:
    """(17,3) COCO-17 keypoints of a synthetic body inside a 640x480 photo."""
    return sample_cases(anny_model, 1, "coco17", seed=4, image_size=SIZE)["keypoints"][0]


def _photo(path: Path, size=SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)
    return path


def _keypoints(path: Path, *people: np.ndarray, ids=None) -> Path:
    write_keypoints_file(path, KeypointFile(np.stack(people), "coco17", None if ids is None else np.array(ids)))
    return path


def _fit(*args: str | Path):
    return CliRunner().invoke(app, ["fit", *map(str, args), "--config", "fast", "--batch-size", "4"])


def test_untrusted_fit_writes_no_finished_marker_and_is_retried(tmp_path, person):
    """Problems 1 and 6: keypoints outside the photo -> failed with a reason, no .npz, a .failed.json, retried."""
    photo = _photo(tmp_path / "in" / "far.png")
    outside = person.copy()
    outside[:, 0] += 2000.0  # every point right of the image
    kp = _keypoints(tmp_path / "kp" / "far.json", outside)
    out = tmp_path / "out"
    first = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert first.exit_code == 1 and "outside the 640x480 image" in _text(first), _text(first)
    assert not (out / "far.npz").exists() and (out / "far.failed.json").exists()
    assert json.loads((out / "far.failed.json").read_text())["status"].startswith("failed:")
    again = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert "0 fitted, 0 skipped (already done), 1 failed" in _text(again), _text(again)
    _keypoints(kp, person)  # fixed keypoints: the retry succeeds and the failure note goes
    fixed = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert fixed.exit_code == 0 and (out / "far.npz").exists() and not (out / "far.failed.json").exists()


def test_one_keypoint_file_for_several_photos_is_refused_up_front(tmp_path, person):
    """Problem 2."""
    photos = [_photo(tmp_path / "in" / f"{name}.png") for name in ("a", "b")]
    kp = _keypoints(tmp_path / "one.json", person)
    result = _fit(*photos, "--keypoints", kp, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "holds one photo's keypoints but 2 photos" in _text(result), _text(result)
    assert not list((tmp_path / "out").glob("*.npz"))


def test_name_collisions_keep_every_result(tmp_path, person):
    """Problem 3: photo.jpg + photo.png, and a/img.png + b/img.png given as files."""
    folder = tmp_path / "in"
    same_stem = [_photo(folder / "photo.png"), folder / "photo.jpg"]
    Image.open(same_stem[0]).save(same_stem[1])
    _keypoints(tmp_path / "kp" / "photo.json", person)
    out = tmp_path / "out"
    result = _fit(folder, "--keypoints", tmp_path / "kp", "--out", out)
    assert "2 fitted" in _text(result), _text(result)
    assert (out / "photo.png.npz").exists() and (out / "photo.jpg.npz").exists()
    files = [_photo(tmp_path / "a" / "img.png"), _photo(tmp_path / "b" / "img.png")]
    _keypoints(tmp_path / "kp" / "img.json", person)
    result = _fit(*files, "--keypoints", tmp_path / "kp", "--out", tmp_path / "out2")
    assert "2 fitted" in _text(result), _text(result)
    assert (tmp_path / "out2" / "a" / "img.png.npz").exists() and (tmp_path / "out2" / "b" / "img.png.npz").exists()


def test_one_bad_keypoint_file_fails_alone(tmp_path, person):
    """Problem 4: a file with the wrong number of points (and one with a person of 1 point) among good ones."""
    folder, kp = tmp_path / "in", tmp_path / "kp"
    for name in ("good1", "good2", "bad", "sparse"):
        _photo(folder / f"{name}.png")
    _keypoints(kp / "good1.json", person)
    _keypoints(kp / "good2.json", person)
    (kp / "bad.json").write_text(
        json.dumps({"keypoint_set": "coco17", "people": [{"id": 0, "keypoints": person[:16].tolist()}]})
    )
    lonely = person.copy()
    lonely[1:, 2] = 0.0
    _keypoints(kp / "sparse.json", person, lonely, ids=[0, 7])
    result = _fit(folder, "--keypoints", kp, "--out", tmp_path / "out")
    text = _text(result)
    assert result.exit_code == 1 and "3 fitted, 0 skipped (already done), 1 failed" in text, text
    assert "bad.png" in text and "has 17 keypoints but the data has 16" in text, text
    assert "people not fitted in" in text and "person 7: 1 keypoint(s)" in text


def test_big_photo_overlay_is_bounded(tmp_path, person):
    """Problem 5: the overlay is rendered at most --overlay-size px on its long side."""
    photo = _photo(tmp_path / "big.png", size=(3200, 2400))
    _keypoints(tmp_path / "kp" / "big.json", person * np.array([5.0, 5.0, 1.0], np.float32))
    result = _fit(photo, "--keypoints", tmp_path / "kp", "--out", tmp_path / "out", "--overlay-size", "800")
    assert result.exit_code == 0, _text(result)
    with Image.open(tmp_path / "out" / "big_overlay.png") as overlay:
        assert overlay.size == (800, 600)


@pytest.mark.parametrize("args, message", [
    (["--focal", "0"], "--focal must be a positive"),
    (["--focal", "nan"], "--focal must be a positive"),
    (["--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
    (["--device", "mps"], "--device must be cpu, cuda or cuda:N"),
    (["--gmm", "missing_gmm.npz"], "--gmm missing_gmm.npz does not exist"),
    (["--parts", "missing_parts"], "--parts missing_parts does not exist"),
    (["--refine", "eft"], "--refine eft fine-tunes a regressor"),
])  # fmt: skip
def test_bad_settings_fail_before_any_work(tmp_path, person, args, message):
    """Problem 7: each bad setting is a one-line error and exit 1, with nothing read or written."""
    photo = _photo(tmp_path / "in" / "a.png")
    result = _fit(photo, "--keypoints", _keypoints(tmp_path / "a.json", person), "--out", tmp_path / "out", *args)
    assert result.exit_code == 1 and message in _text(result), _text(result)
    assert "Traceback" not in result.output and not list((tmp_path / "out").glob("*"))


def test_unusable_output_folders_fail_before_any_work(tmp_path, person):
    photo = _photo(tmp_path / "in" / "a.png")
    kp = _keypoints(tmp_path / "a.json", person)
    (tmp_path / "file").write_text("x")
    result = _fit(photo, "--keypoints", kp, "--out", tmp_path / "file")
    assert result.exit_code == 1 and "is a file; give a folder" in _text(result)
    result = _fit(tmp_path / "in", "--keypoints", kp, "--out", tmp_path / "in")
    assert result.exit_code == 1 and "is the folder the photos are in" in _text(result), _text(result)


def test_brackets_in_paths_are_printed_as_they_are(tmp_path, person):
    """Problem 8: rich markup must not eat [brackets] or crash on [/x] in paths."""
    folder = tmp_path / "shoot [raw] [/x]"
    _photo(folder / "a.png")
    (folder / "b [1].png").write_bytes(b"not a png")
    _keypoints(tmp_path / "kp" / "a.json", person)
    result = _fit(folder, "--keypoints", tmp_path / "kp", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "shoot [raw] [/x]/b [1].png" in _text(result), _text(result)


def test_ctrl_c_says_how_to_resume(tmp_path, person, monkeypatch):
    """Problem 8: Ctrl-C exits 130 with what finished and how to resume."""
    import fitter.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitter.pipeline, "fit_paths", interrupted)
    photo = _photo(tmp_path / "a.png")
    result = _fit(photo, "--keypoints", _keypoints(tmp_path / "a.json", person), "--out", tmp_path / "out")
    assert result.exit_code == 130 and "run the same command again to resume" in _text(result), _text(result)


def test_progress_advances_per_image(tmp_path, person, anny_model):
    """Problem 8: the worker reports each image as soon as it is read, not once per batch."""
    from fitter.pipeline import FitOptions, FitWorker, fit_paths

    photos = [_photo(tmp_path / "in" / f"{i}.png") for i in range(3)]
    for i in range(3):
        _keypoints(tmp_path / "kp" / f"{i}.json", person)
    options = FitOptions(out_dir=tmp_path / "out", keypoints=tmp_path / "kp", config="fast", batch_size=8)
    events = []
    fit_paths(photos, options, worker=FitWorker(options, model=anny_model),
              on_image=lambda path, status: events.append(("done", path.name)),
              on_read=lambda path: events.append(("read", path.name)))  # fmt: skip
    assert [e for e in events if e[0] == "read"] == [("read", "0.png"), ("read", "1.png"), ("read", "2.png")]
    assert len(events) == 6


def test_stale_temporary_files_are_removed(tmp_path, person):
    """Problem 9: a .tmp file left by a killed run is gone after the next run."""
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.npz.k3j2.tmp"
    stale.write_bytes(b"half a file")
    photo = _photo(tmp_path / "a.png")
    result = _fit(photo, "--keypoints", _keypoints(tmp_path / "a.json", person), "--out", out)
    assert result.exit_code == 0 and not stale.exists()


def test_an_empty_photo_fails_alone_on_one_line(tmp_path, person):
    """A 0-byte photo says it is empty; the line printed as it fails is one whole line, also in a log."""
    folder = tmp_path / "a folder whose long name makes the failure line longer than any terminal is wide"
    _photo(folder / "good.png")
    (folder / "zero.jpg").write_bytes(b"")
    for name in ("good", "zero"):
        _keypoints(tmp_path / "kp" / f"{name}.json", person)
    result = _fit(folder, "--keypoints", tmp_path / "kp", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "1 fitted, 0 skipped (already done), 1 failed" in _text(result), _text(result)
    assert "the file is empty (0 bytes)" in _text(result)
    live = [line for line in result.output.splitlines() if line.startswith(f"{folder / 'zero.jpg'}: failed: ")]
    assert live and live[0].endswith("re-download it"), result.output


def test_finished_markers_are_matched_literally(tmp_path):
    """`shoot [1]`'s person files are found (no glob classes), and `a_party.npz` does not finish `a`."""
    from fitter.pipeline import is_finished

    for name in ("b [1]_p0.npz", "b [1]_p3.npz", "a_party.npz"):
        (tmp_path / name).touch()
    assert is_finished(tmp_path / "b [1]")
    assert not is_finished(tmp_path / "a")
    (tmp_path / "b [1]_p3.failed.json").touch()
    assert not is_finished(tmp_path / "b [1]")


def test_no_finished_marker_without_all_its_files(tmp_path, person, monkeypatch):
    """A run stopped between a result's files (disk full here; kill -9 likewise) leaves no .npz, the
    finished marker, so the re-run fits the image again; with --overwrite the old .npz goes first."""
    import fitter.io.atomic as atomic

    photo = _photo(tmp_path / "a.png")
    kp = _keypoints(tmp_path / "kp" / "a.json", person)
    out = tmp_path / "out"
    real = atomic.atomic_write_json

    def disk_full(path, *args, **kwargs):
        if Path(path) == out / "a.json":
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "atomic_write_json", disk_full)
    first = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert first.exit_code == 1 and "No space left on device" in _text(first), _text(first)
    assert not (out / "a.npz").exists()
    monkeypatch.setattr(atomic, "atomic_write_json", real)
    again = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert again.exit_code == 0 and "1 fitted" in _text(again), _text(again)
    assert (out / "a.npz").exists() and (out / "a.json").exists()
    monkeypatch.setattr(atomic, "atomic_write_json", disk_full)
    refit = _fit(photo, "--keypoints", kp.parent, "--out", out, "--overwrite")
    assert refit.exit_code == 1 and not (out / "a.npz").exists(), _text(refit)


def test_facing_conflict_flags_a_fit_turned_away_from_the_3d_landmarks(anny_model):
    """Problem 6: a fit facing the other way than the person's 3D landmarks is not trusted."""
    import math

    import torch

    from fitter.fitting.quality import facing_conflicts
    from fitter.keypoints import keypoint_names, keypoint_regressor

    names = list(keypoint_names("blazepose33"))
    facing_camera = torch.tensor([[math.pi, 0.0, 0.0]])
    with torch.no_grad():
        out = anny_model(None, None, facing_camera, None)
        landmarks = keypoint_regressor(anny_model, "blazepose33").from_vertices(out.joints, out.vertices)
    turned = torch.tensor([[0.0, 0.0, math.pi]])  # R_x(pi) R_y(pi): the back to the camera
    assert not facing_conflicts(facing_camera, landmarks, names).item()
    assert facing_conflicts(turned, landmarks, names).item()


def test_an_untrusted_fit_is_boxed_not_drawn_on_the_overlay(tmp_path, person):
    """Problem 6: a fit that cannot be trusted is no picture of the person. Beside a good person, one
    whose keypoints are scrambled (head at the feet) fails; the overlay draws the good one's mesh,
    the failed one's keypoints inside a red box, and not its mesh (which swelled over the photo)."""
    from fitter.render.overlay import FAILED_COLOR

    photo = _photo(tmp_path / "in" / "two.png")
    good, scrambled = person.copy(), person[::-1].copy()
    good[:, 0] -= 140.0
    scrambled[:, 0] += 140.0
    kp = _keypoints(tmp_path / "kp" / "two.json", good, scrambled)
    out = tmp_path / "out"
    result = _fit(photo, "--keypoints", kp.parent, "--out", out)
    assert result.exit_code == 1 and "person 1: untrusted fit" in _text(result), _text(result)
    assert (out / "two_p0.npz").exists() and (out / "two_p1.failed.json").exists()
    overlay = np.asarray(Image.open(out / "two_overlay.png").convert("RGB")).astype(int)
    changed = np.abs(overlay - 90).sum(-1) > 30  # not the grey photo
    lo, hi = scrambled[:, :2].min(0).astype(int), scrambled[:, :2].max(0).astype(int)
    beside = np.ones_like(changed)
    beside[:, : int(good[:, 0].max()) + 20] = False  # away from the good person
    assert changed[beside].mean() < 0.08, (
        f"{changed[beside].mean():.2f} of the photo beside the good person is drawn over"
    )
    red = np.abs(overlay - np.array(FAILED_COLOR)).sum(-1) < 10
    assert red[lo[1] - 12 : hi[1] + 12, lo[0] - 12 : hi[0] + 12].sum() > 200, "no red box around the failed person"
    assert changed[:, : int(good[:, 0].max())].mean() > 0.1, "the good person's mesh is missing"
