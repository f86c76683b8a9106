"""Gradient checks of every hand-written autograd Function on the fitting hot path.

`torch.autograd.gradcheck` (double precision: finite differences against the closed-form
backward) on every path of:
  * `_PosedPoints` (fitter.body.posing) through `BodyModel.pose_landmarks`: SMPL-layout models
    (fused Rodrigues) and SMPL-H (generic path, ready local rotations), pointer-jumping and
    level-by-level kinematics, axis-angle / axis-angle + orient_base / matrix roots, with and
    without transl; plus anny at a real levelwise batch (>= LEVELWISE_MIN_BATCH);
  * `_PointerJumping` (`forward_kinematics`, directly and inside `forward_joints`) and the
    levelwise helpers;
  * `_Rodrigues` (`rotation_matrix_rows`), angles at and near 0, near, at and beyond pi;
  * `_JointLimitPenalty` (`joint_limit_penalty`), poses inside and outside the limits.
Where cheap, values and gradients are also compared with plain autograd references: the
full-mesh `BodyModel.forward` (smplx's lbs) fed with rotation matrices from a Rodrigues
written out here, a sequential forward-kinematics loop, and the autograd branch of
`joint_limit_penalty`.

The test models (tests/model_files.py) have their pose blend shapes zeroed: landmarks leave
them out by design, so the landmarks then equal blends of `forward`'s vertices.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from model_files import model_parents, random_model_arrays, write_model_npz
from torch.autograd import gradcheck

import fitter.body.posing as posing
from fitter.body import BodyModel, load_body_model
from fitter.body.posing import (
    _kinematics_vjp,
    _kinematics_with_cache,
    _levelwise_kinematics,
    _levelwise_vjp,
    _tree_levels,
    forward_kinematics,
    pointer_jumping_ancestors,
)
from fitter.geometry import axis_angle_to_matrix
from fitter.geometry.rotations import rotation_matrix_rows
from fitter.keypoints import keypoint_regressor
from priors import joint_limit_bounds, joint_limit_penalty
from priors.joint_limits import angles_to_body_pose

DT = torch.float64
BATCH = 2  # gradcheck batch (small: finite differences cost two forwards per input entry)
NUM_VERTICES = 60
NUM_LANDMARKS = 5


# ----------------------------------------------------------------------- plain references


def _plain_rodrigues(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors (not near zero) -> (..., 3, 3), textbook Rodrigues in plain
    autograd ops: R = I + sin(t) K + (1 - cos t) K^2, K = [v / t]_x."""
    angle = v.norm(dim=-1, keepdim=True)
    k = v / angle
    zero = torch.zeros_like(k[..., 0])
    K = torch.stack([zero, -k[..., 2], k[..., 1], k[..., 2], zero, -k[..., 0], -k[..., 1], k[..., 0], zero], -1)
    K = K.reshape(*v.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return torch.eye(3, dtype=v.dtype) + s * K + (1.0 - c) * (K @ K)


def _sequential_kinematics(local: torch.Tensor, parents: list[int]) -> torch.Tensor:
    """World transforms (J,4,4,B) from local ones (>= J,4,4,B), one joint after another
    (plain autograd; slot J, the identity, is not used)."""
    per_batch = local.permute(3, 0, 1, 2)  # (B,J+1,4,4)
    world = []
    for j, p in enumerate(parents):
        world.append(per_batch[:, j] if p < 0 else world[p] @ per_batch[:, j])
    return torch.stack(world, dim=1).permute(1, 2, 3, 0)


# ----------------------------------------------------------------------- models and inputs


def _double_model(model: BodyModel) -> BodyModel:
    """A float64 copy (`.double()` casts in place; the fixtures are shared)."""
    return copy.deepcopy(model).double()


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BodyModel]:
    """Small random SMPL / SMPL-H models in float64, pose blend shapes zeroed."""
    folder = tmp_path_factory.mktemp("posing_models")
    models = {}
    for kind in ("smpl", "smplh"):
        arrays = random_model_arrays(kind, NUM_VERTICES, seed=5)
        arrays["posedirs"] = 0.0 * arrays["posedirs"]
        models[kind] = load_body_model(write_model_npz(arrays, Path(folder) / f"{kind}.npz")).double()
    assert models["smpl"]._smpl_is_full and not models["smplh"]._smpl_is_full
    return models


