"""Helpers shared by CLI commands: one-line errors, the stderr console."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=code)
