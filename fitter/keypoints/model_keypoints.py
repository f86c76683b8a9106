"""How a body model produces the points of a keypoint set: `KeypointRegressor`.

For a (body model, keypoint set) pair, every point is a linear blend of the model's 24 SMPL
joints and a few of its vertices, so the fitter can pose only those (BodyModel.forward_joints)
instead of the whole mesh. Per point, `quality` says how well the model point matches what a
detector or annotator marks (see fitter.keypoints.sets).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from fitter.body.landmarks import LandmarkSkin
from fitter.body.model import SMPL_JOINT_NAMES, BodyModel
from fitter.keypoints.sets import FACE51, SMPL24, keypoint_names

__all__ = ["KeypointRegressor", "keypoint_regressor", "point_definition", "points_regressor"]

# SMPL-topology surface points, the published vertex ids shipped with smplx (vertex_ids['smplh']).
_SMPL_VERTEX_KEYS = {
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
    "left_big_toe": "LBigToe", "left_small_toe": "LSmallToe", "left_heel": "LHeel",
    "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel",
    "left_thumb": "lthumb", "left_index": "lindex", "left_pinky": "lpinky",
    "right_thumb": "rthumb", "right_index": "rindex", "right_pinky": "rpinky",
}  # fmt: skip
_JOINT_POINTS = {  # detector name -> (SMPL joint, quality)
    "left_shoulder": (16, 1.0), "right_shoulder": (17, 1.0), "left_elbow": (18, 1.0),
    "right_elbow": (19, 1.0), "left_wrist": (20, 1.0), "right_wrist": (21, 1.0),
    "left_knee": (4, 1.0), "right_knee": (5, 1.0), "left_ankle": (7, 1.0), "right_ankle": (8, 1.0),
    # Detector hips sit lower and wider than SMPL's hip joints (SMPLify: weight 0; SPIN: ignored).
    "left_hip": (1, 0.3), "right_hip": (2, 0.3),
}  # fmt: skip

Definition = tuple[dict[int, float], dict[int, float], float]  # joint weights, vertex weights, quality


def _head_top_vertex(model: BodyModel) -> int:
    """The highest template vertex within 20 cm of the head joint's vertical axis (Y up)."""
    v = model.v_template
    head = (model.J_regressor @ v)[model.smpl_joint_ids[15]]
    near = ((v[:, [0, 2]] - head[[0, 2]]).norm(dim=1) < 0.2) & (v[:, 1] > head[1])
    ids = torch.nonzero(near).flatten()
    return int(ids[v[ids, 1].argmax()])


_HAND_CHAINS = {  # MediaPipe finger -> (MANO finger, MediaPipe names of its 3 joints, tip name)
    "thumb": ("thumb", ("cmc", "mcp", "ip"), "tip"),
    "index_finger": ("index", ("mcp", "pip", "dip"), "tip"),
    "middle_finger": ("middle", ("mcp", "pip", "dip"), "tip"),
    "ring_finger": ("ring", ("mcp", "pip", "dip"), "tip"),
    "pinky": ("pinky", ("mcp", "pip", "dip"), "tip"),
}
_SMPLX_TIP_KEYS = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "pinky": "pinky"}
HAND_JOINT_TOP_K = 10**9  # all of the row: truncating a least-squares row (cancelling weights) moves the point by cm
# MediaPipe's hand landmarks against anny-hands' joints: its wrist sits at the base of the palm and
# its knuckles (MCP) nearer the wrist. Fitted hands on the MPII / 3DPW / OCHuman / H36M / 3DHP eval
# photos (14 hands; not the demo / COCO photos benchmarks/hands_photos.py reports) left residuals
# along the hand of +6.0 +- 2.5 % of the hand size at the wrist and -3.7 / -3.5 / -2.7 / -1.9 % at
# the index / middle / ring / pinky knuckles, the wrist-to-middle-knuckle length being 49 % of the
# size: so on anny-hands the wrist point is moved this share of that length towards the middle
# knuckle, and the four knuckle points this share towards the wrist.
WRIST_TOWARDS_PALM = 0.12
KNUCKLES_TOWARDS_WRIST = 0.06


