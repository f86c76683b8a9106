"""Cost of each piece of the keypoint-fitting hot path, forward + backward, on this machine.

Run:  python benchmarks/hot_path.py [--threads 1 2] [--batches 1 256] [--repeats 7]

One Adam iteration of `fitter.fit_keypoints` evaluates the keypoint objective (pose the joints
and keypoint landmarks with `BodyModel.pose_landmarks`, project, robust reprojection cost, pose
and shape priors), back-propagates and takes an optimizer step. Each piece is timed here alone
on the default body model (anny, model already loaded) with the objective's own input shapes,
at batch 1 (PyTorch's per-op overhead rules) and batch 256 (memory traffic starts to count).

Columns: median wall ms and median CPU ms (this process, all threads) per forward + backward
(for the optimizer rows: per step) over `--repeats` timed runs of a few calls each; on a shared
machine wall time is inflated by other jobs, CPU time much less so. "ops" counts the ATen calls
of one forward + backward (profiler events named aten::*, nested calls included): a
load-independent measure of the per-op overhead. Last column: largest deviation of the fast
path (joints + landmarks) from the full-mesh `forward` for the same pose, metres.
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
from fitter.body.model import forward_kinematics
from fitter.geometry import axis_angle_to_matrix, perspective_project
from fitter.keypoints import keypoint_regressor
from fitter.objectives import reprojection_term
from fitter.optimize import mean_body_pose
from priors import angle_prior, default_prior_terms, joint_limit_penalty, pose_l2_prior, shape_prior

# A component returns (closure computing the loss from the leaves, list of leaves needing grad).
Component = Callable[[], torch.Tensor]


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


class Inputs:
    """Fit-like inputs for batch size B: a body in front of a camera and its coco17 keypoints."""

    def __init__(self, model: BodyModel, batch: int, keypoint_set: str, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.model = model
        self.regressor = keypoint_regressor(model, keypoint_set)
        self.skin = model.landmark_skin(self.regressor.vertex_ids, self.regressor.vertex_weights)
        self.betas = _leaf(0.5 * torch.randn(batch, model.num_betas, generator=gen))
        self.body_pose = _leaf(mean_body_pose() + 0.3 * torch.randn(batch, 69, generator=gen))
        self.global_orient = _leaf(torch.tensor([3.1, 0.0, 0.0]) + 0.1 * torch.randn(batch, 3, generator=gen))
        self.transl = _leaf(torch.tensor([0.0, 0.2, 5.0]) + 0.1 * torch.randn(batch, 3, generator=gen))
        self.params = [self.betas, self.body_pose, self.global_orient, self.transl]
        self.focal = torch.full((batch,), 1600.0)
        self.center = torch.tensor([640.0, 480.0])
        with torch.no_grad():
            joints, pts3d = self.points()
            self.target = perspective_project(pts3d, self.focal, self.center) + 5.0 * torch.randn(
                batch, pts3d.shape[1], 2, generator=gen
            )
        self.weights = torch.rand(batch, pts3d.shape[1], generator=gen) * self.regressor.quality
        self.scale = torch.full((batch,), 224.0 / 600.0)
        self.prior_set = default_prior_terms(None)
        self.mean_pose = mean_body_pose()

    def points(self) -> tuple[torch.Tensor, torch.Tensor]:
        joints, landmarks = self.model.pose_landmarks(self.skin, self.betas, self.body_pose, self.global_orient, self.transl)
        return joints, torch.einsum("kj,bjc->bkc", self.regressor.joint_weights, joints) + landmarks

    def objective(self) -> torch.Tensor:
        """The body-stage objective of fitter.optimize (default prior set, stage-4 weights)."""
        _, pts3d = self.points()
        proj = perspective_project(pts3d, self.focal, self.center)
        total = reprojection_term(proj, self.target, self.weights, self.scale, 100.0)
        prior = self.prior_set(self.body_pose, self.betas)
        total = total + 25.0 * prior["angle"] + 25.0 * prior["shape"] + 300.0**2 * prior["joint_limits"]
        return total + 0.478**2 * pose_l2_prior(self.body_pose - self.mean_pose)


def components(inp: Inputs) -> dict[str, Component]:
    model, batch = inp.model, inp.betas.shape[0]
    vectors = _leaf(torch.cat([inp.global_orient, inp.body_pose], 1).detach().view(batch, 24, 3))
    num_slots = model.num_full_joints + 1
    local = torch.eye(4).reshape(1, 4, 4, 1).repeat(num_slots, 1, 1, batch)  # (J+1,4,4,B)
    local[:, :3, 3] = 0.1 * torch.randn(num_slots, 3, batch)
    local = _leaf(local)
    pts = _leaf(inp.points()[1])
    proj = _leaf(perspective_project(pts, inp.focal, inp.center))
    return {
        "axis_angle_to_matrix (24 joints)": lambda: axis_angle_to_matrix(vectors).sum(),
        "forward_kinematics (pointer jumping)": lambda: forward_kinematics(local, model.fk_ancestors).sum(),
        "pose_landmarks (joints + keypoints)": lambda: sum(t.sum() for t in inp.points()),
        "perspective_project": lambda: perspective_project(pts, inp.focal, inp.center).sum(),
        "reprojection_term": lambda: reprojection_term(proj, inp.target, inp.weights, inp.scale, 100.0).sum(),
        "joint_limit_penalty": lambda: joint_limit_penalty(inp.body_pose).sum(),
        "angle_prior": lambda: angle_prior(inp.body_pose).sum(),
        "shape_prior": lambda: shape_prior(inp.betas).sum(),
        "pose_l2_prior": lambda: pose_l2_prior(inp.body_pose - inp.mean_pose).sum(),
        "whole objective": lambda: inp.objective().sum(),
    }


def _run_backward(loss_fn: Component, leaves: list[torch.Tensor]) -> None:
    for leaf in leaves:
        leaf.grad = None
    loss = loss_fn()
    if loss.requires_grad:
        loss.backward()


def time_call(fn: Callable[[], None], repeats: int, calls: int) -> tuple[float, float]:
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


def count_ops(fn: Callable[[], None]) -> int:
    """ATen calls (profiler events named aten::*) of one call of fn."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def fast_path_deviation(inp: Inputs) -> float:
    """Max |fast-path keypoints - full-mesh keypoints| (metres) for the benchmark poses."""
    with torch.no_grad():
        _, fast = inp.points()
        full = inp.model(inp.betas, inp.body_pose, inp.global_orient, inp.transl)
        reference = inp.regressor.from_vertices(full.joints, full.vertices)
    return float((fast - reference).abs().max())


