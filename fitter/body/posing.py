"""The posing engine behind `BodyModel`'s fast paths: forward kinematics and the fused
Rodrigues + kinematics + landmark-skinning op, each with a hand-written backward.

Why hand-written: a single fit poses a handful of bodies per iteration, and at such batches
PyTorch's per-op overhead (a few microseconds per op and per autograd node) costs more than
the arithmetic. `_PosedPoints` runs `BodyModel.pose_landmarks` as one autograd node with a
closed-form backward, about half the ops of autograd through the same computation.

Layout: joint first, batch innermost, so every op is vectorised over the batch. Transforms
are stacks (J+1,4,4,B) of homogeneous 4x4 matrices: J joints in the model's kinematic order
plus slot J, the identity (every joint's "ancestor" beyond the root). Frames: a joint's local
transform maps its own frame to its parent's (the root's: to the frame `global_orient` /
`transl` define, e.g. the camera frame); world transforms map to that root-parent frame.
Metres, rotations in radians.

Two forward-kinematics schemes, same transforms up to float round-off:
pointer jumping (`forward_kinematics`, `_kinematics_with_cache` / `_kinematics_vjp`):
log2(depth) rounds over all joints, fewest ops, for small batches; level by level
(`_levelwise_kinematics` / `_levelwise_vjp`): each joint composed once, fewest flops, for
batches of at least `LEVELWISE_MIN_BATCH`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fitter.geometry.rotations import rodrigues_rows_vjp, rodrigues_rows_with_cache

__all__ = [
    "LEVELWISE_MIN_BATCH",
    "forward_kinematics",
    "pointer_jumping_ancestors",
    "recompose_subtree",
    "subtree_levels",
]


def pointer_jumping_ancestors(parents: list[int]) -> Tensor:
    """Ancestor tables for `forward_kinematics`: (R, J+1) long, R = ceil(log2(tree depth + 1)).

    Slot J is the identity transform (every joint's ancestor beyond the root). Row r holds each
    joint's 2^r-th ancestor (or J): after round r a joint's transform spans 2^(r+1) tree levels.
    """
    num_joints = len(parents)
    ancestor = [int(p) if int(p) >= 0 else num_joints for p in parents] + [num_joints]
    rounds = []
    while any(a != num_joints for a in ancestor[:num_joints]):
        rounds.append(ancestor)
        ancestor = [ancestor[a] for a in ancestor]
    return torch.tensor(rounds, dtype=torch.long).reshape(len(rounds), num_joints + 1)


def _compose(parent: Tensor, child: Tensor) -> Tensor:
    """Per-slot 4x4 products parent @ child of (S,4,4,...) stacks (broadcast and sum: vectorised
    over the innermost batch, unlike one BLAS call per tiny matrix)."""
    return (parent.unsqueeze(3) * child.unsqueeze(1)).sum(2)


def _kinematics_with_cache(local: Tensor, ancestors) -> tuple[Tensor, list[Tensor]]:
    """Pointer-jumping forward kinematics (call without autograd): world transforms and the
    (parent, child) factors of every round for `_kinematics_vjp`."""
    world, cache = local, []
    for ancestor in ancestors:
        parent = world.index_select(0, ancestor)
        cache += [parent, world]
        world = _compose(parent, world)
    return world, cache


def _kinematics_vjp(cache: list[Tensor], ancestors, grad: Tensor) -> Tensor:
    """Gradient w.r.t. the local transforms: per round (new = parent @ child) two 4x4 products
    and one scatter-add of the parents' share. (Scatter-adds here use index_put_(accumulate=True):
    index_add_ enters an OpenMP region that stalls for milliseconds when torch has 2+ threads
    on a busy machine; the same goes for autograd's index_select backward, so the autograd
    paths gather with advanced indexing.)"""
    for r in range(len(ancestors) - 1, -1, -1):
        parent, child = cache[2 * r], cache[2 * r + 1]
        grad_parent = (grad.unsqueeze(2) * child.unsqueeze(1)).sum(3)  # grad @ child^T
        grad = (parent.unsqueeze(3) * grad.unsqueeze(2)).sum(1)  # parent^T @ grad
        grad.index_put_((ancestors[r],), grad_parent, accumulate=True)
    return grad


def _levelwise_kinematics(local: Tensor, levels) -> Tensor:
    """Forward kinematics one tree level at a time (call without autograd): each joint is
    composed once, so at large batches (flop-bound) this beats pointer jumping's log-depth
    rounds over all joints. levels: ((joint ids, parent ids), ...) per depth >= 1."""
    world = local.clone()
    for ids, parent_ids in levels:
        world.index_copy_(0, ids, _compose(world.index_select(0, parent_ids), local.index_select(0, ids)))
    return world


def _levelwise_vjp(local: Tensor, world: Tensor, levels, grad: Tensor) -> Tensor:
    """Gradient w.r.t. the local transforms, deepest level first (a joint's adjoint is complete
    once its descendants are done): local grad = parent_world^T @ g, parent += g @ local^T."""
    grad = grad.clone()
    for ids, parent_ids in reversed(levels):
        grad_ids = grad.index_select(0, ids)
        parent, child = world.index_select(0, parent_ids), local.index_select(0, ids)
        grad.index_put_((parent_ids,), (grad_ids.unsqueeze(2) * child.unsqueeze(1)).sum(3), accumulate=True)
        grad.index_copy_(0, ids, (parent.unsqueeze(3) * grad_ids.unsqueeze(2)).sum(1))
    return grad


def _tree_levels(parents: list[int]) -> list[tuple[Tensor, Tensor]]:
    """(joint ids, parent ids) of each depth >= 1 of the kinematic tree."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    levels = []
    for d in range(1, max(depth) + 1):
        ids = [j for j in range(len(parents)) if depth[j] == d]
        levels.append((torch.tensor(ids), torch.tensor([parents[j] for j in ids])))
    return levels


