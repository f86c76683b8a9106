"""Synthetic keypoint-fitting benchmark: accuracy and speed of `fitter.fit_keypoints`.

Bodies (`fitter.synthetic.sample_cases`): betas ~ N(0, 1), any heading, cameras 2-10 m away with
24-85 mm (35 mm-equivalent) lenses, every keypoint in view, posed (`--pose-source`) by

* `heldout` (default): real motion of the held-out CMU subjects 13 and 14, which neither the
  shipped pose prior nor the keypoint lifter was trained on. The poses come from `--poses`, a
  file written by `fitter mocap import` (split `heldout`); without it, from
  `$FITTER_HOME/mocap/cmu_poses.npz`, converted on the first run from `--mocap-dir`
  (../shared/mocap/cmu beside the project, ~2 min on 2 cores; used by path, never copied);
* `train`: the CMU train subjects (what the prior weights were tuned on);
* `limits`: poses drawn uniformly inside the joint limits, shrunk towards the mean pose by
  --pose-scale (the benchmark's old distribution, kept for comparison).

The draws are seeded with --seed (default 100); the lifter's training batches use seeds 0-2 and
the CMU train subjects only, so the two never share a draw.
The body's keypoints are projected, Gaussian noise is added and a fraction of points dropped;
then fitted. Prints MPJPE / PA-MPJPE (mm, 24 SMPL joints, pelvis-aligned / Procrustes-aligned),
the 2D error (px, against the clean points) and the time per fit, single and batched;
`--compare-sets` fits the same bodies from each listed keypoint set; `--true-start` also fits
them from the true pose (anchored to it, as to the lifter's start): how far the fit is from what
a perfect start would give.

    python benchmarks/synthetic.py [--n 64] [--config default] [--keypoint-set coco17] [--pose-source heldout|train|limits]
    python benchmarks/synthetic.py --compare-sets coco17,smpl24,openpose25,blazepose33,h36m17 --single 0 --batch 0
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import load_body_model
from fitter.fitting import fit_keypoints
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project
from fitter.init import Start
from fitter.keypoints import keypoint_regressor
from fitter.synthetic import joint_errors, sample_cases

DEFAULT_MOCAP = Path(__file__).resolve().parents[2] / "shared" / "mocap" / "cmu"
POSE_SOURCES = ("heldout", "train", "limits")


def corrupt(keypoints: np.ndarray, noise_px: float, missing: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise and drop a fraction of points (confidence 0)."""
    rng = np.random.default_rng(seed)
    kp = keypoints.copy()
    kp[..., :2] += rng.normal(0, noise_px, kp[..., :2].shape) if noise_px > 0 else 0
    if missing > 0:
        drop = rng.random(kp.shape[:2]) < missing
        kp[..., 2] = np.where(drop, 0.0, kp[..., 2])
    return kp.astype(np.float32)


def cached_mocap_poses(mocap_dir: str | Path = DEFAULT_MOCAP, model=None, say=print) -> Path:
    """$FITTER_HOME/mocap/cmu_poses.npz, converted from `mocap_dir` with `fitter.mocap` when missing."""
    from fitter.paths import cache_dir

    path = cache_dir("mocap") / "cmu_poses.npz"
    if not path.is_file():
        mocap_dir = Path(mocap_dir)
        if not mocap_dir.is_dir():
            raise SystemExit(f"no converted poses at {path} and no CMU folder at {mocap_dir}: pass --poses FILE "
                             "(fitter mocap import), --mocap-dir DIR, or --pose-source limits")  # fmt: skip
        from fitter.mocap import import_cmu, save_poses

        say(f"converting {mocap_dir} to {path} (once; ~2 min)")
        save_poses(path, import_cmu(mocap_dir, model=model))
    return path


def load_split(path: str | Path, split: str) -> np.ndarray:
    """(N,69) body poses of one split of a `fitter mocap import` file."""
    with np.load(path, allow_pickle=False) as npz:
        if "split" not in npz.files:
            raise SystemExit(f"{path} has no `split` array: write it with `fitter mocap import`")
        poses = npz["poses"][npz["split"] == split][:, 3:72]
    if len(poses) == 0:
        raise SystemExit(f"{path}: no poses in split {split!r}")
    return poses


