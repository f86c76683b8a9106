"""`FitResult`: what a fit returns, saves and loads.

Frames and units: the body is in the camera frame (OpenCV: x right, y down, z forward,
metres). `global_orient` (N,3) axis-angle rotates the model frame (Y up, facing +Z) into the
camera frame, `transl` (N,3) metres is added after posing; together with `betas` (N,10) and
`body_pose` (N,69) (23 SMPL joints, axis-angle, radians) these are the smplx argument names,
so `smplx.SMPL(...)(betas=..., body_pose=..., global_orient=..., transl=...)` reproduces the
mesh for an SMPL fit. Pixels: origin at the image's top-left corner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from fitter.body import BodyModel

__all__ = ["FitResult"]

_OPTIONAL = ("hand_pose", "jaw_pose", "expression")  # (N,...) arrays or None (see FitResult)
_ARRAYS = ("betas", "body_pose", "global_orient", "transl", "focal_length", "principal_point",
           "image_size", "joints", "reprojection_error_px", "keypoints", "keypoints_2d_fit")  # fmt: skip


def _jsonable(array) -> list:
    """Nested lists with non-finite numbers as None (JSON has no inf/NaN)."""
    return _none_for_nonfinite(np.asarray(array, dtype=np.float64).tolist())


def _none_for_nonfinite(value):
    if isinstance(value, list):
        return [_none_for_nonfinite(v) for v in value]
    return value if np.isfinite(value) else None


@dataclass
class FitResult:
    """Fitted parameters for N people.

    betas (N,10); body_pose (N,69); global_orient (N,3); transl (N,3) metres, camera frame;
    focal_length (N,) px; principal_point (N,2) px; image_size (N,2) (W,H) px; joints (N,24,3)
    SMPL joints, metres, camera frame; reprojection_error_px (N,) mean pixel distance over the
    used keypoints; keypoints (N,K,3) the input (pixels + confidence) in `keypoint_set`;
    keypoints_2d_fit (N,K,2) the fitted model's reprojection of the same set; status (N,)
    "ok" | "failed: <why>"; losses: term -> (N,) final values; info: body model, prior,
    focal source, config, versions; hand_pose (N,90) axis-angle finger joints (left 15 then right
    15, MANO order, relative to the flat hand: see fitter.body.hands) for models with finger
    joints, else None; saved as smplx's `left_hand_pose` / `right_hand_pose` (N,45) each. jaw_pose
    (N,3) axis-angle (the jaw joint's local rotation, radians) and expression (N,E) coefficients
    for SMPL-X fits that fitted the face, else None; saved under those (smplx's) names.
    """

    betas: np.ndarray
    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    focal_length: np.ndarray
    principal_point: np.ndarray
    image_size: np.ndarray
    joints: np.ndarray
    reprojection_error_px: np.ndarray
    keypoints: np.ndarray
    keypoints_2d_fit: np.ndarray
    keypoint_set: str
    status: list[str]
    losses: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    body_model: BodyModel | None = field(default=None, repr=False, compare=False)
    hand_pose: np.ndarray | None = None
    jaw_pose: np.ndarray | None = None
    expression: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.betas.shape[0])

    def select(self, index) -> "FitResult":
        """The results of the items `index` (int, slice or index array) as a new FitResult."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        kw = {name: getattr(self, name)[idx] for name in _ARRAYS}
        return FitResult(**kw, keypoint_set=self.keypoint_set, status=[self.status[i] for i in idx],
                         losses={k: v[idx] for k, v in self.losses.items()}, info=dict(self.info),
                         extras={k: (v[idx] if np.ndim(v) and len(v) == len(self) else v) for k, v in self.extras.items()},
                         body_model=self.body_model,
                         **{k: (None if getattr(self, k) is None else getattr(self, k)[idx]) for k in _OPTIONAL})  # fmt: skip

    def _model(self):
        if self.body_model is None:
            from fitter.body import load_body_model

            self.body_model = load_body_model(self.info.get("body_model", "anny"),
                                              gender=self.info.get("gender", "neutral"))  # fmt: skip
        return self.body_model

    def pose(self, model: BodyModel | None = None, device: str = "cpu"):
        """The fitted bodies posed by `model` (default: the fit's own), every fitted parameter
        (fingers, jaw, expression included): a BodyOutput, camera frame, metres, on `device`."""
        model = (model if model is not None else self._model()).to(device)
        optional = {k: None if getattr(self, k) is None else torch.as_tensor(getattr(self, k), device=device)
                    for k in _OPTIONAL}  # fmt: skip
        with torch.no_grad():
            return model(*(torch.as_tensor(getattr(self, k), device=device)
                           for k in ("betas", "body_pose", "global_orient", "transl")), **optional)  # fmt: skip

    def vertices(self, device: str = "cpu") -> np.ndarray:
        """(N,V,3) posed mesh vertices in the camera frame, metres."""
        return self.pose(device=device).vertices.cpu().numpy()

    @property
    def faces(self) -> np.ndarray:
        return self._model().faces.cpu().numpy()

    def save(self, path: str | Path) -> Path:
        """Write `path` (.npz, smplx parameter names) and its .json sidecar, atomically; the .npz
        last, so an .npz always has its .json beside it (the pipeline takes the .npz as finished)."""
        from fitter.io.atomic import atomic_save_npz, atomic_write_json

        path = Path(path)
        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAYS}
        arrays.update({f"loss_{k}": np.asarray(v) for k, v in self.losses.items()})
        arrays["status"] = np.array(self.status)
        arrays["keypoint_set"] = np.array(self.keypoint_set)
        arrays["info_json"] = np.array(json.dumps(self.info))
        for key, value in self.extras.items():
            arrays[key] = np.asarray(value)
        smplx_extras = {}
        if self.hand_pose is not None:
            hand_pose = np.asarray(self.hand_pose)
            smplx_extras = {"left_hand_pose": hand_pose[:, :45], "right_hand_pose": hand_pose[:, 45:]}
        for key in ("jaw_pose", "expression"):
            if getattr(self, key) is not None:
                smplx_extras[key] = np.asarray(getattr(self, key))
        arrays.update(smplx_extras)
        summary = {
            "keypoint_set": self.keypoint_set,
            "status": self.status,
            **{
                name: _jsonable(getattr(self, name))
                for name in _ARRAYS
                if name not in ("keypoints", "keypoints_2d_fit")
            },
            **{k: _jsonable(v) for k, v in smplx_extras.items()},
            "losses": {k: _jsonable(v) for k, v in self.losses.items()},
            "info": self.info,
            "frames": "camera frame: x right, y down, z forward, metres; model frame: Y up, facing +Z",
        }
        atomic_write_json(
            path.parent / (path.name[: -len(".npz")] + ".json" if path.name.endswith(".npz") else path.name + ".json"),
            summary,
        )
        atomic_save_npz(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FitResult":
        """Read a result written by `save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            kw = {name: data[name] for name in _ARRAYS}
            losses = {k[5:]: data[k] for k in data.files if k.startswith("loss_")}
            face = {k: (data[k] if k in data.files else None) for k in ("jaw_pose", "expression")}
            known = (
                set(_ARRAYS) | set(face) | {"status", "keypoint_set", "info_json", "left_hand_pose", "right_hand_pose"}
            )
            extras = {k: data[k] for k in data.files if k not in known and not k.startswith("loss_")}
            hand_pose = None
            if "left_hand_pose" in data.files and "right_hand_pose" in data.files:
                hand_pose = np.concatenate([data["left_hand_pose"], data["right_hand_pose"]], axis=1)
            return cls(**kw, keypoint_set=str(data["keypoint_set"]), status=[str(s) for s in data["status"]],
                       losses=losses, info=json.loads(str(data["info_json"])), extras=extras,
                       hand_pose=hand_pose, **face)  # fmt: skip
