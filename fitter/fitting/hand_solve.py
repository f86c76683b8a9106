"""`solve_hands`: damped Gauss-Newton (Levenberg-Marquardt) on the fingers and arms, the rest held.

Adam moves every finger joint by about one step size per iteration, and a finger travels up to
1.5 rad from the relaxed start: it needed ~200 iterations to settle. The hand problem is small
(114 values per person: hand_pose (90) and the collars, shoulders, elbows and wrists (24),
which place the hands) and nearly least squares, so a few
Gauss-Newton steps settle it instead. The Jacobian of the keypoints is written out (`_jacobian`:
one forward kinematics pass, each joint turning the keypoints below it; it matches forward
differences); the curl prior, the finger limits and a pull of the arm joints to where they
were enter as residuals (linear; the limits' rows switch on outside the ranges).
The Geman-McClure weights are left out (residuals of a converging fit sit far inside its sigma).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fitter.body.hands import curl_hand_pose
from fitter.fitting.config import FitConfig
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem
from fitter.geometry import axis_angle_to_matrix, perspective_project
from priors.finger_limits import finger_limit_excess

__all__ = ["solve_hands"]

EPS_DEPTH = 1e-6  # metres: depths clamped as fitter.geometry.perspective_project does
DAMPING = 1e-2  # initial Levenberg-Marquardt damping, x the mean of the normal matrix's diagonal
ARM_JOINTS = (13, 14, 16, 17, 18, 19, 20, 21)  # SMPL collars, shoulders, elbows, wrists
LEFT_ARM = (13, 16, 18, 20)
ARM = torch.tensor([3 * (j - 1) + c for j in ARM_JOINTS for c in range(3)])  # their body_pose values
NUM = 90 + len(ARM)  # hand-pose values + arm values


@dataclass
class _Held:
    """What a solve holds, per item: betas (B,NB), body_pose (B,69) (its arm values are the
    solve's base), transl (B,3), orient_delta (B,3) and orient_start (B,3,3) (Params' root),
    hand_start (B,90) and hands_free (B,90) (unseen hands keep hand_start)."""

    betas: Tensor
    body_pose: Tensor
    transl: Tensor
    orient_delta: Tensor
    orient_start: Tensor
    hand_start: Tensor
    hands_free: Tensor

    @classmethod
    def of(cls, params: Params) -> "_Held":
        return cls(*(getattr(params, f.name).detach() for f in fields(cls)))

    def tiled(self, n: int) -> "_Held":
        """The items repeated n times (item i of copy c at row c B + i)."""
        return _Held(
            *(getattr(self, f.name).repeat(n, *([1] * (getattr(self, f.name).ndim - 1))) for f in fields(self))
        )

    def hands(self, x: Tensor) -> Tensor:
        return x[:, :90] * self.hands_free + self.hand_start * (1.0 - self.hands_free)

    def pose(self, x: Tensor) -> Tensor:
        pose = self.body_pose.clone()
        pose[:, ARM] = pose[:, ARM] + x[:, 90:]
        return pose


def _keypoint_residuals(problem: Problem, held: _Held, x: Tensor, config: FitConfig) -> Tensor:
    """(B,2K) weighted keypoint residuals (crop units) at x (B,NUM)."""
    _, points = problem.model.pose_landmarks(problem.skin, held.betas, held.pose(x), held.orient_delta, held.transl,
                                             orient_base=held.orient_start, hand_pose=held.hands(x))  # fmt: skip
    proj = perspective_project(points, problem.focal, problem.center)
    return ((proj - problem.target) * _point_factors(problem, config)[..., None]).flatten(1)


def _point_factors(problem: Problem, config: FitConfig) -> Tensor:
    """(B,K) crop scale x keypoint weight (hand points x hand_keypoint_weight)."""
    weights = problem.weights * (1.0 + (config.hand_keypoint_weight - 1.0) * problem.hand_mask)
    return problem.scale[:, None] * weights


def _skew(v: Tensor) -> Tensor:
    """(...,3,B) vectors -> (...,3,3,B) cross-product matrices."""
    x, y, z = v.unbind(-2)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([zero, -z, y], -2), torch.stack([z, zero, -x], -2),
                        torch.stack([-y, x, zero], -2)], -3)  # fmt: skip


def _right_jacobian(u: Tensor) -> Tensor:
    """(...,3,B) rotation vectors -> (...,3,3,B) right Jacobians of SO(3): R(u + d) ~ R(u) R(J_r(u) d)."""
    theta_sq = (u * u).sum(-2, keepdim=True).clamp_min(1e-12)  # (...,1,B)
    theta = theta_sq.sqrt()
    a = torch.where(theta > 1e-4, (1.0 - torch.cos(theta)) / theta_sq, 0.5 - theta_sq / 24.0)
    b = torch.where(theta > 1e-4, (theta - torch.sin(theta)) / (theta_sq * theta), 1.0 / 6.0 - theta_sq / 120.0)
    k = _skew(u)
    eye = torch.eye(3, dtype=u.dtype, device=u.device)[..., None]
    return eye - a[..., None, :] * k + b[..., None, :] * torch.einsum("...ijb,...jkb->...ikb", k, k)


def _descendants(model, joints: Tensor) -> Tensor:
    """(len(joints), J) 1.0 where a full-model joint is one of `joints` or hangs below it."""
    parents = model.parents.tolist()
    below = torch.zeros(len(parents), len(parents), dtype=model.v_template.dtype)
    for j in range(len(parents)):
        k = j
        while k >= 0:  # every ancestor of j (and j itself) has j below it
            below[k, j] = 1.0
            k = parents[k]
    return below[joints.cpu()].to(model.v_template.device)


def _solve_joints(model) -> Tensor:
    """(38,) the full-model joints of x's values in order: the 30 finger joints, then ARM_JOINTS."""
    return torch.cat([model.hand_joint_ids, model.body_to_full[list(ARM_JOINTS)]])


