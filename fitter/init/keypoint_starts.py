"""Starts from 2D keypoints alone: "upright" (SMPLify's) and "lifter" (fitter's keypoint lifter).

* upright: the mean pose standing upright, facing the camera, or away from it when the person's
  left shoulder (or hip) is on the image's left; side views (shoulders close together in 2D)
  are flagged for the flip test; the optimizer may restart these from other poses.
* lifter: `fitter.regressors.lifter`, an MLP trained on synthetic bodies, maps the keypoints
  (each set's own points, by name) to a pose, the camera-frame orientation and betas (it picks
  the limb-depth and heading branch that 2D keypoints leave open); its pose is anchored. People
  with fewer than 6 points the lifter reads (or when the lifter's weights are missing) get the
  upright start. Legs (or arms) of which no point is seen, neither leg's (a half-body photo, a
  desk in front) start from the mean pose: the lifter, trained with scattered points missing,
  guesses them badly (`unseen_limbs`); one leg hidden, it infers from the rest. A person lying
  or upside down in the photo (torso over ROLL_THRESHOLD from upright) is lifted as if the
  camera were rolled about its axis until the torso stands upright, then rolled back
  (`torso_roll`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fitter.body.poses import POSE_PARTS
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from fitter.init.start import Start, StartInputs
from fitter.keypoints import canonical_name, keypoint_names

__all__ = [
    "upright_start",
    "lifter_start",
    "facing_away",
    "shoulders_close",
    "torso_roll",
    "unseen_limbs",
    "FLIP_THRESHOLD",
    "LIFTER_MIN_POINTS",
    "LIMBS",
    "ROLL_THRESHOLD",
    "ROLL_THRESHOLD_PARTIAL",
    "roll_upright",
]

TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
FLIP_THRESHOLD = 0.25  # shoulder distance / 2D torso length below which an upright start is flip-tested
LIFTER_MIN_POINTS = 6  # points the lifter needs to see
# bodies leaning further than this from the image's up direction are lifted upright (camera
# roll): the lifter trained on bodies leaning 25 deg at most. Synthetic CMU train bodies, the
# photo turned by 90 / 180 deg: PA-MPJPE 116 / 287 mm (37 of 48 failed) -> 27.3 / 27.3 (upright
# 27.3, 32 bodies). At 25 deg, bent-over bodies seen with missing points were turned too
# (SMPL-24, 20 % missing: +0.6 mm); at 45, bodies turned by 45 deg were half missed (32.8 mm)
ROLL_THRESHOLD = math.radians(35.0)
# the same when a shoulder or hip is unseen (the up direction then comes from one shoulder, the
# head or the knees): at 35, noisy bodies with 20 % of the points missing were turned that should
# not have been (CMU train bodies, 3 px, 20 % missing: 48.9 -> 50.3 mm)
ROLL_THRESHOLD_PARTIAL = math.radians(60.0)
# the points whose centres give a body's up direction (canonical names; the first group with a
# point seen): shoulders, else the head; hips, else the knees
UPPER_BODY = (("left_shoulder", "right_shoulder"), ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
LOWER_BODY = (("left_hip", "right_hip"), ("left_knee", "right_knee"))
# the limbs of POSE_PARTS ("left_leg", ...) and their points' canonical names after "left_" /
# "right_": knees and below; elbows, wrists and the hands' points
LIMBS = {"leg": ("knee", "ankle", "heel", "big_toe", "small_toe", "foot"),
         "arm": ("elbow", "wrist", "hand", "thumb", "index", "middle", "ring", "pinky")}  # fmt: skip


def facing_away(keypoints2d: Tensor, weights: Tensor, names: list[str]) -> Tensor:
    """(N,) bool: the person's left shoulder (or hip) is on the image's left, i.e. their back is
    to the camera. keypoints2d (N,K,2) px; weights (N,K) (> 0 = seen)."""
    away = torch.zeros(len(keypoints2d), dtype=torch.bool, device=keypoints2d.device)
    decided = torch.zeros_like(away)
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        if a in names and b in names:
            i, j = names.index(a), names.index(b)
            ok = (weights[:, i] > 0) & (weights[:, j] > 0) & ~decided
            away = torch.where(ok, keypoints2d[:, i, 0] < keypoints2d[:, j, 0], away)
            decided = decided | ok
    return away


def shoulders_close(
    keypoints2d: Tensor, weights: Tensor, names: list[str], threshold: float = FLIP_THRESHOLD
) -> Tensor:
    """(N,) bool: shoulders closer in 2D than `threshold` x the 2D torso length (side views)."""
    if not all(n in names for n in TORSO):
        return torch.zeros(len(keypoints2d), dtype=torch.bool, device=keypoints2d.device)
    ls, rs, lh, rh = (names.index(n) for n in TORSO)
    width = (keypoints2d[:, ls] - keypoints2d[:, rs]).norm(dim=-1)
    torso = ((keypoints2d[:, ls] + keypoints2d[:, rs]) / 2 - (keypoints2d[:, lh] + keypoints2d[:, rh]) / 2).norm(dim=-1)
    ok = (weights[:, ls] > 0) & (weights[:, rs] > 0)
    return ok & (width < threshold * torso.clamp(min=1.0))


def unseen_limbs(confidence: Tensor, names: list[str]) -> dict[str, Tensor]:
    """(N,) bool for "leg" and "arm": no point of either leg (knees and below) / either arm
    (elbows, wrists, hands) seen; confidence (N,K) of the keypoint set's `names` (> 0: seen)."""
    out = {}
    for kind, tokens in LIMBS.items():
        ids = [i for i, n in enumerate(names)
               if any(canonical_name(n).startswith(f"{side}_{t}") for side in ("left", "right") for t in tokens)]  # fmt: skip
        seen = (confidence[:, ids] > 0).any(1) if ids else torch.zeros_like(confidence[:, 0], dtype=torch.bool)
        out[kind] = ~seen
    return out


