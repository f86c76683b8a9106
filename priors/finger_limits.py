"""Anatomical finger joint limits and the weak curl prior, for models with finger joints
(SMPL-H / SMPL-X / anny-hands; hand pose (B,90) axis-angle, layout of fitter.body.hands).

Angles. Each finger joint's rotation vector u (local, relative to the flat hand) is read in the
joint's frame at rest, `fitter.body.hands.hand_joint_frames` (rows: flexion axis, abduction
axis, bone axis): flexion = u . f (positive curls the finger towards the palm), abduction =
u . a (sideways), twist = u . t (about the bone). These are the axis-angle components in that
frame: exact for a rotation about one of the axes, close (and free of gimbal lock) for the
small side components a finger has. Left and right hands use the same ranges (their frames
are mirrored, flexion positive on both).

Ranges (degrees; flexion, abduction, twist), per joint kind:
    finger MCP (index/middle/ring/pinky 1): flexion -30..90, abduction -20..20, twist -10..10
    finger PIP (2): flexion 0..100, abduction -10..10 (slack), twist -10..10 (slack)
    finger DIP (3): flexion -10..90, abduction -10..10 (slack), twist -10..10 (slack)
    thumb CMC (thumb1): flexion -20..70, abduction -25..25, twist -20..20
    thumb MCP (thumb2): flexion -10..50, abduction -10..10, twist -10..10
    thumb IP (thumb3): flexion -20..80, abduction -10..10 (slack), twist -10..10 (slack)
Sources per range in FINGER_RANGES. The thumb CMC's "flexion" is the model's thumb1 axis, mostly
palmar abduction (opposition; AAOS 70 deg), its "abduction" the perpendicular (AAOS CMC
flexion 15 / extension 20, widened to +-25 as the model's axes mix the two motions).

Penalty: like the body joint limits (priors.joint_limits), the sum over joints and angles of
(max(0, lower - a) + max(0, a - upper))^2, radians^2, per batch item.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = [
    "FINGER_RANGES",
    "FingerRange",
    "finger_limit_angles",
    "finger_limit_bounds",
    "finger_limit_excess",
    "finger_limit_penalty",
    "hand_l2_prior",
    "sample_finger_poses",
]

AAOS_1965_HAND = (
    "AAOS (1965) Joint Motion: Method of Measuring and Recording: finger MCP flexion 90, hyperextension 45; "
    "PIP flexion 100; DIP flexion 90, hyperextension 10; thumb CMC abduction 70, flexion 15, extension 20; "
    "thumb MCP flexion 50; thumb IP flexion 80, hyperextension 20"
)
MCP_HYPEREXTENSION = (
    "AAOS (1965) gives 45 deg of (passive) MCP hyperextension; fitter uses 30, within the 20-45 deg of "
    "active hyperextension commonly reported, since a fit rarely needs the passive extreme"
)
NORKIN_WHITE_MCP_ABDUCTION = (
    "Norkin & White, Measurement of Joint Motion: A Guide to Goniometry: MCP abduction about 20 deg"
)
HINGE_SLACK = (
    "PIP / DIP / IP are hinges (no clinical range off the flexion axis): +-10 deg slack for the model's "
    "axes and skin (not a published value)"
)
MCP_TWIST_SLACK = "passive axial rotation of the MCP, a few degrees: +-10 deg slack (not a published value)"
CMC_TWIST = "thumb CMC axial rotation (pronation) during opposition, about 15-20 deg: +-20 deg"


@dataclass(frozen=True)
class FingerRange:
    """Allowed flexion, abduction and twist of one finger joint kind, degrees, with sources."""

    flexion: tuple[float, float]
    abduction: tuple[float, float]
    twist: tuple[float, float]
    source: str


FINGER_RANGES: dict[str, FingerRange] = {
    "mcp": FingerRange((-30, 90), (-20, 20), (-10, 10),
                       f"{AAOS_1965_HAND}; {MCP_HYPEREXTENSION}; {NORKIN_WHITE_MCP_ABDUCTION}; {MCP_TWIST_SLACK}"),
    "pip": FingerRange((0, 100), (-10, 10), (-10, 10), f"{AAOS_1965_HAND}; {HINGE_SLACK}"),
    "dip": FingerRange((-10, 90), (-10, 10), (-10, 10), f"{AAOS_1965_HAND}; {HINGE_SLACK}"),
    "thumb_cmc": FingerRange((-20, 70), (-25, 25), (-20, 20), f"{AAOS_1965_HAND}; {CMC_TWIST}"),
    "thumb_mcp": FingerRange((-10, 50), (-10, 10), (-10, 10),
                             f"{AAOS_1965_HAND} (10 deg of hyperextension allowed); {HINGE_SLACK}"),
    "thumb_ip": FingerRange((-20, 80), (-10, 10), (-10, 10), f"{AAOS_1965_HAND}; {HINGE_SLACK}"),
}  # fmt: skip
"""Joint kind -> ranges. Hand-pose order per hand (MANO): index, middle, pinky, ring (mcp, pip,
dip each), then thumb (cmc, mcp, ip)."""

_KINDS = [kind for finger in range(4) for kind in ("mcp", "pip", "dip")] + ["thumb_cmc", "thumb_mcp", "thumb_ip"]


@functools.lru_cache(maxsize=None)
def finger_limit_bounds(dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper), each (30,3) radians: rows the hand joints (left 15 then right 15),
    columns (flexion, abduction, twist). Cached per dtype and device (the hand solve asks
    every pass): do not modify them."""
    ranges = [FINGER_RANGES[k] for k in _KINDS] * 2
    lower = [[math.radians(r.flexion[0]), math.radians(r.abduction[0]), math.radians(r.twist[0])] for r in ranges]
    upper = [[math.radians(r.flexion[1]), math.radians(r.abduction[1]), math.radians(r.twist[1])] for r in ranges]
    with torch.inference_mode(False), torch.no_grad():  # usable by later autograd calls too
        return torch.tensor(lower, dtype=dtype, device=device), torch.tensor(upper, dtype=dtype, device=device)


