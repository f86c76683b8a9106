"""Entry point of the `fitter` command."""

from __future__ import annotations

import typer

from fitter.cli import models
from fitter.cli.fit import EXAMPLES, fit_command

app = typer.Typer(
    name="fitter",
    help="Fit SMPL-family 3D body models to photos, SMPLify-style.\n\n"
    "Examples:\n\n  fitter fit photo.jpg\n\n  fitter fit photos/ --recursive --out results/\n\n"
    "  fitter models list\n\n  fitter priors fit-gmm amass/*.npz --out gmm.npz",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.command("fit", help=(fit_command.__doc__ or "") + "\n\n" + EXAMPLES)(fit_command)


def _mount_optional() -> None:
    from fitter.cli.mocap import app as mocap_app
    from fitter.cli.train import app as train_app
    from priors.cli import app as priors_app

    app.add_typer(priors_app, name="priors")
    app.add_typer(train_app, name="train")
    app.add_typer(mocap_app, name="mocap")


_mount_optional()

if __name__ == "__main__":
    app()
