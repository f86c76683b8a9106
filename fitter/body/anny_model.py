"""Build the free default body model `anny` in SMPL layout from the `anny` package (Apache-2.0).

anny (NAVER LABS, MakeHuman-based) has a 104-bone rig, 13,718 vertices and phenotype sliders,
rests in an A-pose, Z up, facing -Y. We convert it once into exactly what an SMPL file holds,
so the rest of fitter cannot tell the two apart:

* frame: metres, Y up, facing +Z (anny (x, y, z) -> (x, z, -y)); the person's left is +X;
* SMPL's 24-joint tree; joint locations at anny bone heads (BONE_FOR_JOINT below);
* skinning weights: anny's 104 bone weights summed onto the 24 joints (JOINT_FOR_BONE);
* rest pose re-posed to SMPL's T-pose: upper arm, forearm and hand straightened along +-X by
  minimal rotations at shoulder, elbow and wrist, so a pose vector means the same for `anny`
  and SMPL;
* 10 shape coefficients: PCA of T-posed rest meshes of adults sampled from anny's phenotype
  distribution, whitened (unit variance like SMPL betas) and rotated inside that 10-d space so
  beta 0 follows body height and beta 1 body weight (positive = taller / heavier);
* a joint regressor (24, V): non-negative weights on nearby vertices, least-squares fitted so
  it reproduces the joints of every sampled shape;
* no pose-corrective blend shapes (posedirs are zeros: anny has none).

The result is cached in $FITTER_HOME/models/ with a key containing the anny version and our
build version, so it is rebuilt when either changes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fitter.body.model import SMPL_JOINT_NAMES, SMPL_PARENTS
from fitter.paths import cache_dir, configure_third_party_caches

__all__ = ["ANNY_BUILD_VERSION", "anny_cache_path", "build_anny_arrays", "load_or_build_anny"]

ANNY_BUILD_VERSION = 1
NUM_BETAS = 10

# SMPL joint -> anny bone whose head is the joint's location (checked visually, see README).
BONE_FOR_JOINT = {
    0: "root", 1: "upperleg01.L", 2: "upperleg01.R", 3: "spine04", 4: "lowerleg01.L",
    5: "lowerleg01.R", 6: "spine02", 7: "foot.L", 8: "foot.R", 9: "spine01", 10: "toe*-1.L",
    11: "toe*-1.R", 12: "neck01", 13: "clavicle.L", 14: "clavicle.R", 15: "head",
    16: "upperarm01.L", 17: "upperarm01.R", 18: "lowerarm01.L", 19: "lowerarm01.R",
    20: "wrist.L", 21: "wrist.R", 22: "finger3-1.L", 23: "finger3-1.R",
}  # fmt: skip


def joint_for_bone(bone: str) -> int:
    """The SMPL joint whose rotation drives anny bone `bone` (its skinning weight goes there)."""
    side = bone[-1] if bone[-2:] in (".L", ".R") else ""
    left = side == "L"
    base = bone[:-2] if side else bone
    if base in ("root", "pelvis", "spine05"):
        return 0
    if base in ("spine04", "spine03"):
        return 3
    if base == "spine02":
        return 6
    if base == "spine01":
        return 9
    if base.startswith("neck"):
        return 12
    if base in ("head", "eye", "jaw") or base.startswith(("tongue", "special", "oris", "levator", "temporalis")):
        return 15
    table = {
        "clavicle": (13, 14), "shoulder01": (13, 14), "upperarm01": (16, 17), "upperarm02": (16, 17),
        "lowerarm01": (18, 19), "lowerarm02": (18, 19), "wrist": (20, 21), "upperleg01": (1, 2),
        "upperleg02": (1, 2), "lowerleg01": (4, 5), "lowerleg02": (4, 5), "foot": (7, 8),
    }  # fmt: skip
    if base in table:
        return table[base][0 if left else 1]
    if base.startswith("metacarpal"):
        return 20 if left else 21
    if base.startswith("finger"):
        return 22 if left else 23
    if base.startswith("toe"):
        return 10 if left else 11
    raise ValueError(f"anny bone {bone!r} has no SMPL joint mapping; update fitter.body.anny_model")


def anny_cache_path(gender: str = "neutral") -> Path:
    """Where the built model for `gender` is cached (depends on anny's version and ours)."""
    import importlib.metadata

    version = importlib.metadata.version("anny")
    return cache_dir("models") / f"anny_{gender}_v{ANNY_BUILD_VERSION}_anny{version}.npz"


def _to_smpl_frame(x: torch.Tensor) -> torch.Tensor:
    """anny frame (Z up, facing -Y) -> SMPL frame (Y up, facing +Z): (x, y, z) -> (x, z, -y)."""
    return torch.stack([x[..., 0], x[..., 2], -x[..., 1]], dim=-1)


def _minimal_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(S,3),(S,3) unit vectors -> (S,3,3) the smallest rotation taking a onto b."""
    from fitter.geometry import axis_angle_to_matrix

    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    return axis_angle_to_matrix(axis / sin.clamp(min=1e-9) * angle)


def _straighten_arms(joints: torch.Tensor) -> torch.Tensor:
    """Local rotations (S,24,3,3) that turn anny's A-pose into SMPL's T-pose.

    For each side, shoulder, elbow and wrist get the minimal rotation that lays the next
    segment (upper arm, forearm, hand) along +X (left) / -X (right), applied down the chain.
    """
    S = joints.shape[0]
    rots = torch.eye(3, dtype=joints.dtype).repeat(S, 24, 1, 1)
    for chain, target in (((16, 18, 20, 22), 1.0), ((17, 19, 21, 23), -1.0)):
        goal = torch.tensor([target, 0.0, 0.0], dtype=joints.dtype).expand(S, 3)
        world = torch.eye(3, dtype=joints.dtype).repeat(S, 1, 1)  # accumulated world rotation
        for j, child in zip(chain[:-1], chain[1:]):
            seg = world @ (joints[:, child] - joints[:, j])[..., None]
            seg = seg[..., 0] / seg[..., 0].norm(dim=-1, keepdim=True)
            align = _minimal_rotation(seg, goal)
            rots[:, j] = world.transpose(1, 2) @ align @ world  # local = W^T R W
            world = align @ world
    return rots


def _skin(vertices, joints, weights, rotmats):
    """Pose (S,V,3) rest vertices with SMPL-tree LBS; returns posed vertices and joints."""
    from smplx.lbs import batch_rigid_transform

    parents = torch.tensor(SMPL_PARENTS)
    posed_joints, A = batch_rigid_transform(rotmats, joints, parents, dtype=joints.dtype)
    T = torch.einsum("vj,sjab->svab", weights, A)
    posed = torch.einsum("svab,svb->sva", T[..., :3, :3], vertices) + T[..., :3, 3]
    return posed, posed_joints


def _sample_phenotypes(model, n: int, gender: str, generator: torch.Generator):
    """Adult phenotypes (age 18-70 morphological years) from anny's shape distribution."""
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    low, high = {"male": (0.0, 0.1), "female": (0.9, 1.0)}.get(gender, (0.0, 1.0))  # anny: 0 male, 1 female
    dist = SimpleShapeDistribution(
        model,
        morphological_age_distribution=torch.distributions.Uniform(
            torch.tensor(18.0, dtype=model.dtype), torch.tensor(70.0, dtype=model.dtype)
        ),
        gender_distribution=torch.distributions.Uniform(
            torch.tensor(low, dtype=model.dtype), torch.tensor(high, dtype=model.dtype)
        ),
    )
    _, phen = dist.sample(n)
    return phen


def _fit_joint_regressor(
    verts: np.ndarray, joints: np.ndarray, mean_verts: np.ndarray, num_candidates: int = 500, ridge: float = 1e-4
) -> np.ndarray:
    """Joint regressor (J,V) from (S,V,3) meshes and (S,J,3) joints (J = 24 here, 52 for anny-hands).

    Per joint: least squares over the `num_candidates` nearest vertices of the mean mesh, with a
    hard-weighted sum-to-one row (translation invariance) and a small ridge towards uniform
    weights. Weights may be negative (unlike SMPL's), which is what reproduces anny's joints to
    ~2 mm on held-out shapes; a non-negative fit (scipy nnls) stayed at 1-3.5 cm.
    """
    S, V, _ = verts.shape
    reg = np.zeros((joints.shape[1], V))
    mean_joints = joints.mean(0)
    for j in range(joints.shape[1]):
        cand = np.argsort(np.linalg.norm(mean_verts - mean_joints[j], axis=1))[:num_candidates]
        n = len(cand)
        A = verts[:, cand, :].transpose(0, 2, 1).reshape(S * 3, n)
        b = joints[:, j, :].reshape(S * 3)
        A = np.vstack([A, 100.0 * np.ones((1, n)), np.sqrt(ridge) * np.eye(n)])
        b = np.concatenate([b, [100.0], np.sqrt(ridge) * np.ones(n) / n])
        reg[j, cand] = np.linalg.lstsq(A, b, rcond=None)[0]
    return reg


def build_anny_arrays(
    gender: str = "neutral",
    num_samples: int = 300,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Build the SMPL-layout arrays (v_template, shapedirs, posedirs, J_regressor, weights,
    kintree_table, f, plus anny's COCO keypoint regressor `coco_regressor` (23,V) and its
    labels) for `gender` in {"neutral", "male", "female"}."""
    configure_third_party_caches()
    say = progress or (lambda msg: None)
    say("loading anny (first use compiles and caches it: ~2 min)")
    import anny

    model = anny.Anny().to(torch.float64)
    labels = list(model.bone_labels)
    gen = torch.Generator().manual_seed(seed)

    # Skinning weights: anny's 9 influences per vertex summed onto the 24 SMPL joints.
    bone_to_joint = torch.tensor([joint_for_bone(b) for b in labels])
    V = model.template_vertices.shape[0]
    weights = torch.zeros(V, 24, dtype=torch.float64)
    weights.scatter_add_(1, bone_to_joint[model.vertex_bone_indices.long()], model.vertex_bone_weights.double())
    weights = weights / weights.sum(1, keepdim=True)

    def joints_from_heads(heads: torch.Tensor) -> torch.Tensor:
        out = []
        for j in range(24):
            name = BONE_FOR_JOINT[j]
            if "*" in name:
                side = name[-2:]
                ids = [labels.index(f"toe{k}-1{side}") for k in range(1, 6)]
                out.append(heads[:, ids].mean(1))
            else:
                out.append(heads[:, labels.index(name)])
        return torch.stack(out, dim=1)

    say(f"sampling {num_samples} adult {gender} bodies")
    phen = _sample_phenotypes(model, num_samples, gender, gen)
    all_verts, all_joints, all_heads = [], [], []
    head_weights = torch.nn.functional.one_hot(bone_to_joint, 24).double()  # bone heads move rigidly
    with torch.no_grad():
        for start in range(0, num_samples, 50):
            chunk = {k: v[start : start + 50] for k, v in phen.items()}
            out = model(phenotype_kwargs=chunk)
            verts = _to_smpl_frame(out["rest_vertices"])
            joints = joints_from_heads(_to_smpl_frame(out["rest_bone_heads"]))
            rots = _straighten_arms(joints)
            heads, _ = _skin(_to_smpl_frame(out["rest_bone_heads"]), joints, head_weights, rots)
            verts, joints = _skin(verts, joints, weights, rots)
            all_heads.append(heads)
            all_verts.append(verts)
            all_joints.append(joints)
    verts = torch.cat(all_verts).numpy()
    joints = torch.cat(all_joints).numpy()
    # Centre every sample on its pelvis joint in x/z and on the mean pelvis height: shape must
    # not move the body around (translation is the camera's job).
    offset = joints[:, :1, :].copy()
    verts = verts - offset
    joints = joints - offset
    heads = torch.cat(all_heads).numpy() - offset

    say("shape space (PCA) and joint regressor")
    S = verts.shape[0]
    flat = verts.reshape(S, -1)
    mean = flat.mean(0)
    U, sing, Vt = np.linalg.svd(flat - mean, full_matrices=False)
    std = sing[:NUM_BETAS] / np.sqrt(S - 1)
    basis = Vt[:NUM_BETAS] * std[:, None]  # (10, 3V): unit-variance coefficients
    z = U[:, :NUM_BETAS] * np.sqrt(S - 1)  # whitened coordinates of the samples, (S,10)
    # Rotate the whitened space so axis 0 follows height, axis 1 body weight (orthogonal: betas
    # stay unit-variance and uncorrelated).
    height = verts[:, :, 1].max(1) - verts[:, :, 1].min(1)
    weight_pheno = phen["weight"].numpy()
    dirs = []
    for target in (height, weight_pheno):
        coef, *_ = np.linalg.lstsq(z, target - target.mean(), rcond=None)
        for d in dirs:
            coef = coef - (coef @ d) * d
        dirs.append(coef / np.linalg.norm(coef))
    Q, _ = np.linalg.qr(np.column_stack(dirs + [np.eye(NUM_BETAS)[:, i] for i in range(NUM_BETAS)])[:, :NUM_BETAS])
    for k, d in enumerate(dirs):
        if Q[:, k] @ d < 0:
            Q[:, k] = -Q[:, k]
    basis = Q.T @ basis
    v_template = mean.reshape(V, 3)
    shapedirs = basis.reshape(NUM_BETAS, V, 3).transpose(1, 2, 0)
    # Held-out check of the joint regressor (fit on 80 %, test on 20 %), then fit on all.
    split = int(0.8 * S)
    held_out = _fit_joint_regressor(verts[:split], joints[:split], v_template)
    regressed = np.einsum("jv,svc->sjc", held_out, verts[split:])
    joint_err = np.linalg.norm(regressed - joints[split:], axis=-1)
    J_regressor = _fit_joint_regressor(verts, joints, v_template)

    # Surface landmarks that COCO's regressor lacks (BlazePose's hand points): the template
    # vertex nearest to the mean T-posed bone head.
    mean_heads = heads.mean(0)
    landmark_names, landmark_ids = [], []
    for side, s in (("left", "L"), ("right", "R")):
        for name, bone in (("pinky", "finger5-1"), ("index", "finger2-1"), ("thumb", "finger1-2")):
            point = mean_heads[labels.index(f"{bone}.{s}")]
            landmark_names.append(f"{side}_{name}")
            landmark_ids.append(int(np.argmin(np.linalg.norm(v_template - point, axis=1))))
    kp = anny.KeypointsRegressor.coco(model)
    faces = model.get_triangular_faces().cpu().numpy().astype(np.int64)
    meta = {
        "source": "anny",
        "anny_version": anny.__version__,
        "build_version": ANNY_BUILD_VERSION,
        "gender": gender,
        "num_samples": num_samples,
        "seed": seed,
        "joint_regressor_heldout_error_mm_max": float(joint_err.max() * 1000),
        "joint_regressor_heldout_error_mm_mean": float(joint_err.mean() * 1000),
        "shape_explained_variance": float((sing[:NUM_BETAS] ** 2).sum() / (sing**2).sum()),
        "joint_names": SMPL_JOINT_NAMES,
    }
    return {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((V, 3, 207), dtype=np.float32),
        "J_regressor": J_regressor.astype(np.float32),
        "weights": weights.numpy().astype(np.float32),
        "kintree_table": np.array([[2**32 - 1] + SMPL_PARENTS[1:], list(range(24))], dtype=np.int64),
        "f": faces,
        "coco_regressor": kp.regression_weights.double().numpy().astype(np.float32),
        "coco_regressor_labels": np.array(kp.labels),
        "landmark_names": np.array(landmark_names),
        "landmark_vertex_ids": np.array(landmark_ids, dtype=np.int64),
        "meta_json": np.array(json.dumps(meta)),
    }


def load_or_build_cached(path: Path, build, label: str, rebuild: bool = False, progress=None,
                         compress: bool = False) -> tuple[dict, Path]:  # fmt: skip
    """The arrays cached at `path`, or `build()`'s, saved there atomically (timed; progress(label ...))."""
    from fitter.io.atomic import atomic_save_npz

    if path.exists() and not rebuild:
        return dict(np.load(path, allow_pickle=False)), path
    start = time.perf_counter()
    arrays = build()
    atomic_save_npz(path, compress=compress, **arrays)
    if progress:
        progress(f"built {label} in {time.perf_counter() - start:.0f} s -> {path}")
    return arrays, path


def load_or_build_anny(gender: str = "neutral", rebuild: bool = False, progress=None) -> tuple[dict, Path]:
    """The cached SMPL-layout arrays of `anny` for `gender`, building them on first use."""
    return load_or_build_cached(anny_cache_path(gender), lambda: build_anny_arrays(gender, progress=progress),
                                f"anny ({gender})", rebuild, progress)  # fmt: skip
