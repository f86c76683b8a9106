"""`Start`: where a fit begins, the one thing every initializer returns and the optimizer consumes.

Parameters are in the camera frame (OpenCV: x right, y down, z forward), metres, axis-angle
radians, SMPL layout (`body_pose` = 23 joints x 3). Per person, a start also says how the
optimizer should treat it: hold the pose near the start (`anchored`, for a trusted start such as
the keypoint lifter's), try turned headings (`flip`: the flip test for upright starts seen from
the side) and refit from alternative poses (`restart`: starts that know nothing about the pose).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import BodyModel
from fitter.camera import Camera
from fitter.keypoints import keypoint_skin

__all__ = ["Start", "StartInputs", "FLIP_YAWS_DEG"]

FLIP_YAWS_DEG: tuple[float, ...] = (180.0, 90.0, -90.0)  # headings (about the body's vertical) the flip test adds


@dataclass
class Start:
    """Starting parameters of N people and how to use them (all tensors on one device).

    body_pose (N,69) and global_orient (N,3) axis-angle radians, camera frame; betas (N,B) or
    None (zeros); transl (N,3) metres or None (solved from the 2D keypoints by similar triangles,
    after any flip); anchored (N,) bool: hold the body pose near this start; flip (N,) bool: also
    fit the item turned by each of `flip_yaws` degrees and keep the best; restart (N,) bool: also
    refit from the optimizer's alternative poses and keep the better; source: per person, which
    initializer produced it ("lifter", "upright", "mediapipe", "cliff", ...); diagnostics: (N,)
    arrays an initializer reports (e.g. mediapipe's landmark_error_m), copied into the result's info.
    """

    body_pose: Tensor
    global_orient: Tensor
    betas: Tensor | None = None
    transl: Tensor | None = None
    anchored: Tensor | None = None
    flip: Tensor | None = None
    restart: Tensor | None = None
    flip_yaws: tuple[float, ...] = FLIP_YAWS_DEG
    source: list[str] = field(default_factory=list)
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, dev = self.body_pose.shape[0], self.body_pose.device
        if self.body_pose.shape != (n, 69) or self.global_orient.shape != (n, 3):
            raise ValueError(f"a Start needs body_pose (N,69) and global_orient (N,3), got {tuple(self.body_pose.shape)} "
                             f"and {tuple(self.global_orient.shape)}")  # fmt: skip
        for name in ("anchored", "flip", "restart"):
            if getattr(self, name) is None:
                setattr(self, name, torch.zeros(n, dtype=torch.bool, device=dev))
        if not self.source:
            self.source = ["given"] * n

    def __len__(self) -> int:
        return int(self.body_pose.shape[0])

    @classmethod
    def from_arrays(cls, global_orient, body_pose=None, betas=None, transl=None, source: str = "given",
                    device: str | torch.device = "cpu") -> "Start":  # fmt: skip
        """A start from the caller's own numbers (array-likes, camera frame): global_orient (N,3),
        body_pose (N,69) (None: fitter's mean pose, and restarts allowed), betas (N,<=B), transl (N,3)."""
        from fitter.body.poses import mean_body_pose

        def tensor(x):
            return None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)

        orient = tensor(global_orient).reshape(-1, 3)
        n = orient.shape[0]
        pose = tensor(body_pose)
        restart = torch.full((n,), pose is None, dtype=torch.bool, device=device)
        pose = mean_body_pose().to(device).expand(n, 69).clone() if pose is None else pose.reshape(n, 69)
        betas_t, transl_t = tensor(betas), tensor(transl)
        return cls(body_pose=pose, global_orient=orient, betas=None if betas_t is None else betas_t.reshape(n, -1),
                   transl=None if transl_t is None else transl_t.reshape(n, 3), restart=restart, source=[source] * n)  # fmt: skip

    def to(self, device: str | torch.device) -> "Start":
        move = {k: getattr(self, k).to(device) for k in ("body_pose", "global_orient", "anchored", "flip", "restart")}
        for k in ("betas", "transl"):
            move[k] = None if getattr(self, k) is None else getattr(self, k).to(device)
        return replace(self, **move)

    def index(self, ids: Tensor) -> "Start":
        """The start of items `ids` (M,) long (repeats allowed)."""
        picked = {k: getattr(self, k)[ids] for k in ("body_pose", "global_orient", "anchored", "flip", "restart")}
        for k in ("betas", "transl"):
            picked[k] = None if getattr(self, k) is None else getattr(self, k)[ids]
        host = ids.cpu().numpy()
        return replace(self, **picked, source=[self.source[i] for i in host.tolist()],
                       diagnostics={k: np.asarray(v)[host] for k, v in self.diagnostics.items()})  # fmt: skip


@dataclass
class StartInputs:
    """What initializers may look at, for N people (one device).

    keypoints (N,K,3) px + confidence in `keypoint_set`; weights (N,K) = confidence x the
    keypoint's correspondence quality on `model` (> 0: usable); focal (N,) px; center (N,2)
    principal point px; image_sizes (N,2) (W,H) px; mean_pose (69,) the pose upright starts use
    (the pose prior's mean).
    Image-based initializers also need images (RGB uint8 (H,W,3)), owners[i] = the index into
    `images` of person i, world_landmarks (N,33,3) mediapipe metres or None, masks per person
    ((H,W) bool or None).
    """

    keypoints: Tensor
    keypoint_set: str
    weights: Tensor
    focal: Tensor
    center: Tensor
    image_sizes: Tensor
    model: BodyModel
    mean_pose: Tensor
    images: list[np.ndarray] | None = None
    owners: list[int] | None = None
    world_landmarks: np.ndarray | None = None
    masks: list | None = None

    @classmethod
    def build(cls, keypoints: np.ndarray, keypoint_set: str, camera: Camera, model: BodyModel, mean_pose: Tensor,
              device: str | torch.device = "cpu", **images) -> "StartInputs":  # fmt: skip
        """From keypoints (N,K,3) px + confidence, their camera (fitter.camera.Camera), the model,
        the upright mean pose (69,) and, for image-based initializers, `images` (images, owners,
        world_landmarks, masks)."""
        dt = torch.float32
        kp = torch.as_tensor(np.asarray(keypoints, np.float32), device=device)
        regressor, _ = keypoint_skin(model, keypoint_set)
        return cls(keypoints=kp, keypoint_set=keypoint_set, weights=kp[..., 2] * regressor.quality[None],
                   focal=torch.as_tensor(camera.focal_length, dtype=dt, device=device),
                   center=torch.as_tensor(camera.principal_point, dtype=dt, device=device),
                   image_sizes=torch.as_tensor(camera.image_size, dtype=dt, device=device), model=model,
                   mean_pose=mean_pose.to(device, dt), **images)  # fmt: skip
