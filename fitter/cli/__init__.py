"""The `fitter` command line (typer)."""
