"""Retarget source mocap frames to SMPL-layout poses of a body model (the free `anny` by default).

Route (per source skeleton, see `fitter.mocap.mapping` for the joint tables):
1. Forward kinematics of the source skeleton: world rotations and joint positions (metres).
2. Calibration, once per skeleton: the body's shape (betas) and scale that best reproduce the
   source's matched joint positions over a sample of frames and its rest frame (inverse
   kinematics with shared betas/scale), then per SMPL joint the fixed rotation C_j that turns
   the body's rest bone onto the source's rest bone (shortest arc for the limbs; the torso shares the
   pelvis's, which lines up the hips).
3. Start: SMPL world rotation of joint j = world rotation of its source bone times C_j (a
   rotation copy); local rotations follow from SMPL's tree.
4. Inverse kinematics, batched over frames (L-BFGS on residual rotations, float32): match the
   matched joint positions (calibrated scale, a translation per frame), follow the source
   rotations (strongly for pelvis, spine, neck and head; weakly for limb bones, where they only
   fix the twist), hold joints without source data (collars, hands, Daz toes) at rest.

Error (`joint_errors`): per frame, the body's matched joints are similarity-aligned (Umeyama)
to the source's and the mean distance taken, in the source's metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from fitter.body.model import SMPL_PARENTS, BodyModel
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, procrustes_align
from fitter.mocap.mapping import JointMap, joint_map
from fitter.mocap.skeleton import (
    SourceMotion,
    end_site_positions,
    source_forward_kinematics,
)

__all__ = [
    "Calibration",
    "IKWeights",
    "calibrate",
    "joint_errors",
    "retarget",
    "source_targets",
]

NUM_JOINTS = 24
# limb joint -> the joint at the other end of its bone (SMPL indices): hip, knee, ankle,
# shoulder, elbow, wrist per side
TORSO = (0, 3, 6, 9, 12, 15)  # pelvis, spine1-3, neck, head
_COLLARS = (13, 14)
_LIMB_BONES = {1: 4, 2: 5, 4: 7, 5: 8, 7: 10, 8: 11, 16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23}


@dataclass
class IKWeights:
    """Loss weights per frame: positions in cm^2 (weight 1), rotations as squared Frobenius
    distances of 3x3 matrices (about 2 angle^2 for small angles). Measured on every 20th frame
    (31-joint / Daz file): these defaults 11.1 / 9.5 mm; betas 0.01: 8.3 / 3.8 mm, but betas
    up to 9.7 standard deviations (a body far outside anny's shape space); torso_rotation 1000:
    the torso copies the source rotations, 19.0 / 11.4 mm (the skeletons' torsos differ)."""

    rotation: float = 10.0  # limb bones follow the source rotations (twist); 10 deg ~ 0.6 cm^2
    torso_rotation: float = 100.0  # pelvis, spine, neck, head follow the source rotations
    rest: float = 1000.0  # joints without source data (collars, hands, ...): towards identity
    betas: float = 0.3  # calibration: squared norm of the betas (unit-variance PCA)


@dataclass
class Calibration:
    """What ties one source skeleton to the body model. betas (num_betas,), scale: source metres
    per body metre; align (24,3,3): C_j; table: the joint map rows in SMPL order."""

    kind: str
    table: list[JointMap]
    betas: torch.Tensor
    scale: float
    align: torch.Tensor = field(default_factory=lambda: torch.eye(3).repeat(NUM_JOINTS, 1, 1))

    @property
    def position_ids(self) -> list[int]:
        return [j for j, row in enumerate(self.table) if row.position is not None]

    @property
    def rotation_ids(self) -> list[int]:
        return [j for j, row in enumerate(self.table) if row.rotation is not None]

    @property
    def rest_ids(self) -> list[int]:
        """Body joints (1..23) with no source rotation: held near rest."""
        return [j for j, row in enumerate(self.table) if row.rotation is None and j > 0]

    def position_names(self) -> list[str]:
        return [self.table[j].smpl for j in self.position_ids]


def source_targets(motion: SourceMotion, table: list[JointMap]) -> tuple[torch.Tensor, torch.Tensor]:
    """(points (F,P,3) metres for the rows with a position, rotations (F,R,3,3) for the rows with
    a rotation), float64, in SMPL-joint order."""
    rotations, positions = source_forward_kinematics(motion)
    ends = end_site_positions(motion, rotations, positions)
    points = []
    for row in table:
        if row.position is None:
            continue
        if row.position.startswith("end:"):
            points.append(ends[row.position[4:]])
        else:
            points.append(positions[:, motion.index(row.position)])
    rots = [rotations[:, motion.index(row.rotation)] for row in table if row.rotation is not None]
    return torch.stack(points, dim=1), torch.stack(rots, dim=1)


def _world_rotations(local: torch.Tensor) -> torch.Tensor:
    """(B,24,3,3) local -> world rotations along SMPL's tree."""
    world = [local[:, 0]]
    for j in range(1, NUM_JOINTS):
        world.append(world[SMPL_PARENTS[j]] @ local[:, j])
    return torch.stack(world, dim=1)


def _local_from_world(world: torch.Tensor) -> torch.Tensor:
    parents = torch.tensor([0] + SMPL_PARENTS[1:])
    local = world[:, parents].transpose(-1, -2) @ world
    local[:, 0] = world[:, 0]
    return local


def _shortest_arc(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(3,3) the smallest rotation turning the direction of `source` (3,) onto that of `target`."""
    a = source / source.norm()
    b = target / target.norm()
    axis = torch.linalg.cross(a, b)
    sin, cos = axis.norm(), (a * b).sum()
    if sin < 1e-9:
        return torch.eye(3, dtype=source.dtype)
    return axis_angle_to_matrix(axis / sin * torch.atan2(sin, cos))


def _rest_alignments(table: list[JointMap], body_rest: torch.Tensor, source_rest: torch.Tensor) -> torch.Tensor:
    """C_j (24,3,3): the fixed rotation taking the body's rest bone of joint j onto the source's.

    body_rest (24,3): body rest joints (calibrated shape and scale); source_rest (24,3): the
    source point of each SMPL joint at the source's rest (rows without a position ignored).
    Limb bones with both ends matched (hip-knee, knee-ankle, ankle-foot, shoulder-elbow,
    elbow-wrist, wrist-hand): the shortest arc between the two bone vectors. Pelvis: the
    shortest arc between the hip-to-hip vectors; the spine, neck and head share the pelvis's.
    A limb joint without a matched bone (CMU toes and wrists) takes its parent's."""
    has = [row.position is not None for row in table]
    align = torch.eye(3, dtype=body_rest.dtype).repeat(NUM_JOINTS, 1, 1)
    if has[1] and has[2]:
        align[0] = _shortest_arc(body_rest[1] - body_rest[2], source_rest[1] - source_rest[2])
    for j in TORSO[1:]:
        align[j] = align[0]
    for j in range(1, NUM_JOINTS):
        if j in TORSO or j in _COLLARS:
            continue
        child = _LIMB_BONES.get(j)
        if child is not None and has[j] and has[child]:
            align[j] = _shortest_arc(body_rest[child] - body_rest[j], source_rest[child] - source_rest[j])
        else:
            align[j] = align[SMPL_PARENTS[j]]
    return align


def _initial_world(calib: Calibration, rotations: torch.Tensor) -> torch.Tensor:
    """Rotation copy: (F,R,3,3) source bone rotations -> (F,24,3,3) body world rotations
    (unmapped joints follow their parent)."""
    frames = rotations.shape[0]
    world: list[torch.Tensor] = []
    rot_index = {j: k for k, j in enumerate(calib.rotation_ids)}
    align = calib.align.to(rotations)
    for j in range(NUM_JOINTS):
        if j in rot_index:
            world.append(rotations[:, rot_index[j]] @ align[j])
        elif j == 0:
            world.append(torch.eye(3, dtype=rotations.dtype).expand(frames, 3, 3))
        else:
            world.append(world[SMPL_PARENTS[j]])
    return torch.stack(world, dim=1)


def _solve(
    model: BodyModel,
    calib: Calibration,
    points: torch.Tensor,
    rotations: torch.Tensor,
    weights: IKWeights,
    iterations: int,
    fit_shape: bool = False,
    use_rotations: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IK on one batch. points (B,P,3) source metres, rotations (B,R,3,3). Returns (local
    rotations (B,24,3,3), transl (B,3) in body metres); with fit_shape, calib.betas/scale are
    optimised too and written back."""
    dtype = torch.float32
    frames = points.shape[0]
    start_local = _local_from_world(_initial_world(calib, rotations)).to(dtype)
    pos_ids, rot_ids, rest_ids = calib.position_ids, calib.rotation_ids, calib.rest_ids
    src_rot = rotations.to(dtype) @ calib.align[rot_ids].to(dtype)  # (B,R,3,3) targets
    residual = torch.zeros(frames, NUM_JOINTS, 3, dtype=dtype, requires_grad=True)
    target = points.to(dtype)
    log_scale = torch.tensor(math.log(calib.scale), dtype=dtype, requires_grad=fit_shape)
    betas = calib.betas.to(dtype).clone().requires_grad_(fit_shape)
    with torch.no_grad():  # start translation: match the centroids
        joints0 = model.forward_joints(
            betas=betas.expand(frames, -1), body_pose=start_local[:, 1:], global_orient=start_local[:, :1]
        ).joints
        transl0 = target.mean(1) / calib.scale - joints0[:, pos_ids].mean(1)
    transl = transl0.clone().requires_grad_(True)
    params = [residual, transl] + ([log_scale, betas] if fit_shape else [])
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")  # fmt: skip
    eye = torch.eye(3, dtype=dtype)
    rot_weight = torch.tensor(
        [weights.torso_rotation if j in TORSO else weights.rotation for j in rot_ids], dtype=dtype
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        local = start_local @ axis_angle_to_matrix(residual)
        out = model.forward_joints(
            betas=betas.expand(frames, -1), body_pose=local[:, 1:], global_orient=local[:, :1], transl=transl
        )
        joints = out.joints[:, pos_ids] * log_scale.exp()
        loss = (joints - target).pow(2).sum() * 1e4  # cm^2
        if use_rotations and weights.rotation > 0:
            world = _world_rotations(local)
            loss = loss + ((world[:, rot_ids] - src_rot).pow(2).sum((0, 2, 3)) * rot_weight).sum()
        if rest_ids:
            loss = loss + weights.rest * (local[:, rest_ids] - eye).pow(2).sum()
        if fit_shape:
            loss = loss + weights.betas * frames * betas.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        local = start_local @ axis_angle_to_matrix(residual)
    if fit_shape:
        calib.betas = betas.detach().to(calib.betas.dtype)
        calib.scale = float(log_scale.detach().exp())
    return local.detach(), transl.detach()


def calibrate(
    model: BodyModel,
    motion: SourceMotion,
    sample_frames: int = 256,
    iterations: int = 400,
    weights: IKWeights | None = None,
    seed: int = 0,
) -> Calibration:
    """Shape (betas), scale and rest alignments C_j for one source skeleton, from its rest frame
    and `sample_frames` frames drawn at random (seeded)."""
    weights = weights or IKWeights()
    table = joint_map(motion.kind)
    calib = Calibration(motion.kind, table, torch.zeros(model.num_betas), 1.0)
    rng = np.random.default_rng(seed)
    count = min(sample_frames, motion.num_frames)
    sample = motion.subset(np.sort(rng.choice(motion.num_frames, size=count, replace=False)))
    points, rotations = source_targets(sample, table)
    rest_points, _ = source_targets(motion.rest(), table)
    points = torch.cat([rest_points, points])
    rotations = torch.cat([torch.eye(3, dtype=rotations.dtype).expand(1, *rotations.shape[1:]), rotations])
    # Scale start: source vs body extent of the matched rest joints.
    with torch.no_grad():
        body_rest = model.forward_joints(betas=torch.zeros(1, model.num_betas)).joints[0].double()
    pos_ids = calib.position_ids

    def spread(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(0)).norm(dim=-1).mean()

    calib.scale = float(spread(rest_points[0]) / spread(body_rest[pos_ids]))
    source_rest = torch.zeros(NUM_JOINTS, 3, dtype=torch.float64)
    source_rest[pos_ids] = rest_points[0]
    for _ in range(2):  # shape with the current rest alignments, then the alignments for that shape
        _solve(model, calib, points, rotations, weights, iterations, fit_shape=True)
        with torch.no_grad():
            body_rest = model.forward_joints(betas=calib.betas[None].float()).joints[0].double() * calib.scale
        calib.align = _rest_alignments(table, body_rest, source_rest)
    return calib


# hinge joints: joint -> (parent, child, flexion axis in the model frame, sideways bend allowed (deg),
# inside priors.joint_limits' ranges: the elbow's carrying angle +-15, the knee's -5..2)
HINGES = {
    18: (16, 20, (0.0, -1.0, 0.0), 4.0),  # left elbow
    19: (17, 21, (0.0, 1.0, 0.0), 4.0),  # right elbow
    4: (1, 7, (1.0, 0.0, 0.0), 2.0),  # left knee
    5: (2, 8, (1.0, 0.0, 0.0), 2.0),  # right knee
}
_TWISTS = torch.deg2rad(torch.arange(-180.0, 180.0))  # candidate twists, 1 deg apart (0 exactly among them)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def hinge_twist(local: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Local rotations (B,24,3,3) where elbows and knees bend as hinges: where a joint bends its
    bone sideways (out of its flexion plane) by more than it allows (HINGES), the parent (shoulder,
    hip) is twisted about its own bone by the smallest angle (1 deg steps) that brings the bend
    inside, and the joint is turned back by the same rotation. rest_joints (24,3): the body's rest
    joints (bone directions). Joint positions, and the world rotation of everything below the hinge,
    are unchanged; what changes is which of the two joints holds the twist. Position-driven IK
    cannot tell them apart (the source skeletons' rest frames give the twist only loosely): without
    this, converted elbows bent sideways by up to 65 deg in 70 % of CMU frames, far outside the
    elbow's range of motion, while the shoulders lacked their rotation."""
    out = local.clone()
    rest = rest_joints.to(local)
    twists = _TWISTS.to(local)
    for joint, (parent, child, flex, allowed) in HINGES.items():
        axis = _unit(rest[joint] - rest[parent])  # the parent's bone: twisting about it keeps the joint in place
        bone = _unit(rest[child] - rest[joint])
        hinge = _unit(torch.tensor(flex, dtype=local.dtype, device=local.device))
        d = local[:, joint] @ bone  # (B,3) the bent bone in the joint's frame
        untwist = axis_angle_to_matrix(-twists[:, None] * axis)  # (T,3,3) R_axis(-psi)
        sideways = (torch.einsum("tij,bj->bti", untwist, d) - bone) @ hinge  # (B,T) out of the flexion plane
        ok = sideways.abs() <= math.sin(math.radians(allowed))  # (B,T)
        smallest_ok = torch.where(ok, twists.abs(), math.inf).argmin(1)  # 0 where the bend is in range already
        psi = torch.where(ok.any(1), twists[smallest_ok], twists[sideways.abs().argmin(1)])
        turn = axis_angle_to_matrix(psi[:, None] * axis)  # R_axis(psi)
        out[:, parent] = local[:, parent] @ turn
        out[:, joint] = turn.transpose(-1, -2) @ local[:, joint]
    return out


def retarget(
    model: BodyModel,
    calib: Calibration,
    motion: SourceMotion,
    batch_size: int = 1024,
    iterations: int = 60,
    weights: IKWeights | None = None,
    progress=None,
    hinges: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of `motion` -> (poses (F,72) float32: global orientation + 23 body joints,
    axis-angle; transl (F,3) body metres, the model-frame translation (source metres / scale));
    hinges: elbows and knees bent as hinges (`hinge_twist`)."""
    weights = weights or IKWeights()
    poses, transls = [], []
    with torch.no_grad():
        rest = model.forward_joints(betas=calib.betas[None].float()).joints[0]
    for start in range(0, motion.num_frames, batch_size):
        part = motion.subset(np.arange(start, min(start + batch_size, motion.num_frames)))
        points, rotations = source_targets(part, calib.table)
        local, transl = _solve(model, calib, points, rotations, weights, iterations)
        if hinges:
            local = hinge_twist(local, rest)
        poses.append(matrix_to_axis_angle(local).reshape(-1, 72).numpy())
        transls.append(transl.numpy())
        if progress is not None:
            progress(min(start + batch_size, motion.num_frames), motion.num_frames)
    return np.concatenate(poses).astype(np.float32), np.concatenate(transls).astype(np.float32)


def joint_errors(model: BodyModel, calib: Calibration, poses: np.ndarray | torch.Tensor, points: torch.Tensor,
                 batch_size: int = 4096) -> torch.Tensor:  # fmt: skip
    """(F,P) distances (metres, source frame) between the source points and the body's matched
    joints (calibrated betas), after a similarity alignment per frame."""
    poses = torch.as_tensor(poses, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for start in range(0, poses.shape[0], batch_size):
            pose = poses[start : start + batch_size]
            joints = model.forward_joints(betas=calib.betas[None].float().expand(pose.shape[0], -1),
                                          body_pose=pose[:, 3:], global_orient=pose[:, :3]).joints  # fmt: skip
            target = points[start : start + batch_size].double()
            aligned = procrustes_align(joints[:, calib.position_ids].double(), target)
            out.append((aligned - target).norm(dim=-1))
    return torch.cat(out)
