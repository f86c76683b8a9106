"""`fitter mocap ...`: import motion capture as SMPL-layout body poses.

fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz
fitter mocap fit-gmm cmu_poses.npz --out gmm_cmu_08.npz     # the shipped prior's recipe
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from fitter.cli.common import console, fail

app = typer.Typer(
    help="Motion capture: convert CMU mocap to SMPL-layout body poses (AMASS-style npz).\n\n"
    "Examples:\n\n  fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz\n\n"
    "  fitter mocap fit-gmm cmu_poses.npz --out gmm_cmu_08.npz",
    no_args_is_help=True,
)


@app.callback()
def _main() -> None:
    """Motion capture: convert CMU mocap to SMPL-layout body poses."""


@app.command("import")
def import_command(
    folder: Path = typer.Argument(..., help="The CMU folder (with cmu_mb31_10fps.npz, cmu_daz43_10fps.npz)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output .npz (poses (F,72), subject, motion, frame, source, split, ...)."
    ),
    body_model: str = typer.Option("anny", "--body-model", help="Body model to retarget to (name or file)."),
    step: int = typer.Option(1, "--step", min=1, help="Keep every N-th frame (the files are at 10 fps)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most N frames per source file (evenly spaced)."),
    calibration_frames: int = typer.Option(
        256, "--calibration-frames", min=1, help="Frames per file used to fit the body's shape to the skeleton."
    ),
    calibration_iterations: int = typer.Option(
        400, "--calibration-iterations", min=1, help="L-BFGS steps of the calibration."
    ),
    iterations: int = typer.Option(80, "--iterations", min=1, help="L-BFGS steps of the inverse kinematics per batch."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="Frames solved together."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
    hinges: bool = typer.Option(
        False,
        "--hinges/--no-hinges",
        help="Bend elbows and knees as hinges (the shoulder / hip takes the twist IK left in them); "
        "the shipped prior and lifter were made without.",
    ),
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
                progress=lambda message: status.update(message), hinges=hinges,
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
    table.add_row(
        "all", str(len(err)), "", f"{err.mean():.1f}", f"{np.median(err):.1f}", f"{np.percentile(err, 95):.1f}", "", ""
    )
    console.print(table)
    counts = ", ".join(f"{name} {count}" for name, count in result.split_counts().items())
    console.print(f"split: {counts} (held-out subjects: 13, 14)", highlight=False)


@app.command("fit-gmm")
def fit_gmm_command(
    poses: Path = typer.Argument(..., help="npz written by `fitter mocap import`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz (gmm_08 layout)."),
    components: int = typer.Option(8, "--components", "-k", min=1, help="Number of Gaussian components."),
    mirror: bool = typer.Option(True, "--mirror/--no-mirror", help="Add every pose's left/right mirror image."),
    no_data_std_deg: float = typer.Option(
        10.0,
        "--no-data-std-deg",
        help="Std (deg) given to the collar and hand dimensions, which the mocap never moves (<= 0: keep the fitted ones).",
    ),
    seed: int = typer.Option(0, "--seed", help="k-means seed."),
) -> None:
    """Fit a GMM pose prior on the TRAIN split of imported mocap (how priors/data/gmm_cmu_08.npz
    is made) and print the mean NLL of train, held-out and random joint-limit poses."""
    from priors.gmm import MaxMixturePrior, save_gmm
    from priors.shipped import fit_mocap_gmm, load_mocap_poses, nll_table

    try:
        body = load_mocap_poses(poses, "train")
        with console.status(f"fitting {components} components to {len(body)} train poses"):
            params = fit_mocap_gmm(body, components=components, mirror=mirror, seed=seed,
                                   no_data_std_deg=no_data_std_deg if no_data_std_deg > 0 else None)  # fmt: skip
        save_gmm(out, *params)
        table = nll_table(MaxMixturePrior.from_file(out), poses)
    except (FileNotFoundError, ValueError, OSError, KeyError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    console.print(
        f"wrote {out}: {components} components from {len(body)} train poses" + (" + mirror images" if mirror else ""),
        highlight=False,
    )
    for name, value in table.items():
        console.print(f"mean NLL {name:>22}: {value:10.1f}", highlight=False)