def _group_centre(
    keypoints2d: Tensor, weights: Tensor, names: list[str], groups: tuple[tuple[str, ...], ...]
) -> tuple[Tensor, Tensor]:
    """The mean (N,2) of the seen points of the first of `groups` (canonical point names) of
    which a point is seen, and (N,) bool: some group had one."""
    centre = keypoints2d.new_zeros(len(keypoints2d), 2)
    found = torch.zeros(len(keypoints2d), dtype=torch.bool, device=keypoints2d.device)
    canonical = [canonical_name(n) for n in names]
    for group in groups:
        ids = [i for i, n in enumerate(canonical) if n in group]
        if not ids:
            continue
        seen = (weights[:, ids] > 0).to(keypoints2d.dtype)
        count = seen.sum(1)
        mean = (keypoints2d[:, ids] * seen[..., None]).sum(1) / count.clamp(min=1)[:, None]
        use = ~found & (count > 0)
        centre = torch.where(use[:, None], mean, centre)
        found = found | use
    return centre, found


def torso_roll(keypoints2d: Tensor, weights: Tensor, names: list[str]) -> Tensor:
    """(N,) radians: the in-image angle of the body's up direction (hips -> shoulders; a missing
    pair replaced by the head's points / the knees) from the image's up direction, positive
    clockwise as the image is seen (x right, y down); 0 where neither end is seen.
    keypoints2d (N,K,2) px, weights (N,K) (> 0: seen)."""
    upper, has_upper = _group_centre(keypoints2d, weights, names, UPPER_BODY)
    lower, has_lower = _group_centre(keypoints2d, weights, names, LOWER_BODY)
    up = upper - lower
    return torch.where(has_upper & has_lower, torch.atan2(up[:, 0], -up[:, 1]), torch.zeros_like(up[:, 0]))


def roll_upright(keypoints2d: Tensor, weights: Tensor, names: list[str]) -> Tensor:
    """(N,) radians: how far to roll the camera so the body stands upright: `torso_roll` where it
    passes ROLL_THRESHOLD (ROLL_THRESHOLD_PARTIAL unless both shoulders and hips are seen), else 0."""
    roll = torso_roll(keypoints2d, weights, names)
    canonical = [canonical_name(n) for n in names]
    ids = [canonical.index(n) for n in TORSO if n in canonical]
    whole = (weights[:, ids] > 0).all(1) if len(ids) == len(TORSO) else torch.zeros_like(roll, dtype=torch.bool)
    threshold = torch.where(whole, torch.full_like(roll, ROLL_THRESHOLD), torch.full_like(roll, ROLL_THRESHOLD_PARTIAL))
    return torch.where(roll.abs() > threshold, roll, torch.zeros_like(roll))