def _rigid_hand_row(model: BodyModel, joint: int) -> dict[int, float] | None:
    """anny-hands' rigid vertex blend of full-model joint `joint` (see `_hand_point`), or None."""
    rigid = getattr(model, "hand_joint_regressor", None)
    if rigid is None:
        return None
    row = rigid[joint - int(model.hand_joint_ids[0])]
    ids = torch.nonzero(row).flatten()
    return {int(i): float(row[i]) for i in ids}


def _hand_point(model: BodyModel, name: str) -> Definition | None:
    """MediaPipe hand landmarks (hands42 names): finger joints as vertex blends: anny-hands'
    `hand_joint_regressor` (vertices that move rigidly with the joint: exact at rest and posed,
    to the regressor's fit), else the model's J_regressor row (exact at rest only: such a blend
    of the skin around a joint drifts 1.5-3 cm from the joint in a fist),
    fingertips as a vertex (anny-hands: furthest along the distal bone; SMPL-H/X: smplx's
    fingertip vertex ids). None when `name` is not a finger point."""
    side = "left" if name.startswith("left_") else "right" if name.startswith("right_") else None
    if side is None:
        return None
    rest = name[len(side) + 1 :]
    for mp_finger, (finger, joint_parts, tip_part) in _HAND_CHAINS.items():
        if not rest.startswith(mp_finger + "_"):
            continue
        part = rest[len(mp_finger) + 1 :]
        if part == tip_part:
            tip = f"{side}_{finger}_tip"
            if tip in model.landmark_vertex_ids:
                return {}, {model.landmark_vertex_ids[tip]: 1.0}, 1.0
            if model.num_vertices in (6890, 10475):
                from smplx.vertex_ids import vertex_ids

                table = vertex_ids["smplx" if model.num_vertices == 10475 else "smplh"]
                return {}, {int(table[side[0] + _SMPLX_TIP_KEYS[finger]]): 1.0}, 1.0
            return {}, {}, 0.0
        if part not in joint_parts:
            return None
        k = joint_parts.index(part)
        if model.has_fingers:
            from fitter.body.hands import finger_joint_ids

            joint = finger_joint_ids(model, side, finger)[k]
            rigid = _rigid_hand_row(model, joint)
            if rigid is not None:
                if k == 0 and finger != "thumb":  # MediaPipe's knuckles: nearer the wrist (see above)
                    shift = KNUCKLES_TOWARDS_WRIST
                    return {20 if side == "left" else 21: shift}, {v: (1 - shift) * w for v, w in rigid.items()}, 1.0
                return {}, rigid, 1.0
            row = model.J_regressor[joint]
            ids = row.abs().topk(min(HAND_JOINT_TOP_K, int((row != 0).sum()))).indices
            row = row * (row.sum() / row[ids].sum())
            return {}, {int(i): float(row[i]) for i in ids}, 1.0
        if finger == "middle" and k == 0:  # SMPL's hand joint sits at the middle knuckle
            return {22 if side == "left" else 23: 1.0}, {}, 0.5
        return {}, {}, 0.0
    return None


def _face_point(model: BodyModel, name: str) -> Definition | None:
    """face51 points from the model's static face-landmark embedding (SMPL-X: barycentric blends
    of one face's three vertices, exactly smplx's vertices2landmarks); None without one."""
    if name not in FACE51 or model.lmk_faces_idx.numel() != len(FACE51):
        return None
    k = FACE51.index(name)
    weights: dict[int, float] = {}
    for vertex, weight in zip(model.faces[model.lmk_faces_idx[k]].tolist(), model.lmk_bary_coords[k].tolist()):
        weights[vertex] = weights.get(vertex, 0.0) + weight
    return {}, weights, 1.0