def subtree_levels(parents: list[int], roots: list[int]) -> list[tuple[Tensor, Tensor]]:
    """(joint ids, parent ids) per tree depth of the joints at or below `roots` only (for
    `recompose_subtree`)."""

    def below(j: int) -> bool:
        while j >= 0 and j not in roots:
            j = parents[j]
        return j >= 0

    levels = []
    for ids, parent_ids in _tree_levels(parents):
        keep = torch.tensor([below(int(j)) for j in ids], dtype=torch.bool)
        if bool(keep.any()):
            levels.append((ids[keep], parent_ids[keep]))
    return levels


def recompose_subtree(partial: Tensor, levels: list[tuple[Tensor, Tensor]]) -> Tensor:
    """World transforms (J+1,4,4,B) from `partial`: world transforms everywhere except at the
    joints of `levels` (`subtree_levels`), which hold their local transforms (call without
    autograd). When a solve turns a few limbs only, the rest of the body is posed once."""
    return _levelwise_kinematics(partial, levels)


# Batches at least this large pose level by level (flop-bound); smaller ones by pointer jumping
# (op-count-bound). Both give the same transforms up to float round-off.
LEVELWISE_MIN_BATCH = 48


class _PointerJumping(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local: Tensor, ancestors: Tensor) -> Tensor:  # type: ignore[override]
        world, ctx.cache = _kinematics_with_cache(local, ancestors)
        ctx.ancestors = ancestors
        return world

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return _kinematics_vjp(ctx.cache, ctx.ancestors, grad), None


def forward_kinematics(local: Tensor, ancestors: Tensor) -> Tensor:
    """World transforms by pointer jumping: log2(depth) batched steps instead of one per level.

    local (J+1,4,4,...) homogeneous transform of each joint relative to its parent (slot J:
    identity), any trailing batch dims (innermost = batch keeps every op vectorised); ancestors
    (R,J+1) from `pointer_jumping_ancestors`. Returns (J+1,4,4,...) transforms to the root's
    parent frame (model or camera frame).
    """
    return _PointerJumping.apply(local, ancestors)


@dataclass(frozen=True)
class _FastPathConstants:
    """Plain references to the fast path's buffers (attribute access on an nn.Module costs
    about a microsecond each); rebuilt whenever the module is moved or cast (`_apply`)."""

    rel_template: Tensor  # ((J+1)*3, 1)
    rel_directions: Tensor  # ((J+1)*3, NB+3): betas then transl
    rel_directions_betas: Tensor  # ((J+1)*3, NB)
    homogeneous_row: Tensor  # (1,1,4,1)
    zero_rotation: Tensor  # (1,3)
    ancestors: tuple[Tensor, ...]  # pointer-jumping rounds, each (J+1,)
    levels: tuple[tuple[Tensor, Tensor], ...]  # (joint ids, parent ids) per tree depth >= 1
    smpl_joint_ids: Tensor | None  # None: SMPL joints are the model's first 24
    num_betas: int
    num_slots: int  # J+1


