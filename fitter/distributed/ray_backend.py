"""Batch fitting on Ray: detection and fitting spread over the workers and GPUs of a Ray cluster.

The outputs, resume and failure rules are those of `fitter.pipeline.fit_paths` (the local
backend), because every Ray actor runs the same `fitter.pipeline.FitWorker` on its batches:
`output_stem` names the files, the worker skips finished images (the .npz, written last),
reads and detects, fits and writes atomically. A bad image fails alone.

Each worker is a Ray Data actor (`ImageFitter`) holding one FitWorker (body model, BlazePose
detector and initializer, loaded once) that fits the batches of image rows it is given. With `options.device` "cuda"
or "cuda:N" every worker reserves `gpus_per_worker` GPUs (default 1) and fits on the GPU Ray
gives it (Ray sets CUDA_VISIBLE_DEVICES, so N is ignored); 0.5 lets two workers share one GPU,
so that one worker's detection (CPU) overlaps the other's fit.

Every worker reads the images and writes the outputs itself, so on a multi-node cluster the
images, the output folder (and keypoint / GMM files) must be at the same absolute paths on
every node (a shared file system). Relative paths in `FitOptions` are made absolute on the
driver (against its working directory) before they are sent to the workers, and the workers
get absolute image paths, so info["image"] in the outputs (and failure messages) name the
absolute path where the local backend keeps the path as given.

Ray is an optional dependency: `pip install "fitter[ray]"`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fitter.pipeline import FitOptions, FitWorker, FolderSummary, output_stem, start_run, summarize

if TYPE_CHECKING:
    import ray.data

__all__ = ["ImageFitter", "fit_dataset", "fit_paths_ray"]

_INSTALL_HINT = 'the Ray backend needs Ray: pip install "fitter[ray]" (or pip install "ray[data]" "pyarrow<26")'


def _import_ray():
    """The `ray` module with `ray.data` loaded, or a ModuleNotFoundError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(f"{_INSTALL_HINT} ({exc})") from exc
    return ray


def _absolute_options(options: FitOptions) -> FitOptions:
    """`options` with its file and folder paths made absolute against this process's working directory."""
    absolute: dict[str, Any] = {name: Path(getattr(options, name)).resolve()
                                for name in ("out_dir", "keypoints", "parts", "gmm") if getattr(options, name) is not None}  # fmt: skip
    if Path(options.body_model).is_file():  # a model file rather than a name
        absolute["body_model"] = str(Path(options.body_model).resolve())
    return dataclasses.replace(options, **absolute)


class ImageFitter:
    """Ray Data actor: one `FitWorker` (model, detector, initializer loaded once) fitting batches of image rows.

    A batch is a dict of equal-length numpy arrays (Ray Data's "numpy" batch format) with a
    "path" column (image files readable by this worker; recorded as info["image"] in the
    outputs). It returns the same columns plus "stem" (output path without suffix) and "status"
    ("done", "skipped" when the outputs exist and options.overwrite is False, or "failed: <why>").
    """

    def __init__(self, options: FitOptions, roots: Sequence[str] = (), num_threads: int | None = None) -> None:
        import torch

        if num_threads is not None:
            torch.set_num_threads(max(1, int(num_threads)))
        if options.device.startswith("cuda"):  # Ray shows this worker only the GPU it reserved
            options = dataclasses.replace(options, device="cuda")
        self.options = options
        self.roots = [Path(root) for root in roots]
        # Never closed: closing mediapipe's graph while the worker process exits deadlocks it
        # (mediapipe 0.10.21), leaving the process behind; the exit frees it anyway.
        self.worker = FitWorker(options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "path" not in batch:
            raise ValueError(f"fit_dataset needs a 'path' column of image files; the rows have {sorted(batch)}")
        paths = [Path(str(p)) for p in batch["path"]]
        if "stem" in batch:  # named by the driver (fit_paths_ray), unique over the whole run
            stems = [Path(str(s)) for s in batch["stem"]]
        else:
            stems = [output_stem(path, self.roots, self.options.out_dir) for path in paths]
        self.worker.people_skipped.clear()
        statuses = self.worker.process(list(zip(paths, stems)))
        out = dict(batch)
        out["stem"] = np.array([str(stem) for stem in stems], dtype=object)
        out["status"] = np.array(statuses, dtype=object)
        out["people_skipped"] = np.array([self.worker.people_skipped.get(p, "") for p in paths], dtype=object)
        return out


def _worker_resources(
    ray: Any, options: FitOptions, cpus_per_worker: float, gpus_per_worker: float | None
) -> tuple[float, float, int]:
    """(cpus, gpus) each worker reserves and how many such workers the cluster holds at most."""
    use_gpu = options.device.startswith("cuda")
    gpus = (1.0 if use_gpu else 0.0) if gpus_per_worker is None else float(gpus_per_worker)
    if not cpus_per_worker > 0:
        raise ValueError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
    if use_gpu and not gpus > 0:
        raise ValueError(
            f"options.device is {options.device!r} but gpus_per_worker is {gpus}; give a GPU share > 0 (e.g. 1 or 0.5)"
        )
    if not use_gpu and gpus != 0:
        raise ValueError(
            f"gpus_per_worker={gpus} needs options.device 'cuda'; with device {options.device!r} leave it unset"
        )
    available = ray.cluster_resources()
    total_cpus, total_gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if cpus_per_worker > total_cpus:
        raise ValueError(
            f"cpus_per_worker={cpus_per_worker} but the Ray cluster has {total_cpus:g} CPUs; ask for fewer"
        )
    if use_gpu:
        if gpus > total_gpus:
            raise ValueError(f"options.device is {options.device!r} but the Ray cluster has {total_gpus:g} GPUs "
                             f"(each worker needs {gpus:g}); add GPU nodes or fit with device 'cpu'")  # fmt: skip
        most = int(math.floor(total_gpus / gpus + 1e-9))
    else:
        most = int(math.floor(total_cpus / cpus_per_worker + 1e-9))
    return float(cpus_per_worker), gpus, max(1, most)


def fit_dataset(
    ds: "ray.data.Dataset",
    options: FitOptions,
    roots: Sequence[Path] | None = None,
    *,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
) -> "ray.data.Dataset":
    """Fit every image of a Ray Dataset; a lazy Dataset of one status row per image.

    ds: rows with a "path" column (str, absolute paths of image files that every worker can
    read) and optionally "stem" (the output path without suffix; default `output_stem`); other
    columns are passed through. Outputs are written under options.out_dir exactly as
    `fit_paths` writes them (`roots`: the folders the paths were found in, for the output
    layout). Result rows: the input columns + "stem" (str, output path without suffix) +
    "status" ("done" | "skipped" | "failed: <why>") + "people_skipped" (people not fitted, and why). Nothing runs until the result is consumed
    (iter_rows, take_all, materialize...).

    workers: the number of actors (each loads the model and the detector once); None scales
    between 1 and what the cluster holds (GPUs / gpus_per_worker with device cuda, else CPUs /
    cpus_per_worker). cpus_per_worker is also the worker's torch thread count. gpus_per_worker
    defaults to 1 with device cuda. Each actor gets options.batch_size images per call.
    """
    ray = _import_ray()
    if options.batch_size < 1:
        raise ValueError(f"options.batch_size must be >= 1, got {options.batch_size}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None to scale with the cluster), got {workers}")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None and "path" not in schema.names:
        raise ValueError(f"fit_dataset needs a 'path' column of image files; the dataset has {list(schema.names)}; "
                         "build it e.g. with ray.data.from_items([{'path': str(p)} for p in paths])")  # fmt: skip
    cpus, gpus, most = _worker_resources(ray, options, cpus_per_worker, gpus_per_worker)
    if workers is None:
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=most, max_tasks_in_flight_per_actor=1)
    else:
        pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    options = _absolute_options(options)
    return ds.map_batches(
        ImageFitter,
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=pool,
        fn_constructor_kwargs={
            "options": options,
            "roots": [str(Path(r).resolve()) for r in roots or []],
            "num_threads": max(1, int(cpus)),
        },  # fmt: skip
        num_cpus=cpus,
        num_gpus=gpus if gpus > 0 else None,
    )


