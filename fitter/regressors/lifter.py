"""Keypoint lifter: a small MLP from 2D keypoints to a body pose, orientation and shape.

It initialises `fit_keypoints` when nothing better is given. 2D keypoints leave every limb's depth
ambiguous (an elbow in front of or behind the shoulder projects the same) and the torso's heading
is poorly fixed by four points; from a frontal start the optimiser settles in whichever basin is
nearest. A regressor trained on many bodies posed inside the joint limits picks a plausible basin
in one forward pass (Martinez et al. 2017, "A simple yet effective baseline for 3d human pose
estimation", lift 2D joints with an MLP; here the outputs are SMPL rotations, so the optimiser
continues from them).

Inputs, per person: one slot per named point the lifter knows (`KeypointLifter.point_names`:
the first lifter knew the 17 COCO points; the current one the union of COCO-17, OpenPose-25,
BlazePose-33, H36M-17, LSP-14 and SMPL-24, 69 points), filled from whatever keypoint set the
caller has by point name (`lifter_points`; a set's SMPL hip joint goes to the SMPL-hip slot, not
to COCO's hip, which sits lower and wider), as camera rays ((u - c) / f, unitless, x right, y
down) centred on and scaled by their visible box, each with its confidence (0 = missing), plus
the box centre (ray units) and log box size, so perspective and off-centre views are seen (as
CLIFF does with its box information). Outputs: global orientation in the camera frame (x right, y down,
z forward), 23 body-joint rotations (6D, Zhou et al. 2019) and betas.

Trained by `fitter train lifter` (fitter/training/lifter.py) on synthetic bodies of the
free model; the package ships the weights trained from anny (`lifter_coco17_anny.pt`, fp16; the
file's `train` record says how, README "How a fit starts and runs" gives the commands). Its betas
are in anny's shape space and are used only with anny; its rotations transfer to SMPL-family models.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from fitter.geometry import rot6d_to_matrix, visible_box
from fitter.keypoints import KEYPOINT_SETS, canonical_name, keypoint_names

__all__ = [
    "LIFTER_INPUT_SETS",
    "LIFTER_SET",
    "KeypointLifter",
    "default_lifter_path",
    "lifter_features",
    "lifter_points",
    "load_lifter",
    "union_point_names",
    "widen_inputs",
]

LIFTER_SET = "coco17"  # the points of the first lifters (their checkpoints still load)
_COCO17 = keypoint_names(LIFTER_SET)
LIFTER_INPUT_SETS = ("coco17", "openpose25", "coco18", "blazepose33", "h36m17", "lsp14", "smpl24")
"""The keypoint sets the lifter is trained on; its input slots are the union of their point names."""


def union_point_names(sets: tuple[str, ...] | list[str] = LIFTER_INPUT_SETS) -> list[str]:
    """The point names of `sets`, each once, in order of first appearance (COCO-17's first)."""
    out: list[str] = []
    for name in sets:
        out += [n for n in keypoint_names(name) if n not in out]
    return out


@functools.lru_cache(maxsize=64)
def _slot_sources(keypoint_set: str, point_names: tuple[str, ...]) -> tuple[int, ...]:
    """For every lifter slot, the index of the set's point that fills it (-1: none): the point
    of the same name, else a point standing in for it (`canonical_name`, e.g. an SMPL hip joint
    for a lifter that only knows COCO's hips) unless the set has the slot's own point, or already
    feeds the same canonical point through a point with a slot of its own (then the stand-in
    would only repeat it: "coco17+hands42"'s or "smpl24+hands42"'s hand wrists must not fill
    the other wrist slots, an input pattern the lifter never saw)."""
    names = keypoint_names(keypoint_set)
    exact = {n: i for i, n in enumerate(names)}
    alias = {}
    for i, n in enumerate(names):
        if n not in point_names:  # a point without its own slot may stand in for its canonical name
            alias.setdefault(canonical_name(n), i)

    # canonical names the set already feeds through points that have slots of their own
    slotted = {canonical_name(n) for n in names if n in point_names}

    def source(n: str) -> int:
        if n in exact:
            return exact[n]
        if canonical_name(n) in slotted:
            return -1
        return alias.get(canonical_name(n), alias.get(n, -1))

    return tuple(source(n) for n in point_names)


def lifter_points(keypoints: Tensor, keypoint_set: str, point_names: list[str] | tuple[str, ...]) -> Tensor:
    """keypoints (B,K,3) of `keypoint_set` (px or rays + confidence) -> (B,S,3) in the lifter's
    slots `point_names`, by point name (see `_slot_sources`); slots the set cannot fill are zero."""
    src = torch.tensor(_slot_sources(keypoint_set, tuple(point_names)), device=keypoints.device)
    picked = keypoints[:, src.clamp(min=0)]
    return picked * (src >= 0)[None, :, None].to(keypoints.dtype)


def lifter_features(keypoints: Tensor, focal: Tensor, center: Tensor) -> Tensor:
    """keypoints (B,S,3) pixels + confidence in the lifter's slots (`lifter_points`), focal (B,)
    px, center (B,2) px -> (B,3S+3).

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
    """MLP: lifter_features (B,3S+3) -> dict of global_orient (B,3,3), body_pose (B,23,3,3) rotation
    matrices (SMPL joint frames; global_orient maps the body frame, Y up, to the camera frame)
    and betas (B,num_betas). point_names: its S input slots (default COCO-17)."""

    def __init__(self, width: int = 512, blocks: int = 3, num_betas: int = 10,
                 point_names: list[str] | tuple[str, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.config = {"width": width, "blocks": blocks, "num_betas": num_betas}
        self.point_names = list(point_names) if point_names is not None else list(keypoint_names(LIFTER_SET))
        self.body_model: str | None = None  # set from the checkpoint: the model it was trained on
        self.train_record: dict | None = None  # set from the checkpoint: how it was trained
        self.inp = nn.Linear(3 * len(self.point_names) + 3, width)
        self.blocks = nn.Sequential(*[_Block(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 24 * 6 + num_betas)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # start at the identity rotation, betas 0
            self.out.bias.zero_()
            self.out.bias[: 24 * 6].view(24, 6)[:, 0] = 1.0
            self.out.bias[: 24 * 6].view(24, 6)[:, 3] = 1.0

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """features (B,3S+3) of its S slots, or (B,54) of COCO-17 points alone (the first
        lifters' inputs, `lifter_features` of (B,17,3) keypoints), spread into its slots."""
        S = len(self.point_names)
        if features.shape[1] != 3 * S + 3 and features.shape[1] == 3 * 17 + 3 and self.point_names[:17] == _COCO17:
            wide = features.new_zeros(features.shape[0], 3 * S + 3)
            wide[:, :34] = features[:, :34]  # x, y
            wide[:, 2 * S : 2 * S + 17] = features[:, 34:51]  # confidences
            wide[:, 3 * S :] = features[:, 51:]  # box centre and size
            features = wide
        y = self.out(self.norm(self.blocks(self.inp(features))))
        rot = rot6d_to_matrix(y[:, : 24 * 6].reshape(-1, 24, 6))
        return {"global_orient": rot[:, 0], "body_pose": rot[:, 1:], "betas": y[:, 24 * 6 :]}

    def lift(self, keypoints: Tensor, keypoint_set: str, focal: Tensor, center: Tensor) -> dict[str, Tensor]:
        """The outputs for keypoints (B,K,3) px + confidence of any keypoint set."""
        return self(lifter_features(lifter_points(keypoints, keypoint_set, self.point_names), focal, center))


def widen_inputs(lifter: KeypointLifter, point_names: list[str] | tuple[str, ...]) -> KeypointLifter:
    """A copy of `lifter` whose input slots are `point_names`: a slot the lifter had keeps its
    weights; a new slot starts from the weights of the slot it stands in for (`canonical_name`:
    an SMPL hip joint from COCO's hip), else from zero, so the copy first answers as the original
    did for the points they share (for fine-tuning on more keypoint sets)."""
    wide = KeypointLifter(**lifter.config, point_names=point_names)
    wide.load_state_dict({k: v for k, v in lifter.state_dict().items() if not k.startswith("inp.")}, strict=False)
    old, new = lifter.point_names, wide.point_names
    S, T = len(old), len(new)
    w_old, w_new = lifter.inp.weight.detach(), torch.zeros_like(wide.inp.weight)
    for j, name in enumerate(new):
        i = old.index(name) if name in old else (old.index(canonical_name(name)) if canonical_name(name) in old else -1)
        if i >= 0:
            w_new[:, 2 * j : 2 * j + 2] = w_old[:, 2 * i : 2 * i + 2]
            w_new[:, 2 * T + j] = w_old[:, 2 * S + i]
    w_new[:, 3 * T :] = w_old[:, 3 * S :]  # box centre and size
    with torch.no_grad():
        wide.inp.weight.copy_(w_new)
        wide.inp.bias.copy_(lifter.inp.bias)
    wide.body_model, wide.train_record = lifter.body_model, lifter.train_record
    return wide


def default_lifter_path() -> Path:
    """The weights shipped with the package (trained on anny by `fitter train lifter`)."""
    return Path(__file__).parent / "data" / "lifter_coco17_anny.pt"


_LOADED: dict[tuple[str, str], KeypointLifter] = {}
_KNOWN_POINTS = {n for names in KEYPOINT_SETS.values() for n in names}


def load_lifter(path: str | Path | None = None, device: str | torch.device = "cpu") -> KeypointLifter:
    """Load a lifter checkpoint (default: the shipped one), cached per (path, device)."""
    path = Path(path) if path is not None else default_lifter_path()
    key = (str(path.resolve()), str(device))
    if key not in _LOADED:
        if not path.is_file():
            raise FileNotFoundError(f"keypoint lifter weights not found: {path}; train them with `fitter train lifter`")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        names = ckpt.get("keypoint_names")
        if not names or not isinstance(names, list) or not set(names) <= _KNOWN_POINTS:
            raise ValueError(f"{path} is not a keypoint lifter checkpoint (no known keypoint_names)")
        model = KeypointLifter(**ckpt["config"], point_names=names)
        model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
        model.body_model = ckpt.get("body_model")  # whose shape space the predicted betas are in
        model.train_record = ckpt.get("train")
        _LOADED[key] = model.to(device).eval()
    return _LOADED[key]