def point_definition(model: BodyModel, name: str) -> Definition:
    """How `model` produces the point `name` (joints/vertex blend weights and quality)."""
    face = _face_point(model, name)
    if face is not None:
        return face
    hand = _hand_point(model, name)
    if hand is not None:
        return hand
    if name in ("left_hand_wrist", "right_hand_wrist"):  # the hand's root: the model's wrist joint
        side = name.split("_")[0]
        wrist = 20 if side == "left" else 21
        if model.has_fingers:
            from fitter.body.hands import finger_joint_ids

            knuckle = _rigid_hand_row(model, finger_joint_ids(model, side, "middle")[0])
            if knuckle is not None:  # MediaPipe's wrist: at the base of the palm (see WRIST_TOWARDS_PALM)
                shift = WRIST_TOWARDS_PALM
                return {wrist: 1 - shift}, {v: shift * w for v, w in knuckle.items()}, 1.0
        return {wrist: 1.0}, {}, 1.0
    if name in SMPL24:
        return {SMPL24.index(name): 1.0}, {}, 1.0
    coco = model.coco_regressor_labels
    if model.coco_regressor is not None and name in coco:
        # anny's regressor spreads over thousands of vertices; its 64 largest weights
        # (rescaled to the same sum) reproduce it to < 1 mm and keep the fast path fast.
        row = model.coco_regressor[coco.index(name)]
        ids = row.abs().topk(min(64, row.numel())).indices
        row = row * (row.sum() / row[ids].sum())
        quality = 0.7 if name.endswith("_hip") else 1.0
        return {}, {int(i): float(row[i]) for i in ids}, quality
    if name in _JOINT_POINTS:
        joint, quality = _JOINT_POINTS[name]
        return {joint: 1.0}, {}, quality
    if name in model.landmark_vertex_ids:
        return {}, {model.landmark_vertex_ids[name]: 1.0}, 0.7
    if name in _SMPL_VERTEX_KEYS and model.num_vertices in (6890, 10475):
        from smplx.vertex_ids import vertex_ids

        table = vertex_ids["smplx" if model.num_vertices == 10475 else "smplh"]
        quality = 0.3 if name.endswith(("thumb", "index", "pinky")) else 1.0  # tips vs knuckles
        return {}, {int(table[_SMPL_VERTEX_KEYS[name]]): 1.0}, quality

    def mean(a: str, b: str, quality: float) -> Definition:
        ja, va, _ = point_definition(model, a)
        jb, vb, _ = point_definition(model, b)
        joints = {k: ja.get(k, 0.0) / 2 + jb.get(k, 0.0) / 2 for k in set(ja) | set(jb)}
        verts = {k: va.get(k, 0.0) / 2 + vb.get(k, 0.0) / 2 for k in set(va) | set(vb)}
        return joints, verts, quality

    if name in ("left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer"):
        joints, verts, _ = point_definition(model, name.rsplit("_", 1)[0])
        return joints, verts, 0.3
    if name.endswith("_foot_index"):
        joints, verts, _ = point_definition(model, name.replace("foot_index", "big_toe"))
        return joints, verts, 0.8
    if name == "neck":  # OpenPose's neck: the shoulder midpoint
        return mean("left_shoulder", "right_shoulder", 0.5)
    if name == "mid_hip":
        return mean("left_hip", "right_hip", 0.3)
    if name == "head_top":
        return {}, {_head_top_vertex(model): 1.0}, 0.8
    if name == "h36m_pelvis":
        return {0: 1.0}, {}, 0.5
    if name == "h36m_spine":
        return {3: 0.5, 6: 0.5}, {}, 0.5
    if name == "h36m_thorax":
        return {12: 1.0}, {}, 0.5
    if name == "h36m_neck":
        return {12: 0.5, 15: 0.5}, {}, 0.5
    if name == "h36m_head":
        joints, verts, _ = point_definition(model, "head_top")
        return {15: 0.5}, {k: w * 0.5 for k, w in verts.items()}, 0.5
    return {}, {}, 0.0  # no counterpart on this model (e.g. BlazePose mouth corners)


