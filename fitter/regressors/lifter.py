"""Keypoint lifter: a small MLP from 2D COCO-17 keypoints to a body pose, orientation and shape.

It initialises `fit_keypoints` when nothing better is given. 2D keypoints leave every limb's depth
ambiguous (an elbow in front of or behind the shoulder projects the same) and the torso's heading
is poorly fixed by four points; from a frontal start the optimiser settles in whichever basin is
nearest. A regressor trained on many bodies posed inside the joint limits picks a plausible basin
in one forward pass (Martinez et al. 2017, "A simple yet effective baseline for 3d human pose
estimation", lift 2D joints with an MLP; here the outputs are SMPL rotations, so the optimiser
continues from them).

Inputs, per person: the 17 COCO keypoints as camera rays ((u - c) / f, unitless, x right, y down),
centred on and scaled by their visible box, each with its confidence (0 = missing), plus the box
centre (ray units) and log box size, so perspective and off-centre views are seen (as CLIFF
does with its box information). Outputs: global orientation in the camera frame (x right, y down,
z forward), 23 body-joint rotations (6D, Zhou et al. 2019) and betas.

Trained by `fitter train lifter` (fitter/training/lifter.py) on synthetic bodies of the
free model; the package ships the weights trained from anny (`lifter_coco17_anny.pt`, fp16: 24k
steps at lr 1e-3, then 12k at 3e-4, batch 512, ~60 min on 2 CPU cores). Its betas are in anny's
shape space and are used only with anny; its rotations transfer to SMPL-family models.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from fitter.geometry import rot6d_to_matrix, visible_box
from fitter.keypoints import keypoint_names

__all__ = ["LIFTER_SET", "KeypointLifter", "lifter_features", "default_lifter_path", "load_lifter"]

LIFTER_SET = "coco17"
NUM_POINTS = 17
FEATURE_DIM = NUM_POINTS * 3 + 3


def lifter_features(keypoints: Tensor, focal: Tensor, center: Tensor) -> Tensor:
    """keypoints (B,17,3) COCO-17 pixels + confidence, focal (B,) px, center (B,2) px -> (B,54).

    Per point: ray coordinates relative to the visible box centre, divided by the box's longest
    side (x, y; zero when missing) and the confidence clamped to [0,1]; then the box centre (2,
    ray units) and the log of its size.
    """
    conf = keypoints[..., 2].clamp(0.0, 1.0)
    visible = conf > 0
    rays = (keypoints[..., :2] - center[:, None]) / focal[:, None, None]
    lo, hi = visible_box(rays, visible)
    mid = (lo + hi) / 2
    size = (hi - lo).amax(-1).clamp(min=1e-4)
    rel = ((rays - mid[:, None]) / size[:, None, None]).masked_fill(~visible[..., None], 0.0)
    return torch.cat([rel.flatten(1), conf, mid, size.log()[:, None]], dim=1)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class KeypointLifter(nn.Module):
    """MLP: lifter_features (B,54) -> dict of global_orient (B,3,3), body_pose (B,23,3,3) rotation
    matrices (SMPL joint frames; global_orient maps the body frame, Y up, to the camera frame)
    and betas (B,num_betas)."""

    def __init__(self, width: int = 512, blocks: int = 3, num_betas: int = 10) -> None:
        super().__init__()
        self.config = {"width": width, "blocks": blocks, "num_betas": num_betas}
        self.body_model: str | None = None  # set from the checkpoint: the model it was trained on
        self.train_record: dict | None = None  # set from the checkpoint: how it was trained
        self.inp = nn.Linear(FEATURE_DIM, width)
        self.blocks = nn.Sequential(*[_Block(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 24 * 6 + num_betas)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # start at the identity rotation, betas 0
            self.out.bias.zero_()
            self.out.bias[: 24 * 6].view(24, 6)[:, 0] = 1.0
            self.out.bias[: 24 * 6].view(24, 6)[:, 3] = 1.0

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        y = self.out(self.norm(self.blocks(self.inp(features))))
        rot = rot6d_to_matrix(y[:, : 24 * 6].reshape(-1, 24, 6))
        return {"global_orient": rot[:, 0], "body_pose": rot[:, 1:], "betas": y[:, 24 * 6 :]}


def default_lifter_path() -> Path:
    """The weights shipped with the package (trained on anny by `fitter train lifter`)."""
    return Path(__file__).parent / "data" / "lifter_coco17_anny.pt"


_LOADED: dict[tuple[str, str], KeypointLifter] = {}


def load_lifter(path: str | Path | None = None, device: str | torch.device = "cpu") -> KeypointLifter:
    """Load a lifter checkpoint (default: the shipped one), cached per (path, device)."""
    path = Path(path) if path is not None else default_lifter_path()
    key = (str(path.resolve()), str(device))
    if key not in _LOADED:
        if not path.is_file():
            raise FileNotFoundError(f"keypoint lifter weights not found: {path}; train them with `fitter train lifter`")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("keypoint_names") != keypoint_names(LIFTER_SET):
            raise ValueError(f"{path} is not a {LIFTER_SET} keypoint lifter checkpoint")
        model = KeypointLifter(**ckpt["config"])
        model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
        model.body_model = ckpt.get("body_model")  # whose shape space the predicted betas are in
        model.train_record = ckpt.get("train")
        _LOADED[key] = model.to(device).eval()
    return _LOADED[key]
