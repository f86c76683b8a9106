"""Left/right mirroring of SMPL-layout poses.

A reflection x -> -x of the body frame (Y up, facing +Z, left = +X) maps a rotation
R to M R M (M = diag(-1, 1, 1)), i.e. a rotation vector (a_x, a_y, a_z) to (a_x, -a_y, -a_z);
the mirrored body's joint i takes the mirrored rotation of joint i's partner on the other side
(left_hip <-> right_hip, ...; pelvis, spine, neck and head are their own partners). On a
left/right symmetric body (anny, SMPL) the mirrored pose puts every joint at the mirror image
(x -> -x) of its partner's position. The same rule is stated per joint in `priors.joint_limits`.
"""

from __future__ import annotations

import numpy as np
import torch

from fitter.body.model import SMPL_JOINT_NAMES

__all__ = ["SMPL_MIRROR_JOINTS", "mirror_body_pose"]


def _partner(name: str) -> str:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


SMPL_MIRROR_JOINTS: list[int] = [SMPL_JOINT_NAMES.index(_partner(name)) for name in SMPL_JOINT_NAMES]
"""For each of SMPL's 24 joints, the index of its left/right partner (itself on the midline)."""

_SIGNS = (1.0, -1.0, -1.0)


def mirror_body_pose(pose):
    """Mirror poses left/right: (..., 69) body pose (joints 1..23) or (..., 72) full pose
    (global orientation + body pose), axis-angle, numpy array or torch tensor; returns the same
    type and shape. Partners swap and each rotation vector becomes (a_x, -a_y, -a_z); applied
    twice it gives the input back. (A full pose's translation, if any, mirrors as x -> -x.)"""
    width = pose.shape[-1]
    if width not in (69, 72):
        raise ValueError(
            f"mirror_body_pose: expected (..., 69) body pose or (..., 72) full pose, got shape {tuple(pose.shape)}"
        )
    first = 1 if width == 69 else 0
    order = [j - first for j in SMPL_MIRROR_JOINTS[first:]]
    joints = pose.reshape(*pose.shape[:-1], width // 3, 3)
    if torch.is_tensor(pose):
        signs = torch.tensor(_SIGNS, dtype=pose.dtype, device=pose.device)
    else:
        signs = np.asarray(_SIGNS, dtype=np.asarray(pose).dtype)
    return (joints[..., order, :] * signs).reshape(pose.shape)
