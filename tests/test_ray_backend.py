"""The Ray backend (local 2-CPU Ray): same fits and files as the local backend, a corrupt image
fails alone, a re-run skips finished images, fit_dataset's status rows, bad arguments."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="Ray is an optional extra: pip install 'fitter[ray]'")

import ray  # noqa: E402

from fitter.distributed import fit_dataset, fit_paths_ray  # noqa: E402
from fitter.pipeline import FitOptions, FitWorker, fit_paths  # noqa: E402
from fitter.result import FitResult  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "anny_walk.png"
PARAMETERS = ("betas", "body_pose", "global_orient", "transl", "focal_length", "principal_point", "joints")


def _options(out: Path, **overrides) -> FitOptions:
    return FitOptions(out_dir=out, config="fast", silhouette=False, batch_size=2, **overrides)


def _fitter_workers() -> set[int]:
    """Process ids of running ImageFitter actors (Linux /proc; empty elsewhere)."""
    pids = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes().startswith(b"ray::MapWorker(MapBatches(ImageFitter))"):
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def local_ray():
    """A local 2-CPU Ray; afterwards every worker it started must have exited."""
    before = _fitter_workers()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20)
    yield
    ray.shutdown()
    deadline = time.monotonic() + 20
    while (left := _fitter_workers() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:  # do not leave them running on the machine
        os.kill(pid, signal.SIGTERM)
    assert not left, f"ImageFitter workers {sorted(left)} still ran 20 s after ray.shutdown (hung at exit)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, anny_model, local_ray):
    """Both backends on a.png, sub/b.png (copies of the example) and a corrupt broken.jpg."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    shutil.copy(EXAMPLE, root / "a.png")
    shutil.copy(EXAMPLE, root / "sub" / "b.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    paths = [root / "a.png", root / "broken.jpg", root / "sub" / "b.png"]
    local_options = _options(root / "local")
    local = fit_paths(paths, local_options, roots=[root], worker=FitWorker(local_options, model=anny_model))
    reported: list[tuple[Path, str]] = []
    first = fit_paths_ray(paths, _options(root / "ray"), roots=[root], on_image=lambda p, s: reported.append((p, s)))
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "ray").rglob("*.npz")}
    second = fit_paths_ray(paths, _options(root / "ray"), roots=[root])
    return root, paths, local, first, second, reported, mtimes


def test_same_fits_and_files_as_local_backend(runs):
    root, _, local, first, _, _, _ = runs
    assert first.done == local.done == [root / "a.png", root / "sub" / "b.png"]
    for rel in ("a", "sub/b"):
        here, there = FitResult.load(root / "ray" / f"{rel}.npz"), FitResult.load(root / "local" / f"{rel}.npz")
        assert here.status == there.status == ["ok"] and here.keypoint_set == there.keypoint_set == "blazepose33"
        np.testing.assert_array_equal(here.keypoints, there.keypoints)  # same detections
        for name in PARAMETERS:  # other processes and thread counts: float sums differ slightly (measured < 4e-4)
            np.testing.assert_allclose(getattr(here, name), getattr(there, name), atol=2e-3, err_msg=name)
        np.testing.assert_allclose(here.extras["coco17_2d"], there.extras["coco17_2d"], atol=0.1)
        assert here.info["config"] == there.info["config"]
        for suffix in (".json", ".obj"):
            assert (root / "ray" / f"{rel}{suffix}").is_file()
        assert (root / "ray" / f"{rel}_overlay.png").is_file()
    assert sorted(p.relative_to(root / "ray") for p in (root / "ray").rglob("*")) == \
        sorted(p.relative_to(root / "local") for p in (root / "local").rglob("*"))  # fmt: skip


def test_corrupt_image_fails_alone(runs):
    root, paths, local, first, _, reported, _ = runs
    assert list(first.failed) == [root / "broken.jpg"]
    assert "corrupt" in first.failed[root / "broken.jpg"]
    assert first.failed == local.failed
    assert sorted(reported) == sorted([(root / "a.png", "done"), (root / "sub" / "b.png", "done"),
                                       (root / "broken.jpg", "failed: " + first.failed[root / "broken.jpg"])])  # fmt: skip
    assert not list((root / "ray").glob("broken*"))


def test_rerun_skips_finished_images(runs):
    root, _, _, _, second, _, mtimes = runs
    assert second.done == [] and second.skipped == [root / "a.png", root / "sub" / "b.png"]
    assert list(second.failed) == [root / "broken.jpg"]
    assert {p: p.stat().st_mtime_ns for p in (root / "ray").rglob("*.npz")} == mtimes


def test_fit_dataset_status_rows(runs):
    root, _, _, _, _, _, mtimes = runs
    rows = [{"path": str(root / "sub" / "b.png"), "tag": 7}, {"path": str(root / "broken.jpg"), "tag": 8}]
    result = fit_dataset(ray.data.from_items(rows), _options(root / "ray"), roots=[root], workers=1)
    got = sorted(result.take_all(), key=lambda row: row["tag"])
    assert [row["status"] for row in got] == ["skipped", "failed: " + got[1]["status"].removeprefix("failed: ")]
    assert "corrupt" in got[1]["status"]
    assert [row["stem"] for row in got] == [str(root / "ray" / "sub" / "b"), str(root / "ray" / "broken")]
    assert {p: p.stat().st_mtime_ns for p in (root / "ray").rglob("*.npz")} == mtimes


def test_bad_arguments_fail_clearly(tmp_path, local_ray):
    with pytest.raises(ValueError, match="'path' column"):
        fit_dataset(ray.data.from_items([{"file": "x.png"}]), _options(tmp_path))
    with pytest.raises(ValueError, match="0 GPUs"):
        fit_dataset(ray.data.from_items([{"path": "x.png"}]), _options(tmp_path, device="cuda"))
    with pytest.raises(ValueError, match="needs options.device 'cuda'"):
        fit_dataset(ray.data.from_items([{"path": "x.png"}]), _options(tmp_path), gpus_per_worker=1)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        fit_dataset(ray.data.from_items([{"path": "x.png"}]), _options(tmp_path), workers=0)


def test_worker_failure_raises_one_clear_error(tmp_path, local_ray):
    photo = tmp_path / "photo.png"
    shutil.copy(EXAMPLE, photo)
    options = _options(tmp_path / "out", body_model=str(tmp_path / "missing_model.pkl"))
    with pytest.raises(RuntimeError, match="Ray workers failed after 0 of 1 images.*missing_model.pkl"):
        fit_paths_ray([photo], options)
