"""Where fitter keeps its caches and looks for user data.

Everything fitter writes for itself (the built default body model, anny's and warp's caches)
goes under one folder: $FITTER_HOME, or ~/.cache/fitter when unset. User-supplied licensed
files (SMPL models, gmm_08.pkl, regressor checkpoints) are looked up under
$FITTER_HOME/data (and the other places each loader documents).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fitter_home", "cache_dir", "data_dir", "configure_third_party_caches"]


def fitter_home() -> Path:
    """The root folder for fitter's caches: $FITTER_HOME or ~/.cache/fitter."""
    env = os.environ.get("FITTER_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fitter"


def cache_dir(*parts: str) -> Path:
    """A sub-folder of fitter_home(), created on demand."""
    path = fitter_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Folder for user-supplied licensed files (models/, checkpoints/, priors/): $FITTER_HOME/data."""
    return fitter_home() / "data"


def configure_third_party_caches() -> None:
    """Point anny's and warp's caches under fitter_home() unless the user set them already.

    Must run before `anny` / `warp` are imported; fitter calls it before those imports.
    """
    os.environ.setdefault("ANNY_CACHE_DIR", str(fitter_home() / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(fitter_home() / "warp"))
