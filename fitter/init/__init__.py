"""Initializers: where fitting starts (`fitter fit --init ...`).

    from fitter.init import available_initializers, best_initializer, initialize
    init = initialize("mediapipe", images, keypoints, "blazepose33", image_sizes, focal, model,
                      owners=[0], world_landmarks=detection.world_landmarks[None])
    result = fit_keypoints(keypoints, "blazepose33", image_sizes, focal, body_model=model, init=init)

Names: "none" (the frontal mean-pose start; callers also set FitConfig.lifter=False), "lifter"
(fit_keypoints' keypoint lifter, fitter.regressors.lifter; works from any 2D keypoints), "mediapipe" (IK on mediapipe's 3D world
landmarks; free, always available), "hmr", "cliff" (CLIFF HRNet-W48 if its checkpoint is
found, else ResNet-50), "pare" (official checkpoints in $FITTER_HOME/data/checkpoints) and
"nbf" (fitter's NBF trained with `fitter train nbf`). Every initializer returns the camera-frame
parameters fit_keypoints takes as `init`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitter.body.model import BodyModel
from fitter.init.mediapipe_ik import IKConfig, ik_from_world_landmarks, mediapipe_initialize, solve_translation
from fitter.keypoints.part_split import skeleton_mask, split_mask_by_skeleton
from fitter.init.regressor_init import (
    INITIALIZER_REGRESSORS,
    load_initializer_regressor,
    regressor_for,
    regressor_initialize,
    regressor_inputs,
)
from fitter.refine.eft import EFTConfig

__all__ = [
    "INITIALIZER_NAMES",
    "available_initializers",
    "best_initializer",
    "fit_config_for_init",
    "initialize",
    "IKConfig",
    "ik_from_world_landmarks",
    "mediapipe_initialize",
    "solve_translation",
    "regressor_for",
    "regressor_initialize",
    "regressor_inputs",
    "load_initializer_regressor",
    "split_mask_by_skeleton",
    "skeleton_mask",
]

INITIALIZER_NAMES = ("none", "lifter", "mediapipe", "cliff", "pare", "hmr", "nbf")
# NBF trained on a CPU did not beat the lifter, so it is used only when asked for; on the
# project's real photos the lifter start beat the mediapipe IK start (benchmarks/real.py)
_BEST_ORDER = ("cliff", "pare", "hmr", "lifter")


def available_initializers(search_dirs: list[Path] | None = None) -> list[str]:
    """Initializers usable now: "none", "lifter", "mediapipe", then each regressor whose checkpoint
    `fitter.regressors.find_checkpoint` finds (cliff: hr48 or res50; nbf: a trained nbf*.pt)."""
    found = [name for name in ("cliff", "pare", "hmr", "nbf") if regressor_for(name, search_dirs) is not None]
    return ["none", "lifter", "mediapipe", *found]


def best_initializer(search_dirs: list[Path] | None = None) -> str:
    """The most accurate available initializer: cliff, pare, hmr (official checkpoints found), else
    fitter's keypoint lifter."""
    available = set(available_initializers(search_dirs))
    return next(name for name in _BEST_ORDER if name in available)


def fit_config_for_init(name: str, config):
    """The fit configuration to use with initializer `name`: "none" also turns the keypoint lifter
    off (the upright mean-pose start); every other name keeps `config` (a preset name or FitConfig)."""
    if name.strip().lower() != "none":
        return config
    from fitter.optimize import fit_config

    return fit_config(config, lifter=False)


def initialize(
    name: str,
    images: list[np.ndarray],
    keypoints,
    keypoint_set: str,
    image_sizes,
    focal,
    body_model: BodyModel,
    owners: list[int],
    world_landmarks=None,
    masks: list[np.ndarray | None] | None = None,
    device: str = "cpu",
    refine: str | None = None,
    checkpoint_path: str | Path | None = None,
    eft_config: EFTConfig | None = None,
) -> dict[str, np.ndarray] | None:
    """Initial parameters for N people, or None for "none" and "lifter" (fit_keypoints starts
    those itself: with FitConfig.lifter True the keypoint lifter runs there, batched with the fit).

    images: RGB uint8 (H,W,3) per image; keypoints (N,K,3) px + confidence in `keypoint_set`;
    image_sizes (N,2) (W,H) px; focal (N,) px (principal point = image centre); owners[i] =
    index into `images` of person i; world_landmarks: (N,33,3) mediapipe world landmarks
    (metres) or None (then "mediapipe" runs BlazePose on a crop per person); masks: per person
    (H,W) bool full-image mask or None ("nbf" splits it into parts; without one it draws one from
    the skeleton); refine: "eft" fine-tunes a regressor per person first (regressors only;
    eft_config: a `fitter.refine.EFTConfig`, default the published settings); checkpoint_path:
    a regressor file instead of the one found in $FITTER_HOME/data/checkpoints.
    Returns float32 numpy arrays betas (N,10), body_pose (N,69), global_orient (N,3),
    transl (N,3) (camera frame, metres, axis-angle radians), plus diagnostics (N,) arrays
    (mediapipe: landmark_error_m; eft: eft_error_before_px / eft_error_after_px).
    Missing checkpoint -> FileNotFoundError naming the file, the folder searched and where it
    is published.
    """
    key = name.strip().lower()
    if key not in INITIALIZER_NAMES:
        raise ValueError(f"unknown initializer {name!r}: choose one of {', '.join(INITIALIZER_NAMES)}")
    if refine not in (None, "", "none", "eft"):
        raise ValueError(f"unknown refine {refine!r}: use 'eft' or none")
    if key in ("none", "lifter"):
        return None
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints must be (N, K, 3) px + confidence, got shape {kp.shape}")
    n = kp.shape[0]
    sizes = np.broadcast_to(np.asarray(image_sizes, dtype=np.float32), (n, 2)).copy()
    focal_arr = np.broadcast_to(np.asarray(focal, dtype=np.float32), (n,)).copy()
    if key == "mediapipe":
        if refine == "eft":
            raise ValueError("refine 'eft' fine-tunes a regressor: use it with --init cliff, pare, hmr or nbf, not mediapipe")
        return mediapipe_initialize(kp, keypoint_set, focal_arr, sizes, body_model, world_landmarks=world_landmarks,
                                    images=images, owners=owners, device=device)  # fmt: skip
    if key not in INITIALIZER_REGRESSORS:  # pragma: no cover - INITIALIZER_NAMES and the table agree
        raise ValueError(f"unknown initializer {name!r}")
    return regressor_initialize(key, images, kp, keypoint_set, sizes, focal_arr, body_model, list(owners), masks=masks,
                                device=device, refine=refine, eft_config=eft_config,
                                checkpoint_path=checkpoint_path)  # fmt: skip