def _smpl_positions(world: Tensor, fast: _FastPathConstants) -> Tensor:
    """SMPL-24 joint positions (B,24,3) from world transforms (J+1,4,4,B)."""
    positions = world[:, :3, 3]  # (J+1,3,B)
    positions = positions[:24] if fast.smpl_joint_ids is None else positions[fast.smpl_joint_ids]
    return positions.permute(2, 0, 1)


class _PosedPoints(torch.autograd.Function):
    """`BodyModel.pose_landmarks` as one autograd node with a hand-written backward.

    At the batch sizes of single fits PyTorch's per-op overhead (a few microseconds per op and
    autograd node) dominates; fusing Rodrigues, forward kinematics and landmark skinning into
    one node with a closed-form backward roughly halves the ops of a fit iteration.
    Inputs: body_pose (B,69) axis-angle (or None with `rotations`), global_orient (B,3)
    axis-angle or (B,3,3) matrices (or None), orient_base (B,3,3) or None (root rotation =
    R(global_orient) @ orient_base), rotations (J+1,3,3,B) ready local rotations (generic path;
    else None), betas (B,NB), transl (B,3) or None; fast (_FastPathConstants) and skin
    (`fitter.body.landmarks.LandmarkSkin`) are constants. Returns joints (B,24,3), landmarks (B,K,3).
    """

    @staticmethod
    def forward(ctx, body_pose, global_orient, orient_base, rotations, betas, transl, fast, skin):  # type: ignore
        bsz = betas.shape[0]
        ctx.fast, ctx.skin, ctx.bsz = fast, skin, bsz
        ctx.root_shape = None if global_orient is None else global_orient.shape
        ctx.cache_rodrigues = None
        if rotations is None:
            vector_root = global_orient.ndim == 2
            parts = [global_orient, body_pose] if vector_root else [body_pose]
            parts.append(fast.zero_rotation.expand(bsz, 3))
            vectors = torch.cat(parts, dim=1)
            slots = vectors.shape[1] // 3
            rows, ctx.cache_rodrigues = rodrigues_rows_with_cache(
                vectors.view(bsz, slots, 3).permute(2, 1, 0).reshape(3, slots * bsz)
            )
            rotations = rows.view(3, 3, slots, bsz).permute(2, 0, 1, 3)
            ctx.orient_base = None
            if orient_base is not None:  # root = R(global_orient) @ base, as (3,3,B) stacks
                base = orient_base.permute(1, 2, 0)
                ctx.orient_base, ctx.orient_delta = base, rotations[0]
                root = (rotations[0].unsqueeze(2) * base.unsqueeze(0)).sum(1)
                rotations = torch.cat([root.unsqueeze(0), rotations[1:]])
            if not vector_root:
                rotations = torch.cat([global_orient.reshape(bsz, 3, 3).permute(1, 2, 0).unsqueeze(0), rotations])
            ctx.vector_root, ctx.slots = vector_root, slots
        num_slots = fast.num_slots
        ctx.with_transl = transl is not None
        if transl is None:
            directions = fast.rel_directions_betas
            offsets = torch.addmm(fast.rel_template, directions, betas.T)
        else:
            directions = fast.rel_directions
            offsets = torch.addmm(fast.rel_template, directions, torch.cat([betas, transl], dim=1).T)
        ctx.directions = directions
        top = torch.cat([rotations, offsets.view(num_slots, 3, 1, bsz)], dim=2)
        local = torch.cat([top, fast.homogeneous_row.expand(num_slots, 1, 4, bsz)], dim=1)
        ctx.levelwise = bsz >= LEVELWISE_MIN_BATCH
        if ctx.levelwise:
            world = _levelwise_kinematics(local, fast.levels)
            ctx.cache_kinematics = (local, world)
        else:
            world, ctx.cache_kinematics = _kinematics_with_cache(local, fast.ancestors)
        num_pairs = skin.pair_joint.shape[0]
        pair_offsets = torch.addmm(skin.offset_template, skin.offset_shapedirs, betas.T).view(num_pairs, 1, 4, bsz)
        selected = world[:, :3].index_select(0, skin.pair_joint)  # (P,3,4,B)
        pairs = (selected * pair_offsets).sum(2)  # (P,3,B)
        ctx.selected, ctx.pair_offsets = selected, pair_offsets
        landmarks = torch.mm(skin.gather, pairs.view(num_pairs, 3 * bsz)).view(-1, 3, bsz)
        # contiguous (B,K,3): the caller's elementwise ops would crawl over the strided view
        return _smpl_positions(world, fast).contiguous(), landmarks.permute(2, 0, 1).contiguous()

    @staticmethod
    def backward(ctx, grad_joints, grad_landmarks):  # type: ignore[override]
        fast, skin, bsz = ctx.fast, ctx.skin, ctx.bsz
        need_pose, need_root, need_base, need_rot, need_betas, need_transl = ctx.needs_input_grad[:6]
        selected, pair_offsets = ctx.selected, ctx.pair_offsets
        num_slots, num_pairs = fast.num_slots, skin.pair_joint.shape[0]
        grad_world = selected.new_zeros(num_slots, 4, 4, bsz)
        grad_betas = None
        if grad_landmarks is not None:
            grad_land = grad_landmarks.permute(1, 2, 0).reshape(-1, 3 * bsz)  # (K,3B)
            grad_pairs = torch.mm(skin.gather.T, grad_land).view(num_pairs, 3, 1, bsz)
            grad_world[:, :3].index_put_((skin.pair_joint,), grad_pairs * pair_offsets, accumulate=True)
            if need_betas:
                grad_offsets = (selected * grad_pairs).sum(1).view(4 * num_pairs, bsz)
                grad_betas = torch.mm(skin.offset_shapedirs.T, grad_offsets).T
        if grad_joints is not None:
            positions = grad_world[:, :3, 3]  # (J+1,3,B) view
            if fast.smpl_joint_ids is None:
                positions[:24] += grad_joints.permute(1, 2, 0)
            else:
                positions.index_put_((fast.smpl_joint_ids,), grad_joints.permute(1, 2, 0), accumulate=True)
        if ctx.levelwise:
            grad_local = _levelwise_vjp(*ctx.cache_kinematics, fast.levels, grad_world)
        else:
            grad_local = _kinematics_vjp(ctx.cache_kinematics, fast.ancestors, grad_world)
        grad_transl = None
        if need_betas or need_transl:
            grad_shape = torch.mm(ctx.directions.T, grad_local[:, :3, 3].reshape(3 * num_slots, bsz)).T
            nb = fast.num_betas
            if need_betas:
                grad_betas = grad_shape[:, :nb] if grad_betas is None else grad_betas + grad_shape[:, :nb]
            if ctx.with_transl:
                grad_transl = grad_shape[:, nb:]
        grad_rot = grad_local[:, :3, :3]  # (J+1,3,3,B)
        grad_pose = grad_root = grad_base = grad_rotations = None
        if ctx.cache_rodrigues is None:
            grad_rotations = grad_rot if need_rot else None
        else:
            if not ctx.vector_root:
                if need_root:
                    grad_root = grad_rot[0].permute(2, 0, 1).reshape(ctx.root_shape)
                grad_rot = grad_rot[1:]
            if ctx.orient_base is not None:
                grad_top = grad_rot[0]  # w.r.t. R(global_orient) @ base
                if need_base:
                    grad_base = (ctx.orient_delta.unsqueeze(2) * grad_top.unsqueeze(1)).sum(0).permute(2, 0, 1)
                grad_delta = (grad_top.unsqueeze(1) * ctx.orient_base.unsqueeze(0)).sum(2)  # grad @ base^T
                grad_rot = torch.cat([grad_delta.unsqueeze(0), grad_rot[1:]])
            if need_pose or (need_root and ctx.vector_root):
                slots = ctx.slots
                grad_rows = grad_rot.permute(1, 2, 0, 3).reshape(9, slots * bsz)
                grad_vectors = rodrigues_rows_vjp(ctx.cache_rodrigues, grad_rows).view(3, slots, bsz).permute(2, 1, 0)
                grad_vectors = grad_vectors.reshape(bsz, 3 * slots)
                start = 3 if ctx.vector_root else 0
                if ctx.vector_root and need_root:
                    grad_root = grad_vectors[:, :3]
                if need_pose:
                    grad_pose = grad_vectors[:, start : start + 69]
        return grad_pose, grad_root, grad_base, grad_rotations, grad_betas, grad_transl, None, None
