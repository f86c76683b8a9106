"""Named keypoint sets and how each body model produces them.

A keypoint set is an ordered list of point names (`KEYPOINT_SETS`). Names are shared across
sets ("left_shoulder" means the same anatomical point in COCO-17, BODY_25 and BlazePose-33), so
converting between sets is a lookup by name (`convert_keypoints`).

Detector points are not all body-model joints. Each body model answers, per name, how to get
the point (a joint, a vertex, a blend) and how well it corresponds (`quality`: 1 = the same
point, in (0,1) = approximately the same (e.g. detector hips vs SMPL hip joints, which SMPLify
gives weight 0 and SPIN ignores), 0 = no counterpart (the point is ignored in fitting).
"""

from __future__ import annotations

import numpy as np
from smplx.joint_names import JOINT_NAMES as _SMPLX_JOINT_NAMES

__all__ = ["KEYPOINT_SETS", "SKELETONS", "canonical_name", "keypoint_names", "keypoint_skeleton", "convert_keypoints"]

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
OPENPOSE25 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
]  # fmt: skip
COCO18 = OPENPOSE25[:8] + OPENPOSE25[9:19]  # OpenPose's COCO-18: BODY_25 without mid_hip and feet
BLAZEPOSE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
]  # fmt: skip
H36M17 = [
    "h36m_pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "h36m_spine", "h36m_thorax", "h36m_neck", "h36m_head", "left_shoulder", "left_elbow",
    "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
]  # fmt: skip
LSP14 = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
]  # fmt: skip
SMPL24 = [
    "pelvis", "smpl_left_hip", "smpl_right_hip", "spine1", "smpl_left_knee", "smpl_right_knee",
    "spine2", "smpl_left_ankle", "smpl_right_ankle", "spine3", "left_foot", "right_foot", "smpl_neck",
    "left_collar", "right_collar", "smpl_head", "smpl_left_shoulder", "smpl_right_shoulder",
    "smpl_left_elbow", "smpl_right_elbow", "smpl_left_wrist", "smpl_right_wrist", "left_hand",
    "right_hand",
]  # fmt: skip
# MediaPipe Hands' 21 landmarks per hand (wrist, thumb CMC..tip, index MCP..tip, middle, ring,
# pinky), person's left hand then right: what mediapipe Holistic returns per visible hand.
HAND21 = ["wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip"] + [
    f"{finger}_{part}" for finger in ("index_finger", "middle_finger", "ring_finger", "pinky")
    for part in ("mcp", "pip", "dip", "tip")
]  # fmt: skip
# The 51 static iBUG-68 face landmarks (points 18-68, 1-based: right brow 5, left brow 5, nose
# bridge 4, nostrils 5, right eye 6, left eye 6, outer lips 12, inner lips 8; the 17 jaw-contour
# points left out), in iBUG order, named as smplx names them; sides are the person's own (for a
# frontal face "right_*" is on the image's left). SMPL-X's file embeds exactly these points
# (lmk_faces_idx / lmk_bary_coords), so smplx's joints 76-126 are them.
FACE51 = list(_SMPLX_JOINT_NAMES[76:127])
assert FACE51[0] == "right_eye_brow1" and FACE51[-1] == "right_lip_3"

HANDS42 = [
    f"{side}_hand_{name}" if name == "wrist" else f"{side}_{name}" for side in ("left", "right") for name in HAND21
]

KEYPOINT_SETS: dict[str, list[str]] = {
    "coco17": COCO17,
    "openpose25": OPENPOSE25,
    "coco18": COCO18,
    "blazepose33": BLAZEPOSE33,
    "h36m17": H36M17,
    "lsp14": LSP14,
    "smpl24": SMPL24,
    "hands42": HANDS42,
    "face51": FACE51,
}

# Equivalences used when converting between sets: a detector's "left_wrist" and the SMPL
# joint "smpl_left_wrist" are close enough to stand in for each other in conversions.
_ALIASES = {
    "smpl_left_hip": "left_hip", "smpl_right_hip": "right_hip", "smpl_left_knee": "left_knee",
    "smpl_right_knee": "right_knee", "smpl_left_ankle": "left_ankle", "smpl_right_ankle": "right_ankle",
    "smpl_left_shoulder": "left_shoulder", "smpl_right_shoulder": "right_shoulder",
    "smpl_left_elbow": "left_elbow", "smpl_right_elbow": "right_elbow", "smpl_left_wrist": "left_wrist",
    "smpl_right_wrist": "right_wrist", "smpl_neck": "neck", "left_foot_index": "left_big_toe",
    "right_foot_index": "right_big_toe", "left_hand_wrist": "left_wrist", "right_hand_wrist": "right_wrist",
}  # fmt: skip


