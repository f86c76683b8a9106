"""Body-part segmentation of a body model from its skinning weights, and label-map files.

24 parts: one per SMPL joint (names = `fitter.body.model.SMPL_JOINT_NAMES`). A vertex belongs
to the joint with the largest skinning weight; for models with more joints than SMPL's 24
(SMPL-H/X) the weights of every extra joint are first added to the SMPL joint that drives its
nearest ancestor (fingers -> hand 22/23 when the model has no SMPL hand joint, jaw/eyes ->
head). A face takes the label held by most of its 3 vertices (ties: larger summed skinning
weight).

12 parts: the split of Neural Body Fitting (NBF, Omran et al. 3DV 2018), whose released part
template (neural_body_fitting, models/smpl/template-bodyparts-corrected-labeled-split12.ply,
6,890 SMPL vertices) has these 12 regions (checked by their vertex positions): head, neck,
upper torso, lower torso, and per side upper arm, lower arm with hand, upper leg, lower leg
with foot. NBF drew its borders by hand; here they follow the SMPL joints:

    head          <- head (15)
    neck          <- neck (12)
    upper_torso   <- spine2 (6), spine3 (9), left/right collar (13, 14)
    lower_torso   <- pelvis (0), spine1 (3)
    left/right_upper_arm <- shoulder (16 / 17)
    left/right_lower_arm <- elbow, wrist, hand (18, 20, 22 / 19, 21, 23)
    left/right_upper_leg <- hip (1 / 2)
    left/right_lower_leg <- knee, ankle, foot (4, 7, 10 / 5, 8, 11)

(NBF's knee border lies a few cm below the knee joint and its thigh starts a little lower on
the hip; otherwise the regions match.) Left/right are the person's own (SMPL: +X is the
person's left).

Label mapping files connect any part segmenter's label image to these parts (JSON):

    {"num_parts": 12,                       # optional: 12 or 24 (needed when ambiguous)
     "labels": {"0": "background", "1": "head", "2": "upper_torso", "3": "upper_torso", ...}}

Keys are pixel values (0..65535) of the label PNG, values are part names of one of the two
sets or "background"; several values may map to the same part; values not listed are
background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import SMPL_JOINT_NAMES

__all__ = [
    "PART_NAMES_24",
    "PART_NAMES_12",
    "PART_COLORS_24",
    "PART_COLORS_12",
    "SMPL_JOINT_TO_PART_12",
    "BACKGROUND",
    "part_names",
    "part_colors",
    "part_labels",
    "part_labels_from_weights",
    "face_part_labels",
    "body_face_part_labels",
    "smpl_joint_weights",
    "PartLabelMapping",
    "load_part_label_mapping",
    "parse_part_label_mapping",
]

BACKGROUND = "background"

PART_NAMES_24: list[str] = list(SMPL_JOINT_NAMES)

PART_NAMES_12: list[str] = [
    "head", "neck", "upper_torso", "lower_torso",
    "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm",
    "left_upper_leg", "right_upper_leg", "left_lower_leg", "right_lower_leg",
]  # fmt: skip

_GROUPS_12 = {
    "head": ["head"],
    "neck": ["neck"],
    "upper_torso": ["spine2", "spine3", "left_collar", "right_collar"],
    "lower_torso": ["pelvis", "spine1"],
    "left_upper_arm": ["left_shoulder"],
    "right_upper_arm": ["right_shoulder"],
    "left_lower_arm": ["left_elbow", "left_wrist", "left_hand"],
    "right_lower_arm": ["right_elbow", "right_wrist", "right_hand"],
    "left_upper_leg": ["left_hip"],
    "right_upper_leg": ["right_hip"],
    "left_lower_leg": ["left_knee", "left_ankle", "left_foot"],
    "right_lower_leg": ["right_knee", "right_ankle", "right_foot"],
}

# (24,) SMPL joint index -> 12-part index.
SMPL_JOINT_TO_PART_12: list[int] = [
    next(PART_NAMES_12.index(part) for part, joints in _GROUPS_12.items() if name in joints) for name in PART_NAMES_24
]

# RGB colours, uint8. Left parts warm-ish / right parts cool-ish, neighbours distinct.
PART_COLORS_12: list[tuple[int, int, int]] = [
    (240, 200, 60),   # head
    (200, 120, 40),   # neck
    (70, 160, 70),    # upper_torso
    (30, 100, 60),    # lower_torso
    (230, 80, 80),    # left_upper_arm
    (80, 120, 230),   # right_upper_arm
    (250, 150, 140),  # left_lower_arm
    (140, 190, 250),  # right_lower_arm
    (170, 60, 150),   # left_upper_leg
    (60, 170, 180),   # right_upper_leg
    (230, 140, 220),  # left_lower_leg
    (140, 230, 220),  # right_lower_leg
]  # fmt: skip

PART_COLORS_24: list[tuple[int, int, int]] = [
    (30, 100, 60),    # pelvis
    (170, 60, 150),   # left_hip
    (60, 170, 180),   # right_hip
    (50, 130, 80),    # spine1
    (230, 140, 220),  # left_knee
    (140, 230, 220),  # right_knee
    (70, 160, 70),    # spine2
    (200, 90, 200),   # left_ankle
    (90, 200, 200),   # right_ankle
    (110, 190, 90),   # spine3
    (150, 40, 120),   # left_foot
    (40, 140, 150),   # right_foot
    (200, 120, 40),   # neck
    (210, 170, 90),   # left_collar
    (120, 170, 210),  # right_collar
    (240, 200, 60),   # head
    (230, 80, 80),    # left_shoulder
    (80, 120, 230),   # right_shoulder
    (250, 150, 140),  # left_elbow
    (140, 190, 250),  # right_elbow
    (200, 50, 50),    # left_wrist
    (50, 80, 200),    # right_wrist
    (255, 200, 190),  # left_hand
    (190, 220, 255),  # right_hand
]  # fmt: skip


def _check_num_parts(num_parts: int) -> None:
    if num_parts not in (12, 24):
        raise ValueError(f"num_parts must be 12 or 24, got {num_parts}")


def part_names(num_parts: int) -> list[str]:
    """PART_NAMES_12 or PART_NAMES_24."""
    _check_num_parts(num_parts)
    return list(PART_NAMES_12 if num_parts == 12 else PART_NAMES_24)


def part_colors(num_parts: int) -> Tensor:
    """(P,3) uint8 RGB colour per part."""
    _check_num_parts(num_parts)
    return torch.tensor(PART_COLORS_12 if num_parts == 12 else PART_COLORS_24, dtype=torch.uint8)


def _full_joint_to_smpl(parents: list[int], body_to_full: list[int]) -> list[int]:
    """For each model joint, the SMPL joint (0..23) whose weight it adds to."""
    full_to_smpl = {full: smpl for smpl, full in enumerate(body_to_full) if full >= 0}
    hand_of_wrist = {}
    for wrist, hand in ((20, 22), (21, 23)):
        if body_to_full[hand] < 0 and body_to_full[wrist] >= 0:
            hand_of_wrist[body_to_full[wrist]] = hand
    mapping = []
    for joint in range(len(parents)):
        node, below_wrist_hand = joint, None
        while node >= 0 and node not in full_to_smpl:
            parent = parents[node]
            if parent in hand_of_wrist:
                below_wrist_hand = hand_of_wrist[parent]
            node = parent
        if node < 0:
            raise ValueError(f"model joint {joint} has no ancestor driven by an SMPL joint; cannot assign it a part")
        mapping.append(below_wrist_hand if below_wrist_hand is not None else full_to_smpl[node])
    return mapping


def smpl_joint_weights(lbs_weights: Tensor, parents=None, body_to_full=None) -> Tensor:
    """Skinning weights (V,J) summed onto the 24 SMPL joints -> (V,24).

    With J == 24 and no mapping the weights are returned as they are. Otherwise parents (J,)
    and body_to_full (24,) (see `BodyModel`) say which SMPL joint each model joint belongs to.
    """
    weights = torch.as_tensor(lbs_weights)
    if weights.ndim != 2:
        raise ValueError(f"lbs_weights must be (V,J), got shape {tuple(weights.shape)}")
    num_joints = weights.shape[1]
    if body_to_full is None:
        if num_joints != 24:
            raise ValueError(
                f"lbs_weights has {num_joints} joints; pass parents and body_to_full to map them to SMPL's 24"
            )
        return weights
    if parents is None:
        raise ValueError("parents (J,) is needed together with body_to_full")
    mapping = _full_joint_to_smpl([int(p) for p in parents], [int(j) for j in body_to_full])
    index = torch.tensor(mapping, device=weights.device)
    return torch.zeros(weights.shape[0], 24, dtype=weights.dtype, device=weights.device).index_add_(1, index, weights)


def part_labels_from_weights(weights_24: Tensor, num_parts: int = 24) -> Tensor:
    """(V,) long part id per vertex from SMPL-joint skinning weights (V,24).

    24 parts: argmax joint. 12 parts: weights summed per NBF group, then argmax.
    """
    _check_num_parts(num_parts)
    weights = torch.as_tensor(weights_24)
    if weights.ndim != 2 or weights.shape[1] != 24:
        raise ValueError(f"weights must be (V,24) SMPL-joint skinning weights, got shape {tuple(weights.shape)}")
    return _group_weights(weights, num_parts).argmax(dim=1)


def _group_weights(weights_24: Tensor, num_parts: int) -> Tensor:
    """(V,24) SMPL-joint weights -> (V,num_parts) per-part weights."""
    if num_parts == 24:
        return weights_24
    group = torch.tensor(SMPL_JOINT_TO_PART_12, device=weights_24.device)
    return torch.zeros(weights_24.shape[0], 12, dtype=weights_24.dtype, device=weights_24.device).index_add_(
        1, group, weights_24
    )


def _model_weights_24(body_model) -> Tensor:
    weights = body_model.lbs_weights
    if weights.shape[1] == 24 and bool((body_model.body_to_full == torch.arange(24, device=weights.device)).all()):
        return weights
    return smpl_joint_weights(weights, body_model.parents.tolist(), body_model.body_to_full.tolist())


def part_labels(body_model, num_parts: int = 24) -> Tensor:
    """(V,) long part id per vertex of a `BodyModel` (ids index `part_names(num_parts)`)."""
    return part_labels_from_weights(_model_weights_24(body_model), num_parts)


def face_part_labels(faces: Tensor, vertex_labels: Tensor, vertex_weights: Tensor | None = None) -> Tensor:
    """(F,) long part id per face: the label most of its 3 vertices have.

    faces (F,3); vertex_labels (V,) long >= 0; vertex_weights (V,P) optional per-part weights
    (e.g. skinning weights grouped per part) to break ties, else the smallest label wins.
    """
    faces = torch.as_tensor(faces).long()
    labels = torch.as_tensor(vertex_labels, device=faces.device).long()
    num_parts = int(labels.max()) + 1 if vertex_weights is None else int(vertex_weights.shape[1])
    votes = torch.nn.functional.one_hot(labels[faces], num_parts).sum(dim=1).to(torch.float64)  # (F,P)
    if vertex_weights is not None:
        tie_break = torch.as_tensor(vertex_weights, device=faces.device).to(torch.float64)[faces].sum(dim=1)
        votes = votes + 1e-3 * tie_break / tie_break.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return votes.argmax(dim=1)


def body_face_part_labels(body_model, num_parts: int = 24) -> Tensor:
    """(F,) long part id per face of a `BodyModel` (majority vote, ties by skinning weight)."""
    _check_num_parts(num_parts)
    weights = _group_weights(_model_weights_24(body_model), num_parts)
    return face_part_labels(body_model.faces, weights.argmax(dim=1), weights)


@dataclass
class PartLabelMapping:
    """Pixel value of a part label image -> part id (-1 = background).

    num_parts: 12 or 24; names: the part names (index = part id); value_to_part: {pixel value:
    part id or -1}.
    """

    num_parts: int
    names: list[str]
    value_to_part: dict[int, int]

    def lookup_table(self) -> np.ndarray:
        """(max value + 1,) int64 array: pixel value -> part id, -1 for unlisted values."""
        size = max(self.value_to_part, default=0) + 1
        table = np.full(size, -1, dtype=np.int64)
        for value, part in self.value_to_part.items():
            table[value] = part
        return table

    def part_ids(self, label_image) -> np.ndarray:
        """Label image (H,W) of pixel values -> (H,W) int64 part ids, -1 = background."""
        image = np.asarray(label_image)
        if image.ndim != 2:
            raise ValueError(f"label image must be (H,W) single-channel, got shape {image.shape}")
        if image.size and (image.min() < 0 or not np.issubdtype(image.dtype, np.integer)):
            raise ValueError("label image must hold non-negative integer pixel values")
        table = self.lookup_table()
        clipped = np.minimum(image.astype(np.int64), len(table) - 1)
        ids = table[clipped]
        ids[image.astype(np.int64) >= len(table)] = -1
        return ids

    def part_masks(self, label_image) -> np.ndarray:
        """Label image (H,W) -> (P,H,W) bool masks, one per part."""
        ids = self.part_ids(label_image)
        return ids[None] == np.arange(self.num_parts)[:, None, None]


def parse_part_label_mapping(data: dict, source: str = "mapping") -> PartLabelMapping:
    """Validate a mapping dict {"num_parts"?: 12|24, "labels": {"<value>": "<part name>"}}."""
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict) or not data["labels"]:
        raise ValueError(
            f'{source}: expected a JSON object with a non-empty "labels" object {{"<pixel value>": "<part name>"}}'
        )
    for key in data["labels"]:
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{source}: label key {key!r} is not an integer pixel value") from None
        if not 0 <= value <= 65535 or str(value) != str(key).strip():
            raise ValueError(f"{source}: label key {key!r} must be an integer pixel value 0..65535")
    names = {str(name) for name in data["labels"].values()} - {BACKGROUND}
    num_parts = data.get("num_parts")
    if num_parts is not None:
        if num_parts not in (12, 24):
            raise ValueError(f'{source}: "num_parts" must be 12 or 24, got {num_parts!r}')
    else:
        fits_12 = names <= set(PART_NAMES_12)
        fits_24 = names <= set(PART_NAMES_24)
        if fits_12 and fits_24:
            raise ValueError(
                f'{source}: part names {sorted(names)} exist in both the 12- and 24-part sets; add "num_parts": 12 or 24'
            )
        num_parts = 12 if fits_12 else 24 if fits_24 else None
        if num_parts is None:
            unknown_12 = sorted(names - set(PART_NAMES_12))
            unknown_24 = sorted(names - set(PART_NAMES_24))
            raise ValueError(
                f"{source}: unknown part names {unknown_12 if len(unknown_12) <= len(unknown_24) else unknown_24}; "
                f"use names from PART_NAMES_12 {PART_NAMES_12} or PART_NAMES_24, or {BACKGROUND!r}"
            )
    valid_names = part_names(num_parts)
    value_to_part: dict[int, int] = {}
    for key, name in data["labels"].items():
        value = int(key)
        if name == BACKGROUND:
            value_to_part[value] = -1
        elif name in valid_names:
            value_to_part[value] = valid_names.index(name)
        else:
            raise ValueError(
                f"{source}: unknown part name {name!r} for value {value}; the {num_parts}-part names are {valid_names} (or {BACKGROUND!r})"
            )
    return PartLabelMapping(num_parts=num_parts, names=valid_names, value_to_part=value_to_part)


def load_part_label_mapping(path: str | Path) -> PartLabelMapping:
    """Read and validate a label mapping JSON file (format in this module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"part label mapping file not found: {path} (write a JSON file as described in fitter.body.parts)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    return parse_part_label_mapping(data, source=str(path))
