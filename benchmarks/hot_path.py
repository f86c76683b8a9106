"""Cost of each piece of the keypoint-fitting hot path, forward + backward, on this machine.

Run:  python benchmarks/hot_path.py [--threads 1 2] [--batches 1 256] [--repeats 7]

One Adam iteration of `fitter.fit_keypoints` evaluates the keypoint objective (pose the joints
and keypoint landmarks with `BodyModel.pose_landmarks`, project, robust reprojection cost, pose
and shape priors), back-propagates and takes an optimizer step. Each piece is timed here alone
on the default body model (anny, already loaded) with the objective's own input shapes, at
batch 1 (PyTorch's per-op overhead rules) and batch 256 (memory traffic starts to count).

Rows marked "fused" are the faster way to run the same objective that the fitter can adopt:
SMPL-joint blends folded into the landmark skin (landmark_skin(..., joint_weights)) and the
residual root rotation composed inside `pose_landmarks` (orient_base=). The Adam rows compare
its implementations (fused is fastest with 1 thread; with 2+ threads on a busy machine its
OpenMP region can stall for milliseconds).

Columns: median wall ms and median CPU ms (this process, all threads) per forward + backward
(optimizer rows: per step; iteration rows: zero_grad + objective + backward + step) over
`--repeats` timed runs of a few calls each; on a shared machine wall time is inflated by other
jobs, CPU time much less so. "ops" counts the ATen calls of one call (profiler events named
aten::*, nested calls included): a load-independent measure of the per-op overhead. The last
line gives the largest deviation of the fast path from the full-mesh `forward`, metres.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from fitter.body import BodyModel, load_body_model
from fitter.body.poses import mean_body_pose
from fitter.body.posing import forward_kinematics
from fitter.geometry import axis_angle_to_matrix, perspective_project
from fitter.keypoints import keypoint_regressor
from fitter.objectives import reprojection_term
from priors import angle_prior, default_prior_terms, joint_limit_penalty, pose_l2_prior, shape_prior

SIGMA = 100.0


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


class Inputs:
    """Fit-like inputs for batch size B: bodies in front of a camera and their noisy keypoints,
    parametrised as fitter.fitting does (residual root rotation on top of a start)."""

    def __init__(self, model: BodyModel, batch: int, keypoint_set: str, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.model = model
        self.regressor = keypoint_regressor(model, keypoint_set)
        reg = self.regressor
        self.skin = model.landmark_skin(reg.vertex_ids, reg.vertex_weights)
        self.skin_with_joints = model.landmark_skin(reg.vertex_ids, reg.vertex_weights, reg.joint_weights)
        self.betas = _leaf(0.5 * torch.randn(batch, model.num_betas, generator=gen))
        self.body_pose = _leaf(mean_body_pose() + 0.3 * torch.randn(batch, 69, generator=gen))
        self.orient_delta = _leaf(0.05 * torch.randn(batch, 3, generator=gen))
        start = torch.tensor([3.1, 0.0, 0.0]) + 0.1 * torch.randn(batch, 3, generator=gen)
        self.orient_start = axis_angle_to_matrix(start)
        self.transl = _leaf(torch.tensor([0.0, 0.2, 5.0]) + 0.1 * torch.randn(batch, 3, generator=gen))
        self.params = [self.betas, self.body_pose, self.orient_delta, self.transl]
        self.focal = torch.full((batch,), 1600.0)
        self.center = torch.tensor([640.0, 480.0])
        with torch.no_grad():
            pts3d = self.points()
            noise = 5.0 * torch.randn(batch, pts3d.shape[1], 2, generator=gen)
            self.target = perspective_project(pts3d, self.focal, self.center) + noise
        self.weights = torch.rand(batch, pts3d.shape[1], generator=gen) * reg.quality
        self.scale = torch.full((batch,), 224.0 / 600.0)
        self.prior_set = default_prior_terms(None)
        self.mean_pose = mean_body_pose()

    def global_orient(self) -> torch.Tensor:
        return (axis_angle_to_matrix(self.orient_delta) @ self.orient_start)[:, None]

    def points(self) -> torch.Tensor:
        """Keypoints (B,K,3) as fitter.fitting computes them today."""
        joints, landmarks = self.model.pose_landmarks(self.skin, self.betas, self.body_pose, self.global_orient(),
                                                      self.transl)  # fmt: skip
        return torch.einsum("kj,bjc->bkc", self.regressor.joint_weights, joints) + landmarks

    def points_fused(self) -> torch.Tensor:
        """The same keypoints: joint blends in the skin, root rotation composed in the fused op."""
        _, keypoints = self.model.pose_landmarks(self.skin_with_joints, self.betas, self.body_pose, self.orient_delta,
                                                 self.transl, orient_base=self.orient_start)  # fmt: skip
        return keypoints

    def _priors(self) -> torch.Tensor:
        prior = self.prior_set(self.body_pose, self.betas)
        total = 25.0 * prior["angle"] + 25.0 * prior["shape"] + 300.0**2 * prior["joint_limits"]
        return total + 0.478**2 * pose_l2_prior(self.body_pose - self.mean_pose)

    def objective(self) -> torch.Tensor:
        """The body-stage objective of fitter.fitting (default prior set, stage-4 weights)."""
        proj = perspective_project(self.points(), self.focal, self.center)
        return reprojection_term(proj, self.target, self.weights, self.scale, SIGMA) + self._priors()

    def objective_fused(self) -> torch.Tensor:
        proj = perspective_project(self.points_fused(), self.focal, self.center)
        return reprojection_term(proj, self.target, self.weights, self.scale, SIGMA) + self._priors()


def components(inp: Inputs) -> dict[str, Callable[[], torch.Tensor]]:
    """name -> closure returning a scalar to back-propagate."""
    model, batch = inp.model, inp.betas.shape[0]
    vectors = _leaf(inp.body_pose.detach().view(batch, 23, 3))
    num_slots = model.num_full_joints + 1
    local = torch.eye(4).reshape(1, 4, 4, 1).repeat(num_slots, 1, 1, batch)  # (J+1,4,4,B)
    local[:, :3, 3] = 0.1 * torch.randn(num_slots, 3, batch)
    local = _leaf(local)
    pts = _leaf(inp.points())
    proj = _leaf(perspective_project(pts, inp.focal, inp.center))
    return {
        "axis_angle_to_matrix (23 joints)": lambda: axis_angle_to_matrix(vectors).sum(),
        "forward_kinematics (pointer jumping)": lambda: forward_kinematics(local, model.fk_ancestors).sum(),
        "keypoints: pose_landmarks + joint blend": lambda: inp.points().sum(),
        "keypoints fused (skin joints, orient_base)": lambda: inp.points_fused().sum(),
        "perspective_project": lambda: perspective_project(pts, inp.focal, inp.center).sum(),
        "reprojection_term": lambda: reprojection_term(proj, inp.target, inp.weights, inp.scale, SIGMA).sum(),
        "joint_limit_penalty": lambda: joint_limit_penalty(inp.body_pose).sum(),
        "angle_prior": lambda: angle_prior(inp.body_pose).sum(),
        "shape_prior": lambda: shape_prior(inp.betas).sum(),
        "pose_l2_prior": lambda: pose_l2_prior(inp.body_pose - inp.mean_pose).sum(),
        "whole objective (as fitter.fitting)": lambda: inp.objective().sum(),
        "whole objective (fused)": lambda: inp.objective_fused().sum(),
    }


def _backward(loss_fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> None:
    for leaf in leaves:
        leaf.grad = None
    loss = loss_fn()
    if loss.requires_grad:
        loss.backward()


def time_call(fn: Callable[[], object], repeats: int, calls: int) -> tuple[float, float]:
    """Median (wall ms, CPU ms) per call."""
    for _ in range(3):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        walls.append((time.perf_counter() - wall) / calls * 1e3)
        cpus.append((time.process_time() - cpu) / calls * 1e3)
    return statistics.median(walls), statistics.median(cpus)


def count_ops(fn: Callable[[], object]) -> int:
    """ATen calls (profiler events named aten::*) of one call of fn."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def fast_path_deviation(inp: Inputs) -> float:
    """Max |fast-path keypoints - full-mesh keypoints| (metres), both ways of running the fast path."""
    with torch.no_grad():
        full = inp.model(inp.betas, inp.body_pose, inp.global_orient(), inp.transl)
        reference = inp.regressor.from_vertices(full.joints, full.vertices)
        return max(float((inp.points() - reference).abs().max()), float((inp.points_fused() - reference).abs().max()))