def _edges(names: list[str], pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    return [(names.index(a), names.index(b)) for a, b in pairs if a in names and b in names]


_LIMBS = [
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_hip", "right_hip"), ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("left_ankle", "left_heel"), ("right_ankle", "right_heel"), ("left_ankle", "left_big_toe"),
    ("right_ankle", "right_big_toe"), ("left_ankle", "left_foot_index"), ("right_ankle", "right_foot_index"),
    ("left_wrist", "left_index"), ("right_wrist", "right_index"), ("neck", "nose"), ("neck", "mid_hip"),
    ("neck", "head_top"),
]  # fmt: skip
SKELETONS: dict[str, list[tuple[int, int]]] = {k: _edges(v, _LIMBS) for k, v in KEYPOINT_SETS.items()}
SKELETONS["hands42"] = [
    (21 * h + a, 21 * h + b) for h in (0, 1)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4)] + [(p, p + 1) for f in range(4) for p in (5 + 4 * f, 6 + 4 * f, 7 + 4 * f)] + [(0, 5), (5, 9), (9, 13), (13, 17), (0, 17)]
]  # fmt: skip
SKELETONS["face51"] = [  # brows, nose bridge, nostrils; eyes and lips closed loops (iBUG order)
    (a, a + 1) for first, last in ((0, 4), (5, 9), (10, 13), (14, 18)) for a in range(first, last)
] + [
    (a, first + (a - first + 1) % (last - first + 1)) for first, last in ((19, 24), (25, 30), (31, 42), (43, 50))
    for a in range(first, last + 1)
]  # fmt: skip
SKELETONS["smpl24"] = [(i, p) for i, p in enumerate(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]) if p >= 0]  # fmt: skip


def keypoint_names(keypoint_set: str) -> list[str]:
    """The ordered point names of a set; a composite set "a+b" (e.g. "blazepose33+hands42": body
    and hands) is the points of `a` then those of `b`. A clear error for unknown sets."""
    parts = keypoint_set.split("+")
    unknown = [p for p in parts if p not in KEYPOINT_SETS]
    if unknown:
        raise ValueError(
            f"unknown keypoint set {unknown[0]!r}; use one of {', '.join(KEYPOINT_SETS)} or several joined by '+'"
        )
    if len(parts) == 1:
        return KEYPOINT_SETS[keypoint_set]
    names = [n for p in parts for n in KEYPOINT_SETS[p]]
    if len(set(names)) != len(names):
        raise ValueError(f"keypoint set {keypoint_set!r} names some points twice; join sets that share no point")
    return names


def keypoint_skeleton(keypoint_set: str) -> list[tuple[int, int]]:
    """Edges (index pairs) to draw for a set, composite sets included."""
    edges, offset = [], 0
    for part in keypoint_set.split("+"):
        edges += [(a + offset, b + offset) for a, b in SKELETONS[part]]
        offset += len(keypoint_names(part))
    return edges


def canonical_name(name: str) -> str:
    """The name a point stands in for in conversions ("smpl_left_hip" -> "left_hip",
    "left_foot_index" -> "left_big_toe"); other names unchanged."""
    return _ALIASES.get(name, name)


_canonical = canonical_name


def convert_keypoints(keypoints: np.ndarray, source: str, target: str) -> np.ndarray:
    """(..., K_source, C) -> (..., K_target, C) by point name; points the source lacks get
    zeros (confidence 0). OpenPose's neck / mid_hip are filled from the shoulder / hip
    midpoints when the source lacks them (confidence = the lower of the two)."""
    src = [_canonical(n) for n in keypoint_names(source)]
    dst = keypoint_names(target)
    kp = np.asarray(keypoints, dtype=np.float32)
    out = np.zeros(kp.shape[:-2] + (len(dst), kp.shape[-1]), dtype=np.float32)
    for j, name in enumerate(dst):
        cname = _canonical(name)
        if cname in src:
            out[..., j, :] = kp[..., src.index(cname), :]
        elif cname in ("neck", "mid_hip"):
            a, b = ("left_shoulder", "right_shoulder") if cname == "neck" else ("left_hip", "right_hip")
            if a in src and b in src:
                pa, pb = kp[..., src.index(a), :], kp[..., src.index(b), :]
                out[..., j, :-1] = (pa[..., :-1] + pb[..., :-1]) / 2
                out[..., j, -1] = np.minimum(pa[..., -1], pb[..., -1])
    return out