def run(args: argparse.Namespace) -> None:
    console = Console()
    model = load_body_model(args.body_model)
    for threads in args.threads:
        torch.set_num_threads(threads)
        table = Table(title=f"hot path fwd+bwd, body model {args.body_model}, {args.keypoint_set}, {threads} thread(s)")
        table.add_column("component")
        for batch in args.batches:
            for col in ("wall ms", "cpu ms", "ops"):
                table.add_column(f"B={batch} {col}", justify="right")
        rows: dict[str, list[str]] = {}
        deviations = []
        for batch in args.batches:
            inp = Inputs(model, batch, args.keypoint_set)
            calls = max(1, 40 // batch) if batch < 16 else 3
            deviations.append(fast_path_deviation(inp))
            leaves = inp.params
            for name, loss_fn in components(inp).items():
                step = lambda loss_fn=loss_fn: _run_backward(loss_fn, leaves)  # noqa: E731
                wall, cpu = time_call(step, args.repeats, calls)
                rows.setdefault(name, []).extend([f"{wall:.3f}", f"{cpu:.3f}", str(count_ops(step))])
            for label, kwargs in (("Adam step (for-loop)", {"foreach": False}), ("Adam step (foreach)", {"foreach": True}),
                                  ("Adam step (fused)", {"fused": True})):  # fmt: skip
                params = [_leaf(p) for p in inp.params]
                for p in params:
                    p.grad = torch.randn_like(p)
                opt = torch.optim.Adam(params, lr=0.01, **kwargs)
                wall, cpu = time_call(opt.step, args.repeats, calls)
                rows.setdefault(label, []).extend([f"{wall:.3f}", f"{cpu:.3f}", str(count_ops(opt.step))])
            opt = torch.optim.Adam(inp.params, lr=1e-4, fused=True)

            def iteration() -> None:
                opt.zero_grad(set_to_none=True)
                inp.objective().sum().backward()
                opt.step()

            wall, cpu = time_call(iteration, args.repeats, calls)
            rows.setdefault("iteration: objective + fused Adam", []).extend([f"{wall:.3f}", f"{cpu:.3f}", str(count_ops(iteration))])
        for name, cells in rows.items():
            table.add_row(name, *cells)
        console.print(table)
        console.print(f"fast path vs full mesh: max deviation {max(deviations) * 1000:.4f} mm")


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
