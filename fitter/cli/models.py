"""`fitter models ...`: list, build and convert body models (and list regressor checkpoints)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fitter.cli.common import console, fail

app = typer.Typer(
    help="Body models and checkpoints: list what is found, build the free `anny`, convert SMPL files.\n\n"
    "Examples:\n\n  fitter models list\n\n  fitter models build anny --gender female\n\n"
    "  fitter models convert basicModel_neutral_lbs_10_207_0_v1.0.0.pkl SMPL_NEUTRAL.npz",
    no_args_is_help=True,
)


@app.command("list")
def list_models(model_dir: Path = typer.Option(None, help="Extra folder to search for model files.")) -> None:
    """Show every body model and regressor checkpoint found, and where."""
    from fitter.body.anny_model import anny_cache_path
    from fitter.body.files import list_model_files, search_folders

    table = Table(title="Body models")
    table.add_column("model")
    table.add_column("gender")
    table.add_column("status")
    table.add_column("path")
    for gender in ("neutral", "male", "female"):
        path = anny_cache_path(gender)
        table.add_row("anny", gender, "built" if path.exists() else "built on first use", str(path))
    for model_type, gender, path in list_model_files(model_dir):
        table.add_row(model_type, gender, "found", str(path))
    console.print(table)
    console.print("searched for SMPL-family files in: " + ", ".join(str(p) for p in search_folders(model_dir)))
    try:
        from fitter.regressors.checkpoints import list_checkpoints
    except ImportError:  # regressors are optional at import time
        return
    found = list_checkpoints()
    ck = Table(title="Regressor checkpoints")
    ck.add_column("name")
    ck.add_column("path")
    for name, path in found:
        ck.add_row(name, str(path) if path else "not found")
    console.print(ck if found else "no regressor checkpoints found (see README: Regressor checkpoints)")


@app.command("info")
def info(
    name: str = typer.Argument("anny", help="anny, smpl, smplh, smplx, or a model file path."),
    gender: str = typer.Option("neutral", help="neutral, male or female."),
    model_dir: Path = typer.Option(None, help="Extra folder to search for model files."),
) -> None:
    """Load a body model and print its size, source and rest height."""
    from fitter.body import load_body_model

    try:
        with console.status(f"loading {name}..."):
            model = load_body_model(name, gender=gender, model_dir=model_dir)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    out = model()
    height = float(out.vertices[0, :, 1].max() - out.vertices[0, :, 1].min())
    console.print(
        f"{model.name} ({model.gender}): {model.num_vertices} vertices, {model.faces.shape[0]} faces, "
        f"{model.num_full_joints} joints, {model.num_betas} betas, rest height {height:.3f} m; source {model.source}"
    )


@app.command("build")
def build_model(
    name: str = typer.Argument("anny", help="'anny' or 'anny-hands' (SMPL files are downloaded by users)."),
    gender: str = typer.Option("neutral", help="neutral, male or female."),
    rebuild: bool = typer.Option(False, help="Rebuild even if cached."),
) -> None:
    """Build the free default body model `anny` into SMPL format and cache it."""
    if name not in ("anny", "anny-hands"):
        fail(f"only 'anny' and 'anny-hands' can be built, not {name!r}; SMPL-family files are licensed downloads")
    if gender not in ("neutral", "male", "female"):
        fail(f"gender must be neutral, male or female, not {gender!r}")
    if name == "anny-hands":
        from fitter.body.anny_hands import load_or_build_anny_hands as build
    else:
        from fitter.body.anny_model import load_or_build_anny as build

    with console.status(f"building {name} ({gender})...") as status:
        _, path = build(gender, rebuild=rebuild, progress=lambda m: status.update(m))
    console.print(f"{name} ({gender}): {path}")


@app.command("convert")
def convert(src: Path, dst: Path) -> None:
    """Write a clean .npz (no chumpy, dense arrays) from an SMPL-family .pkl/.npz."""
    from fitter.body.files import convert_model_file

    try:
        out = convert_model_file(src, dst)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    console.print(f"wrote {out}")
