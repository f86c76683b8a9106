"""`anny-hands`: the free body model `anny` in SMPL-H layout, with articulated fingers.

Built on top of the 24-joint `anny` (anny_model.py) and sharing its conventions: metres, Y up,
facing +Z, SMPL's T-pose, the same 10 betas (same shape space: away from the hands, vertices
equal the 24-joint model's at any betas and body pose). Differences:

* 52 joints: SMPL's 22 body joints, then 15 left-hand and 15 right-hand finger joints in MANO
  order (index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3; smplx's SMPL-H joint names), each at
  the head of the anny finger bone in FINGER_BONES; first finger joints hang off the wrist;
* skinning weights: anny's finger bones go to their finger joints, metacarpals to the wrist;
* rest hands are flat: every finger straightened (PIP / DIP and knuckle flexion removed) along
  its metacarpal (wrist -> knuckle) direction; the thumb is laid straight into the palm plane
  (its direction within the plane kept);
* shape space: the vertices away from the hands are copied from the 24-joint model; hand
  vertices are regressed on the betas of the same sampled bodies (so they follow shape);
* no pose correctives (posedirs zeros, (V,3,459)); smplx's SMPL-H hand PCA is the identity
  with a zero mean (the flat hand), so smplx.SMPLH reads the arrays as they are;
* `landmark_names` add the fingertips (`left_thumb_tip`, ...): the vertex furthest along each
  distal finger bone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fitter.body.anny_model import (
    ANNY_BUILD_VERSION,
    BONE_FOR_JOINT,
    NUM_BETAS,
    _fit_joint_regressor,
    _minimal_rotation,
    _sample_phenotypes,
    _straighten_arms,
    _to_smpl_frame,
    joint_for_bone,
    load_or_build_anny,
    load_or_build_cached,
)
from fitter.body.hands import FINGERS
from fitter.body.model import SMPL_PARENTS
from fitter.paths import cache_dir, configure_third_party_caches

__all__ = ["ANNY_HANDS_BUILD_VERSION", "FINGER_BONES", "anny_hands_cache_path", "load_or_build_anny_hands"]

ANNY_HANDS_BUILD_VERSION = 2
RIGID_WEIGHT = 0.9  # vertices at least this much on one joint count as moving with it
NUM_JOINTS = 52
LEFT_HAND, RIGHT_HAND = 22, 37  # first finger joint of each hand
# MANO finger -> anny finger bone prefix (bones `<prefix>-1/2/3.L/R`; their heads are the joints).
FINGER_BONES = {"index": "finger2", "middle": "finger3", "pinky": "finger5", "ring": "finger4", "thumb": "finger1"}
PARENTS = SMPL_PARENTS[:22] + [
    parent for wrist, first in ((20, LEFT_HAND), (21, RIGHT_HAND))
    for f in range(5) for parent in (wrist, first + 3 * f, first + 3 * f + 1)
]  # fmt: skip


def joint_names() -> list[str]:
    from smplx.joint_names import JOINT_NAMES

    return list(JOINT_NAMES[:22]) + list(JOINT_NAMES[25:55])


def finger_joint(bone: str) -> int | None:
    """The SMPL-H joint of an anny finger bone (`finger3-2.L` -> left_middle2), else None."""
    for finger, prefix in FINGER_BONES.items():
        for k in (1, 2, 3):
            for side, first in ((".L", LEFT_HAND), (".R", RIGHT_HAND)):
                if bone == f"{prefix}-{k}{side}":
                    return first + 3 * FINGERS.index(finger) + k - 1
    return None


def hands_joint_for_bone(bone: str) -> int:
    """SMPL-H joint whose rotation drives anny bone `bone`: finger bones their finger joint,
    everything else as in the 24-joint model (metacarpals: the wrist)."""
    j = finger_joint(bone)
    if j is not None:
        return j
    j = joint_for_bone(bone)
    if j >= 22:
        raise ValueError(f"anny bone {bone!r} maps to SMPL hand joint {j} but is no finger bone")
    return j


def anny_hands_cache_path(gender: str = "neutral") -> Path:
    import importlib.metadata

    version = importlib.metadata.version("anny")
    return cache_dir("models") / (
        f"anny-hands_{gender}_v{ANNY_HANDS_BUILD_VERSION}-{ANNY_BUILD_VERSION}_anny{version}.npz"
    )


def _distal_tails(rest_vertices, joints, weights) -> torch.Tensor:
    """(S,30,3) a point along each finger bone, hand-joint order: the next joint, or for a
    distal bone (anny's forward gives no bone tails with its default 'procrustes' orientation)
    the mirror of the joint through the centroid of the vertices that bone mostly drives."""
    tails = []
    for j in range(22, NUM_JOINTS):
        if (j - 22) % 3 < 2:
            tails.append(joints[:, j + 1])
        else:
            ids = torch.nonzero(weights[:, j] > 0.5).flatten()
            tails.append(2 * rest_vertices[:, ids].mean(1) - joints[:, j])
    return torch.stack(tails, dim=1)


def _skin(vertices, joints, weights, rotmats):
    """(S,V,3) rest points posed by SMPL-H-tree LBS; returns points, joints, transforms."""
    from smplx.lbs import batch_rigid_transform

    posed_joints, A = batch_rigid_transform(rotmats, joints, torch.tensor(PARENTS), dtype=joints.dtype)
    T = torch.einsum("vj,sjab->svab", weights, A)
    posed = torch.einsum("svab,svb->sva", T[..., :3, :3], vertices) + T[..., :3, 3]
    return posed, posed_joints, A


def _flat_hand_rotations(joints, tails, rots):
    """Local rotations of the finger joints that flatten the hands, added into `rots` (S,52,3,3)
    which already holds the arms' T-pose rotations. joints (S,52,3) rest (A-pose) joints; tails
    (S,30,3) rest tails of the finger bones (hand-joint order)."""
    _, _, A = _skin(joints[:, :1] * 0, joints, torch.zeros(1, NUM_JOINTS, dtype=joints.dtype), rots)
    for wrist, first in ((20, LEFT_HAND), (21, RIGHT_HAND)):
        for f, finger in enumerate(FINGERS):
            ids = [first + 3 * f + k for k in range(3)]
            ends = [joints[:, ids[1]], joints[:, ids[2]], tails[:, ids[2] - 22]]
            world = A[:, wrist, :3, :3]
            if finger == "thumb":  # into the palm plane, keeping its direction within the plane
                index1, pinky1 = joints[:, first], joints[:, first + 6]
                normal = world @ torch.linalg.cross(index1 - joints[:, wrist], pinky1 - joints[:, wrist])[..., None]
                normal = normal / normal.norm(dim=1, keepdim=True)
                goal = world @ (ends[0] - joints[:, ids[0]])[..., None]
                goal = goal - (goal * normal).sum(1, keepdim=True) * normal
            else:
                goal = world @ (joints[:, ids[0]] - joints[:, wrist])[..., None]
            goal = goal[..., 0] / goal[..., 0].norm(dim=-1, keepdim=True)
            for k in range(3):
                seg = world @ (ends[k] - joints[:, ids[k]])[..., None]
                seg = seg[..., 0] / seg[..., 0].norm(dim=-1, keepdim=True)
                align = _minimal_rotation(seg, goal)
                rots[:, ids[k]] = world.transpose(1, 2) @ align @ world
                world = align @ world
    return rots


def build_anny_hands_arrays(gender: str = "neutral", num_samples: int = 300, seed: int = 0, progress=None):
    """SMPL-H-layout arrays of anny (see the module docstring), from the same sampled bodies as
    the 24-joint build (whose cached arrays it reads, building them first if needed)."""
    configure_third_party_caches()
    say = progress or (lambda msg: None)
    base, _ = load_or_build_anny(gender, progress=progress)
    import anny
    from smplx.joint_names import JOINT_NAMES

    model = anny.Anny().to(torch.float64)
    labels = list(model.bone_labels)
    gen = torch.Generator().manual_seed(seed)
    bone_to_joint = torch.tensor([hands_joint_for_bone(b) for b in labels])
    V = model.template_vertices.shape[0]
    weights = torch.zeros(V, NUM_JOINTS, dtype=torch.float64)
    weights.scatter_add_(1, bone_to_joint[model.vertex_bone_indices.long()], model.vertex_bone_weights.double())
    weights = weights / weights.sum(1, keepdim=True)
    hand = (weights[:, 22:].sum(1) > 0).numpy()  # vertices whose skinning differs from anny's 24-joint one
    finger_bones = [f"{FINGER_BONES[f]}-{k}{s}" for s in (".L", ".R") for f in FINGERS for k in (1, 2, 3)]
    finger_ids = [labels.index(b) for b in finger_bones]

    def joints_from_heads(heads):
        out = []
        for j in range(22):
            name = BONE_FOR_JOINT[j]
            if "*" in name:
                out.append(heads[:, [labels.index(f"toe{k}-1{name[-2:]}") for k in range(1, 6)]].mean(1))
            else:
                out.append(heads[:, labels.index(name)])
        return torch.cat([torch.stack(out, dim=1), heads[:, finger_ids]], dim=1)

    say(f"sampling {num_samples} adult {gender} bodies (hands)")
    phen = _sample_phenotypes(model, num_samples, gender, gen)
    head_weights = torch.nn.functional.one_hot(bone_to_joint, NUM_JOINTS).double()
    tail_weights = torch.nn.functional.one_hot(torch.arange(22, NUM_JOINTS), NUM_JOINTS).double()
    all_verts, all_joints, all_heads, all_tails = [], [], [], []
    with torch.no_grad():
        for start in range(0, num_samples, 50):
            chunk = {k: v[start : start + 50] for k, v in phen.items()}
            out = model(phenotype_kwargs=chunk)
            heads = _to_smpl_frame(out["rest_bone_heads"])
            joints = joints_from_heads(heads)
            tails = _distal_tails(_to_smpl_frame(out["rest_vertices"]), joints, weights)
            rots = torch.eye(3, dtype=joints.dtype).repeat(joints.shape[0], NUM_JOINTS, 1, 1)
            arm = _straighten_arms(torch.cat([joints[:, :22], joints[:, [LEFT_HAND + 3, RIGHT_HAND + 3]]], dim=1))
            rots[:, :22] = arm[:, :22]
            rots = _flat_hand_rotations(joints, tails, rots)
            posed_heads, _, _ = _skin(heads, joints, head_weights, rots)
            posed_tails, _, _ = _skin(tails, joints, tail_weights, rots)
            verts, posed_joints, _ = _skin(_to_smpl_frame(out["rest_vertices"]), joints, weights, rots)
            all_verts.append(verts)
            all_joints.append(posed_joints)
            all_heads.append(posed_heads)
            all_tails.append(posed_tails)
    verts = torch.cat(all_verts).numpy()
    joints = torch.cat(all_joints).numpy()
    offset = joints[:, :1, :].copy()
    verts, joints = verts - offset, joints - offset
    heads = torch.cat(all_heads).numpy() - offset
    tails = torch.cat(all_tails).numpy() - offset

    say("hand shape space and joint regressor")
    S = verts.shape[0]
    body = ~hand
    v_template = base["v_template"].astype(np.float64).copy()
    shapedirs = base["shapedirs"].astype(np.float64).copy()  # (V,3,10)
    # Each sample's betas: least squares of its body (non-hand) vertices on the 24-joint basis.
    basis = shapedirs[body].reshape(-1, NUM_BETAS)
    betas = np.linalg.lstsq(basis, (verts[:, body] - v_template[body]).reshape(S, -1).T, rcond=None)[0].T
    body_err = np.abs(verts[:, body] - v_template[body] - np.einsum("vcb,sb->svc", shapedirs[body], betas)).max()
    design = np.column_stack([np.ones(S), betas])
    coef = np.linalg.lstsq(design, verts[:, hand].reshape(S, -1), rcond=None)[0]  # (11, 3H)
    v_template[hand] = coef[0].reshape(-1, 3)
    shapedirs[hand] = coef[1:].reshape(NUM_BETAS, -1, 3).transpose(1, 2, 0)
    hand_err = np.abs(verts[:, hand] - v_template[hand] - np.einsum("vcb,sb->svc", shapedirs[hand], betas))

    # Joint regressor: the 24-joint rows where they read no hand vertex, refitted elsewhere.
    J_regressor = np.zeros((NUM_JOINTS, V))
    J_regressor[:22] = base["J_regressor"][:22]
    refit = [j for j in range(NUM_JOINTS) if j >= 22 or np.any(J_regressor[j, hand] != 0)]
    split = int(0.8 * S)
    held_out = _fit_joint_regressor(verts[:split], joints[:split, refit], v_template)
    regressed = np.einsum("jv,svc->sjc", held_out, verts[split:])
    joint_err = np.linalg.norm(regressed - joints[split:, refit], axis=-1)
    J_regressor[refit] = _fit_joint_regressor(verts, joints[:, refit], v_template)

    # Finger joints for keypoints: blends of only the vertices that move (nearly) rigidly with
    # the joint (skinning weight > RIGID_WEIGHT on it; too few: on it or on its parent), so the blend stays on the joint when the finger curls (a blend
    # of the skin around the joint, like J_regressor's rows, drifts 1.5-3 cm in a fist).
    hand_regressor = np.zeros((NUM_JOINTS - 22, V))
    rigid_err = []
    for j in range(22, NUM_JOINTS):
        cand = np.nonzero(weights[:, j].numpy() > RIGID_WEIGHT)[0]
        if len(cand) < 10:  # the joint is also the pivot of its parent's rigid part
            cand = np.union1d(cand, np.nonzero(weights[:, PARENTS[j]].numpy() > RIGID_WEIGHT)[0])
        n = len(cand)
        A = verts[:, cand, :].transpose(0, 2, 1).reshape(S * 3, n)
        b = joints[:, j, :].reshape(S * 3)
        A2 = np.vstack([A, 100.0 * np.ones((1, n)), 1e-2 * np.eye(n)])
        b2 = np.concatenate([b, [100.0], 1e-2 * np.ones(n) / n])
        hand_regressor[j - 22, cand] = np.linalg.lstsq(A2, b2, rcond=None)[0]
        rigid_err.append(np.linalg.norm(np.einsum("v,svc->sc", hand_regressor[j - 22], verts) - joints[:, j], axis=-1))
    rigid_err = np.stack(rigid_err)

    # Landmarks: the 24-joint ones re-picked on the flat hands, plus the fingertips.
    mean_heads, mean_tails = heads.mean(0), tails.mean(0)
    names, ids = [], []
    for side, s in (("left", "L"), ("right", "R")):
        for name, bone in (("pinky", "finger5-1"), ("index", "finger2-1"), ("thumb", "finger1-2")):
            names.append(f"{side}_{name}")
            ids.append(int(np.argmin(np.linalg.norm(v_template - mean_heads[labels.index(f"{bone}.{s}")], axis=1))))
    for h, (side, first) in enumerate((("left", LEFT_HAND), ("right", RIGHT_HAND))):
        for f, finger in enumerate(FINGERS):
            j = first + 3 * f + 2  # distal joint
            head, tail = mean_heads[labels.index(finger_bones[15 * h + 3 * f + 2])], mean_tails[j - 22]
            direction = (tail - head) / np.linalg.norm(tail - head)
            on_bone = np.nonzero(weights[:, j].numpy() > 0.5)[0]
            along = (v_template[on_bone] - head) @ direction
            names.append(f"{side}_{finger}_tip")
            ids.append(int(on_bone[np.argmax(along)]))

    names52 = list(JOINT_NAMES[:22]) + list(JOINT_NAMES[25:55])
    meta = json.loads(str(base["meta_json"]))
    meta.update(
        source="anny-hands", build_version=ANNY_HANDS_BUILD_VERSION, anny_build_version=ANNY_BUILD_VERSION,
        joint_names=names52, hand_vertices=int(hand.sum()),
        body_vertices_max_shape_error_mm=float(body_err * 1000),
        hand_vertices_max_shape_error_mm=float(hand_err.max() * 1000),
        hand_vertices_mean_shape_error_mm=float(hand_err.mean() * 1000),
        refit_joints=refit,
        joint_regressor_heldout_error_mm_max=float(joint_err.max() * 1000),
        joint_regressor_heldout_error_mm_mean=float(joint_err.mean() * 1000),
        hand_joint_regressor_error_mm_max=float(rigid_err.max() * 1000),
        hand_joint_regressor_error_mm_mean=float(rigid_err.mean() * 1000),
    )  # fmt: skip
    parents = [2**32 - 1] + PARENTS[1:]
    return {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((V, 3, 9 * (NUM_JOINTS - 1)), dtype=np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.numpy().astype(np.float32),
        "kintree_table": np.array([parents, list(range(NUM_JOINTS))], dtype=np.int64),
        "f": base["f"],
        "hands_componentsl": np.eye(45, dtype=np.float32),
        "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": np.zeros(45, dtype=np.float32),
        "hands_meanr": np.zeros(45, dtype=np.float32),
        "coco_regressor": base["coco_regressor"],
        "coco_regressor_labels": base["coco_regressor_labels"],
        "hand_joint_regressor": hand_regressor.astype(np.float32),
        "landmark_names": np.array(names),
        "landmark_vertex_ids": np.array(ids, dtype=np.int64),
        "meta_json": np.array(json.dumps(meta)),
    }


def load_or_build_anny_hands(gender: str = "neutral", rebuild: bool = False, progress=None) -> tuple[dict, Path]:
    """The cached SMPL-H-layout arrays of `anny-hands` for `gender`, building them on first use
    (compressed: the posedirs are 75 MB of zeros)."""
    return load_or_build_cached(anny_hands_cache_path(gender), lambda: build_anny_hands_arrays(gender, progress=progress),
                                f"anny-hands ({gender})", rebuild, progress, compress=True)  # fmt: skip
