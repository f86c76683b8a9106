"""Half-body benchmark: bodies whose legs the photo does not show, fitted from the rest.

Synthetic bodies posed by the held-out CMU subjects (`benchmarks/synthetic.py`'s cases and
pose file), BlazePose-33 keypoints; every knee, ankle, heel and toe point is dropped, as in a
photo cut at the hips. Fitted with the default preset (keypoints only). Prints, next to the
same bodies fitted with every point:

* upper-body PA-MPJPE (mm): pelvis, spine, neck, head, collars, shoulders, elbows, wrists,
  Procrustes-aligned on those joints;
* leg error (mm): hips to feet after aligning the torsos (pelvis, hips, spine joints), i.e.
  how far the guessed legs are from the truth;
* knee bend (degrees, mean of both knees), fitted and true.

The legs cannot be seen, so no fit knows them; the numbers say whether the guess is sensible
(the pose prior's mean) and whether the upper body suffers.

    python benchmarks/half_body.py [--n 64] [--pose-source heldout|train]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from synthetic import DEFAULT_MOCAP, cached_mocap_poses, load_split, project_set  # this folder's (run as a script)

from fitter.body import load_body_model
from fitter.fitting import fit_keypoints
from fitter.geometry import procrustes_align
from fitter.keypoints import keypoint_names
from fitter.synthetic import sample_cases

UPPER = [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]  # SMPL joints above the hips
TORSO = [0, 1, 2, 3, 6, 9]
LEGS = [1, 2, 4, 5, 7, 8, 10, 11]
KNEES = [3, 4]  # body_pose joints (SMPL 4, 5)
LEG_POINTS = ("knee", "ankle", "heel", "foot", "toe")


def scores(joints: np.ndarray, cases: dict, body_pose: np.ndarray) -> tuple[float, float, float]:
    """(upper-body PA-MPJPE mm, leg error after torso alignment mm, mean knee bend deg)."""
    pred, gt = torch.as_tensor(joints[:, :24]), torch.as_tensor(cases["joints"][:, :24])
    upper = (procrustes_align(pred[:, UPPER], gt[:, UPPER]) - gt[:, UPPER]).norm(dim=-1).mean() * 1000
    torso = torch.zeros(pred.shape[:2], dtype=pred.dtype)
    torso[:, TORSO] = 1.0
    aligned = procrustes_align(pred, gt, weights=torso)  # every joint, placed by the torso's alignment
    legs = (aligned[:, LEGS] - gt[:, LEGS]).norm(dim=-1).mean() * 1000
    knees = np.degrees(np.linalg.norm(body_pose.reshape(-1, 23, 3)[:, KNEES], axis=-1)).mean()
    return float(upper), float(legs), float(knees)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="bodies")
    parser.add_argument("--pose-source", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--mocap-dir", default=str(DEFAULT_MOCAP))
    parser.add_argument("--seed", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    model = load_body_model("anny")
    poses = load_split(cached_mocap_poses(args.mocap_dir, model, console.print), args.pose_source)
    cases = sample_cases(model, args.n, "blazepose33", seed=args.seed, poses=poses)
    full = project_set(model, cases, "blazepose33")
    cut = full.copy()
    cut[:, [i for i, n in enumerate(keypoint_names("blazepose33")) if any(t in n for t in LEG_POINTS)], 2] = 0.0
    table = Table(title=f"legs unseen: {args.n} bodies posed by the {args.pose_source} CMU subjects, blazepose33, "
                        "default preset")  # fmt: skip
    for column in ("keypoints", "upper-body PA-MPJPE mm", "leg error mm", "knee bend deg (true)"):
        table.add_column(column, justify="right")
    true_knees = np.degrees(np.linalg.norm(cases["body_pose"].reshape(-1, 23, 3)[:, KNEES], axis=-1)).mean()
    for label, keypoints in (("all points", full), ("no leg points", cut)):
        result = fit_keypoints(keypoints, "blazepose33", cases["image_size"], focal_length=cases["focal"],
                               body_model=model)  # fmt: skip
        upper, legs, knees = scores(result.joints, cases, result.body_pose)
        table.add_row(label, f"{upper:.1f}", f"{legs:.0f}", f"{knees:.0f} ({true_knees:.0f})")
    console.print(table)


if __name__ == "__main__":
    main()