@dataclass
class _Turns:
    """Which keypoints each of x's joints turns: pairs (M,) of (joint row j into _solve_joints,
    keypoint k) with anything below j in k, and blend (M,P) the skin pairs of k below j."""

    joint: Tensor
    point: Tensor
    blend: Tensor

    @classmethod
    def of(cls, problem: Problem) -> "_Turns":
        skin = problem.skin
        below = _descendants(problem.model, _solve_joints(problem.model))[:, skin.pair_joint]  # (38,P)
        blends = skin.gather[None] * below[:, None]  # (38,K,P)
        joint, point = torch.nonzero(blends.abs().sum(-1) > 0, as_tuple=True)
        return cls(joint, point, blends[joint, point])


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Cross product over dim -2 of (...,3,B) tensors (broadcast)."""
    a1, a2, a3 = a.unbind(-2)
    b1, b2, b3 = b.unbind(-2)
    return torch.stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], dim=-2)


def _jacobian(problem: Problem, held: _Held, x: Tensor, config: FitConfig, turns: _Turns) -> tuple[Tensor, Tensor]:
    """Keypoint residuals (B,2K) at x (B,NUM) and their Jacobian (B,2K,NUM), in closed form: a
    change d of joint j's rotation vector u turns everything below j about the world axis
    G_j J_r(u) d through the joint's position (G_j its world rotation, J_r the right Jacobian);
    only the (joint, keypoint) pairs of `turns` are non-zero."""
    model, skin = problem.model, problem.skin
    B = x.shape[0]
    pose, hands = held.pose(x), held.hands(x)
    root = (axis_angle_to_matrix(held.orient_delta) @ held.orient_start)[:, None]
    rotations = model._local_rotations(pose, root, B, hands)
    world = model._world_transforms(held.betas, rotations, held.transl)  # (J+1,4,4,B)
    num_pairs = skin.pair_joint.shape[0]
    offsets = torch.addmm(skin.offset_template, skin.offset_shapedirs, held.betas.T).view(num_pairs, 4, B)
    selected = world[:, :3].index_select(0, skin.pair_joint)  # (P,3,4,B)
    pairs = (selected * offsets[:, None]).sum(2)  # (P,3,B): R b + a t per pair
    points = torch.mm(skin.gather, pairs.view(num_pairs, -1)).view(-1, 3, B)  # (K,3,B) camera frame
    joints = _solve_joints(model)
    blended = torch.cat([pairs, offsets[:, 3:]], dim=1).view(num_pairs, -1)  # (P,4B): R b + a t, and a
    moved = torch.mm(turns.blend, blended).view(-1, 4, B)  # (M,4,B): the part of keypoint k joint j turns
    lever = moved[:, :3] - moved[:, 3:] * world[joints, :3, 3][turns.joint]  # (M,3,B) from the joint
    local = torch.cat([hands.T.reshape(30, 3, B), pose.T.reshape(23, 3, B)[[j - 1 for j in ARM_JOINTS]]])
    axes = torch.einsum("jikb,jklb->jilb", world[joints, :3, :3], _right_jacobian(local))  # (38,3,3c,B)
    d_points = _cross(axes[turns.joint].transpose(1, 2), lever[:, None])  # (M,3c,3,B): axis_c x lever
    X = points[turns.point]  # (M,3,B)
    z = X[:, 2:3].clamp(min=EPS_DEPTH)  # as perspective_project (points the model lacks sit at 0)
    focal = problem.focal[None, None]
    d_proj = focal / z[:, None] * (d_points[:, :, :2] - X[:, None, :2] / z[:, None] * d_points[:, :, 2:3])
    d_proj = d_proj * (X[:, None, 2:3] > EPS_DEPTH)  # (M,3c,2,B); the clamp's derivative
    factor = _point_factors(problem, config)  # (B,K)
    z_all = points[:, 2:3].clamp(min=EPS_DEPTH)
    proj = (focal * points[:, :2] / z_all).permute(2, 0, 1) + problem.center[:, None]  # (B,K,2)
    residual = ((proj - problem.target) * factor[..., None]).reshape(B, -1)
    K = points.shape[0]
    jac = x.new_zeros(B, K, 2, len(joints), 3)
    jac[:, turns.point, :, turns.joint, :] = (d_proj * factor.T[turns.point][:, None, None]).permute(0, 3, 2, 1)
    return residual, jac.view(B, 2 * K, NUM)


def _prior_residuals(problem: Problem, x: Tensor, config: FitConfig) -> Tensor:
    """(B,180+A) curl prior, finger-limit and arm-change residuals at x (B,NUM)."""
    prior = config.hand_prior_weight * (x[:, :90] - problem.hand_mean)
    limits = config.finger_limit_weight * finger_limit_excess(x[:, :90], problem.hand_frames).flatten(1)
    arm = config.hand_arm_weight * x[:, 90:]
    return torch.cat([prior, limits, arm], dim=1)


def _prior_normal(problem: Problem, x: Tensor, config: FitConfig) -> tuple[Tensor, Tensor]:
    """The prior residuals' Gauss-Newton normal matrix (B,NUM,NUM) and gradient (B,NUM), in
    closed form: the curl prior and the arm pull are diagonal; a joint outside its finger range
    adds w^2 F^T D F on its 3x3 block (F its limit frame, D the angles outside)."""
    B = x.shape[0]
    frames = problem.hand_frames  # (30,3,3)
    excess = finger_limit_excess(x[:, :90], problem.hand_frames)  # (B,30,3)
    outside = (excess != 0).to(x.dtype)
    w_prior, w_limit, w_arm = config.hand_prior_weight**2, config.finger_limit_weight**2, config.hand_arm_weight**2
    diagonal = torch.cat([x.new_full((90,), w_prior), x.new_full((len(ARM),), w_arm)])
    normal = torch.diag_embed(diagonal.expand(B, -1)).clone()
    blocks = w_limit * torch.einsum("jai,bja,jak->bjik", frames, outside, frames)  # (B,30,3,3)
    normal[:, :90, :90] += _block_diag(blocks)
    limit_grad = w_limit * torch.einsum("jai,bja->bji", frames, excess).reshape(B, 90)
    grad = torch.cat([w_prior * (x[:, :90] - problem.hand_mean) + limit_grad, w_arm * x[:, 90:]], dim=1)
    return normal, grad


def _block_diag(blocks: Tensor) -> Tensor:
    """(B,30,3,3) -> (B,90,90) block-diagonal."""
    B = blocks.shape[0]
    out = blocks.new_zeros(B, 30, 3, 30, 3)
    idx = torch.arange(30, device=blocks.device)
    out[:, idx, :, idx, :] = blocks.permute(1, 0, 2, 3)
    return out.reshape(B, 90, 90)


def _side_columns(dtype: torch.dtype, device) -> Tensor:
    """(2,NUM) 1 on the values of the left / right hand and arm."""
    cols = torch.zeros(2, NUM, dtype=dtype, device=device)
    cols[0, :45], cols[1, 45:90] = 1.0, 1.0
    for i, joint in enumerate(ARM_JOINTS):
        cols[0 if joint in LEFT_ARM else 1, 90 + 3 * i : 93 + 3 * i] = 1.0
    return cols


def _side_costs(problem: Problem, held: _Held, x: Tensor, config: FitConfig) -> Tensor:
    """(B,2) the cost of each hand: its keypoints' squared residuals, its priors and its arm's change."""
    r = _keypoint_residuals(problem, held, x, config).pow(2)  # (B,2K)
    p = _prior_residuals(problem, x, config)
    cols = _side_columns(x.dtype, x.device)
    rows = torch.cat([cols[:, :90], cols[:, :90], cols[:, 90:]], dim=1)  # prior, limits, arm rows
    return r @ problem.hand_sides.repeat_interleave(2, dim=1).T + p.pow(2) @ rows.T


def _levenberg_marquardt(problem: Problem, held: _Held, config: FitConfig, x: Tensor, free: Tensor,
                         iters: int) -> Tensor:  # fmt: skip
    """x (B,NUM) after `iters` damped Gauss-Newton steps (values where free is 0 held)."""
    B, dev, dt = x.shape[0], x.device, x.dtype
    damping = torch.full((B,), DAMPING, dtype=dt, device=dev)

    def cost(x_: Tensor) -> Tensor:
        r = _keypoint_residuals(problem, held, x_, config)
        p = _prior_residuals(problem, x_, config)
        return r.pow(2).sum(1) + p.pow(2).sum(1)

    turns = _Turns.of(problem)
    # The two sides share no value and no keypoint: their normal equations are solved apart
    # (two 57-value systems instead of one of 114).
    sides = [torch.nonzero(c).flatten() for c in _side_columns(dt, dev)]
    side_eye = torch.eye(len(sides[0]), dtype=dt, device=dev)
    current = cost(x)
    for _ in range(iters):
        r0, jac = _jacobian(problem, held, x, config, turns)
        jac = jac * free[:, None]  # (B,2K,NUM)
        p_normal, p_grad = _prior_normal(problem, x, config)
        mask = free[:, :, None] * free[:, None, :]
        normal = torch.stack([jac[:, :, c].transpose(1, 2) @ jac[:, :, c] + (p_normal * mask)[:, c][:, :, c]
                              for c in sides])  # (2,B,S,S)  # fmt: skip
        grad = (jac.transpose(1, 2) @ r0[..., None])[..., 0] + p_grad * free
        grad = torch.stack([grad[:, c] for c in sides])[..., None]  # (2,B,S,1)
        held_out = torch.stack([1.0 - free[:, c] for c in sides])  # (2,B,S)
        diag = normal.diagonal(dim1=-2, dim2=-1).mean((0, 2)).clamp(min=1e-9)  # (B,)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        base = x
        for _attempt in range(3):  # raise the damping of the items whose step did not pay off
            system = normal + (damping * diag)[None, :, None, None] * side_eye + held_out[..., None] * side_eye
            lower, _ = torch.linalg.cholesky_ex(system)  # damped normal equations: positive definite
            steps = torch.cholesky_solve(grad, lower)[..., 0]  # (2,B,S)
            step = x.new_zeros(B, NUM)
            for c, side_step in zip(sides, steps):
                step[:, c] = side_step
            candidate = base - step * free
            new = cost(candidate)
            better = (new < current) & ~done
            x = torch.where(better[:, None], candidate, x)
            current = torch.where(better, new, current)
            damping = torch.where(better, damping * 0.3, torch.where(done, damping, damping * 10.0))
            done = done | better
            if bool(done.all()):
                break
    return x


@torch.no_grad()
def solve_hands(problem: Problem, params: Params, config: FitConfig, iters: int,
                start_curls: tuple[float, ...] = ()) -> None:  # fmt: skip
    """`iters` Levenberg-Marquardt steps on params.hand_pose and the arm joints of
    params.body_pose (in place), the rest held; each item keeps a step only if it lowers its
    cost; hands without keypoints (params.hands_free 0) do not move. start_curls: radians;
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
    free = torch.cat([params.hands_free, torch.ones(B, len(ARM), dtype=dt, device=dev)], dim=1).repeat(n, 1)
    tiled = problem if n == 1 else problem.index(torch.arange(B, device=dev).repeat(n))
    held_n = held.tiled(n)
    x = _levenberg_marquardt(tiled, held_n, config, x, free, iters).view(n, B, NUM)
    if n > 1:
        costs = _side_costs(tiled, held_n, x.reshape(n * B, NUM), config).view(n, B, 2)
        pick = costs.argmin(0)  # (B,2) the best start per hand
        cols = _side_columns(dt, dev)  # (2,NUM)
        chosen = x[pick[:, 0], torch.arange(B)] * cols[0] + x[pick[:, 1], torch.arange(B)] * cols[1]
    else:
        chosen = x[0]
    params.hand_pose.copy_(chosen[:, :90])
    params.body_pose[:, ARM] += chosen[:, 90:]