def finger_limit_angles(hand_pose: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """hand_pose (B,90) axis-angle, frames (30,3,3) (`hand_joint_frames`) -> (B,30,3) radians:
    flexion, abduction, twist of every hand joint."""
    # frames @ u per joint, by broadcasting (the hand solve asks every pass; einsum costs 3x)
    return (frames.to(hand_pose) * hand_pose.reshape(-1, 30, 1, 3)).sum(-1)


def finger_limit_excess(hand_pose: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(B,30,3) radians by which each joint's flexion / abduction / twist lies outside its range
    (negative below it, positive above, 0 inside); hand_pose (B,90), frames (30,3,3)."""
    angles = finger_limit_angles(hand_pose, frames)
    lower, upper = finger_limit_bounds(angles.dtype, angles.device)
    return angles - torch.maximum(torch.minimum(angles, upper), lower)


def finger_limit_penalty(hand_pose: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Finger joint-limit prior: hand_pose (B,90) axis-angle -> (B,), radians^2 (zero inside the ranges)."""
    return finger_limit_excess(hand_pose, frames).pow(2).sum((1, 2))


def hand_l2_prior(hand_pose: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Weak curl prior: squared distance (B,) rad^2 of hand_pose (B,90) from the mean hand (1,90) or (90,)."""
    return (hand_pose - mean.reshape(1, 90).to(hand_pose)).pow(2).sum(-1)


def sample_finger_poses(n: int, frames: torch.Tensor, generator: torch.Generator | None = None,
                        scale: float = 1.0, side_scale: float = 1.0) -> torch.Tensor:  # fmt: skip
    """(n,90) axis-angle hand poses with every joint's flexion, abduction and twist drawn
    uniformly inside its range, shrunk towards zero by `scale` (all three angles) and further
    by `side_scale` (abduction and twist: mostly model slack rather than real finger motion)."""
    lower, upper = finger_limit_bounds(torch.float32)
    draw = torch.rand(n, 30, 3, generator=generator)
    shrink = scale * torch.tensor([1.0, side_scale, side_scale])
    angles = shrink * (lower + (upper - lower) * draw)
    return torch.einsum("jab,nja->njb", frames.float(), angles).reshape(n, 90)