def roll_camera(model, cases: dict, keypoint_set: str, degrees: float) -> dict:
    """`cases` seen by their camera rolled about its axis (the photo turned by `degrees`,
    clockwise as seen): orientation, translation and joints turned about the camera's z axis,
    the keypoints projected again (people lying or upside down in the photo)."""
    turn = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.radians(degrees)]]))[0].numpy()
    orient = axis_angle_to_matrix(torch.as_tensor(cases["global_orient"]))
    rolled = {**cases, "transl": cases["transl"] @ turn.T, "joints": cases["joints"] @ turn.T,
              "global_orient": matrix_to_axis_angle(torch.as_tensor(turn) @ orient).numpy()}  # fmt: skip
    rolled["keypoints"] = project_set(model, rolled, keypoint_set)
    return rolled


def describe_poses(args, poses: np.ndarray | None) -> str:
    if args.pose_source == "limits":
        return f"poses inside the joint limits x{args.pose_scale:g}"
    who = "held-out CMU subjects 13, 14" if args.pose_source == "heldout" else "CMU train subjects"
    return f"poses of the {who} ({len(poses)} frames)"


def project_set(model, cases: dict, keypoint_set: str) -> np.ndarray:
    """(N,K,3) clean keypoints of `keypoint_set` (px + confidence 1) on the bodies of `cases`."""
    reg = keypoint_regressor(model, keypoint_set)
    width, height = cases["image_size"]
    with torch.no_grad():
        o = model(*(torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient", "transl")))
        px = perspective_project(reg.from_vertices(o.joints, o.vertices), torch.as_tensor(cases["focal"]),
                                 torch.tensor([width / 2, height / 2], dtype=torch.float32))  # fmt: skip
    return torch.cat([px, torch.ones_like(px[..., :1])], dim=-1).numpy()


def score(model, cases: dict, keypoint_set: str, config: str, noise: float, missing: float, seed: int,
          clean: np.ndarray | None = None, true_start: bool = False) -> dict:  # fmt: skip
    """Fit the corrupted keypoints of one set (true_start: from the true pose, anchored to it);
    mean MPJPE, PA-MPJPE (mm), 2D error (px) and failures."""
    clean = cases["keypoints"] if clean is None else clean
    kp = corrupt(clean, noise, missing, seed=seed)
    start = None
    if true_start:
        start = Start.from_arrays(cases["global_orient"], cases["body_pose"], cases["betas"], cases["transl"])
        start.anchored[:] = True
    res = fit_keypoints(
        kp,
        keypoint_set,
        cases["image_size"],
        focal_length=cases["focal"],
        body_model=model,
        config=config,
        start=start,
    )
    mpjpe, pa = joint_errors(res.joints, cases["joints"])
    err2d = np.linalg.norm(res.keypoints_2d_fit - clean[..., :2], axis=-1).mean(1)
    return {"mpjpe": float(np.mean(mpjpe)), "pa": float(np.mean(pa)), "err2d": float(np.mean(err2d)),
            "failed": sum(s != "ok" for s in res.status), "prior": res.info["prior"]}  # fmt: skip


def run(args) -> None:
    console = Console(width=160)
    torch.set_num_threads(args.threads) if args.threads else None
    model = load_body_model(args.body_model)
    poses = None
    if args.pose_source != "limits":
        path = args.poses or cached_mocap_poses(args.mocap_dir, model, say=console.print)
        poses = load_split(path, args.pose_source)
    what = describe_poses(args, poses)
    draw = dict(seed=args.seed, pose_scale=args.pose_scale, poses=poses, max_yaw_deg=args.max_yaw)
    cases = sample_cases(model, args.n, args.keypoint_set, **draw)
    rolled = ""
    if args.roll:
        cases, rolled = roll_camera(model, cases, args.keypoint_set, args.roll), f", photo turned {args.roll:g} deg"
    table = Table(title=f"synthetic {args.keypoint_set} fits, {what}, body model {args.body_model}, config {args.config}, "
                        f"n={args.n}, heading +-{args.max_yaw:g} deg{rolled}, seed {args.seed}")  # fmt: skip
    for col in ("noise px", "missing", "MPJPE mm", "PA-MPJPE mm", "2D err px", "failed"):
        table.add_column(col, justify="right")
    prior = ""
    for noise in (0.0, 3.0, 10.0):
        for missing in (0.0, 0.2):
            s = score(model, cases, args.keypoint_set, args.config, noise, missing, args.seed)
            prior = s["prior"]
            table.add_row(f"{noise:g}", f"{missing:.0%}", f"{s['mpjpe']:.1f}", f"{s['pa']:.1f}", f"{s['err2d']:.2f}",
                          str(s["failed"]))  # fmt: skip
    table.caption = f"pose prior: {prior}"
    console.print(table)

    if args.true_start:
        ceiling = Table(
            title=f"the same {args.n} bodies fitted from their true pose (anchored to it), config {args.config}"
        )
        for col in ("noise px", "missing", "PA-MPJPE mm", "2D err px"):
            ceiling.add_column(col, justify="right")
        for noise, missing in ((0.0, 0.0), (3.0, 0.0), (0.0, 0.2)):
            s = score(model, cases, args.keypoint_set, args.config, noise, missing, args.seed, true_start=True)
            ceiling.add_row(f"{noise:g}", f"{missing:.0%}", f"{s['pa']:.1f}", f"{s['err2d']:.2f}")
        console.print(ceiling)

    if args.compare_sets:
        sets = [s.strip() for s in args.compare_sets.split(",") if s.strip()]
        compare = Table(title=f"keypoint sets on the same {args.n} bodies ({what}), config {args.config}: PA-MPJPE mm "
                              "(24 SMPL joints) and 2D error px of the clean fit")  # fmt: skip
        for col in ("keypoint set", "clean", "3 px noise", "20 % missing", "2D err px (clean)", "failed"):
            compare.add_column(col, justify="right")
        for keypoint_set in sets:
            clean = project_set(model, cases, keypoint_set)
            rows = [
                score(model, cases, keypoint_set, args.config, n, m, args.seed, clean)
                for n, m in ((0, 0), (3, 0), (0, 0.2))
            ]
            compare.add_row(keypoint_set, *(f"{r['pa']:.1f}" for r in rows), f"{rows[0]['err2d']:.2f}",
                            str(sum(r["failed"] for r in rows)))  # fmt: skip
        console.print(compare)

    if args.single <= 0 and args.batch <= 0:
        return
    speed = Table(title="speed (this machine, model loaded)")
    speed.add_column("what")
    speed.add_column("value", justify="right")
    if args.single > 0:  # single fits (median)
        times = []
        for i in range(min(args.single, args.n)):
            t = time.perf_counter()
            fit_keypoints(cases["keypoints"][i : i + 1], args.keypoint_set, cases["image_size"],
                          focal_length=cases["focal"][i : i + 1], body_model=model, config=args.config)  # fmt: skip
            times.append(time.perf_counter() - t)
        speed.add_row("single fit, median s", f"{statistics.median(times):.3f}")
    if args.batch > 0:
        big = sample_cases(model, args.batch, args.keypoint_set, **{**draw, "seed": args.seed + 1})
        t = time.perf_counter()
        fit_keypoints(big["keypoints"], args.keypoint_set, big["image_size"], focal_length=big["focal"], body_model=model,
                      config=args.config)  # fmt: skip
        batch_time = time.perf_counter() - t
        speed.add_row(f"batch of {args.batch}, s", f"{batch_time:.2f}")
        speed.add_row(f"batch of {args.batch}, fits/s", f"{args.batch / batch_time:.1f}")
    console.print(speed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="bodies per accuracy row")
    parser.add_argument("--batch", type=int, default=256, help="batch size for the throughput row (0: skip)")
    parser.add_argument("--single", type=int, default=10, help="single fits timed (0: skip)")
    parser.add_argument("--config", default="default")
    parser.add_argument("--keypoint-set", default="coco17")
    parser.add_argument(
        "--compare-sets", default="", help="also fit the same bodies from these keypoint sets (comma-separated)"
    )
    parser.add_argument("--true-start", action="store_true", help="also fit the bodies from their true pose")
    parser.add_argument("--body-model", default="anny")
    parser.add_argument(
        "--pose-source",
        choices=POSE_SOURCES,
        default="heldout",
        help="heldout / train: CMU subjects of that split; limits: uniform inside the joint limits",
    )
    parser.add_argument("--poses", default=None, help="a `fitter mocap import` npz (default: the cached conversion)")
    parser.add_argument("--mocap-dir", default=str(DEFAULT_MOCAP), help="CMU folder converted when no --poses / cache")
    parser.add_argument(
        "--pose-scale", type=float, default=0.5, help="limits: shrink joint-limit samples towards the mean pose"
    )
    parser.add_argument(
        "--max-yaw", type=float, default=180.0, help="headings drawn in +-this many degrees (0 = facing the camera)"
    )
    parser.add_argument("--roll", type=float, default=0.0,
                        help="turn the photos by this many degrees (camera roll: people lying, upside down)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=100)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
