"""Read the original SMPL-family / SMPLify pickles without chumpy.

The official .pkl files (SMPL, SMPL-H from MANO, SMPLify's gmm_08.pkl) pickle `chumpy`
arrays and `scipy.sparse.csc` matrices; chumpy does not install on modern Python. The
unpickler below substitutes a stub for every chumpy class that keeps the pickled state, and
`to_numpy` turns such stubs (their array is in the state's `x`) and sparse matrices into
plain numpy arrays. No code from chumpy is needed or run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_pickle", "to_numpy", "ChumpyStub"]


class ChumpyStub:
    """Stands in for any chumpy class; `__setstate__` keeps the state dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"x": state}

    def to_numpy(self) -> np.ndarray:
        if "x" in self.state:
            return np.asarray(self.state["x"])
        # Derived chumpy expressions (rare in model files): fall back to any array held.
        for value in self.state.values():
            if isinstance(value, np.ndarray):
                return value
        raise ValueError("a chumpy object in this pickle holds no array ('x' missing)")


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if module.startswith("chumpy"):
            return ChumpyStub
        if module.startswith("scipy.sparse"):
            # Old pickles name private modules such as scipy.sparse.csc; the classes live here.
            import scipy.sparse

            return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def to_numpy(value: Any) -> Any:
    """chumpy stubs and scipy sparse matrices -> dense numpy arrays; other values unchanged."""
    if isinstance(value, ChumpyStub):
        return value.to_numpy()
    if hasattr(value, "toarray") and "scipy.sparse" in type(value).__module__:
        return value.toarray()
    return value


def load_pickle(path: str | Path, convert: bool = True) -> Any:
    """Load a (possibly chumpy-containing, Python 2) pickle; dict values converted with `to_numpy`."""
    with open(path, "rb") as handle:
        data = _ChumpyFreeUnpickler(handle, encoding="latin1").load()
    if convert and isinstance(data, dict):
        data = {key: to_numpy(val) for key, val in data.items()}
    return data
