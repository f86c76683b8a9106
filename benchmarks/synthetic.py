"""Synthetic keypoint-fitting benchmark: accuracy and speed of `fitter.fit_keypoints`.

Bodies (`fitter.synthetic.sample_cases`) are sampled from the model's shape space (betas ~ N(0, 1)),
poses uniformly inside the joint limits (shrunk towards the mean pose by --pose-scale) or from a
pose file (AMASS-style npz with `poses`), any heading, cameras 2-10 m away with 24-85 mm
(35 mm-equivalent) lenses, every keypoint in view.
The body's keypoints are projected, Gaussian noise is added and a fraction of points dropped;
then fitted. Prints MPJPE / PA-MPJPE (mm, 24 SMPL joints, pelvis-aligned / Procrustes-aligned),
the 2D error (px) and the time per fit, single and batched.

    python benchmarks/synthetic.py [--n 64] [--config default] [--keypoint-set coco17]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import load_body_model
from fitter.fitting import fit_keypoints
from fitter.synthetic import joint_errors, sample_cases


def corrupt(keypoints: np.ndarray, noise_px: float, missing: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise and drop a fraction of points (confidence 0)."""
    rng = np.random.default_rng(seed)
    kp = keypoints.copy()
    kp[..., :2] += rng.normal(0, noise_px, kp[..., :2].shape) if noise_px > 0 else 0
    if missing > 0:
        drop = rng.random(kp.shape[:2]) < missing
        kp[..., 2] = np.where(drop, 0.0, kp[..., 2])
    return kp.astype(np.float32)


def run(args) -> None:
    console = Console(width=140)
    torch.set_num_threads(args.threads) if args.threads else None
    model = load_body_model(args.body_model)
    poses = np.load(args.poses)["poses"][:, 3:72] if args.poses else None
    cases = sample_cases(model, args.n, args.keypoint_set, seed=args.seed, pose_scale=args.pose_scale, poses=poses,
                         max_yaw_deg=args.max_yaw)  # fmt: skip
    table = Table(title=f"synthetic {args.keypoint_set} fits, body model {args.body_model}, config {args.config}, n={args.n}, "
                        f"pose scale {args.pose_scale}, heading +-{args.max_yaw:g} deg")  # fmt: skip
    for col in ("noise px", "missing", "MPJPE mm", "PA-MPJPE mm", "2D err px", "failed"):
        table.add_column(col, justify="right")
    for noise in (0.0, 3.0, 10.0):
        for missing in (0.0, 0.2):
            kp = corrupt(cases["keypoints"], noise, missing, seed=args.seed)
            res = fit_keypoints(kp, args.keypoint_set, cases["image_size"], focal_length=cases["focal"],
                                body_model=model, config=args.config)  # fmt: skip
            mpjpe, pa = joint_errors(res.joints, cases["joints"])
            clean = res.keypoints_2d_fit - cases["keypoints"][..., :2]
            err2d = np.linalg.norm(clean, axis=-1).mean(1)
            table.add_row(f"{noise:g}", f"{missing:.0%}", f"{np.mean(mpjpe):.1f}", f"{np.mean(pa):.1f}",
                          f"{np.mean(err2d):.2f}", str(sum(s != "ok" for s in res.status)))  # fmt: skip
    console.print(table)

    # speed: single fits (median) and one batch
    times = []
    for i in range(min(args.single, args.n)):
        t = time.perf_counter()
        fit_keypoints(cases["keypoints"][i : i + 1], args.keypoint_set, cases["image_size"],
                      focal_length=cases["focal"][i : i + 1], body_model=model, config=args.config)  # fmt: skip
        times.append(time.perf_counter() - t)
    big = sample_cases(model, args.batch, args.keypoint_set, seed=args.seed + 1, pose_scale=args.pose_scale, poses=poses,
                       max_yaw_deg=args.max_yaw)  # fmt: skip
    t = time.perf_counter()
    fit_keypoints(big["keypoints"], args.keypoint_set, big["image_size"], focal_length=big["focal"], body_model=model,
                  config=args.config)  # fmt: skip
    batch_time = time.perf_counter() - t
    speed = Table(title="speed (this machine, model loaded)")
    speed.add_column("what")
    speed.add_column("value", justify="right")
    speed.add_row("single fit, median s", f"{statistics.median(times):.3f}")
    speed.add_row(f"batch of {args.batch}, s", f"{batch_time:.2f}")
    speed.add_row(f"batch of {args.batch}, fits/s", f"{args.batch / batch_time:.1f}")
    console.print(speed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="bodies per accuracy row")
    parser.add_argument("--batch", type=int, default=256, help="batch size for the throughput row")
    parser.add_argument("--single", type=int, default=10, help="single fits timed")
    parser.add_argument("--config", default="default")
    parser.add_argument("--keypoint-set", default="coco17")
    parser.add_argument("--body-model", default="anny")
    parser.add_argument("--poses", default=None, help="AMASS-style npz with a `poses` array (N,>=72)")
    parser.add_argument("--pose-scale", type=float, default=0.5, help="shrink joint-limit samples towards the mean pose")
    parser.add_argument("--max-yaw", type=float, default=180.0, help="headings drawn in +-this many degrees (0 = facing the camera)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
