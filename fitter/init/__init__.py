"""Initializers: where a fit starts. Every one returns a `Start`; the optimizer only consumes it.

    from fitter.init import make_initializer, StartInputs
    initializer = make_initializer("cliff", model)      # loads the network once
    start = initializer(inputs)                         # a Start for the N people of `inputs`
    result = fit_keypoints(keypoints, "coco17", image_size, body_model=model, start=start)

Names: "upright" (SMPLify's mean pose standing upright, facing the camera or away, flip test
for side views; "none" is accepted for it), "lifter" (fitter's keypoint lifter, upright where it
sees too few points; the default), "mediapipe" (IK on mediapipe's 3D world landmarks),
"hmr", "cliff" (CLIFF HRNet-W48 if its checkpoint is found, else ResNet-50), "pare" (official
checkpoints in $FITTER_HOME/data/checkpoints) and "nbf" (fitter's NBF, `fitter train nbf`);
"best" = the first regressor whose checkpoint is found, else the lifter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fitter.body.model import BodyModel
from fitter.init.keypoint_starts import lifter_start, upright_start
from fitter.init.mediapipe_ik import IKConfig, ik_from_world_landmarks, mediapipe_start, translation_from_keypoints
from fitter.init.regressor_init import (
    INITIALIZER_REGRESSORS,
    RegressorInitializer,
    load_initializer_regressor,
    regressor_for,
    regressor_inputs,
)
from fitter.init.start import FLIP_YAWS_DEG, Start, StartInputs
from fitter.refine.eft import EFTConfig

__all__ = [
    "INITIALIZER_NAMES",
    "INITIALIZER_REGRESSORS",
    "KEYPOINT_INITIALIZERS",
    "Initializer",
    "Start",
    "StartInputs",
    "FLIP_YAWS_DEG",
    "make_initializer",
    "resolve_initializer_name",
    "available_initializers",
    "best_initializer",
    "upright_start",
    "lifter_start",
    "mediapipe_start",
    "IKConfig",
    "ik_from_world_landmarks",
    "translation_from_keypoints",
    "RegressorInitializer",
    "regressor_for",
    "regressor_inputs",
    "load_initializer_regressor",
]

Initializer = Callable[[StartInputs], Start]

INITIALIZER_NAMES = ("upright", "lifter", "mediapipe", "cliff", "pare", "hmr", "nbf")
KEYPOINT_INITIALIZERS = ("upright", "lifter")  # need nothing but the 2D keypoints
_ALIASES = {"none": "upright"}
# NBF trained on a CPU did not beat the lifter, so it is used only when asked for; on the
# project's real photos the lifter start beat the mediapipe IK start (benchmarks/real.py)
_BEST_ORDER = ("cliff", "pare", "hmr", "lifter")


def available_initializers(search_dirs: list[Path] | None = None) -> list[str]:
    """Initializers usable now: "upright", "lifter", "mediapipe", then each regressor whose checkpoint
    `fitter.regressors.find_checkpoint` finds (cliff: hr48 or res50; nbf: a trained nbf*.pt)."""
    found = [name for name in ("cliff", "pare", "hmr", "nbf") if regressor_for(name, search_dirs) is not None]
    return ["upright", "lifter", "mediapipe", *found]


def best_initializer(search_dirs: list[Path] | None = None) -> str:
    """The most accurate available initializer: cliff, pare, hmr (official checkpoints found), else
    fitter's keypoint lifter."""
    available = set(available_initializers(search_dirs))
    return next(name for name in _BEST_ORDER if name in available)


def resolve_initializer_name(name: str) -> str:
    """A canonical initializer name: "best" resolved (`best_initializer`), "none" -> "upright";
    an unknown name -> ValueError listing the known ones."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key == "best":
        return best_initializer()
    if key not in INITIALIZER_NAMES:
        raise ValueError(f"unknown initializer {name!r}: choose best or one of {', '.join(INITIALIZER_NAMES)}")
    return key


def make_initializer(name: str, body_model: BodyModel | None = None, device: str = "cpu", refine: str | None = None,
                     checkpoint_path: str | Path | None = None, eft_config: EFTConfig | None = None) -> Initializer:  # fmt: skip
    """The initializer `name` (see the module docstring), ready to call on `StartInputs` batches.

    Regressors load their checkpoint here, once (missing file -> FileNotFoundError naming it, the
    folder searched and where it is published); body_model is needed for them. refine="eft"
    fine-tunes a regressor per person first (regressors only: ValueError otherwise).
    """
    key = resolve_initializer_name(name)
    refine = None if refine in (None, "", "none") else refine
    if refine not in (None, "eft"):
        raise ValueError(f"unknown refine {refine!r}: use 'eft' or none")
    if key in INITIALIZER_REGRESSORS:
        if body_model is None:
            raise ValueError(f"the {key} initializer needs the body model")
        return RegressorInitializer(key, body_model, device, refine, eft_config, checkpoint_path)
    if refine is not None:
        raise ValueError(f"refine 'eft' fine-tunes a regressor: use it with --init cliff, pare, hmr or nbf, not {key}")
    return {"upright": upright_start, "lifter": lifter_start, "mediapipe": mediapipe_start}[key]
