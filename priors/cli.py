"""Command line for the priors (mounted by fitter's CLI as `fitter priors ...`).

fitter priors fit-gmm POSES... --components 8 --out gmm.npz [--max-samples N] [--seed 0]
fitter priors limits        # print the joint-limit table with sources
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Pose priors: fit a GMM pose prior, show joint limits.", no_args_is_help=True)
_console = Console(stderr=True)


@app.callback()
def _main() -> None:
    """Pose priors: fit a GMM pose prior, show joint limits."""


def _fail(message: str) -> None:
    _console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=1)


@app.command("fit-gmm")
def fit_gmm_command(
    poses: list[Path] = typer.Argument(..., help="AMASS-style .npz files with a 'poses' array, or folders of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file, .npz or .pkl (gmm_08 layout)."),
    components: int = typer.Option(8, "--components", "-k", help="Number of Gaussian components."),
    max_samples: int | None = typer.Option(None, "--max-samples", help="Random subset of at most N poses."),
    seed: int = typer.Option(0, "--seed", help="Random seed (subsampling and k-means init)."),
    reg_covar: float = typer.Option(1e-4, "--reg-covar", help="Added to covariance diagonals (rad^2)."),
) -> None:
    """Fit a full-covariance GMM pose prior (SMPLify gmm_08 layout) to body poses."""
    from priors.fit_gmm import fit_gmm_file

    try:
        with _console.status("reading poses") as status:
            params = fit_gmm_file(
                poses, out, components=components, max_samples=max_samples, seed=seed,
                reg_covar=reg_covar, progress=lambda message: status.update(message),
            )  # fmt: skip
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    _console.print(
        f"wrote {out}: {params.means.shape[0]} components over {params.means.shape[1]} dims", highlight=False
    )


@app.command("limits")
def limits_command() -> None:
    """Print the joint-limit table (degrees, SMPL joint frames) with the source of every range."""
    from priors.joint_limits import joint_limits_table

    typer.echo(joint_limits_table())
