"""fitter: fit SMPL-family 3D body models to photos, SMPLify-style (batched, CPU or CUDA).

    import fitter
    model = fitter.load_body_model("anny")
    result = fitter.fit_keypoints(keypoints, "coco17", image_size=(W, H), body_model=model)

Public API (imported lazily so `fitter --help` stays fast): load_body_model, BodyModel,
fit_keypoints, FitConfig, fit_config, FitTargets, Start, FitResult, keypoint_names, KEYPOINT_SETS.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_body_model": "fitter.body",
    "BodyModel": "fitter.body",
    "fit_keypoints": "fitter.fitting",
    "FitConfig": "fitter.fitting",
    "fit_config": "fitter.fitting",
    "FitTargets": "fitter.fitting",
    "Start": "fitter.init",
    "FitResult": "fitter.result",
    "keypoint_names": "fitter.keypoints",
    "KEYPOINT_SETS": "fitter.keypoints",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fitter' has no attribute {name!r}")
