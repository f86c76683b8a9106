"""Helpers shared by CLI commands: one-line errors, the stderr console, quiet third-party output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on one line to stderr and exit with `code`."""
    console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code=code)


def require_device(device: str) -> None:
    """Exit with a one-line error when `device` is a CUDA device and torch sees none."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            fail(f"--device {device}: torch sees no CUDA device; use --device cpu")


def say(message: str) -> None:
    """Print a plain line (paths and messages may hold [brackets]: no rich markup) to stderr."""
    console.print(message, highlight=False, markup=False, soft_wrap=True)


@contextlib.contextmanager
def quiet_third_party(enabled: bool = True) -> Iterator[None]:
    """Keep the libraries' own output off the console while the block runs (`--verbose`: enabled=False).

    mediapipe / TensorFlow Lite (absl, glog) write their log lines straight to file descriptor 2,
    and warp prints a banner to stdout when it builds a kernel: fd 2 and stdout go to /dev/null,
    while fitter's console and Python's tracebacks keep the real stderr. Restored on exit.
    """
    try:
        sys.stderr.fileno()
        real = enabled
    except (AttributeError, OSError, ValueError):  # stderr captured in-process (tests): nothing to redirect
        real = False
    if not real:
        yield
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    old_stdout, old_stderr = sys.stdout, sys.stderr
    sys.stderr.flush()
    saved_fd = os.dup(2)
    real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = real_stderr  # the console writes to sys.stderr
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        yield
    finally:
        sys.stdout.close()
        real_stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        real_stderr.close()
        sys.stdout, sys.stderr = old_stdout, old_stderr
