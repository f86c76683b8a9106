"""Shared fixtures. The built `anny` model is cached under $FITTER_HOME (default
~/.cache/fitter), so only the first test session pays its ~1-3 min build."""

from __future__ import annotations

from pathlib import Path

import pytest

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"


def pytest_configure(config) -> None:
    """One torch thread for the whole session: fits are many small ops, and on a shared 2-core
    machine two threads fight and run several times slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def anny_model():
    from fitter.body import load_body_model

    return load_body_model("anny")


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"evaluation photos not present at {EVAL_DIR} (only in the project's workspace)")
    return EVAL_DIR
