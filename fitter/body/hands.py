"""Finger joints of SMPL-H-layout models (SMPL-H, SMPL-X, the free `anny-hands`): names, order,
and simple hand poses (flexion axes, a fist) for tests and views.

Hand pose layout (`BodyModel.forward(hand_pose=...)`): (B,90) axis-angle or (B,30,3,3), the 15
left-hand joints then the 15 right-hand joints, each hand in MANO order (index1-3, middle1-3,
pinky1-3, ring1-3, thumb1-3, as smplx's JOINT_NAMES), rotations local to each joint and
relative to the flat hand (smplx's `flat_hand_mean=True`). At rest every joint frame of our
models is aligned with the model frame (Y up, facing +Z), so an axis in the model frame is also
the local axis at rest.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "FINGERS",
    "HAND_JOINT_NAMES",
    "RELAXED_CURL",
    "flexion_axes",
    "curl_hand_pose",
    "finger_joint_ids",
    "hand_joint_frames",
    "relaxed_hand_pose",
]

FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO / smplx order
HAND_JOINT_NAMES = [f"{side}_{finger}{k}" for side in ("left", "right") for finger in FINGERS for k in (1, 2, 3)]


RELAXED_CURL = 0.25  # radians of flexion per joint of the relaxed hand (the hand prior's mean)

# Thumb flexion axes as blends of "palmward" (thumb direction x palm normal: bends the thumb out
# of the palm plane, to the palm side) and "across" (the palm normal: sweeps it within the palm
# plane towards the little finger), per thumb joint (CMC, MCP, IP). The CMC mostly lifts the
# thumb in front of the palm (palmar abduction / opposition) while turning it across; the MCP
# and IP flex in a plane about 90 deg from the fingers' (the thumb nail faces sideways), i.e.
# across the palm. With these, a fist (`curl_hand_pose`) lays the thumb tip on the middle
# phalanges of the index / middle fingers (2-4 cm from them; 7 cm with the previous axes, whose
# MCP / IP bent the thumb straight down, away from the fingers).
THUMB_PALMWARD = (1.5, 0.0, 0.0)
THUMB_ACROSS = (0.5, 1.0, 1.0)


def finger_joint_ids(model, side: str, finger: str) -> list[int]:
    """Full-model joint indices (3,) of `finger` ("index", ..., "thumb") on `side` ("left"/"right")."""
    base = int(model.hand_joint_ids[0 if side == "left" else 15])
    first = base + 3 * FINGERS.index(finger)
    return [first, first + 1, first + 2]


def _rest_joints(model) -> Tensor:
    return model.J_regressor @ model.v_template  # (J,3) full-model rest joints


_AXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(what, dtype, device): tensor}


def _per_model(model, what: str, build: Callable[[object], Tensor]) -> Tensor:
    """build(model), kept per model, dtype and device (a fit asks several times, and the
    Python loops over the 30 joints cost milliseconds); a copy."""
    cache = _AXES.setdefault(model, {})
    key = (what, model.v_template.dtype, model.v_template.device)
    if key not in cache:
        with torch.inference_mode(False), torch.no_grad():
            cache[key] = build(model)
    return cache[key].clone()


def flexion_axes(model) -> Tensor:
    """(30,3) unit flexion axis of every hand joint (hand-pose order), in the model frame at
    rest: a positive rotation about it curls the finger towards the palm.

    Fingers: axis = finger direction x palm normal (the palm normal points out of the palm,
    from the wrist and the index / pinky knuckles). Thumb: its base (thumb1) lifts it palmward
    and a little across the palm, thumb2 / thumb3 flex across the palm (THUMB_PALMWARD /
    THUMB_ACROSS). Kept per model (its rest pose fixes them).
    """
    return _per_model(model, "flexion", _flexion_axes)


def _flexion_axes(model) -> Tensor:
    J = _rest_joints(model)
    axes = []
    for side in ("left", "right"):
        wrist = J[20 if side == "left" else 21]
        index1 = J[finger_joint_ids(model, side, "index")[0]]
        pinky1 = J[finger_joint_ids(model, side, "pinky")[0]]
        normal = torch.linalg.cross(index1 - wrist, pinky1 - wrist)
        normal = normal / normal.norm() * (-1.0 if side == "left" else 1.0)  # out of the palm
        middle = finger_joint_ids(model, side, "middle")
        finger_axis = torch.linalg.cross(J[middle[1]] - J[middle[0]], normal)
        finger_axis = finger_axis / finger_axis.norm()
        for finger in FINGERS:
            ids = finger_joint_ids(model, side, finger)
            for k, j in enumerate(ids):
                child = J[ids[k + 1]] if k < 2 else 2 * J[j] - J[ids[k - 1]]
                direction = (child - J[j]) / (child - J[j]).norm()
                if finger == "thumb":
                    axis = torch.linalg.cross(direction, normal)
                    axis = axis / axis.norm()
                    across = (-1.0 if side == "left" else 1.0) * normal
                    axis = THUMB_PALMWARD[k] * axis + THUMB_ACROSS[k] * across
                else:
                    axis = torch.linalg.cross(direction, normal)
                axes.append(axis / axis.norm())
    return torch.stack(axes)


def curl_hand_pose(model, angle: float = 1.05, joints: list[int] | None = None) -> Tensor:
    """(1,90) hand pose that flexes the hand joints `joints` (indices 0..29 into the hand pose;
    None: all) by `angle` radians about their flexion axes (all of them: a fist)."""
    axes = flexion_axes(model)
    mask = torch.zeros(30, 1)
    mask[list(range(30)) if joints is None else joints] = 1.0
    return (axes * angle * mask).reshape(1, 90)


def hand_joint_frames(model) -> Tensor:
    """(30,3,3) per hand joint (hand-pose order) the rows (flexion axis, abduction axis, bone
    axis), an orthonormal right-handed frame in the model frame at rest (= the joint's local
    frame at rest). bone: from the joint to its child (tips: along the last bone); flexion:
    `flexion_axes` made perpendicular to the bone; abduction = bone x flexion (for a finger the
    palm normal, sideways motion of the finger). A rotation vector's components in this frame
    (`frames @ u`) are the joint's flexion, abduction and twist angles. Kept per model."""
    return _per_model(model, "frames", _hand_joint_frames)


def _hand_joint_frames(model) -> Tensor:
    J = _rest_joints(model)
    flex = flexion_axes(model)
    rows = []
    for side in ("left", "right"):
        for finger in FINGERS:
            ids = finger_joint_ids(model, side, finger)
            for k, j in enumerate(ids):
                child = J[ids[k + 1]] if k < 2 else 2 * J[j] - J[ids[k - 1]]
                bone = (child - J[j]) / (child - J[j]).norm()
                f = flex[len(rows)]
                f = f - (f @ bone) * bone
                f = f / f.norm()
                rows.append(torch.stack([f, torch.linalg.cross(bone, f), bone]))
    return torch.stack(rows)


def relaxed_hand_pose(model) -> Tensor:
    """(1,90) the relaxed, slightly curled hand: every joint flexed by RELAXED_CURL radians."""
    return curl_hand_pose(model, RELAXED_CURL)
