"""Two people in one photo: what the multi-person terms buy (fitter.fitting.scene).

Random pairs of anny bodies (joint-limit poses shrunk x0.3, headings +-40 deg) rendered in one
image, the far one 0.3-0.8 m (half the pairs) or 1-2.5 m behind the near one and partly hidden by it; fitted from their true
COCO-17 keypoints and visible masks (so detection plays no part), default preset, in one batch.
Per variant: depth order right (near fitted nearer), |depth error| (m), sphere-proxy overlap
between the two bodies (mm, summed), 2D error (px), seconds per pair.

    python benchmarks/people.py [--n 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import load_body_model
from fitter.body.poses import mean_body_pose
from fitter.fitting import FitTargets, fit_config, fit_keypoints
from fitter.fitting.scene import body_spheres
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project
from fitter.keypoints import keypoint_regressor
from fitter.synthetic import render_people

FOCAL, SIZE = 1000.0, (800, 600)


def scene(model, rng: np.random.Generator, gap=(1.0, 2.5)) -> tuple[dict, np.ndarray, np.ndarray]:
    """One random pair: parameters (2,...), true COCO-17 keypoints (2,17,3), visible masks (2,H,W)."""
    from priors import sample_within_limits

    gen = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    pose = mean_body_pose() + 0.3 * (sample_within_limits(2, generator=gen) - mean_body_pose())
    yaw = torch.as_tensor(rng.uniform(-40, 40, 2), dtype=torch.float32)
    turn = torch.stack([torch.zeros(2), torch.deg2rad(yaw), torch.zeros(2)], 1)
    orient = matrix_to_axis_angle(
        axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]])) @ axis_angle_to_matrix(turn)
    )
    near_z = rng.uniform(3.5, 5.0)
    far_z = near_z + rng.uniform(*gap)
    x_near = rng.uniform(-0.4, 0.0)
    x_far = x_near + rng.uniform(0.25, 0.6) * far_z / near_z
    params = {"betas": torch.as_tensor(rng.normal(0, 0.7, (2, 10)), dtype=torch.float32).clamp(-2, 2), "body_pose": pose,
              "global_orient": orient, "transl": torch.tensor([[x_near, 0.1, near_z], [x_far, 0.0, far_z]], dtype=torch.float32)}  # fmt: skip
    _, visible = render_people(model, params, FOCAL, SIZE)
    reg = keypoint_regressor(model, "coco17")
    with torch.no_grad():
        out = model(*(params[k] for k in ("betas", "body_pose", "global_orient", "transl")))
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), torch.tensor([FOCAL, FOCAL]),
                                 torch.tensor([SIZE[0] / 2, SIZE[1] / 2]))  # fmt: skip
    return params, torch.cat([px, torch.ones_like(px[..., :1])], -1).numpy(), visible


def overlap_mm(joints: np.ndarray) -> float:
    centres, radii = body_spheres(torch.as_tensor(joints))
    dist = torch.cdist(centres[:1], centres[1:])[0]
    return float(torch.relu(radii[:, None] + radii[None] - dist).sum() * 1000)


DEPTH_ORDER_WEIGHT = 1e4  # the depth-order variants' weight (off by default: FitConfig.depth_order_weight 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_body_model("anny")
    rng = np.random.default_rng(args.seed)
    scenes = [scene(model, rng, gap=(1.0, 2.5) if i % 2 else (0.3, 0.8)) for i in range(args.n)]
    hidden = [1 - v[1].sum() / max(1, render_people(model, {k: x[1:] for k, x in p.items()}, FOCAL, SIZE)[1][0].sum())
              for p, _, v in scenes]  # fmt: skip
    base = fit_config("default")  # penetration on, depth order off (depth_order_weight 0)
    depth = replace(base, depth_order_weight=DEPTH_ORDER_WEIGHT)
    variants = {
        "separately (no scene terms, no ignore masks)": (base, False, False),
        "ignore masks only": (base, True, False),
        "ignore + penetration (default)": (base, True, True),
        "ignore + depth order": (replace(depth, penetration_weight=0.0), True, True),
        "ignore + penetration + depth order": (depth, True, True),
    }
    table = Table(title=f"{args.n} two-person renders, far person {100 * np.mean(hidden):.0f}% hidden on average")
    for col in ("variant", "depth order right", "|depth err| near / far m", "overlap mm", "2D err px", "s / pair"):
        table.add_column(col, justify="right")
    for name, (config, use_ignore, use_scene) in variants.items():
        right, depth_err, overlaps, err2d, seconds = [], [], [], [], []
        for params, kp, visible in scenes:
            masks = list(visible)
            targets = FitTargets(masks=masks, ignore_masks=[masks[1], masks[0]] if use_ignore else None,
                                 scenes=[0, 0] if use_scene else None)  # fmt: skip
            t = time.perf_counter()
            fit = fit_keypoints(kp, "coco17", SIZE, FOCAL, body_model=model, config=config, targets=targets)
            seconds.append(time.perf_counter() - t)
            right.append(fit.transl[0, 2] < fit.transl[1, 2])
            depth_err.append(np.abs(fit.transl[:, 2] - params["transl"][:, 2].numpy()))
            overlaps.append(overlap_mm(fit.joints))
            err2d.append(fit.reprojection_error_px.mean())
        d = np.mean(depth_err, 0)
        table.add_row(name, f"{np.sum(right)}/{len(right)}", f"{d[0]:.2f} / {d[1]:.2f}", f"{np.mean(overlaps):.0f}",
                      f"{np.mean(err2d):.2f}", f"{np.mean(seconds):.2f}")  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