@dataclass
class KeypointRegressor:
    """Maps SMPL-24 joints (B,24,3) and the vertices `vertex_ids` (B,P,3) to a keypoint set's
    points (B,K,3). joint_weights (K,24), vertex_weights (K,P), quality (K,) in [0,1]."""

    keypoint_set: str
    names: list[str]
    joint_weights: Tensor
    vertex_ids: Tensor
    vertex_weights: Tensor
    quality: Tensor

    def __call__(self, joints: Tensor, points: Tensor | None) -> Tensor:
        out = torch.einsum("kj,bjc->bkc", self.joint_weights.to(joints), joints)
        if points is not None and self.vertex_ids.numel() > 0:
            out = out + torch.einsum("kp,bpc->bkc", self.vertex_weights.to(points), points)
        return out

    def from_vertices(self, joints: Tensor, vertices: Tensor) -> Tensor:
        """Same points from a fully posed mesh (B,V,3)."""
        return self(joints, vertices[:, self.vertex_ids.to(vertices.device)])

    def to(self, device) -> "KeypointRegressor":
        return KeypointRegressor(
            self.keypoint_set, self.names, self.joint_weights.to(device), self.vertex_ids.to(device),
            self.vertex_weights.to(device), self.quality.to(device),
        )  # fmt: skip


def keypoint_regressor(model: BodyModel, keypoint_set: str) -> KeypointRegressor:
    """Build the KeypointRegressor of `keypoint_set` for `model`."""
    return points_regressor(model, keypoint_names(keypoint_set), keypoint_set)


def points_regressor(model: BodyModel, names: list[str], label: str = "custom") -> KeypointRegressor:
    """The KeypointRegressor of any list of point names (e.g. the union of several sets, as the
    keypoint lifter's inputs); `label` becomes its keypoint_set."""
    defs = [point_definition(model, n) for n in names]
    vertex_ids = sorted({v for _, verts, _ in defs for v in verts})
    column = {v: i for i, v in enumerate(vertex_ids)}
    jw = torch.zeros(len(names), len(SMPL_JOINT_NAMES))
    vw = torch.zeros(len(names), len(vertex_ids))
    quality = torch.zeros(len(names))
    for k, (joints, verts, q) in enumerate(defs):
        for j, w in joints.items():
            jw[k, j] = w
        for v, w in verts.items():
            vw[k, column[v]] = w
        quality[k] = q
    dev = model.v_template.device
    return KeypointRegressor(
        label, list(names), jw.to(dev), torch.tensor(vertex_ids, dtype=torch.long, device=dev),
        vw.to(dev), quality.to(dev),
    )  # fmt: skip


_SKIN_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def keypoint_skin(model: BodyModel, keypoint_set: str,
                  with_expression: bool = False) -> tuple[KeypointRegressor, LandmarkSkin]:  # fmt: skip
    """The KeypointRegressor of `keypoint_set` on `model` and its pre-skinned form for
    `BodyModel.pose_landmarks` (with_expression, SMPL-X: for `BodyModel.pose_face_landmarks`),
    built once per (model, set, device, dtype) and cached (building takes 10-20 ms, a fit
    iteration well under one)."""
    per_model = _SKIN_CACHE.setdefault(model, {})
    key = (keypoint_set, str(model.v_template.device), model.v_template.dtype, with_expression)
    if key not in per_model:
        reg = keypoint_regressor(model, keypoint_set)
        skin = model.landmark_skin(reg.vertex_ids, reg.vertex_weights, reg.joint_weights, with_expression)
        per_model[key] = (reg, skin)
    return per_model[key]
