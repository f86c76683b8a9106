"""From photos to fitted bodies: detection (or keypoint files) -> batched fitting -> outputs.

This is the library behind `fitter fit`. Per image it writes, next to each other in the
output folder (one set per person, `<stem>_p<id>.*`, when a keypoint file lists several):

* `<stem>.npz`  - FitResult (parameters, camera, keypoints used, `coco17_2d` (17,2) px: the
  fitted model's COCO-17 points, losses, config, versions); load with FitResult.load;
* `<stem>.json` - the same in JSON;
* `<stem>.obj`  - the posed mesh in the camera frame (metres; trimesh);
* `<stem>_overlay.png` - the mesh and the keypoints drawn on the photo; optional `<stem>_side.png`.

Every file is written atomically and the .npz last, so an image whose .npz exists is finished:
a re-run skips it. A bad image fails alone; the others go on. `FitWorker` does the work for the
local backend (`fit_paths`) and for each Ray actor (fitter.distributed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fitter.pipeline.jobs import (
    FitOptions,
    FolderSummary,
    ImageJob,
    check_options,
    is_finished,
    output_stem,
    output_stems,
    prepare_image,
    read_part_masks,
    remove_stale_temporary_files,
)
from fitter.pipeline.outputs import project_keypoint_set, write_outputs
from fitter.pipeline.worker import FitWorker, Report

__all__ = ["FitOptions", "FolderSummary", "ImageJob", "FitWorker", "Report", "fit_paths", "start_run", "summarize",
           "check_options", "prepare_image", "read_part_masks", "output_stem", "output_stems", "is_finished",
           "write_outputs", "project_keypoint_set"]  # fmt: skip


def start_run(
    paths: list[Path], options: FitOptions, roots: list[Path], report: Report
) -> tuple[list[Path], list[int]]:
    """What every backend does first: check the settings (one-line errors, before any work), remove
    temporary files an interrupted run left, name each image's outputs (`output_stems`), and
    report finished images "skipped" (unless options.overwrite). Returns (stems, indices to fit)."""
    check_options(options, paths, roots)
    remove_stale_temporary_files(Path(options.out_dir))
    stems = output_stems(paths, roots, Path(options.out_dir))
    todo = []
    for index, (path, stem) in enumerate(zip(paths, stems)):
        if not options.overwrite and is_finished(stem):
            report(path, "skipped")
        else:
            todo.append(index)
    return stems, todo


def summarize(paths: list[Path], statuses: dict[int, str], seconds: float,
              people_skipped: dict[Path, str] | None = None) -> FolderSummary:  # fmt: skip
    """A FolderSummary of `paths` (input order) from their statuses ("done" | "skipped" | "failed: ...")."""
    summary = FolderSummary(seconds=seconds, people_skipped=dict(people_skipped or {}))
    for index, path in enumerate(paths):
        status = statuses[index]
        if status == "done":
            summary.done.append(path)
        elif status == "skipped":
            summary.skipped.append(path)
        else:
            summary.failed[path] = status.removeprefix("failed: ")
    return summary


def fit_paths(
    paths: Iterable[Path],
    options: FitOptions,
    roots: list[Path] | None = None,
    on_image: Report | None = None,
    worker: FitWorker | None = None,
    on_read: Callable[[Path], None] | None = None,
) -> FolderSummary:
    """Fit every image in `paths`, writing outputs under options.out_dir (the local backend).

    `on_image(path, status)` is called once per image ("done", "skipped", "failed: ...") and
    on_read(path) when an image to fit has been read and detected. worker:
    a FitWorker already set up with these options (else one is made when anything is left to fit,
    and closed at the end).
    """
    start = time.perf_counter()
    paths, roots = list(paths), roots or []
    report = on_image or (lambda path, status: None)
    statuses = {index: "skipped" for index in range(len(paths))}
    stems, todo = start_run(paths, options, roots, report)
    people_skipped: dict[Path, str] = {}
    if todo:
        own = worker is None
        worker = worker or FitWorker(options)
        try:
            for index, status in zip(todo, worker.process([(paths[i], stems[i]) for i in todo], report, on_read)):
                statuses[index] = status
            people_skipped = dict(worker.people_skipped)
        finally:
            if own:
                worker.close()
    return summarize(paths, statuses, time.perf_counter() - start, people_skipped)
