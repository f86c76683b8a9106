"""Test utility: SMPL / SMPL-H / SMPL-X model files in the official layouts, with small random data.

The licensed model files never enter the repository; these stand-ins have the same keys, shapes
and pickle encoding (protocol 2, arrays as chumpy objects, J_regressor as a scipy csc matrix, the
root parent written as 4294967295) but only a few hundred vertices. The chumpy references are
real: while pickling, fake modules `chumpy` / `chumpy.ch` with a class `Ch` are placed in
sys.modules and removed again right after, so loading them proves no chumpy is needed.

Also: `smplx_reference`, the matching smplx 0.1.28 module, for comparing forward passes.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.sparse

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
ROOT_PARENT = 4294967295  # how the official kintree_table stores the root's parent (uint32 -1)
NUM_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
# Index of the left / right middle1 joint in each model's own joint order (fitter's SMPL 22 / 23).
MIDDLE1_JOINTS = {"smplh": (25, 40), "smplx": (28, 43)}


def _hand_parents(wrist: int, first: int) -> list[int]:
    """Parents of 15 hand joints (5 fingers x 3, in smplx's index/middle/pinky/ring/thumb order)."""
    parents = []
    for finger in range(5):
        base = first + 3 * finger
        parents += [wrist, base, base + 1]
    return parents


def model_parents(model_type: str) -> list[int]:
    """Kinematic tree of `model_type` (parent per joint, -1 for the root)."""
    body = SMPL_PARENTS[:22]
    if model_type == "smpl":
        return list(SMPL_PARENTS)
    if model_type == "smplh":
        return body + _hand_parents(20, 22) + _hand_parents(21, 37)
    if model_type == "smplx":
        return body + [15, 15, 15] + _hand_parents(20, 25) + _hand_parents(21, 40)
    raise ValueError(f"unknown model type {model_type!r}")


def random_model_arrays(model_type: str = "smpl", num_vertices: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Plain-numpy arrays of a small random model in the official layout of `model_type`.

    Shapes: v_template (V,3) metres; shapedirs (V,3,10) (SMPL-X: (V,3,20), 10 shape + 10
    expression); posedirs (V,3,9*(J-1)); J_regressor (J,V) dense (rows sum to 1); weights (V,J)
    (rows sum to 1); kintree_table (2,J) int64 with ROOT_PARENT at [0,0]; f (2V,3) int64. SMPL-H/X
    add hands_componentsl/r (45,45), hands_meanl/r (45,); SMPL-X adds the landmark arrays.
    """
    rng = np.random.default_rng(seed)
    num_joints = NUM_JOINTS[model_type]
    V = num_vertices
    v_template = rng.uniform([-0.4, -1.0, -0.15], [0.4, 0.7, 0.15], size=(V, 3))
    num_shape = 20 if model_type == "smplx" else 10
    shapedirs = rng.normal(scale=0.01, size=(V, 3, num_shape))
    posedirs = rng.normal(scale=0.002, size=(V, 3, 9 * (num_joints - 1)))
    J_regressor = np.zeros((num_joints, V))
    for j in range(num_joints):  # each joint: a convex blend of 8 vertices
        ids = rng.choice(V, size=8, replace=False)
        J_regressor[j, ids] = rng.dirichlet(np.ones(8))
    weights = np.zeros((V, num_joints))
    for v in range(V):  # each vertex: skinned to 3 joints
        ids = rng.choice(num_joints, size=3, replace=False)
        weights[v, ids] = rng.dirichlet(np.ones(3))
    parents = model_parents(model_type)
    kintree_table = np.array([[ROOT_PARENT] + parents[1:], list(range(num_joints))], dtype=np.int64)
    faces = np.stack([rng.choice(V, size=3, replace=False) for _ in range(2 * V)]).astype(np.int64)
    arrays = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": kintree_table,
        "f": faces,
    }
    if model_type in ("smplh", "smplx"):
        for side in "lr":
            arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            arrays[f"hands_mean{side}"] = rng.normal(scale=0.3, size=45)
    if model_type == "smplx":
        arrays["lmk_faces_idx"] = rng.integers(0, len(faces), size=51).astype(np.int64)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
        arrays["dynamic_lmk_faces_idx"] = rng.integers(0, len(faces), size=(79, 17)).astype(np.int64)
        arrays["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=(79, 17))
    float_keys = [k for k, a in arrays.items() if a.dtype.kind == "f"]
    return {k: (a.astype(np.float32) if k in float_keys else a) for k, a in arrays.items()}


@contextlib.contextmanager
def fake_chumpy() -> Iterator[type]:
    """Temporarily register modules `chumpy` and `chumpy.ch` with a class `Ch` (pickles as
    `chumpy.ch.Ch` with a state dict whose 'x' is the array); removed again on exit."""
    package = types.ModuleType("chumpy")
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

        def __getstate__(self) -> dict:
            return {"x": self.x, "_dirty_vars": set(), "dterms": ()}

        def __setstate__(self, state: dict) -> None:
            self.__dict__.update(state)

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    module.Ch = Ch
    package.ch = module
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"] = package
    sys.modules["chumpy.ch"] = module
    try:
        yield Ch
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def write_model_pickle(arrays: dict[str, np.ndarray], path: str | Path, chumpy: bool = True) -> Path:
    """Write `arrays` as an official-style model .pkl (protocol 2).

    With `chumpy`, v_template, shapedirs, posedirs, weights and J (the rest joints) are chumpy
    objects, as in the original SMPL / SMPL-H downloads; J_regressor is a csc matrix whose class
    is referenced under its old module name `scipy.sparse.csc`; bs_type / bs_style strings are added.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content: dict[str, object] = dict(arrays)
    content["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"].astype(np.float64))
    content["bs_type"] = "lrotmin"
    content["bs_style"] = "lbs"
    with contextlib.ExitStack() as stack:
        if chumpy:
            Ch = stack.enter_context(fake_chumpy())
            content["J"] = Ch(arrays["J_regressor"].astype(np.float64) @ arrays["v_template"].astype(np.float64))
            for key in ("v_template", "shapedirs", "posedirs", "weights"):
                content[key] = Ch(arrays[key].astype(np.float64))
        data = pickle.dumps(content, protocol=2)
    data = data.replace(b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n")  # the name 2014-era pickles use
    path.write_bytes(data)
    return path


def write_model_npz(arrays: dict[str, np.ndarray], path: str | Path, compressed: bool = False) -> Path:
    """Write `arrays` as a model .npz (as SMPL-X / AMASS ship them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def small_vertex_ids(num_vertices: int) -> dict[str, int]:
    """smplx's extra-joint vertex table with every id folded into [0, num_vertices)."""
    from smplx.vertex_ids import vertex_ids

    return {name: int(vid) % num_vertices for name, vid in vertex_ids["smplh"].items()}


def smplx_reference(model_type: str, arrays: dict[str, np.ndarray], npz_path: str | Path, batch_size: int = 1):
    """The smplx 0.1.28 module for the same data (hand mean pose used, full hand rotations).

    SMPL / SMPL-H are built from a Struct of `arrays`; SMPL-X reads `npz_path` itself. The extra
    vertex joints smplx appends use ids folded into the small mesh (they are not compared).
    """
    import contextlib as _contextlib
    import io

    import smplx
    from smplx.utils import Struct
    from smplx.vertex_joint_selector import VertexJointSelector

    small_ids = small_vertex_ids(arrays["v_template"].shape[0])
    with _contextlib.redirect_stdout(io.StringIO()):  # smplx prints beta-count warnings
        if model_type == "smpl":
            return smplx.SMPL(str(npz_path), data_struct=Struct(**arrays), vertex_ids=small_ids, batch_size=batch_size)
        if model_type == "smplh":
            return smplx.SMPLH(
                str(npz_path), data_struct=Struct(**arrays), vertex_ids=small_ids, use_pca=False,
                flat_hand_mean=False, batch_size=batch_size,
            )  # fmt: skip
        model = smplx.SMPLX(str(npz_path), ext="npz", use_pca=False, flat_hand_mean=False, batch_size=batch_size)
    model.vertex_joint_selector = VertexJointSelector(vertex_ids=small_ids)  # smplx's ids exceed V
    return model


# Rest (T-pose) joints of a roughly SMPL-sized adult, metres, Y up, facing +Z, feet at y = 0.
BODY_REST_JOINTS = np.array([
    [0.0, 0.95, 0.0], [0.08, 0.87, 0.0], [-0.08, 0.87, 0.0], [0.0, 1.06, -0.02], [0.1, 0.5, 0.01],
    [-0.1, 0.5, 0.01], [0.0, 1.19, -0.01], [0.11, 0.08, -0.03], [-0.11, 0.08, -0.03], [0.0, 1.25, 0.0],
    [0.12, 0.02, 0.1], [-0.12, 0.02, 0.1], [0.0, 1.47, -0.01], [0.08, 1.39, -0.01], [-0.08, 1.39, -0.01],
    [0.0, 1.56, 0.02], [0.18, 1.41, -0.02], [-0.18, 1.41, -0.02], [0.44, 1.41, -0.03], [-0.44, 1.41, -0.03],
    [0.68, 1.41, -0.02], [-0.68, 1.41, -0.02], [0.77, 1.41, -0.02], [-0.77, 1.41, -0.02],
])  # fmt: skip
# Where smplx's SMPL surface points sit: (SMPL joint they ride on, offset from it in metres).
SURFACE_POINTS = {
    "nose": (15, (0.0, 0.0, 0.11)), "leye": (15, (0.03, 0.03, 0.09)), "reye": (15, (-0.03, 0.03, 0.09)),
    "lear": (15, (0.075, 0.0, 0.0)), "rear": (15, (-0.075, 0.0, 0.0)),
    "LBigToe": (10, (0.0, -0.02, 0.08)), "LSmallToe": (10, (0.05, -0.02, 0.06)), "LHeel": (7, (0.0, -0.08, -0.06)),
    "RBigToe": (11, (0.0, -0.02, 0.08)), "RSmallToe": (11, (-0.05, -0.02, 0.06)), "RHeel": (8, (0.0, -0.08, -0.06)),
}  # fmt: skip
for _side, _hand, _sign in (("l", 22, 1.0), ("r", 23, -1.0)):
    for _k, _finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        SURFACE_POINTS[_side + _finger] = (_hand, (_sign * 0.09, 0.0, 0.04 - 0.02 * _k))


def body_like_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A 6,890-vertex SMPL-layout model shaped like a stick figure of an adult (BODY_REST_JOINTS).

    Each joint j is regressed from one anchor vertex (id j) placed on it; the vertex ids smplx
    uses for SMPL's face / feet / fingertip points (vertex_ids['smplh']) sit at SURFACE_POINTS
    and are skinned rigidly to their joint; the other vertices are scattered around random
    joints (within 4 cm, never below the floor y = 0). No pose blend shapes.
    """
    from smplx.vertex_ids import vertex_ids

    rng = np.random.default_rng(seed)
    V = 6890
    owner = rng.integers(0, 24, size=V)
    owner[:24] = np.arange(24)
    v_template = BODY_REST_JOINTS[owner] + rng.uniform(-0.04, 0.04, size=(V, 3))
    v_template[:24] = BODY_REST_JOINTS
    for name, (joint, offset) in SURFACE_POINTS.items():
        vid = vertex_ids["smplh"][name]
        owner[vid] = joint
        v_template[vid] = BODY_REST_JOINTS[joint] + np.asarray(offset)
    v_template[:, 1] = np.maximum(v_template[:, 1], 0.0)
    weights = np.zeros((V, 24))
    weights[np.arange(V), owner] = 1.0
    J_regressor = np.zeros((24, V))
    J_regressor[np.arange(24), np.arange(24)] = 1.0
    faces = np.stack([rng.choice(V, size=3, replace=False) for _ in range(200)]).astype(np.int64)
    return {
        "v_template": v_template.astype(np.float32),
        "shapedirs": rng.normal(scale=0.005, size=(V, 3, 10)).astype(np.float32),
        "posedirs": np.zeros((V, 3, 207), dtype=np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.array([[ROOT_PARENT] + SMPL_PARENTS[1:], list(range(24))], dtype=np.int64),
        "f": faces,
    }


def skeleton_model_arrays(rest_joints: np.ndarray, joint_shapedirs: np.ndarray, model_type: str,
                          tips: dict[str, tuple[np.ndarray, np.ndarray, int]], seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """A stick-figure SMPL-H (52 joints, 6,890 vertices) or SMPL-X (55 joints, 10,475 vertices)
    model file's arrays built on a given SMPL-H skeleton (e.g. anny-hands'): rest_joints (52,3)
    metres, joint_shapedirs (52,3,10); tips: smplx fingertip key ("lindex", ...) -> (position
    (3,), shape directions (3,10), SMPL-H joint it rides on). Vertex j sits on joint j, skinned
    rigidly to it, and J_regressor picks it (exact joints at any pose); the fingertip vertices
    (smplx's ids) sit at the tips; all other vertices on the pelvis. SMPL-X's jaw / eyes (22-24)
    are put on the head, its expression directions and landmark arrays are zeros / random.
    Hands: identity PCA, zero mean (flat)."""
    from smplx.vertex_ids import vertex_ids

    rng = np.random.default_rng(seed)
    tip_joint = {
        key: joint + (3 if model_type == "smplx" and joint >= 22 else 0) for key, (_, _, joint) in tips.items()
    }
    if model_type == "smplx":  # insert jaw, left eye, right eye (parents: head) before the hands
        head = rest_joints[15]
        extra = np.stack([head + [0.0, -0.06, 0.06], head + [0.03, 0.03, 0.08], head + [-0.03, 0.03, 0.08]])
        rest_joints = np.concatenate([rest_joints[:22], extra, rest_joints[22:]])
        extra_dirs = np.repeat(joint_shapedirs[15:16], 3, axis=0)
        joint_shapedirs = np.concatenate([joint_shapedirs[:22], extra_dirs, joint_shapedirs[22:]])
        joint_shapedirs = np.concatenate([joint_shapedirs, np.zeros_like(joint_shapedirs)], axis=2)  # + expression
    num_joints = NUM_JOINTS[model_type]
    assert rest_joints.shape == (num_joints, 3)
    V = 10475 if model_type == "smplx" else 6890
    owner = np.zeros(V, dtype=np.int64)
    owner[:num_joints] = np.arange(num_joints)
    v_template = rest_joints[owner].copy()
    shapedirs = joint_shapedirs[owner].copy()
    for key, (position, directions, _) in tips.items():
        vid = vertex_ids[model_type][key]
        owner[vid] = tip_joint[key]
        v_template[vid] = position
        shapedirs[vid, :, : directions.shape[1]] = directions
    faces = np.stack([rng.choice(num_joints, size=3, replace=False) for _ in range(100)]).astype(np.int64)
    parents = model_parents(model_type)
    J_regressor = np.zeros((num_joints, V))
    J_regressor[np.arange(num_joints), np.arange(num_joints)] = 1.0
    arrays = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((V, 3, 9 * (num_joints - 1))),
        "J_regressor": J_regressor,
        "weights": np.eye(num_joints)[owner],
        "kintree_table": np.array([[ROOT_PARENT] + parents[1:], list(range(num_joints))], dtype=np.int64),
        "f": faces,
    }
    for side in "lr":
        arrays[f"hands_components{side}"] = np.eye(45)
        arrays[f"hands_mean{side}"] = np.zeros(45)
    if model_type == "smplx":
        arrays["lmk_faces_idx"] = rng.integers(0, len(faces), size=51).astype(np.int64)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
        arrays["dynamic_lmk_faces_idx"] = rng.integers(0, len(faces), size=(79, 17)).astype(np.int64)
        arrays["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=(79, 17))
    return {k: (a.astype(np.float32) if a.dtype.kind == "f" else a) for k, a in arrays.items()}


# face51 points (iBUG-68 points 18-68, face51 order) of a stick-figure face, relative to the head
# joint (metres; model frame: x to the subject's left, y up, z forward), and which are on the
# lower lip (skinned to the jaw; the mouth corners half to it).
_BROW = [(0.055, 0.062, 0.080), (0.045, 0.068, 0.088), (0.034, 0.070, 0.094), (0.023, 0.069, 0.098),
         (0.011, 0.066, 0.100)]  # fmt: skip
_EYE = [(0.044, 0.044, 0.085), (0.036, 0.048, 0.088), (0.026, 0.048, 0.090), (0.018, 0.044, 0.090),
        (0.026, 0.040, 0.090), (0.036, 0.040, 0.088)]  # right eye, iBUG order (outer corner first), |x|  # fmt: skip
FACE_POINTS = np.array(
    [(-x, y, z) for x, y, z in _BROW] + [(x, y, z) for x, y, z in reversed(_BROW)]
    + [(0.0, 0.045, 0.098), (0.0, 0.033, 0.103), (0.0, 0.022, 0.108), (0.0, 0.012, 0.114)]
    + [(-0.015, -0.002, 0.098), (-0.008, -0.004, 0.102), (0.0, -0.005, 0.104), (0.008, -0.004, 0.102),
       (0.015, -0.002, 0.098)]
    + [(-x, y, z) for x, y, z in _EYE] + [(x, y, z) for x, y, z in (_EYE[3], _EYE[2], _EYE[1], _EYE[0], _EYE[5], _EYE[4])]
    + [(-0.025, -0.045, 0.090), (-0.016, -0.038, 0.096), (-0.006, -0.035, 0.100), (0.0, -0.036, 0.101),
       (0.006, -0.035, 0.100), (0.016, -0.038, 0.096), (0.025, -0.045, 0.090), (0.016, -0.053, 0.096),
       (0.007, -0.056, 0.099), (0.0, -0.057, 0.100), (-0.007, -0.056, 0.099), (-0.016, -0.053, 0.096)]
    + [(-0.020, -0.045, 0.094), (-0.007, -0.043, 0.099), (0.0, -0.043, 0.100), (0.007, -0.043, 0.099),
       (0.020, -0.045, 0.094), (0.007, -0.047, 0.099), (0.0, -0.047, 0.100), (-0.007, -0.047, 0.099)]
)  # fmt: skip
FACE_JAW_SHARE = np.zeros(51)
FACE_JAW_SHARE[[38, 39, 40, 41, 42, 48, 49, 50]] = 1.0  # lower lip
FACE_JAW_SHARE[[31, 37, 43, 47]] = 0.5  # mouth corners
FACE_JAW_OFFSET = np.array([0.0, -0.005, 0.01])  # the jaw joint from the head joint: ~10 cm behind the lower lip
# smplx's vertex ids of the COCO head points (nose, eyes, ears) and where they go, relative to the head joint
HEAD_POINTS = {"nose": (0.0, 0.012, 0.112), "leye": (0.03, 0.044, 0.09), "reye": (-0.03, 0.044, 0.09),
               "lear": (0.074, 0.025, 0.008), "rear": (-0.074, 0.025, 0.008)}  # fmt: skip


def add_stick_face(arrays: dict[str, np.ndarray], seed: int = 0, expression_scale: float = 0.003,
                   first_vertex: int = 1000) -> dict[str, np.ndarray]:  # fmt: skip
    """A copy of `skeleton_model_arrays(..., "smplx")`'s arrays with a face: the jaw joint moved to
    FACE_JAW_OFFSET from the head, and each face51 point (FACE_POINTS) the blend of a triangle of
    three new vertices (ids from first_vertex) within 1 mm of it, skinned to the head (lower
    lip: to the jaw), moving with the head's shape directions, and with random expression
    directions (expression_scale metres per coefficient, the same for a point's three
    vertices); lmk_faces_idx / lmk_bary_coords point at those triangles; smplx's nose, eye and
    ear vertices (coco17's head points) go to HEAD_POINTS on the head."""
    from smplx.vertex_ids import vertex_ids

    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in arrays.items()}
    head, jaw, num_betas = 15, 22, out["shapedirs"].shape[2] // 2
    ids = np.arange(first_vertex, first_vertex + 3 * 51).reshape(51, 3)
    assert not set(ids.ravel()) & set(vertex_ids["smplx"].values()) and out["weights"][ids.ravel(), 0].all()
    head_rest = out["v_template"][head]
    out["v_template"][jaw] = head_rest + FACE_JAW_OFFSET
    expression = rng.normal(scale=expression_scale, size=(51, 3, num_betas))
    for k in range(51):
        for v in ids[k]:
            out["v_template"][v] = head_rest + FACE_POINTS[k] + rng.uniform(-0.001, 0.001, size=3)
            out["weights"][v] = 0.0
            out["weights"][v, head] = 1.0 - FACE_JAW_SHARE[k]
            out["weights"][v, jaw] = FACE_JAW_SHARE[k]
            out["shapedirs"][v, :, :num_betas] = out["shapedirs"][head, :, :num_betas]
            out["shapedirs"][v, :, num_betas:] = expression[k]
    for key, position in HEAD_POINTS.items():  # coco17's head points
        v = vertex_ids["smplx"][key]
        out["v_template"][v] = head_rest + np.asarray(position)
        out["weights"][v] = np.eye(out["weights"].shape[1])[head]
        out["shapedirs"][v, :, :num_betas] = out["shapedirs"][head, :, :num_betas]
    out["lmk_faces_idx"] = np.arange(len(out["f"]), len(out["f"]) + 51).astype(np.int64)
    out["f"] = np.concatenate([out["f"], ids.astype(np.int64)])
    out["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
    return {k: (a.astype(np.float32) if a.dtype.kind == "f" else a) for k, a in out.items()}