def _iteration(inp: Inputs, objective: Callable[[], torch.Tensor], fused_adam: bool) -> Callable[[], None]:
    opt = torch.optim.Adam(inp.params, lr=1e-4, fused=fused_adam)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        objective().sum().backward()
        opt.step()

    return step


def run(args: argparse.Namespace) -> None:
    console = Console(width=170)
    model = load_body_model(args.body_model)
    for threads in args.threads:
        torch.set_num_threads(threads)
        table = Table(title=f"hot path, forward + backward: body model {args.body_model}, {args.keypoint_set}, "
                            f"{threads} thread(s), median of {args.repeats}")  # fmt: skip
        table.add_column("component")
        for batch in args.batches:
            for col in ("wall ms", "cpu ms", "ops"):
                table.add_column(f"B={batch} {col}", justify="right")
        rows: dict[str, list[str]] = {}
        deviations = []

        def add(name: str, fn: Callable[[], object], calls: int) -> None:
            wall, cpu = time_call(fn, args.repeats, calls)
            rows.setdefault(name, []).extend([f"{wall:.3f}", f"{cpu:.3f}", str(count_ops(fn))])

        for batch in args.batches:
            inp = Inputs(model, batch, args.keypoint_set)
            calls = 20 if batch < 16 else 3
            deviations.append(fast_path_deviation(inp))
            for name, loss_fn in components(inp).items():
                add(name, lambda loss_fn=loss_fn: _backward(loss_fn, inp.params), calls)
            adam_variants = (
                ("Adam step (for-loop, today's default)", {"foreach": False}),
                ("Adam step (foreach)", {"foreach": True}),
                ("Adam step (fused)", {"fused": True}),
            )
            for label, kwargs in adam_variants:
                params = [_leaf(p) for p in inp.params]
                for p in params:
                    p.grad = torch.randn_like(p)
                add(label, torch.optim.Adam(params, lr=1e-4, **kwargs).step, calls)
            add("iteration: objective as today, Adam", _iteration(inp, inp.objective, False), calls)
            add("iteration: fused objective, Adam", _iteration(inp, inp.objective_fused, False), calls)
        for name, cells in rows.items():
            table.add_row(name, *cells)
        console.print(table)
        console.print(f"fast path vs full-mesh forward: max deviation {max(deviations) * 1000:.4f} mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keypoint-set", default="coco17")
    parser.add_argument("--body-model", default="anny")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
