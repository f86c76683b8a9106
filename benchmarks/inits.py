"""Initializer benchmark: where fitting starts and where `fit_keypoints` ends, per initializer.

Synthetic people (`fitter.synthetic.sample_cases`: anny bodies, betas ~ N(0,1), poses inside the joint
limits, any heading, 24-85 mm lenses at 2-10 m) are seen as:
* BlazePose-33 keypoints: the model's points projected, + Gaussian pixel noise (--noise-px),
  confidence 1 (0 for points the model lacks);
* mediapipe-like world landmarks: the same points in camera axes, hip-centred, + Gaussian noise
  (--landmark-noise metres);
* a person mask: the rendered silhouette (for NBF's part split); an RGB picture: the shaded mesh
  on grey (only used by regressors whose checkpoints are present; out of their training domain).

Initializers: none (fit_keypoints' frontal start), mediapipe (landmark IK), "mediapipe +
landmarks3d" (the same start, and the world landmarks also pulled on during the fit with
FitConfig.landmarks3d_weight), nbf (when a trained checkpoint is found or given with --nbf),
hmr / cliff / pare (when their checkpoints are found).
Prints start and final errors: PA-MPJPE and MPJPE (mm, 24 joints; MPJPE pelvis-aligned) and the
global orientation error (degrees), plus seconds per person for the initializer.

With --real, the photos of shared/eval with 3D ground truth (Human3.6M, MPI-INF-3DHP; camera
frame, mm) are also run: mediapipe detects keypoints, world landmarks and the mask, and the
table gives PA-MPJPE (mm) over the 12 limb joints (shoulders, elbows, wrists, hips, knees,
ankles) of mediapipe's own world landmarks, of the start and of the fit.

    python benchmarks/inits.py [--n 16] [--config fast] [--nbf /path/nbf_anny.pt] [--real]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import load_body_model
from fitter.body.poses import mean_body_pose
from fitter.camera import resolve_camera
from fitter.fitting import FitTargets, fit_config, fit_keypoints
from fitter.geometry import axis_angle_to_matrix
from fitter.init import Start, StartInputs, available_initializers, make_initializer
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.synthetic import joint_errors, sample_cases


def orientation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) rotation angle (degrees) between axis-angle orientations a and b (N,3)."""
    ra = axis_angle_to_matrix(torch.as_tensor(np.asarray(a), dtype=torch.float32))
    rb = axis_angle_to_matrix(torch.as_tensor(np.asarray(b), dtype=torch.float32))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-1, dim2=-2).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).numpy()


def joints_of(model, params: dict) -> np.ndarray:
    with torch.no_grad():
        args = [
            torch.as_tensor(np.asarray(params[k]), dtype=torch.float32) for k in ("betas", "body_pose", "global_orient")
        ]
        return model(*args).joints.numpy()


def _landmarks_config(args):
    """The fit config of the landmarks3d rows: the preset, with --landmarks3d-weight if given."""
    if args.landmarks3d_weight is None:
        return fit_config(args.config)
    return fit_config(args.config, landmarks3d_weight=args.landmarks3d_weight)