def _roll_matrix(angle: Tensor) -> Tensor:
    """(N,3,3) rotations by `angle` (N,) radians about the camera's z axis (clockwise as the photo
    is seen: x right, y down)."""
    axis = torch.zeros(len(angle), 3, dtype=angle.dtype, device=angle.device)
    axis[:, 2] = angle
    return axis_angle_to_matrix(axis)


def _rolled(keypoints: Tensor, center: Tensor, angle: Tensor) -> Tensor:
    """keypoints (N,K,3) px + confidence turned by `angle` (N,) radians about the principal point
    center (N,2): what a camera rolled by -angle about its axis sees (same focal in x and y)."""
    out = keypoints.clone()
    turn = _roll_matrix(angle)[:, :2, :2]
    out[..., :2] = torch.einsum("nij,nkj->nki", turn, keypoints[..., :2] - center[:, None]) + center[:, None]
    return out


def upright_start(inputs: StartInputs, flip: bool = True) -> Start:
    """The upright mean-pose start for every person (SMPLify's): global_orient [pi,0,0] (facing
    the camera) or R_x(pi) R_y(pi) (back to the camera), body_pose = inputs.mean_pose, betas 0;
    flip-tested where the shoulders are close (unless `flip` is False); restarts allowed."""
    kp2d, w = inputs.keypoints[..., :2], inputs.weights
    n, dev, dt = kp2d.shape[0], kp2d.device, kp2d.dtype
    names = keypoint_names(inputs.keypoint_set)
    frontal = torch.tensor([math.pi, 0.0, 0.0], dtype=dt, device=dev).expand(n, 3)
    back = torch.tensor([0.0, 0.0, math.pi], dtype=dt, device=dev).expand(n, 3)  # R_x(pi) R_y(pi)
    away = facing_away(kp2d, w, names)
    side = shoulders_close(kp2d, w, names) if flip else torch.zeros(n, dtype=torch.bool, device=dev)
    return Start(
        body_pose=inputs.mean_pose.to(dev, dt).expand(n, -1).clone(),
        global_orient=torch.where(away[:, None], back, frontal).clone(),
        betas=torch.zeros(n, inputs.model.num_betas, dtype=dt, device=dev),
        flip=side, restart=torch.ones(n, dtype=torch.bool, device=dev), source=["upright"] * n,
    )  # fmt: skip


def lifter_start(inputs: StartInputs) -> Start:
    """The keypoint lifter's start where it sees enough points (pose anchored), else upright."""
    from fitter.regressors.lifter import lifter_features, lifter_points, load_lifter

    fallback = upright_start(inputs)
    try:
        lifter = load_lifter(device=inputs.keypoints.device)
    except FileNotFoundError:
        return fallback
    kp = lifter_points(inputs.keypoints, inputs.keypoint_set, lifter.point_names)
    names = keypoint_names(inputs.keypoint_set)
    roll = roll_upright(inputs.keypoints[..., :2], inputs.keypoints[..., 2], names)
    with torch.no_grad():
        out = lifter(lifter_features(_rolled(kp, inputs.center, -roll), inputs.focal, inputs.center))
    global_orient = _roll_matrix(roll) @ out["global_orient"]  # from the rolled camera back to the photo's
    betas = fallback.betas.clone()
    if lifter.body_model == inputs.model.name:  # betas of another model's shape space mean nothing here
        k = min(out["betas"].shape[1], betas.shape[1])
        betas[:, :k] = out["betas"][:, :k]
    usable = (kp[..., 2] > 0).sum(1) >= LIFTER_MIN_POINTS
    pick = usable[:, None]
    body_pose = matrix_to_axis_angle(out["body_pose"]).reshape(-1, 69)
    mean = inputs.mean_pose.to(body_pose).reshape(69)
    for kind, unseen in unseen_limbs(inputs.keypoints[..., 2], names).items():
        cols = [3 * (j - 1) + k for side in ("left", "right") for j in POSE_PARTS[f"{side}_{kind}"] for k in range(3)]
        body_pose[:, cols] = torch.where(unseen[:, None], mean[cols], body_pose[:, cols])
    return Start(
        body_pose=torch.where(pick, body_pose, fallback.body_pose),
        global_orient=torch.where(pick, matrix_to_axis_angle(global_orient), fallback.global_orient),
        betas=torch.where(pick, betas, fallback.betas),
        anchored=usable, flip=fallback.flip & ~usable, restart=~usable,
        source=["lifter" if u else "upright" for u in usable.tolist()],
    )  # fmt: skip
