"""`solve_hands`: damped Gauss-Newton (Levenberg-Marquardt) on the fingers and arms, the rest held.

Adam moves every finger joint by about one step size per iteration, and a finger travels up to
1.5 rad from the relaxed start: it needed ~200 iterations to settle. The hand problem is small
(114 values per person: hand_pose (90) and the collars, shoulders, elbows and wrists (24),
which place the hands) and nearly least squares, so a few
Gauss-Newton steps settle it instead. The Jacobian of the keypoints is written out (one
forward kinematics pass, each joint turning the keypoints below it; it matches forward
differences); the curl prior, the finger limits and a pull of the arm joints to where they
were enter as residuals (linear; the limits' rows switch on outside the ranges).
The Geman-McClure weights are left out (residuals of a converging fit sit far inside its sigma).

Cost (`_Solver`; a batch-16 whole-body fit spent half its extra time here): the body above
the collars is posed once per solve, a pass reruns Rodrigues on the 38 solved joints and the
kinematics below the collars only (`recompose_subtree`), and the pass that tests a step is
the one the next Jacobian starts from. The left and right sides share no value and no
keypoint: each side's Jacobian is written straight into a block over the keypoints its joints
turn, and the two 57-value systems are solved apart (Cholesky).
The items whose step did not pay off retry alone (a part of the batch).

The values solved, their sides and the keypoints each joint turns: `fitter.fitting.hand_layout`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fitter.body.hands import curl_hand_pose
from fitter.body.posing import forward_kinematics, recompose_subtree, subtree_levels
from fitter.fitting.config import FitConfig
from fitter.fitting.hand_layout import (
    ARM,
    ARM_JOINTS,
    COLLARS,
    LEFT_ARM,
    NUM,
    SIDE,
    SIDE_JOINTS,
    side_columns,
    solve_joints,
    turns_of,
)
from fitter.fitting.losses import hand_point_weights
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem
from fitter.geometry import axis_angle_to_matrix
from fitter.geometry.rotations import rodrigues_rows_with_cache, so3_right_jacobian_rows
from priors.finger_limits import finger_limit_excess

__all__ = ["solve_hands"]

EPS_DEPTH = 1e-6  # metres: depths clamped as fitter.geometry.perspective_project does
DAMPING = 1e-2  # initial Levenberg-Marquardt damping, x the mean of the normal matrix's diagonal
MAX_DAMPING = 1e4  # an item whose damping has grown past this has converged (early stop)
# tries per step (the items whose step did not pay off retry with 10x the damping). Tuning seeds
# 100 / 101: 3 tries 11.97 deg finger error, 0.071 s of solve per batch of 16; 2 tries 11.94 deg,
# 0.063 s; 1 try 12.73 deg, 0.049 s
STEP_TRIES = 2


@dataclass
class _Held:
    """What a solve holds, per item: betas (B,NB), body_pose (B,69) (its arm values are the
    solve's base), transl (B,3), orient_delta (B,3) and orient_start (B,3,3) (Params' root),
    hand_start (B,90) and free_mask (B,90) bool (Params': unseen hands keep hand_start)."""

    betas: Tensor
    body_pose: Tensor
    transl: Tensor
    orient_delta: Tensor
    orient_start: Tensor
    hand_start: Tensor
    free_mask: Tensor

    @classmethod
    def of(cls, params: Params) -> "_Held":
        return cls(*(getattr(params, f.name).detach() for f in fields(cls)))

    def tiled(self, n: int) -> "_Held":
        """The items repeated n times (item i of copy c at row c B + i)."""
        return _Held(
            *(getattr(self, f.name).repeat(n, *([1] * (getattr(self, f.name).ndim - 1))) for f in fields(self))
        )

    def hands(self, x: Tensor) -> Tensor:
        return torch.where(self.free_mask, x[:, :90], self.hand_start)

    def pose(self, x: Tensor) -> Tensor:
        pose = self.body_pose.clone()
        pose[:, ARM] = pose[:, ARM] + x[:, 90:]
        return pose


def _point_factors(problem: Problem, config: FitConfig) -> Tensor:
    """(B,K) crop scale x keypoint weight (hand points x hand_solve_keypoint_weight)."""
    return problem.scale[:, None] * hand_point_weights(problem, problem.weights, config.hand_solve_keypoint_weight)


@dataclass
class _State:
    """One pass at x (B,NUM): the solved joints' world frames (38,3,4,B), skin pairs (P,3,B), keypoints
    (K,3,B) in the camera frame, the solved joints' rotation vectors (38,3,B), the weighted
    keypoint residuals (B,K,2) and the cost (B,): squared residuals + priors."""

    frames: Tensor
    pairs: Tensor
    points: Tensor
    vectors: Tensor
    residual: Tensor
    cost: Tensor

    def put(self, ids: Tensor | None, take: Tensor, other: "_State") -> None:
        """Items ids (M,) (None: all) become those of `other` (M items) where take (M,) is true."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            batch_first = f.name in ("residual", "cost")  # the others: batch innermost
            keep = take.view(-1, *([1] * (mine.ndim - 1))) if batch_first else take
            if ids is None:
                setattr(self, f.name, torch.where(keep, theirs, mine))
            elif batch_first:
                mine[ids] = torch.where(keep, theirs, mine[ids])
            else:
                mine[..., ids] = torch.where(keep, theirs, mine[..., ids])


@dataclass
class _Items:
    """What a solve's passes read per item (batch innermost where the pass works so):
    partial (J+1,4,4,B) the held pose's world transforms, but the local ones at and below the
    collars (`recompose_subtree`: a pass poses the arms and hands only), offsets (P,4,B) the
    skin offsets at the held betas, arm_base (B,24) the held arm values, factor (B,K)
    keypoint factors, target (B,K,2),
    focal (B,), center (B,2), side_free / held_out (2,B,SIDE) 1 on solved / held values and
    mask (2,B,SIDE,SIDE) their outer products (None when every value is solved)."""

    partial: Tensor
    offsets: Tensor
    arm_base: Tensor
    factor: Tensor
    target: Tensor
    focal: Tensor
    center: Tensor
    side_free: Tensor
    held_out: Tensor
    mask: Tensor | None

    def index(self, ids: Tensor) -> "_Items":
        """Items ids (M,)."""
        inner = ("partial", "offsets")
        sides = ("side_free", "held_out", "mask")
        return _Items(*(getattr(self, f.name)[..., ids] if f.name in inner else
                        None if getattr(self, f.name) is None else
                        getattr(self, f.name)[:, ids] if f.name in sides else
                        getattr(self, f.name)[ids] for f in fields(self)))  # fmt: skip


class _Solver:
    """The constants of one solve and its passes: the held transforms (a pass replaces the 38
    solved joints' rotations and reruns the kinematics below the collars), the skin offsets at
    the held betas, the keypoint factors, and the per-side layout and masks of the normal
    equations.
    free (B,NUM): 1 on the values solved, 0 on held ones (hands without keypoints)."""

    def __init__(self, problem: Problem, held: _Held, config: FitConfig, free: Tensor) -> None:
        model, skin = problem.model, problem.skin
        B, dt, dev = held.betas.shape[0], held.betas.dtype, held.betas.device
        self.problem, self.config, self.batch = problem, config, B
        self.turns = turns_of(problem)
        self.joints = solve_joints(model)
        collars = model.body_to_full[list(COLLARS)].tolist()
        self.levels = [(ids.to(dev), up.to(dev)) for ids, up in subtree_levels(model.parents.tolist(), collars)]
        subtree = torch.cat([ids for ids, _ in self.levels])
        self.sides = torch.nonzero(side_columns(dt, dev))[:, 1].view(2, SIDE)  # x's values of each side
        self.inverse = torch.argsort(self.sides.flatten())
        w_prior, w_arm = config.hand_prior_weight**2, config.hand_arm_weight**2
        self.prior_diagonal = torch.cat([torch.full((45,), w_prior, dtype=dt, device=dev),
                                         torch.full((SIDE - 45,), w_arm, dtype=dt, device=dev)])  # fmt: skip
        root = (axis_angle_to_matrix(held.orient_delta) @ held.orient_start)[:, None]
        rotations = model._local_rotations(held.body_pose, root, B, held.hand_start)  # (J+1,3,3,B)
        slots = rotations.shape[0]
        shape = torch.cat([held.betas, held.transl], dim=1).T
        offsets = torch.addmm(model.rel_template, model.rel_directions, shape).view(slots, 3, 1, B)
        top = torch.cat([rotations, offsets], dim=2)
        num_pairs = skin.pair_joint.shape[0]
        side_free = free[:, self.sides].transpose(0, 1)  # (2,B,SIDE)
        local = torch.cat([top, model.homogeneous_row.expand(slots, 1, 4, B)], dim=1)
        partial = forward_kinematics(local, model.fk_ancestors).index_copy(0, subtree, local[subtree])
        self.items = _Items(
            partial=partial.contiguous(),
            offsets=torch.addmm(skin.offset_template, skin.offset_shapedirs, held.betas.T).view(num_pairs, 4, B),
            arm_base=held.body_pose[:, ARM], factor=_point_factors(problem, config), target=problem.target,
            focal=problem.focal, center=problem.center, side_free=side_free, held_out=1.0 - side_free,
            mask=None if bool(side_free.all()) else side_free[..., :, None] * side_free[..., None, :],
        )  # fmt: skip

    def part(self, ids: Tensor) -> "_Solver":
        """The solver of items ids (M,) (the retries of the items whose step did not pay off)."""
        out = copy.copy(self)
        out.items, out.batch = self.items.index(ids), len(ids)
        return out

    def prior_cost(self, x: Tensor) -> Tensor:
        """(B,) squared curl-prior, finger-limit and arm-change residuals at x (B,NUM)."""
        return _prior_residuals(self.problem, x, self.config).pow(2).sum(1)

    def forward(self, x: Tensor) -> _State:
        """The pass at x (B,NUM): only the 38 solved joints' local rotations change."""
        skin, B = self.problem.skin, self.batch
        vectors = torch.cat([x[:, :90], self.items.arm_base + x[:, 90:]], dim=1).view(B, 38, 3)
        rows, _ = rodrigues_rows_with_cache(vectors.permute(2, 1, 0).reshape(3, -1))  # (9,38B)
        partial = self.items.partial.clone()
        partial[self.joints, :3, :3] = rows.view(3, 3, 38, B).permute(2, 0, 1, 3)
        world = recompose_subtree(partial, self.levels)
        num_pairs = skin.pair_joint.shape[0]
        selected = world[:, :3].index_select(0, skin.pair_joint)  # (P,3,4,B)
        pairs = (selected * self.items.offsets[:, None]).sum(2)  # (P,3,B): R b + a t per pair
        points = torch.mm(skin.gather, pairs.view(num_pairs, -1)).view(-1, 3, B)  # (K,3,B)
        z = points[:, 2:3].clamp(min=EPS_DEPTH)  # as perspective_project (points the model lacks sit at 0)
        proj = (self.items.focal * points[:, :2] / z).permute(2, 0, 1) + self.items.center[:, None]  # (B,K,2)
        residual = (proj - self.items.target) * self.items.factor[..., None]
        cost = residual.pow(2).sum((1, 2)) + self.prior_cost(x)
        return _State(world[self.joints, :3], pairs, points, vectors.permute(1, 2, 0), residual, cost)

    def pair_jacobian(self, state: _State) -> Tensor:
        """(M,2,3,B) the weighted residuals' derivatives for the pairs of `turns`: keypoint
        k's pixel (x, y) by joint j's rotation vector. A change d of u_j turns everything
        below j about the world axis G_j J_r(u) d through the joint (G_j its world rotation,
        J_r the right Jacobian)."""
        turns, frames, B = self.turns, state.frames, self.batch
        num_pairs = self.items.offsets.shape[0]
        blended = torch.cat([state.pairs, self.items.offsets[:, 3:]], dim=1).view(num_pairs, -1)  # (P,4B): R b + a t, a
        moved = (turns.blend @ blended).view(-1, 4, B)  # (M,4,B): the part of keypoint k joint j turns
        lever = moved[:, :3] - moved[:, 3:] * frames[:, :, 3][turns.joint]  # (M,3,B) from the joint
        right = so3_right_jacobian_rows(state.vectors)  # (38,3,3,B)
        axes = (frames[:, :, :3].unsqueeze(3) * right.unsqueeze(1)).sum(2)  # (38,3,3c,B): world axis of c
        # pixel xy moves by g_xy . (axis x lever) = axis . (lever x g_xy), g_xy = f/z (e_xy - X_xy/z e_z)
        X = state.points[turns.point]  # (M,3,B)
        z = X[:, 2].clamp(min=EPS_DEPTH)
        u, v = X[:, 0] / z, X[:, 1] / z
        # (M,B): f/z, the keypoint factor and the depth clamp's derivative
        scale = self.items.focal / z * self.items.factor.T[turns.point] * (X[:, 2] > EPS_DEPTH)
        lx, ly, lz = lever.unbind(1)
        q = torch.stack([torch.stack([-ly * u, lz + lx * u, -ly], 1), torch.stack([-ly * v - lz, lx * v, lx], 1)], 1)
        return (axes[turns.joint].unsqueeze(1) * (q * scale[:, None, None]).unsqueeze(3)).sum(2)  # (M,2,3c,B)

    def side_jacobian(self, state: _State) -> tuple[Tensor, Tensor]:
        """Per side, the Jacobian (2,B,2R,SIDE) of the residuals of the keypoints its joints
        turn by its values (x's order), and those residuals (2,B,2R)."""
        turns, B = self.turns, self.batch
        rows = turns.side_points.shape[1]
        values = self.pair_jacobian(state).contiguous()  # (index_copy_ crawls over strided rows)
        jac = values.new_zeros(2 * rows * SIDE_JOINTS, 2, 3, B).index_copy_(0, turns.slot, values)
        jac = jac.view(2, rows, SIDE_JOINTS, 2, 3, B).permute(0, 5, 1, 3, 2, 4).reshape(2, B, 2 * rows, SIDE)
        padded = torch.cat([state.residual, state.residual.new_zeros(B, 1, 2)], dim=1)
        residual = padded[:, turns.side_points].transpose(0, 1).reshape(2, B, 2 * rows)
        return jac, residual

    def normal_equations(self, x: Tensor, state: _State) -> tuple[Tensor, Tensor]:
        """Per side, the Gauss-Newton normal matrix (2,B,SIDE,SIDE) and gradient (2,B,SIDE) at
        x, held values masked out. The priors' share in closed form: the curl prior and the
        arm pull are diagonal; a joint outside its finger range adds w^2 F^T D F on its 3x3
        block (F its limit frame, D the angles outside)."""
        problem, config, B = self.problem, self.config, self.batch
        jac, residual = self.side_jacobian(state)
        jac_t = jac.transpose(-1, -2)
        normal = jac_t @ jac
        grad = (jac * residual[..., None]).sum(-2)  # (not a batch of matrix-vector products: slow)
        frames = problem.hand_frames  # (30,3,3)
        excess = finger_limit_excess(x[:, :90], frames)  # (B,30,3)
        w_prior, w_limit, w_arm = config.hand_prior_weight**2, config.finger_limit_weight**2, config.hand_arm_weight**2
        outside = frames * (excess != 0).to(x.dtype)[..., None]  # (B,30,3a,3): rows outside the range
        blocks = w_limit * (outside.unsqueeze(-1) * frames.unsqueeze(-2)).sum(2)  # (B,30,3,3): F^T D F
        normal.diagonal(dim1=-2, dim2=-1).add_(self.prior_diagonal)
        finger_blocks = normal[..., :45, :45].unflatten(-1, (15, 3)).unflatten(-3, (15, 3)).diagonal(dim1=-4, dim2=-2)
        finger_blocks.add_(blocks.view(B, 2, 15, 3, 3).permute(1, 0, 3, 4, 2))  # (2,B,3,3,15)
        limit_grad = w_limit * (frames * excess[..., None]).sum(2).reshape(B, 90)
        prior_grad = torch.cat([w_prior * (x[:, :90] - problem.hand_mean) + limit_grad, w_arm * x[:, 90:]], dim=1)
        grad = grad + prior_grad[:, self.sides].transpose(0, 1)
        if self.items.mask is None:  # every value solved
            return normal, grad
        return normal * self.items.mask, grad * self.items.side_free

    def step(self, normal: Tensor, grad: Tensor, damping: Tensor) -> Tensor:
        """(B,NUM) the damped Gauss-Newton step (to subtract; 0 on held values); damping (B,)
        x the mean of each item's normal diagonal."""
        diag = normal.diagonal(dim1=-2, dim2=-1)
        mu = damping * diag.mean((0, 2)).clamp(min=1e-9)  # (B,)
        system = normal.clone()
        system.diagonal(dim1=-2, dim2=-1).add_(mu[None, :, None] + self.items.held_out)
        # damped normal equations: positive definite (the upper factor: 1/6 faster than the lower)
        upper, _ = torch.linalg.cholesky_ex(system, upper=True)
        steps = torch.cholesky_solve(grad[..., None], upper, upper=True)[..., 0]  # (2,B,SIDE)
        return steps.transpose(0, 1).reshape(self.batch, NUM)[:, self.inverse]

    def side_costs(self, x: Tensor, state: _State) -> Tensor:
        """(B,2) the cost of each hand: its keypoints' squared residuals, its priors and its arm's change."""
        r = state.residual.pow(2).sum(-1)  # (B,K)
        p = _prior_residuals(self.problem, x, self.config).pow(2)
        cols = side_columns(x.dtype, x.device)
        rows = torch.cat([cols[:, :90], cols[:, :90], cols[:, 90:]], dim=1)  # prior, limits, arm rows
        return r @ self.problem.hand_sides.T + p @ rows.T


def _prior_residuals(problem: Problem, x: Tensor, config: FitConfig) -> Tensor:
    """(B,180+A) curl prior, finger-limit and arm-change residuals at x (B,NUM)."""
    prior = config.hand_prior_weight * (x[:, :90] - problem.hand_mean)
    limits = config.finger_limit_weight * finger_limit_excess(x[:, :90], problem.hand_frames).flatten(1)
    arm = config.hand_arm_weight * x[:, 90:]
    return torch.cat([prior, limits, arm], dim=1)


def _levenberg_marquardt(solver: _Solver, x: Tensor, iters: int, early_stop: float = 0.0) -> tuple[Tensor, _State]:
    """x (B,NUM) after at most `iters` damped Gauss-Newton steps (held values stay) and its
    pass. Each item keeps a step only if it lowers its cost; the items whose step did not
    pay off retry (up to STEP_TRIES tries, alone: a part of the batch) with 10x the damping. An
    item stops once a kept step lowers its cost by less than `early_stop` x its cost, or its
    damping passes MAX_DAMPING (its steps keep failing), and the solve ends when all have stopped."""
    B, dev, dt = x.shape[0], x.device, x.dtype
    damping = torch.full((B,), DAMPING, dtype=dt, device=dev)
    state = solver.forward(x)
    stopped = torch.zeros(B, dtype=torch.bool, device=dev)
    for _ in range(iters):
        normal, grad = solver.normal_equations(x, state)
        before = state.cost.clone()  # (put changes the state in place)
        ids = torch.nonzero(~stopped).flatten() if bool(stopped.any()) else None  # None: all
        done = stopped.clone()
        for _attempt in range(STEP_TRIES):  # raise the damping of the items whose step did not pay off
            if ids is None:
                candidate = x - solver.step(normal, grad, damping)
                new = solver.forward(candidate)
                better = new.cost < state.cost
                x = torch.where(better[:, None], candidate, x)
                damping = torch.where(better, damping * 0.3, damping * 10.0)
                done = better
            else:
                part = solver.part(ids)
                candidate = x[ids] - part.step(normal[:, ids], grad[:, ids], damping[ids])
                new = part.forward(candidate)
                better = new.cost < state.cost[ids]
                x[ids] = torch.where(better[:, None], candidate, x[ids])
                damping[ids] = torch.where(better, damping[ids] * 0.3, damping[ids] * 10.0)
                done[ids] = better
            state.put(ids, better, new)
            if bool(done.all()):
                break
            ids = torch.nonzero(~done).flatten()
        if early_stop > 0:
            stopped = stopped | (done & (before - state.cost < early_stop * before)) | (damping > MAX_DAMPING)
            if bool(stopped.all()):
                break
    return x, state


@torch.no_grad()
def solve_hands(problem: Problem, params: Params, config: FitConfig, iters: int,
                start_curls: tuple[float, ...] = ()) -> None:  # fmt: skip
    """At most `iters` Levenberg-Marquardt steps on params.hand_pose and the arm joints of
    params.body_pose (in place), the rest held; each item keeps a step only if it lowers its
    cost, and stops early once its steps stop paying (config.hand_solve_stop); hands without
    keypoints (params.hands_seen False) and their arms do not move. start_curls: radians;
    the solve also runs from fists of these curls (`curl_hand_pose`; all starts in one batch),
    and each hand keeps the start whose result costs least (2D keypoints do not tell a finger
    bent towards the camera from one bent away: from the relaxed start, curled fingers often
    settle bent backwards)."""
    if iters <= 0 or params.hand_pose is None:
        return
    B, dev, dt = len(problem), problem.target.device, problem.target.dtype
    n = 1 + len(start_curls)
    held = _Held.of(params)
    starts = [params.hand_pose.detach()] + [curl_hand_pose(problem.model, c).to(held.hand_start).expand(B, -1)
                                            for c in start_curls]  # fmt: skip
    x = torch.cat([torch.cat([held.hands(h), h.new_zeros(B, len(ARM))], 1) for h in starts])  # (nB,NUM)
    # an arm moves only with its seen hand (the body stages place the arm of an unseen one)
    arms = params.hands_seen[:, [0 if j in LEFT_ARM else 1 for j in ARM_JOINTS]].repeat_interleave(3, dim=1)
    free = torch.cat([params.free_mask, arms], dim=1).to(dt)
    if not bool(free.any()):
        return
    free = free.repeat(n, 1)
    tiled = problem if n == 1 else problem.index(torch.arange(B, device=dev).repeat(n))
    solver = _Solver(tiled, held.tiled(n), config, free)
    x, state = _levenberg_marquardt(solver, x, iters, config.hand_solve_stop)
    if n > 1:
        costs = solver.side_costs(x, state).view(n, B, 2)
        pick = costs.argmin(0)  # (B,2) the best start per hand
        cols = side_columns(dt, dev)  # (2,NUM)
        x = x.view(n, B, NUM)
        chosen = x[pick[:, 0], torch.arange(B)] * cols[0] + x[pick[:, 1], torch.arange(B)] * cols[1]
    else:
        chosen = x
    params.hand_pose.copy_(chosen[:, :90])
    params.body_pose[:, ARM] += chosen[:, 90:]
