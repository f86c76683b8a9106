"""`fitter mocap ...`: import motion capture as SMPL-layout body poses.

    fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from fitter.cli.common import console, fail

app = typer.Typer(
    help="Motion capture: convert CMU mocap to SMPL-layout body poses (AMASS-style npz).\n\n"
    "Example:\n\n  fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz",
    no_args_is_help=True,
)


@app.callback()
def _main() -> None:
    """Motion capture: convert CMU mocap to SMPL-layout body poses."""


@app.command("import")
def import_command(
    folder: Path = typer.Argument(..., help="The CMU folder (with cmu_mb31_10fps.npz, cmu_daz43_10fps.npz)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz (poses (F,72), subject, motion, frame, source, split, ...)."),
    body_model: str = typer.Option("anny", "--body-model", help="Body model to retarget to (name or file)."),
    step: int = typer.Option(1, "--step", min=1, help="Keep every N-th frame (the files are at 10 fps)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N frames per source file (evenly spaced)."),
    calibration_frames: int = typer.Option(256, "--calibration-frames", min=1, help="Frames per file used to fit the body's shape to the skeleton."),
    calibration_iterations: int = typer.Option(400, "--calibration-iterations", min=1, help="L-BFGS steps of the calibration."),
    iterations: int = typer.Option(80, "--iterations", min=1, help="L-BFGS steps of the inverse kinematics per batch."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="Frames solved together."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
) -> None:
    """Convert both CMU files to SMPL-layout body poses of the body model (default: the free anny)."""
    import torch

    from fitter.body import load_body_model
    from fitter.mocap.importer import import_cmu, save_poses

    torch.set_num_threads(threads)
    if out.suffix.lower() != ".npz":
        fail(f"--out {out}: use a .npz file name")
    try:
        model = load_body_model(body_model)
        with console.status("importing") as status:
            result = import_cmu(
                folder, model=model, step=step, limit=limit, calibration_frames=calibration_frames,
                calibration_iterations=calibration_iterations, iterations=iterations, batch_size=batch_size,
                progress=lambda message: status.update(message),
            )  # fmt: skip
        save_poses(out, result)
    except (FileNotFoundError, ValueError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    table = Table(title=f"wrote {out}")
    for column in ("source", "frames", "dropped (dupl.)", "error mm mean", "median", "p95", "rest max deg", "seconds"):
        table.add_column(column)
    all_errors = []
    for report in result.sources:
        err = report.error_mm
        all_errors.append(err)
        table.add_row(
            report.file.removesuffix("_10fps.npz"), str(report.frames_out), str(report.duplicates_dropped), f"{err.mean():.1f}",
            f"{np.median(err):.1f}", f"{np.percentile(err, 95):.1f}", f"{report.rest_angles_deg.max():.0f}",
            f"{report.seconds:.0f}",
        )  # fmt: skip
    err = np.concatenate(all_errors)
    table.add_row("all", str(len(err)), "", f"{err.mean():.1f}", f"{np.median(err):.1f}", f"{np.percentile(err, 95):.1f}", "", "")
    console.print(table)
    counts = ", ".join(f"{name} {count}" for name, count in result.split_counts().items())
    console.print(f"split: {counts} (held-out subjects: 13, 14)", highlight=False)