def fit_paths_ray(
    paths: Iterable[Path],
    options: FitOptions,
    roots: list[Path] | None = None,
    on_image: Callable[[Path, str], None] | None = None,
    address: str | None = None,
    *,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
) -> FolderSummary:
    """`fit_paths` on Ray: the same outputs, skipping and failure reporting; each worker loads its own model.

    Finished images are skipped here, before Ray starts. `address`: the Ray cluster to use
    ("ray://host:10001", "host:6379" or "auto"); None connects to $RAY_ADDRESS or a cluster
    started on this machine with `ray start`, else starts a local one. When Ray is already
    initialised in this process that connection is used and left open; otherwise it is shut down
    at the end. `on_image(path, status)` is called once per image as results arrive ("done",
    "skipped", "failed: ..."); the summary lists images in input order. workers: the number of
    actors (default: as many as the cluster holds, at most one per batch); see `fit_dataset`.
    """
    start = time.perf_counter()
    paths, roots = list(paths), roots or []
    report = on_image or (lambda path, status: None)
    statuses: dict[int, str] = {index: "skipped" for index in range(len(paths))}
    stems, todo = start_run(paths, options, roots, report)
    if not todo:
        return summarize(paths, statuses, time.perf_counter() - start)
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address)
    context = ray.data.DataContext.get_current()
    progress_bars = context.enable_progress_bars
    context.enable_progress_bars = False  # the caller reports progress through on_image
    done: dict[int, str] = {}
    people_skipped: dict[Path, str] = {}
    try:
        if workers is None:
            most = _worker_resources(ray, options, cpus_per_worker, gpus_per_worker)[2]
            workers = min(most, math.ceil(len(todo) / max(1, options.batch_size)))
        out_dir = Path(options.out_dir).resolve()
        rows = [{"index": i, "path": str(paths[i].resolve()), "stem": str(out_dir / stems[i].relative_to(options.out_dir))}
                for i in todo]  # fmt: skip
        results = fit_dataset(ray.data.from_items(rows), options, roots, workers=workers,
                              cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)  # fmt: skip
        try:
            for row in results.iter_rows():
                index, status = int(row["index"]), str(row["status"])
                done[index] = status
                if row.get("people_skipped"):
                    people_skipped[paths[index]] = str(row["people_skipped"])
                report(paths[index], status)
        except ray.exceptions.RayError as exc:  # e.g. a worker could not load the body model
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise RuntimeError(f"Ray workers failed after {len(done)} of {len(todo)} images (finished ones are kept; "
                               f"run again to resume): {lines[-1] if lines else type(exc).__name__}") from exc  # fmt: skip
    finally:
        context.enable_progress_bars = progress_bars
        if started_here:
            ray.shutdown()
    missing = [paths[i] for i in todo if i not in done]
    if missing:  # Ray returns every row or raises; this guards against a silently lost row
        raise RuntimeError(
            f"Ray returned no result for {len(missing)} image(s), e.g. {missing[0]}; run again to resume"
        )
    statuses.update(done)
    return summarize(paths, statuses, time.perf_counter() - start, people_skipped)
