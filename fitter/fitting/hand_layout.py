"""The layout of a hand solve (`fitter.fitting.hand_solve`): which joints it moves and which
keypoints each of them turns.

A solve's values x (B,NUM) are axis-angle radians: hand_pose's 90 (the 30 finger joints,
left hand first), then changes to the 24 body_pose values of ARM_JOINTS (the collars,
shoulders, elbows and wrists, which place the hands). `solve_joints` gives the full-model
joint of each of x's 38 joint rows. The left and right sides share no value and no keypoint:
each side has SIDE_JOINTS joints (its 15 finger joints, then its arm joints) and SIDE values
(`side_columns`), and turns only its own keypoints (24 of 59 with coco17+hands42; `Turns`,
kept per keypoint skin by `turns_of`).
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from fitter.fitting.problem import Problem

__all__ = [
    "ARM_JOINTS",
    "LEFT_ARM",
    "COLLARS",
    "ARM",
    "NUM",
    "SIDE_JOINTS",
    "SIDE",
    "solve_joints",
    "side_columns",
    "Turns",
    "turns_of",
]

ARM_JOINTS = (13, 14, 16, 17, 18, 19, 20, 21)  # SMPL collars, shoulders, elbows, wrists
LEFT_ARM = (13, 16, 18, 20)
COLLARS = (13, 14)  # everything a solve moves hangs below them
ARM = torch.tensor([3 * (j - 1) + c for j in ARM_JOINTS for c in range(3)])  # their body_pose values
NUM = 90 + len(ARM)  # hand-pose values + arm values
SIDE_JOINTS = 15 + len(LEFT_ARM)  # joints of one side: its 15 finger joints, then its arm joints
SIDE = 3 * SIDE_JOINTS  # values of one side


def _descendants(model, joints: Tensor) -> Tensor:
    """(len(joints), J) 1.0 where a full-model joint is one of `joints` or hangs below it."""
    parents = model.parents.tolist()
    below = torch.zeros(len(parents), len(parents), dtype=model.v_template.dtype)
    for j in range(len(parents)):
        k = j
        while k >= 0:  # every ancestor of j (and j itself) has j below it
            below[k, j] = 1.0
            k = parents[k]
    return below[joints.cpu()].to(model.v_template.device)


def solve_joints(model) -> Tensor:
    """(38,) the full-model joints of x's values in order: the 30 finger joints, then ARM_JOINTS."""
    return torch.cat([model.hand_joint_ids, model.body_to_full[list(ARM_JOINTS)]])


def side_columns(dtype: torch.dtype, device) -> Tensor:
    """(2,NUM) 1 on the values of the left / right hand and arm."""
    cols = torch.zeros(2, NUM, dtype=dtype, device=device)
    cols[0, :45], cols[1, 45:90] = 1.0, 1.0
    for i, joint in enumerate(ARM_JOINTS):
        cols[0 if joint in LEFT_ARM else 1, 90 + 3 * i : 93 + 3 * i] = 1.0
    return cols


def _joint_sides() -> tuple[list[int], list[int]]:
    """Per joint row of x (38): its side (0 left, 1 right) and its place among the side's
    SIDE_JOINTS (its 15 finger joints, then its arm joints in ARM_JOINTS order), which is the
    order of the side's values in x."""
    side = [0] * 15 + [1] * 15 + [0 if j in LEFT_ARM else 1 for j in ARM_JOINTS]
    arms = [[j for j in ARM_JOINTS if (j in LEFT_ARM) == (s == 0)] for s in (0, 1)]
    place = list(range(15)) * 2 + [15 + arms[side[30 + i]].index(j) for i, j in enumerate(ARM_JOINTS)]
    return side, place


@dataclass
class Turns:
    """Which keypoints each of x's joints turns: pairs (M,) of (joint row j into solve_joints,
    keypoint k) with anything below j in k, and blend (M,P) (sparse) the skin pairs of k below j.
    side_points (2,R): the keypoints each side's joints turn (padded with K: no keypoint,
    residual 0); slot (M,): each pair's row in a (2,R,SIDE_JOINTS) stack of (side, keypoint
    of side_points, joint of the side)."""

    joint: Tensor
    point: Tensor
    blend: Tensor
    side_points: Tensor
    slot: Tensor

    @classmethod
    def of(cls, problem: Problem) -> "Turns":
        model, skin = problem.model, problem.skin
        below = _descendants(model, solve_joints(model))[:, skin.pair_joint]  # (38,P)
        blends = skin.gather[None] * below[:, None]  # (38,K,P)
        joint, point = torch.nonzero(blends.abs().sum(-1) > 0, as_tuple=True)
        side, place = _joint_sides()
        pairs = list(zip(joint.tolist(), point.tolist()))
        lists = [sorted({k for j, k in pairs if side[j] == s}) for s in (0, 1)]
        rows = max(len(p) for p in lists)
        num_points, dev = skin.gather.shape[0], joint.device
        side_points = torch.tensor([p + [num_points] * (rows - len(p)) for p in lists], device=dev)
        slot = [(side[j] * rows + lists[side[j]].index(k)) * SIDE_JOINTS + place[j] for j, k in pairs]
        with warnings.catch_warnings():  # "sparse CSR support is in beta": plain products here
            warnings.simplefilter("ignore", UserWarning)
            blend = blends[joint, point].to_sparse_csr()  # ~2 % filled: 5x faster products at batch 32
        return cls(joint, point, blend, side_points, torch.tensor(slot, device=dev))


_TURNS: dict[int, tuple[weakref.ref, Turns]] = {}  # id(skin) -> (weak reference to the skin, its Turns)


def turns_of(problem: Problem) -> Turns:
    """`Turns.of(problem)`, kept while its keypoint skin lives (fitter.keypoints caches the skins)."""
    skin, key = problem.skin, id(problem.skin)
    hit = _TURNS.get(key)
    if hit is None or hit[0]() is not skin:
        hit = (weakref.ref(skin, lambda _, key=key: _TURNS.pop(key, None)), Turns.of(problem))
        _TURNS[key] = hit
    return hit[1]
