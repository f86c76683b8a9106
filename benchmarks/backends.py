"""Images per second of the local backend (fit_paths) and the Ray backend (fit_paths_ray) on one folder.

The folder: the COCO photos of ../shared/eval/coco/images when present (read in place, never
copied), else --copies copies of examples/data/anny_walk.png in a temporary folder. Both
backends write to their own temporary output folder (deleted afterwards) with the same options.
Wall time includes the setup each backend needs (local: loading the body model; Ray: starting
Ray and, inside the run, every worker loading the model and the detector); "fit s" is the time
spent in fit_paths / fit_paths_ray. Images/s = fitted images / wall time.

    python benchmarks/backends.py [--config fast] [--no-silhouette] [--workers N] [--address ADDR]

Needs Ray (pip install "fitter[ray]"). Without --address a local Ray with --cpus CPUs is started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fitter.io.images import list_images
from fitter.pipeline import FitOptions, FitWorker, FolderSummary, fit_paths

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "data" / "anny_walk.png"
COCO_IMAGES = REPO.parent / "shared" / "eval" / "coco" / "images"


def _images(args: argparse.Namespace, scratch: Path) -> tuple[list[Path], Path, str]:
    """(image paths, the folder they are in, a description)."""
    if COCO_IMAGES.is_dir() and not args.example:
        return list_images([COCO_IMAGES]), COCO_IMAGES, f"COCO photos in {COCO_IMAGES}"
    folder = scratch / "photos"
    folder.mkdir()
    for k in range(args.copies):
        shutil.copy(EXAMPLE, folder / f"copy{k:03d}.png")
    return list_images([folder]), folder, f"{args.copies} copies of {EXAMPLE.name}"


def _options(args: argparse.Namespace, out: Path) -> FitOptions:
    return FitOptions(out_dir=out, config=args.config, silhouette=args.silhouette, device=args.device,
                      batch_size=args.batch_size)  # fmt: skip


def run_local(args: argparse.Namespace, paths: list[Path], root: Path, out: Path) -> tuple[FolderSummary, float, float]:
    """(summary, setup seconds, wall seconds) of fit_paths with the model loaded first."""
    from fitter.body import load_body_model

    if args.local_threads:
        torch.set_num_threads(args.local_threads)
    start = time.perf_counter()
    options = _options(args, out)
    worker = FitWorker(options, model=load_body_model("anny", device=args.device))
    setup = time.perf_counter() - start
    summary = fit_paths(paths, options, roots=[root], worker=worker)
    worker.close()
    return summary, setup, time.perf_counter() - start


def run_ray(args: argparse.Namespace, paths: list[Path], root: Path, out: Path) -> tuple[FolderSummary, float, float]:
    """(summary, setup seconds, wall seconds) of fit_paths_ray, Ray started (or joined) first."""
    import ray

    from fitter.distributed import fit_paths_ray

    start = time.perf_counter()
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    setup = time.perf_counter() - start
    try:
        summary = fit_paths_ray(paths, _options(args, out), roots=[root], workers=args.workers,
                                cpus_per_worker=args.cpus_per_worker)  # fmt: skip
    finally:
        ray.shutdown()
    return summary, setup, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="fast", choices=("fast", "default", "accurate"))
    parser.add_argument("--silhouette", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4, help="people fitted together (both backends)")
    parser.add_argument("--copies", type=int, default=8, help="copies of the example image when COCO is absent")
    parser.add_argument("--example", action="store_true", help="use the example copies even when COCO is present")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    parser.add_argument("--workers", type=int, default=None, help="Ray workers (default: as many as fit)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument(
        "--local-threads", type=int, default=None, help="torch threads of the local backend (default: torch's)"
    )
    parser.add_argument("--backends", default="local,ray")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)  # wide enough when piped to a file
    with tempfile.TemporaryDirectory(prefix="fitter_backends_") as tmp:
        scratch = Path(tmp)
        paths, root, what = _images(args, scratch)
        table = Table(title=f"backends on {what}: config {args.config}, silhouette {args.silhouette}, "
                            f"device {args.device}, batch {args.batch_size}, {os.cpu_count()} CPUs")  # fmt: skip
        for column in ("backend", "workers", "images", "fitted", "failed", "setup s", "fit s", "wall s", "images/s"):
            table.add_column(column, justify="left" if column == "backend" else "right")
        runners = {"local": run_local, "ray": run_ray}
        for name in args.backends.split(","):
            if name not in runners:
                parser.error(f"--backends: unknown backend {name!r}; use local and/or ray")
            with console.status(f"{name}: fitting {len(paths)} images..."):
                summary, setup, wall = runners[name](args, paths, root, scratch / f"out_{name}")
            local_threads = args.local_threads or torch.get_num_threads()
            workers = (
                f"1 x {local_threads} threads"
                if name == "local"
                else f"{args.workers or 'auto'} x {args.cpus_per_worker:g} CPU"
            )
            table.add_row(name, workers, str(len(paths)), str(len(summary.done)), str(len(summary.failed)), f"{setup:.1f}",
                          f"{summary.seconds:.1f}", f"{wall:.1f}", f"{len(summary.done) / wall:.3f}")  # fmt: skip
        console.print(table)


if __name__ == "__main__":
    main()