def make_observations(model, cases: dict, noise_px: float, landmark_noise: float, seed: int, images: bool) -> dict:
    """Keypoints, world landmarks, masks (and pictures) of the sampled people."""
    from fitter.render import render_mask, render_shaded

    rng = np.random.default_rng(seed)
    reg = keypoint_regressor(model, "blazepose33")
    names = keypoint_names("blazepose33")
    kp = cases["keypoints"].copy()
    kp[..., :2] += rng.normal(0.0, noise_px, kp[..., :2].shape)
    kp[..., 2] = (reg.quality.numpy() > 0).astype(np.float32)
    params = [torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient", "transl")]
    width, height = (int(v) for v in cases["image_size"])
    with torch.no_grad():
        out = model(*params[:3])
        pts = reg.from_vertices(out.joints, out.vertices)
        hips = (pts[:, names.index("left_hip")] + pts[:, names.index("right_hip")]) / 2
        world = (pts - hips[:, None]).numpy() + rng.normal(0.0, landmark_noise, pts.shape)
        posed = model(*params).vertices
        center = torch.tensor([width / 2.0, height / 2.0])
        masks = render_mask(posed, model.faces, torch.as_tensor(cases["focal"]), center, (width, height)).numpy()
    pictures = []
    if images:
        for i in range(len(posed)):
            rgb, mask = render_shaded(posed[i], model.faces, float(cases["focal"][i]), center, (width, height))
            pictures.append(np.where(mask[..., None], rgb, 128).astype(np.uint8))
    else:
        pictures = [np.zeros((height, width, 3), np.uint8)] * len(posed)
    return {
        "keypoints": kp.astype(np.float32),
        "world": world.astype(np.float32),
        "masks": list(masks),
        "images": pictures,
    }


def initialize(name: str, images, keypoints, image_sizes, focal, model, owners, **kwargs) -> Start | None:
    """The start of initializer `name` for N BlazePose-33 people (None for "none": fit_keypoints' own)."""
    if name == "none":
        return None
    n = len(keypoints)
    camera = resolve_camera(
        np.broadcast_to(np.asarray(image_sizes, np.float32), (n, 2)), n, np.asarray(focal, np.float32)
    )
    checkpoint = kwargs.pop("checkpoint_path", None)
    inputs = StartInputs.build(
        keypoints, "blazepose33", camera, model, mean_body_pose(), images=images, owners=owners, **kwargs
    )
    return make_initializer(name, model, checkpoint_path=checkpoint)(inputs)


def as_arrays(start: Start) -> dict[str, np.ndarray]:
    return {k: getattr(start, k).numpy() for k in ("betas", "body_pose", "global_orient", "transl")}


def run(args) -> None:
    console = Console()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_body_model(args.body_model)
    cases = sample_cases(
        model, args.n, "blazepose33", seed=args.seed, pose_scale=args.pose_scale, image_size=(640, 480)
    )
    available = available_initializers()
    names = ["none", "mediapipe"]
    if args.nbf or "nbf" in available:
        names.append("nbf")
    names += [n for n in ("hmr", "cliff", "pare") if n in available]
    rows = [(name, name, False) for name in names]
    rows.insert(2, ("mediapipe + landmarks3d", "mediapipe", True))  # the 3D landmarks also pulled on in the fit
    obs = make_observations(model, cases, args.noise_px, args.landmark_noise, args.seed,
                            images=any(n in ("hmr", "cliff", "pare") for n in names))  # fmt: skip
    truth = joints_of(model, cases)
    n = args.n
    table = Table(box=None, title=f"initializers on {n} synthetic people (anny, blazepose33, noise {args.noise_px} px, "
                        f"landmarks {args.landmark_noise * 100:.0f} cm, config {args.config})")  # fmt: skip
    for col in ("init", "s/person", "start PA mm", "start MPJPE mm", "start orient deg",
                "final PA mm", "final MPJPE mm", "final orient deg", "final 2D px"):  # fmt: skip
        table.add_column(col, justify="right")
    landmarks3d = np.concatenate([obs["world"], obs["keypoints"][..., 2:]], axis=-1)  # (N,33,4) + weight
    for label, name, use_landmarks in rows:
        start = time.perf_counter()
        init = initialize(name, obs["images"], obs["keypoints"], cases["image_size"], cases["focal"], model,
                          list(range(n)), world_landmarks=obs["world"], masks=obs["masks"],
                          checkpoint_path=args.nbf if name == "nbf" else None)  # fmt: skip
        seconds = (time.perf_counter() - start) / n
        start_params = as_arrays(init) if init is not None else {
            "betas": np.zeros((n, 10), np.float32), "body_pose": mean_body_pose().expand(n, 69).numpy(),
            "global_orient": np.tile(np.array([[math.pi, 0.0, 0.0]], np.float32), (n, 1)),
        }  # fmt: skip
        mp0, pa0 = joint_errors(joints_of(model, start_params), truth)
        or0 = orientation_error_deg(start_params["global_orient"], cases["global_orient"])
        config = _landmarks_config(args) if use_landmarks else args.config
        result = fit_keypoints(obs["keypoints"], "blazepose33", cases["image_size"], focal_length=cases["focal"],
                               body_model=model, start=init, config=config,
                               targets=FitTargets(landmarks3d=landmarks3d if use_landmarks else None))  # fmt: skip
        mp1, pa1 = joint_errors(result.joints - result.transl[:, None], truth)
        or1 = orientation_error_deg(result.global_orient, cases["global_orient"])
        table.add_row(label, f"{seconds:.3f}", f"{pa0.mean():.1f}", f"{mp0.mean():.1f}", f"{or0.mean():.1f}",
                      f"{pa1.mean():.1f}", f"{mp1.mean():.1f}", f"{or1.mean():.1f}",
                      f"{result.reprojection_error_px.mean():.2f}")  # fmt: skip
        console.print(f"{label}: done", style="dim")
    console.print(table)


EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
LIMBS = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
         "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
GT_NAMES = {"h36m": {**{n: n for n in LIMBS}, "left_ankle": "left_foot", "right_ankle": "right_foot"},
            "mpi_inf_3dhp": {n: n for n in LIMBS}}  # fmt: skip


def run_real(args, model, console: Console) -> None:
    """Initializers on the eval photos with 3D ground truth (see the module docstring)."""
    import json

    from fitter.detect import BlazePoseDetector
    from fitter.io.images import read_image

    if not EVAL_DIR.is_dir():
        console.print(f"--real: {EVAL_DIR} is absent; skipped")
        return
    reg = keypoint_regressor(model, "blazepose33")
    index = [keypoint_names("blazepose33").index(n) for n in LIMBS]

    def limbs(params) -> np.ndarray:
        with torch.no_grad():
            args_ = [
                torch.as_tensor(np.asarray(params[k]), dtype=torch.float32)
                for k in ("betas", "body_pose", "global_orient")
            ]
            out = model(*args_)
            return reg.from_vertices(out.joints, out.vertices)[:, index].numpy()

    rows: dict[str, list[float]] = {k: [] for k in ("mediapipe world landmarks", "start: none (frontal)", "start: mediapipe",
                                                     "fit: none", "fit: mediapipe", "fit: mediapipe + landmarks3d")}  # fmt: skip
    used = []
    with BlazePoseDetector() as detector:
        for subset in ("h36m", "mpi_inf_3dhp"):
            ann = json.loads((EVAL_DIR / subset / "annotations.json").read_text())
            names = ann["joint_names"]
            for item in ann["images"]:
                image = read_image(EVAL_DIR / subset / item["file"])
                det = detector.detect(image)
                if det is None:
                    console.print(f"{subset}/{item['file']}: mediapipe found nobody; skipped")
                    continue
                used.append(f"{subset}/{Path(item['file']).name}")
                truth = (
                    np.array(item["joints_3d_camera_mm"], np.float32)[
                        [names.index(GT_NAMES[subset][n]) for n in LIMBS]
                    ][None]
                    / 1000
                )
                size = (item["width"], item["height"])
                focal = float(np.mean(item["camera"]["f"]))
                kp = det.keypoints[None]
                init = initialize(
                    "mediapipe", [image], kp, size, [focal], model, [0], world_landmarks=det.world_landmarks[None]
                )
                frontal = {"betas": np.zeros((1, 10)), "body_pose": mean_body_pose()[None].numpy(),
                           "global_orient": np.array([[math.pi, 0.0, 0.0]])}  # fmt: skip
                landmarks3d = np.concatenate([det.world_landmarks, det.keypoints[:, 2:]], axis=-1)[None]
                fits = {
                    "fit: none": fit_keypoints(kp, "blazepose33", size, [focal], body_model=model, config=args.config),
                    "fit: mediapipe": fit_keypoints(kp, "blazepose33", size, [focal], body_model=model, start=init,
                                                    config=args.config),
                    "fit: mediapipe + landmarks3d": fit_keypoints(
                        kp, "blazepose33", size, [focal], body_model=model, start=init,
                        targets=FitTargets(landmarks3d=landmarks3d), config=_landmarks_config(args)),
                }  # fmt: skip
                preds = {"mediapipe world landmarks": det.world_landmarks[None, index], "start: none (frontal)": limbs(frontal),
                         "start: mediapipe": limbs(as_arrays(init))}  # fmt: skip
                preds.update(
                    {
                        k: limbs({p: getattr(r, p) for p in ("betas", "body_pose", "global_orient")})
                        for k, r in fits.items()
                    }
                )
                for key, pred in preds.items():
                    rows[key].append(float(joint_errors(pred.astype(np.float32), truth)[1][0]))
    table = Table(
        box=None,
        title=f"eval photos with 3D ground truth ({len(used)}: {', '.join(used)}), PA-MPJPE mm, 12 limb joints",
    )
    table.add_column("what")
    for name in used:
        table.add_column(name.split("/")[0], justify="right")
    table.add_column("mean", justify="right")
    for key, values in rows.items():
        table.add_row(key, *(f"{v:.1f}" for v in values), f"{np.mean(values):.1f}" if values else "-")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="synthetic people")
    parser.add_argument("--config", default="fast", help="fit_keypoints preset")
    parser.add_argument("--noise-px", type=float, default=2.0, help="keypoint noise, pixels (640x480 images)")
    parser.add_argument("--landmark-noise", type=float, default=0.03, help="world-landmark noise, metres")
    parser.add_argument("--pose-scale", type=float, default=0.5)
    parser.add_argument(
        "--landmarks3d-weight",
        type=float,
        default=None,
        help="FitConfig.landmarks3d_weight of the landmarks3d rows (default: the config's)",
    )
    parser.add_argument("--nbf", default=None, help="NBF checkpoint to use (default: find_checkpoint('nbf'))")
    parser.add_argument("--body-model", default="anny")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true", help="also run the shared/eval photos with 3D ground truth")
    args = parser.parse_args()
    run(args)
    if args.real:
        run_real(args, load_body_model(args.body_model), Console())


if __name__ == "__main__":
    main()
