"""`solve_hands`: damped Gauss-Newton (Levenberg-Marquardt) on the fingers and arms, the rest held.

Adam moves every finger joint by about one step size per iteration, and a finger travels up to
1.5 rad from the relaxed start: it needed ~200 iterations to settle. The hand problem is small
(114 values per person: hand_pose (90) and the collars, shoulders, elbows and wrists (24),
which place the hands) and nearly least squares, so a few
Gauss-Newton steps settle it instead. The Jacobian of the keypoints is taken by forward
differences in one batched posing call (B x 115 bodies); the curl prior, the finger limits and
a pull of the arm joints to where they were enter as residuals (linear; the limits' rows
switch on outside the ranges).
The Geman-McClure weights are left out (residuals of a converging fit sit far inside its sigma).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fitter.body.hands import curl_hand_pose
from fitter.fitting.config import FitConfig
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem
from fitter.geometry import perspective_project
from priors.finger_limits import finger_limit_angles, finger_limit_bounds

__all__ = ["solve_hands"]

STEP = 2e-3  # radians: forward-difference step
DAMPING = 1e-2  # initial Levenberg-Marquardt damping, x the mean of the normal matrix's diagonal
ARM_JOINTS = (13, 14, 16, 17, 18, 19, 20, 21)  # SMPL collars, shoulders, elbows, wrists
LEFT_ARM = (13, 16, 18, 20)
ARM = torch.tensor([3 * (j - 1) + c for j in ARM_JOINTS for c in range(3)])  # their body_pose values
NUM = 90 + len(ARM)  # hand-pose values + arm values


def _keypoint_residuals(problem: Problem, params: Params, x: Tensor, config: FitConfig) -> Tensor:
    """(M,2K) weighted keypoint residuals (crop units) for M = B x S candidates x (B*S, 96)."""
    B = len(problem)
    S = x.shape[0] // B
    rep = lambda t: t.repeat_interleave(S, 0)  # noqa: E731
    pose = rep(params.body_pose.detach()).clone()
    pose[:, ARM] = pose[:, ARM] + x[:, 90:]
    hands = x[:, :90] * rep(params.hands_free) + rep(params.hand_start) * (1.0 - rep(params.hands_free))
    root = rep(params.orient_delta.detach())
    _, points = problem.model.pose_landmarks(problem.skin, rep(params.betas.detach()), pose, root,
                                             rep(params.transl.detach()), orient_base=rep(params.orient_start),
                                             hand_pose=hands)  # fmt: skip
    proj = perspective_project(points, rep(problem.focal), rep(problem.center))
    weights = problem.weights * (1.0 + (config.hand_keypoint_weight - 1.0) * problem.hand_mask)
    scale = (rep(problem.scale) * rep(weights).T).T  # (M,K)
    return ((proj - rep(problem.target)) * scale[..., None]).flatten(1)


def _prior_residuals(problem: Problem, x: Tensor, config: FitConfig) -> tuple[Tensor, Tensor]:
    """Curl prior, finger-limit and arm-change residuals (B,180+A) and their Jacobian (B,180+A,NUM)."""
    B = x.shape[0]
    frames = problem.hand_frames
    prior = config.hand_prior_weight * (x[:, :90] - problem.hand_mean)
    angles = finger_limit_angles(x[:, :90], frames)  # (B,30,3)
    lower, upper = finger_limit_bounds(x.dtype, x.device)
    excess = angles - torch.maximum(torch.minimum(angles, upper), lower)
    outside = (excess != 0).to(x.dtype)  # (B,30,3)
    limits = config.finger_limit_weight * excess.reshape(B, 90)
    arm = config.hand_arm_weight * x[:, 90:]
    jac = x.new_zeros(B, 180 + len(ARM), NUM)
    jac[:, :90, :90] = config.hand_prior_weight * torch.eye(90, dtype=x.dtype, device=x.device)
    block = torch.einsum("bja,jac->bjac", outside * config.finger_limit_weight, frames)  # (B,30,3,3)
    jac[:, 90:180, :90] = _block_diag(block)
    jac[:, 180:, 90:] = config.hand_arm_weight * torch.eye(len(ARM), dtype=x.dtype, device=x.device)
    return torch.cat([prior, limits, arm], dim=1), jac


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


def _paired_columns(device) -> tuple[Tensor, Tensor]:
    """(P,), (P,) columns of x: each left value and its right twin (hand pose, arm joints)."""
    left = list(range(45))
    right = list(range(45, 90))
    for i, joint in enumerate(ARM_JOINTS):
        if joint in LEFT_ARM:
            twin = ARM_JOINTS.index(joint + 1)
            left += [90 + 3 * i + c for c in range(3)]
            right += [90 + 3 * twin + c for c in range(3)]
    return torch.tensor(left, device=device), torch.tensor(right, device=device)


def _side_costs(problem: Problem, params: Params, x: Tensor, config: FitConfig) -> Tensor:
    """(B,2) the cost of each hand: its keypoints' squared residuals, its priors and its arm's change."""
    r = _keypoint_residuals(problem, params, x, config).pow(2)  # (B,2K)
    p, _ = _prior_residuals(problem, x, config)
    cols = _side_columns(x.dtype, x.device)
    rows = torch.cat([cols[:, :90], cols[:, :90], cols[:, 90:]], dim=1)  # prior, limits, arm rows
    return r @ problem.hand_sides.repeat_interleave(2, dim=1).T + p.pow(2) @ rows.T


def _levenberg_marquardt(problem: Problem, params: Params, config: FitConfig, x: Tensor, free: Tensor,
                         iters: int) -> Tensor:  # fmt: skip
    """x (B,NUM) after `iters` damped Gauss-Newton steps (values where free is 0 held)."""
    B, dev, dt = x.shape[0], x.device, x.dtype
    damping = torch.full((B,), DAMPING, dtype=dt, device=dev)
    eye = torch.eye(NUM, dtype=dt, device=dev)

    def cost(x_: Tensor) -> Tensor:
        r = _keypoint_residuals(problem, params, x_, config)
        p, _ = _prior_residuals(problem, x_, config)
        return r.pow(2).sum(1) + p.pow(2).sum(1)

    # The two sides share no value and (nearly) no keypoint: one probe moves a left value and its
    # right twin, and each keypoint's change is credited to the value of its own side.
    left, right = _paired_columns(x.device)
    probe_dirs = x.new_zeros(len(left), NUM)
    probe_dirs[torch.arange(len(left)), left] = STEP
    probe_dirs[torch.arange(len(left)), right] = STEP
    side_rows = torch.tensor([[n.startswith(side) for n in problem.names] for side in ("left_", "right_")],
                             dtype=dt, device=dev).repeat_interleave(2, dim=1)  # (2,2K)  # fmt: skip
    current = cost(x)
    for _ in range(iters):
        probes = torch.cat([x[:, None], x[:, None] + probe_dirs], dim=1)
        r_all = _keypoint_residuals(problem, params, probes.reshape(-1, NUM), config).view(B, len(left) + 1, -1)
        r0 = r_all[:, 0]
        diff = (r_all[:, 1:] - r0[:, None]) / STEP  # (B,P,2K)
        jac = x.new_zeros(B, r0.shape[1], NUM)
        jac[:, :, left] = (diff * side_rows[0]).transpose(1, 2)
        jac[:, :, right] = (diff * side_rows[1]).transpose(1, 2)
        jac = jac * free[:, None]  # (B,2K,NUM)
        p0, pjac = _prior_residuals(problem, x, config)
        pjac = pjac * free[:, None]
        normal = jac.transpose(1, 2) @ jac + pjac.transpose(1, 2) @ pjac
        grad = jac.transpose(1, 2) @ r0[..., None] + pjac.transpose(1, 2) @ p0[..., None]
        diag = normal.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-9)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        base = x
        for _attempt in range(3):  # raise the damping of the items whose step did not pay off
            system = normal + (damping * diag)[:, None, None] * eye + (1.0 - free)[:, :, None] * eye
            candidate = base - torch.linalg.solve(system, grad)[..., 0] * free
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
    the solve is also run from fists of these curls (`curl_hand_pose`), and each hand keeps the
    start whose result costs least (2D keypoints do not tell a finger bent towards the camera
    from one bent away: from the relaxed start, curled fingers often settle bent backwards)."""
    if iters <= 0 or params.hand_pose is None:
        return
    B, dev, dt = len(problem), problem.target.device, problem.target.dtype
    free = torch.cat([params.hands_free, torch.ones(B, len(ARM), dtype=dt, device=dev)], dim=1)
    arm = params.hand_pose.new_zeros(B, len(ARM))
    x = _levenberg_marquardt(problem, params, config, torch.cat([params.hand_pose.detach(), arm], dim=1), free, iters)
    if start_curls:
        cols = _side_columns(dt, dev)
        best = _side_costs(problem, params, x, config)
        for curl in start_curls:
            fist = curl_hand_pose(problem.model, curl).to(x).expand(B, -1)
            hands = fist * params.hands_free + params.hand_pose.detach() * (1.0 - params.hands_free)
            other = _levenberg_marquardt(problem, params, config, torch.cat([hands, arm], dim=1), free, iters)
            costs = _side_costs(problem, params, other, config)
            take = (costs < best).to(dt)  # (B,2)
            x = x + (take @ cols) * (other - x)  # per side (the sides share no value)
            best = torch.minimum(costs, best)
    params.hand_pose.copy_(x[:, :90])
    params.body_pose[:, ARM] += x[:, 90:]
