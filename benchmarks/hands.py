"""Whole-body (body + fingers) fitting on synthetic photos: finger accuracy and cost.

Run:  python benchmarks/hands.py [--n 16] [--seed 2026] [--body-set coco17] [--heights 1000 2000]
                                 [--noise 0 2] [--side-scale 0.3] [--singles 4]

Cases (fitter.synthetic.sample_hand_cases on `anny-hands`): bodies with random betas and body
poses (joint-limit poses shrunk halfway to the mean), random finger poses drawn uniformly inside
the finger limits (priors.finger_limits; flexion over its full range, abduction and twist over
`--side-scale` of theirs: on hinges those axes are model slack, not motion), each person filling
60-90 % of a portrait photo (W = 0.75 H) of each `--heights`; `--body-set` + hands42 keypoints
projected, clean or with Gaussian pixel noise (`--noise`, px per coordinate). Fitted with the
default preset, batched.

Columns: hand size (px, the longer side of a hand's keypoint box, mean); finger angle error
(deg, mean geodesic angle between fitted and true local rotations of all 30 finger joints);
hand 2D (px, mean distance of the fitted hand keypoints to the given ones: with noise, to the
noisy ones); hand PA-MPJPE (mm, the 21 points of each hand Procrustes-aligned per hand, scale
included, mean over hands); body 2D (px). Times, CPU seconds of this process (one torch
thread; the wall clock of a shared machine drifts with other jobs): the whole batch (`--n` people) with hands and
body-only (the `--body-set` keypoints alone, same model and cases), and single-person fits
(mean over `--singles` people fitted one at a time), with their ratio.
Tuning used seeds 100 / 101 (6 people each); report another seed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import BodyModel, load_body_model
from fitter.fitting import fit_keypoints
from fitter.geometry import procrustes_align, rotation_angle_between
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.synthetic import sample_hand_cases


def hand_points_3d(model: BodyModel, result, keypoint_set: str) -> np.ndarray:
    """(N,42,3) the fitted hands42 points in the camera frame, metres."""
    reg = keypoint_regressor(model, keypoint_set)
    out = result.pose(model)
    with torch.no_grad():
        points = reg.from_vertices(out.joints, out.vertices)
    return points[:, -42:].numpy()


def metrics(model: BodyModel, case: dict, result, keypoints: np.ndarray, keypoint_set: str) -> dict[str, float]:
    """Finger angle error (deg), hand / body 2D (px), per-hand PA-MPJPE (mm), hand size (px)."""
    k = len(keypoint_names(keypoint_set)) - 42
    angle = rotation_angle_between(torch.as_tensor(result.hand_pose).reshape(-1, 3),
                                   torch.as_tensor(case["hand_pose"]).reshape(-1, 3))  # fmt: skip
    err2d = np.linalg.norm(result.keypoints_2d_fit - keypoints[..., :2], axis=-1)
    err2d = np.where(keypoints[..., 2] > 0, err2d, np.nan)  # points the model lacks (confidence 0) left out
    fitted = torch.as_tensor(hand_points_3d(model, result, keypoint_set)).reshape(-1, 21, 3)
    truth = torch.as_tensor(case["points3d"][:, -42:]).reshape(-1, 21, 3)
    aligned = procrustes_align(fitted, truth)
    pa = (aligned - truth).norm(dim=-1).mean().item() * 1000
    hands = case["keypoints"][:, k:, :2].reshape(-1, 21, 2)
    size = np.ptp(hands, axis=1).max(-1).mean()
    return {"size": float(size), "angle": float(np.degrees(angle.mean())), "hand2d": float(np.nanmean(err2d[:, k:])),
            "pa": pa, "body2d": float(np.nanmean(err2d[:, :k]))}  # fmt: skip


def timed(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="people per photo size")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--body-set", default="coco17", choices=["coco17", "blazepose33"])
    parser.add_argument("--heights", type=int, nargs="+", default=[1000, 2000], help="image heights, px")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 2.0], help="keypoint noise, px")
    parser.add_argument("--side-scale", type=float, default=0.3)
    parser.add_argument("--singles", type=int, default=4, help="people timed as single-person fits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_body_model("anny-hands")
    keypoint_set = f"{args.body_set}+hands42"
    k = len(keypoint_names(args.body_set))
    table = Table(title=f"anny-hands, {keypoint_set}, default preset, seed {args.seed}, {args.n} people per row")
    for col in ("image H", "noise px", "hand px", "finger deg", "hand 2D px", "hand PA mm", "body 2D px",
                "batch s (body-only)", "ratio", "single s (body-only)", "ratio"):  # fmt: skip
        table.add_column(col, justify="right")
    for h, height in enumerate(args.heights):
        size = (round(0.75 * height), height)
        case = sample_hand_cases(model, args.n, args.body_set, seed=args.seed + h, side_scale=args.side_scale,
                                 image_size=size)  # fmt: skip
        for noise in args.noise:
            rng = np.random.default_rng(args.seed + 7 * h + int(10 * noise))
            kp = case["keypoints"].copy()
            kp[..., :2] += rng.normal(scale=noise, size=kp[..., :2].shape) if noise > 0 else 0.0

            def fit(points, kset, ids=slice(None)):
                return fit_keypoints(points[ids], kset, image_size=size, focal_length=case["focal"][ids],
                                     body_model=model)  # fmt: skip

            fit(kp, keypoint_set, slice(0, 1)), fit(kp[:, :k], args.body_set, slice(0, 1))  # warm-up (caches, lifter)
            t_whole, result = timed(lambda: fit(kp, keypoint_set))
            t_body, _ = timed(lambda: fit(kp[:, :k], args.body_set))
            singles = range(min(args.singles, args.n))
            s_whole = np.mean([timed(lambda: fit(kp, keypoint_set, slice(i, i + 1)))[0] for i in singles])
            s_body = np.mean([timed(lambda: fit(kp[:, :k], args.body_set, slice(i, i + 1)))[0] for i in singles])
            m = metrics(model, case, result, kp, keypoint_set)
            table.add_row(str(height), f"{noise:g}", f"{m['size']:.0f}", f"{m['angle']:.1f}", f"{m['hand2d']:.2f}",
                          f"{m['pa']:.1f}", f"{m['body2d']:.1f}", f"{t_whole:.2f} ({t_body:.2f})",
                          f"{t_whole / t_body:.2f}x", f"{s_whole:.3f} ({s_body:.3f})", f"{s_whole / s_body:.2f}x")  # fmt: skip
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
