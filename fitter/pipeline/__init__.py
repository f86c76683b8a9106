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
from collections.abc import Iterable
from pathlib import Path

from fitter.pipeline.jobs import (
    FitOptions,
    FolderSummary,
    ImageJob,
    is_finished,
    output_stem,
    prepare_image,
    read_part_masks,
)
from fitter.pipeline.outputs import project_keypoint_set, write_outputs
from fitter.pipeline.worker import FitWorker, Report

__all__ = ["FitOptions", "FolderSummary", "ImageJob", "FitWorker", "Report", "fit_paths", "pending_images", "summarize",
           "prepare_image", "read_part_masks", "output_stem", "is_finished", "write_outputs", "project_keypoint_set"]  # fmt: skip


def pending_images(paths: list[Path], options: FitOptions, roots: list[Path], report: Report) -> list[int]:
    """Indices of `paths` still to fit; finished ones (unless options.overwrite) are reported "skipped"."""
    todo = []
    for index, path in enumerate(paths):
        if not options.overwrite and is_finished(output_stem(path, roots, options.out_dir)):
            report(path, "skipped")
        else:
            todo.append(index)
    return todo


def summarize(paths: list[Path], statuses: dict[int, str], seconds: float) -> FolderSummary:
    """A FolderSummary of `paths` (input order) from their statuses ("done" | "skipped" | "failed: ...")."""
    summary = FolderSummary(seconds=seconds)
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
) -> FolderSummary:
    """Fit every image in `paths`, writing outputs under options.out_dir (the local backend).

    `on_image(path, status)` is called once per image ("done", "skipped", "failed: ..."). worker:
    a FitWorker already set up with these options (else one is made when anything is left to fit,
    and closed at the end).
    """
    start = time.perf_counter()
    paths, roots = list(paths), roots or []
    report = on_image or (lambda path, status: None)
    statuses = {index: "skipped" for index in range(len(paths))}
    todo = pending_images(paths, options, roots, report)
    if todo:
        own = worker is None
        worker = worker or FitWorker(options)
        try:
            items = [(paths[i], output_stem(paths[i], roots, options.out_dir)) for i in todo]
            for index, status in zip(todo, worker.process(items, report)):
                statuses[index] = status
        finally:
            if own:
                worker.close()
    return summarize(paths, statuses, time.perf_counter() - start)