def _landmark_blends(model: BodyModel, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """vertex_ids (P,), vertex_weights (K,P) (rows sum to 1), joint_weights (K,24) (sparse)."""
    gen = torch.Generator().manual_seed(seed)
    vertex_ids = torch.randperm(model.num_vertices, generator=gen)[:8]
    vertex_weights = torch.rand(NUM_LANDMARKS, 8, generator=gen, dtype=DT)
    vertex_weights = vertex_weights / vertex_weights.sum(1, keepdim=True)
    joint_weights = torch.zeros(NUM_LANDMARKS, 24, dtype=DT)
    joint_weights[torch.arange(NUM_LANDMARKS), torch.randperm(24, generator=gen)[:NUM_LANDMARKS]] = 0.5
    joint_weights[0, 23] = 0.25  # an SMPL hand joint: a middle1 joint on SMPL-H
    return vertex_ids, vertex_weights, joint_weights


ROOTS = ["axis", "axis+base", "matrix(B,1,3,3)", "matrix(B,3,3)", "pose-matrices"]


def _inputs(batch: int, root: str, with_transl: bool, num_betas: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random leaf inputs of `pose_landmarks` (float64, requires_grad) for one root kind:
    axis: global_orient (B,3); axis+base: plus orient_base (B,3,3); matrix(...): global_orient
    as rotation matrices; pose-matrices: body_pose (B,23,3,3) and global_orient (B,3)."""
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *shape, scale=1.0: scale * torch.randn(*shape, generator=gen, dtype=DT)  # noqa: E731
    inputs = {"betas": randn(batch, num_betas), "body_pose": randn(batch, 69, scale=0.5)}
    orient = randn(batch, 3)
    if root == "pose-matrices":
        inputs["body_pose"] = _plain_rodrigues(inputs["body_pose"].view(batch, 23, 3))
    if root.startswith("matrix"):
        matrices = _plain_rodrigues(orient)
        inputs["global_orient"] = matrices[:, None] if root == "matrix(B,1,3,3)" else matrices
    else:
        inputs["global_orient"] = orient
    if root == "axis+base":
        inputs["orient_base"] = _plain_rodrigues(randn(batch, 3))
    if with_transl:
        inputs["transl"] = randn(batch, 3)
    return {k: v.detach().requires_grad_(True) for k, v in inputs.items()}


def _reference_points(model, blends, betas, body_pose, global_orient, transl=None, orient_base=None):
    """joints (B,24,3) and landmarks (B,K,3) by the full-mesh `forward` (smplx lbs) in plain
    autograd: rotation matrices from `_plain_rodrigues`, landmarks blended from the vertices."""
    vertex_ids, vertex_weights, joint_weights = blends
    bsz = betas.shape[0]
    if body_pose.ndim == 2:
        body_pose = _plain_rodrigues(body_pose.view(bsz, 23, 3))
    if global_orient.ndim == 2:
        global_orient = _plain_rodrigues(global_orient)
        if orient_base is not None:
            global_orient = global_orient @ orient_base
    out = model(betas=betas, body_pose=body_pose, global_orient=global_orient.reshape(bsz, 1, 3, 3), transl=transl)
    landmarks = vertex_weights @ out.vertices[:, vertex_ids] + joint_weights @ out.joints
    return out.joints, landmarks


class _PathSpy:
    """Counts the kinematics backward helpers `_PosedPoints.backward` calls (module globals of
    fitter.body.posing, patched), to prove which path a test exercised."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = {"pointer": 0, "levelwise": 0}

        def counted(name, fn):
            def wrapper(*args):
                self.calls[name] += 1
                return fn(*args)

            return wrapper

        monkeypatch.setattr(posing, "_kinematics_vjp", counted("pointer", posing._kinematics_vjp))
        monkeypatch.setattr(posing, "_levelwise_vjp", counted("levelwise", posing._levelwise_vjp))

    def only(self, path: str) -> bool:
        return self.calls[path] > 0 and all(n == 0 for name, n in self.calls.items() if name != path)


# ----------------------------------------------------------------------- _PosedPoints


@pytest.mark.parametrize("with_transl", [True, False], ids=["transl", "no-transl"])
@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("fk", ["pointer", "levelwise"])
@pytest.mark.parametrize("kind", ["smpl", "smplh"])
def test_pose_landmarks_gradcheck(small_models, monkeypatch, kind, fk, root, with_transl) -> None:
    """_PosedPoints on every path: the fused one (SMPL layout, axis-angle body_pose; root as a
    vector, vector @ orient_base or matrix) and the generic one (SMPL-H, or body_pose given as
    matrices: `rotations` in, autograd through `_local_rotations`); both kinematics schemes
    (levelwise forced at batch 2 by lowering LEVELWISE_MIN_BATCH). Gradients w.r.t. betas,
    body_pose, global_orient, transl and orient_base; values and gradients also equal the
    plain-autograd full-mesh reference."""
    model = small_models[kind]
    monkeypatch.setattr(posing, "LEVELWISE_MIN_BATCH", 1 if fk == "levelwise" else 10**9)
    spy = _PathSpy(monkeypatch)
    blends = _landmark_blends(model)
    skin = model.landmark_skin(*blends)
    inputs = _inputs(BATCH, root, with_transl, model.num_betas)
    names = list(inputs)

    def posed(*tensors):
        return model.pose_landmarks(skin, **dict(zip(names, tensors)))

    assert gradcheck(posed, tuple(inputs.values()), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert spy.only(fk), spy.calls

    # The reference regresses joints in float64; the model's joint-regressor products were
    # formed in float32 at construction (BodyModel casts its inputs), hence ~1e-7 differences.
    joints, landmarks = posed(*inputs.values())
    ref_joints, ref_landmarks = _reference_points(model, blends, **inputs)
    torch.testing.assert_close(joints, ref_joints, atol=1e-6, rtol=0)
    torch.testing.assert_close(landmarks, ref_landmarks, atol=1e-6, rtol=0)
    gen = torch.Generator().manual_seed(7)
    cotangents = tuple(torch.randn(t.shape, generator=gen, dtype=DT) for t in (joints, landmarks))
    grads = torch.autograd.grad((joints, landmarks), tuple(inputs.values()), cotangents)
    ref_grads = torch.autograd.grad((ref_joints, ref_landmarks), tuple(inputs.values()), cotangents)
    for name, grad, ref in zip(names, grads, ref_grads):
        torch.testing.assert_close(grad, ref, atol=1e-6, rtol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_pose_landmarks_partial_requires_grad(small_models, monkeypatch) -> None:
    """Only some inputs require grad (as in fit stages with frozen betas or root): the
    backward's needs_input_grad branches; gradcheck w.r.t. the rest, both kinematics schemes."""
    model = small_models["smpl"]
    skin = model.landmark_skin(*_landmark_blends(model))
    for threshold in (1, 10**9):
        monkeypatch.setattr(posing, "LEVELWISE_MIN_BATCH", threshold)
        inputs = _inputs(BATCH, "axis+base", True, model.num_betas)
        betas, orient_base = inputs["betas"].detach(), inputs["orient_base"].detach()

        def posed(body_pose, global_orient, transl):
            return model.pose_landmarks(skin, betas, body_pose, global_orient, transl, orient_base=orient_base)

        assert gradcheck(posed, (inputs["body_pose"], inputs["global_orient"], inputs["transl"]), atol=1e-6, rtol=1e-4)
        only_betas = lambda b: model.pose_landmarks(skin, b, inputs["body_pose"].detach())  # noqa: E731
        assert gradcheck(only_betas, (inputs["betas"],), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("batch", [3, posing.LEVELWISE_MIN_BATCH], ids=["pointer", "levelwise"])
def test_pose_landmarks_anny_real_paths(anny_model, monkeypatch, batch) -> None:
    """anny (float64 copy) with its COCO-17 skin, the fitter's own setup (orient_base, transl,
    SMPL-joint blends), at the real threshold: batch 3 by pointer jumping, batch
    LEVELWISE_MIN_BATCH level by level. gradcheck (at 48 in fast mode: random projections of
    the ~10^7-entry Jacobian, tight atol since fast mode scales it by sum(u) sum(v)); values
    and gradients equal the plain-autograd full-mesh reference; the two kinematics schemes
    agree to round-off."""
    assert posing.LEVELWISE_MIN_BATCH >= 48  # the threshold the fitter runs with
    model = _double_model(anny_model)
    reg = keypoint_regressor(model, "coco17")
    blends = (reg.vertex_ids, reg.vertex_weights.to(DT), reg.joint_weights.to(DT))
    skin = model.landmark_skin(*blends)
    inputs = _inputs(batch, "axis+base", True, model.num_betas, seed=3)
    names, leaves = list(inputs), tuple(inputs.values())

    def posed(*tensors):
        return model.pose_landmarks(skin, **dict(zip(names, tensors)))

    levelwise = batch >= posing.LEVELWISE_MIN_BATCH
    spy = _PathSpy(monkeypatch)
    if levelwise:
        assert gradcheck(posed, leaves, atol=1e-9, rtol=1e-6, fast_mode=True)
    else:
        assert gradcheck(posed, leaves, atol=1e-6, rtol=1e-4)
    assert spy.only("levelwise" if levelwise else "pointer"), spy.calls

    outputs = posed(*leaves)
    gen = torch.Generator().manual_seed(9)
    cotangents = tuple(torch.randn(t.shape, generator=gen, dtype=DT) for t in outputs)
    grads = torch.autograd.grad(outputs, leaves, cotangents)
    reference = _reference_points(model, blends, **inputs)  # float32-formed joint regressor: ~1e-7 m
    for out, ref in zip(outputs, reference):
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    for name, grad, ref in zip(names, grads, torch.autograd.grad(reference, leaves, cotangents)):
        torch.testing.assert_close(grad, ref, atol=1e-5, rtol=1e-5, msg=lambda m, name=name: f"{name}: {m}")

    monkeypatch.setattr(posing, "LEVELWISE_MIN_BATCH", 1 if not levelwise else 10**9)  # the other scheme
    other = posed(*leaves)
    for out, out_other in zip(outputs, other):
        torch.testing.assert_close(out, out_other, atol=1e-12, rtol=0)
    for name, grad, grad_other in zip(names, grads, torch.autograd.grad(other, leaves, cotangents)):
        torch.testing.assert_close(grad, grad_other, atol=1e-10, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


# ----------------------------------------------------------------------- forward kinematics


def _random_local(parents: list[int], batch: int, seed: int = 0) -> torch.Tensor:
    """(J+1,4,4,B) local transforms: rotations and offsets plus 0.1 noise on every entry
    (bottom row too; slot J too), float64, requires_grad."""
    gen = torch.Generator().manual_seed(seed)
    slots = len(parents) + 1
    local = torch.zeros(slots, batch, 4, 4, dtype=DT)
    local[..., :3, :3] = _plain_rodrigues(torch.randn(slots, batch, 3, generator=gen, dtype=DT))
    local[..., :3, 3] = 0.2 * torch.randn(slots, batch, 3, generator=gen, dtype=DT)
    local[..., 3, 3] = 1.0
    local = local + 0.1 * torch.randn(local.shape, generator=gen, dtype=DT)
    return local.permute(0, 2, 3, 1).contiguous().requires_grad_(True)


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_forward_kinematics_gradcheck(kind) -> None:
    """_PointerJumping on the SMPL (depth 8) and SMPL-X (depth 10: hands, jaw, eyes) trees, 4
    rounds each; arbitrary (non-rigid) local transforms in every slot, the identity slot too."""
    parents = model_parents(kind)
    ancestors = pointer_jumping_ancestors(parents)
    local = _random_local(parents, BATCH)
    assert gradcheck(lambda x: forward_kinematics(x, ancestors), (local,), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["smpl", "smplh"])
def test_forward_joints_gradcheck(small_models, kind) -> None:
    """_PointerJumping in place: `BodyModel.forward_joints` (joints and a vertex subset), whose
    kinematics run through `forward_kinematics` and everything else through plain autograd."""
    model = small_models[kind]
    inputs = _inputs(BATCH, "axis", True, model.num_betas)
    names = list(inputs)
    vertex_ids = torch.tensor([0, 7, 7, NUM_VERTICES - 1])

    def posed(*tensors):
        out = model.forward_joints(**dict(zip(names, tensors)), vertex_ids=vertex_ids)
        return out.joints, out.points

    assert gradcheck(posed, tuple(inputs.values()), atol=1e-6, rtol=1e-4)


class _LevelwiseKinematics(torch.autograd.Function):
    """Test-only autograd wrapper of the levelwise helpers `_PosedPoints` runs at large batches."""

    @staticmethod
    def forward(ctx, local, levels):  # type: ignore[override]
        world = _levelwise_kinematics(local, levels)
        ctx.save_for_backward(local, world)
        ctx.levels = levels
        return world

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        local, world = ctx.saved_tensors
        return _levelwise_vjp(local, world, ctx.levels, grad), None


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_levelwise_kinematics_gradcheck(kind) -> None:
    """`_levelwise_kinematics` / `_levelwise_vjp` (the backward of batches >= 48) directly."""
    parents = model_parents(kind)
    levels = _tree_levels(parents)
    local = _random_local(parents, BATCH, seed=1)
    assert gradcheck(lambda x: _LevelwiseKinematics.apply(x, levels), (local,), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["smpl", "smplh", "smplx"])
def test_kinematics_schemes_equal_sequential_reference(kind) -> None:
    """Both schemes (forward and vector-Jacobian product) equal a joint-by-joint loop in plain
    autograd, with the identity in slot J as the body model builds it."""
    parents = model_parents(kind)
    num_joints = len(parents)
    local = _random_local(parents, 5, seed=2).detach()
    local[num_joints] = torch.eye(4, dtype=DT)[..., None]
    local.requires_grad_(True)
    reference = _sequential_kinematics(local, parents)
    grad_world = torch.randn(num_joints + 1, 4, 4, 5, dtype=DT)
    (ref_grad,) = torch.autograd.grad(reference, local, grad_world[:num_joints])
    ref_grad = ref_grad[:num_joints]  # slot J is a constant to the body model: its gradient is unused

    with torch.no_grad():
        ancestors = tuple(pointer_jumping_ancestors(parents).unbind(0))
        world, cache = _kinematics_with_cache(local, ancestors)
        torch.testing.assert_close(world[:num_joints], reference, atol=1e-12, rtol=0)
        grad = _kinematics_vjp(cache, ancestors, grad_world.clone())
        torch.testing.assert_close(grad[:num_joints], ref_grad, atol=1e-11, rtol=0)
        levels = _tree_levels(parents)
        world = _levelwise_kinematics(local, levels)
        torch.testing.assert_close(world[:num_joints], reference, atol=1e-12, rtol=0)
        grad = _levelwise_vjp(local, world, levels, grad_world)
        torch.testing.assert_close(grad[:num_joints], ref_grad, atol=1e-11, rtol=0)


# ----------------------------------------------------------------------- Rodrigues

_RODRIGUES_ANGLES = [0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.3, 1.7, math.pi - 1e-6, math.pi, math.pi + 1e-3, 4.0,
                     2 * math.pi - 1e-3, 2 * math.pi, 7.5]  # fmt: skip


def _rotation_vectors(angles: list[float], seed: int = 0) -> torch.Tensor:
    """(3,N) rotation vectors of the given angles about random unit axes (float64)."""
    gen = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(3, len(angles), generator=gen, dtype=DT), dim=0)
    return axes * torch.tensor(angles, dtype=DT)


def test_rodrigues_gradcheck() -> None:
    """_Rodrigues: exact zero, tiny angles (inside and just outside the sqrt(eps) clamp), small,
    moderate, pi from below, pi, just beyond, up to and past 2 pi."""
    vectors = _rotation_vectors(_RODRIGUES_ANGLES).requires_grad_(True)
    assert gradcheck(rotation_matrix_rows, (vectors,), atol=1e-7, rtol=1e-5)
    as_matrices = lambda v: axis_angle_to_matrix(v)  # noqa: E731  (the (...,3) front end)
    assert gradcheck(as_matrices, (vectors.detach().T.contiguous().requires_grad_(True),), atol=1e-7, rtol=1e-5)


def test_rodrigues_equals_plain_autograd() -> None:
    """Values and gradients equal the textbook formula in plain autograd (angles >= 1e-3, where
    the textbook form is accurate); at tiny angles R = I + [v]_x + O(t^2) and the gradient
    of sum(G * R) is the axial part of G, as in the first-order form."""
    large = [a for a in _RODRIGUES_ANGLES if a >= 1e-3]
    vectors = _rotation_vectors(large, seed=1).requires_grad_(True)
    rows = rotation_matrix_rows(vectors)
    reference = _plain_rodrigues(vectors.T).reshape(-1, 9).T
    torch.testing.assert_close(rows, reference, atol=1e-14, rtol=0)
    grad = torch.randn(rows.shape, generator=torch.Generator().manual_seed(2), dtype=DT)
    (custom,) = torch.autograd.grad(rows, vectors, grad)
    (plain,) = torch.autograd.grad(reference, vectors, grad)
    torch.testing.assert_close(custom, plain, atol=1e-12, rtol=0)

    tiny = _rotation_vectors([0.0, 1e-12, 1e-9], seed=3).requires_grad_(True)
    rows = rotation_matrix_rows(tiny)
    G = torch.randn(9, 3, generator=torch.Generator().manual_seed(4), dtype=DT)
    (grad,) = torch.autograd.grad(rows, tiny, G)
    g = G.view(3, 3, -1)
    axial = torch.stack([g[2, 1] - g[1, 2], g[0, 2] - g[2, 0], g[1, 0] - g[0, 1]])  # d/dv sum(G * [v]_x)
    torch.testing.assert_close(grad, axial, atol=1e-8, rtol=0)


# ----------------------------------------------------------------------- joint-limit penalty


def _inside_poses(batch: int, seed: int = 0) -> torch.Tensor:
    """(B,69) poses whose limit angles all lie strictly inside their ranges (10% margin)."""
    lower, upper = joint_limit_bounds(DT)
    gen = torch.Generator().manual_seed(seed)
    fraction = 0.1 + 0.8 * torch.rand(batch, 23, 3, generator=gen, dtype=DT)
    return angles_to_body_pose(lower + (upper - lower) * fraction)


def _outside_poses(batch: int, seed: int = 0) -> torch.Tensor:
    """(B,69) random poses, most joints outside their ranges (joint angles under 2.5 rad, away
    from the twist wrap at pi), plus special joints: pure twist past the range with zero swing
    (left hip), a tiny rotation (spine1), exact zero (spine2). No angle sits exactly on a bound:
    there the penalty's second derivative jumps and central differences are off by eps/2."""
    gen = torch.Generator().manual_seed(seed)
    pose = 1.2 * torch.randn(batch, 23, 3, generator=gen, dtype=DT)
    norm = pose.norm(dim=-1, keepdim=True)
    pose = pose * (norm.clamp(max=2.5) / norm)
    pose[:, 0] = torch.tensor([0.0, 1.2, 0.0], dtype=DT)  # left hip (SMPL joint 1): twist 69 deg > 45
    pose[:, 2] = 1e-9  # spine1 (SMPL joint 3)
    pose[:, 5] = 0.0  # spine2 (SMPL joint 6)
    return pose.reshape(batch, 69)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "joint_weights"])
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_joint_limit_penalty_gradcheck(where, weighted) -> None:
    """_JointLimitPenalty: zero value and gradient inside the limits, the quadratic excess
    outside; with and without per-joint weights (constants); values and gradients equal the
    plain-autograd branch `joint_limit_penalty` takes when the weights require grad."""
    pose = (_inside_poses(3) if where == "inside" else _outside_poses(3)).requires_grad_(True)
    weights = 0.5 + torch.rand(23, generator=torch.Generator().manual_seed(1), dtype=DT) if weighted else None
    value = joint_limit_penalty(pose, weights)
    if where == "inside":
        assert value.abs().max().item() == 0.0
    else:
        assert (value > 0.1).all()
    assert gradcheck(lambda p: joint_limit_penalty(p, weights), (pose,), atol=1e-7, rtol=1e-5)

    reference_weights = (torch.ones(23, dtype=DT) if weights is None else weights).clone().requires_grad_(True)
    reference = joint_limit_penalty(pose, reference_weights)  # plain autograd through the same angles
    torch.testing.assert_close(value, reference, atol=1e-12, rtol=1e-12)
    cotangent = torch.rand(3, generator=torch.Generator().manual_seed(2), dtype=DT)
    (custom,) = torch.autograd.grad(value, pose, cotangent)
    (plain,) = torch.autograd.grad(reference, pose, cotangent)
    torch.testing.assert_close(custom, plain, atol=1e-10, rtol=1e-10)
    if where == "inside":
        assert custom.abs().max().item() == 0.0


def test_recompose_subtree_matches_full_kinematics() -> None:
    """Posing only the joints below some roots, the rest given as world transforms, gives the
    full forward kinematics (what the hand solve does with the arms)."""
    from fitter.body.posing import recompose_subtree, subtree_levels

    parents = [-1, 0, 1, 2, 1, 4, 5, 6, 4, 0, 9]
    num = len(parents)
    local = torch.eye(4, dtype=torch.float64).repeat(num + 1, 1, 1)[..., None].repeat(1, 1, 1, 3)
    gen = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(torch.randn(num, 3, 3, generator=gen, dtype=torch.float64))  # (J,B,3,3)
    local[:num, :3, :3] = rot.permute(0, 2, 3, 1)
    local[:num, :3, 3] = torch.randn(num, 3, 3, generator=gen, dtype=torch.float64)
    world = forward_kinematics(local, pointer_jumping_ancestors(parents))
    levels = subtree_levels(parents, [4])
    assert sorted(torch.cat([ids for ids, _ in levels]).tolist()) == [4, 5, 6, 7, 8]
    partial = world.clone()
    below = torch.tensor([4, 5, 6, 7, 8])
    partial[below] = local[below]
    torch.testing.assert_close(recompose_subtree(partial, levels), world)
