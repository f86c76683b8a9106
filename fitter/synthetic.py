"""Synthetic bodies and cameras: the one sampler of the benchmarks, both trainers and the tests.

    from fitter.synthetic import sample_bodies, sample_cases
    bodies = sample_bodies(model, 64, torch.Generator().manual_seed(0), pose_scale=(0.25, 1.0))
    cases = sample_cases(model, 24, "coco17", seed=3)   # in view, keypoints projected, numpy

A body: betas ~ N(0, 1) clamped to +-`betas_clamp`; a body pose drawn uniformly inside the
joint limits (`priors.sample_within_limits`) and shrunk towards
`fitter.body.poses.mean_body_pose()` by `pose_scale` (a number, or a (lo, hi) range drawn per
body), or drawn from an array of poses (all bodies, or a `pose_fraction` of them); a heading
(yaw) in +-`max_yaw_deg` and forward / sideways tilt in +-`max_tilt_deg`, turned into the camera
frame (x right, y down, z forward). A camera: a 35 mm-equivalent lens in `focal_mm`, the body
`depth` metres away, its root within +-`centre_spread` of the half frame off the optical axis.
Pixel cameras (`image_size` (W, H)): focal = f35 / 36 x max(W, H) px, principal point at the
image centre. Ray cameras (`image_size` None): focal 1, principal point 0, a square frame 36 mm
(35 mm-equivalent) wide.

The draws come from `generator` in this order: betas, pose scale (a range only), joint-limit
poses, pose-file choice, yaw, tilt, lens, distance, offset; callers draw their own extras
(keypoint noise, crop jitter) after. With `in_view`, rounds of 4n bodies are drawn until n of
them have every keypoint of that set inside the image and are tall enough.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import BodyModel
from fitter.body.poses import POSE_PARTS, mean_body_pose
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project, procrustes_align
from fitter.keypoints import keypoint_regressor

__all__ = ["sample_bodies", "sample_cases", "sample_hand_cases", "joint_errors", "mix_pose_parts"]

_CASE_KEYS = ("betas", "body_pose", "global_orient", "transl", "joints", "keypoints", "focal")


def _pick_poses(poses, index: Tensor) -> Tensor:
    """poses[index] as float32 (n,69); numpy arrays are indexed before converting."""
    if torch.is_tensor(poses):
        return poses[index].to(torch.float32)
    return torch.as_tensor(np.asarray(poses)[index.numpy()], dtype=torch.float32)


def _draw(model: BodyModel, n: int, g: torch.Generator, num_betas, betas_clamp, pose_scale, poses, pose_fraction,
          max_yaw_deg, max_tilt_deg, focal_mm, depth, image_size, centre_spread) -> dict[str, Tensor]:  # fmt: skip
    from priors import sample_within_limits

    betas = torch.randn(n, num_betas or model.num_betas, generator=g).clamp(-betas_clamp, betas_clamp)
    if poses is not None and pose_fraction is None:  # every body from the pose array
        body_pose = _pick_poses(poses, torch.randint(0, len(poses), (n,), generator=g))
    else:
        if isinstance(pose_scale, (tuple, list)):
            lo, hi = pose_scale
            scale = lo + (hi - lo) * torch.rand(n, 1, generator=g)
        else:
            scale = pose_scale
        mean = mean_body_pose()
        body_pose = mean + scale * (sample_within_limits(n, generator=g) - mean)
        if poses is not None:
            use = torch.rand(n, generator=g) < pose_fraction
            drawn = _pick_poses(poses, torch.randint(0, len(poses), (n,), generator=g))
            body_pose = torch.where(use[:, None], drawn, body_pose)
    yaw = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_yaw_deg)
    tilt = (torch.rand(n, 2, generator=g) * 2 - 1) * math.radians(max_tilt_deg)
    root = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0])) @ axis_angle_to_matrix(
        torch.stack([tilt[:, 0], yaw, tilt[:, 1]], dim=1))  # fmt: skip
    lo, hi = focal_mm
    f35 = lo + torch.rand(n, generator=g) * (hi - lo)
    lo, hi = depth
    distance = lo + torch.rand(n, generator=g) * (hi - lo)
    shift = torch.rand(n, 2, generator=g) * 2 - 1
    if image_size is not None:
        width, height = image_size
        focal = f35 / 36 * max(width, height)
        # (centre_spread / 2) x the frame size = centre_spread x the half frame
        offset = shift * (centre_spread / 2) * torch.tensor([width, height]) / focal[:, None] * distance[:, None]
    else:
        focal = torch.ones(n)
        half_fov = 18.0 / f35  # tan of half the field of view of a 36 mm-wide frame
        offset = shift * centre_spread * half_fov[:, None] * distance[:, None]
    return {
        "betas": betas,
        "body_pose": body_pose,
        "global_orient": matrix_to_axis_angle(root),
        "root_rotation": root,
        "transl": torch.cat([offset, distance[:, None]], dim=1),
        "focal": focal,
    }


def sample_bodies(
    model: BodyModel,
    n: int,
    generator: torch.Generator,
    *,
    num_betas: int | None = None,
    betas_clamp: float = 2.5,
    pose_scale: float | tuple[float, float] = 0.5,
    poses=None,
    pose_fraction: float | None = None,
    max_yaw_deg: float = 180.0,
    max_tilt_deg: float = 10.0,
    focal_mm: tuple[float, float] = (24.0, 85.0),
    depth: tuple[float, float] = (2.0, 10.0),
    image_size: tuple[int, int] | None = (1280, 960),
    centre_spread: float = 0.5,
    in_view: str | None = None,
    margin_px: float = 5.0,
    min_height: float = 0.2,
) -> dict[str, Tensor]:
    """n synthetic bodies and cameras (see the module docstring), CPU tensors from `generator`.

    num_betas: betas drawn (default the model's). pose_scale: shrink factor of joint-limit poses
    towards the mean pose, or a (lo, hi) range drawn per body. poses: (M,69) axis-angle body
    poses (numpy or torch); pose_fraction None: every body from `poses`; a number p: each body
    from `poses` with probability p, else from the joint limits. image_size None: ray camera.
    in_view: a keypoint set; keep only bodies whose points all lie `margin_px` inside the image
    and span at least `min_height` of its height (pixel cameras only).

    Returns betas (n,num_betas), body_pose (n,69), global_orient (n,3) and root_rotation
    (n,3,3) (camera frame), transl (n,3) metres, focal (n,) px (1 for ray cameras); with
    `in_view` also joints (n,24,3) and keypoints (n,K,3) (px + confidence 1).
    """
    if poses is not None and len(poses) == 0:
        raise ValueError("poses is empty: pass None to draw every pose inside the joint limits")
    ranges = (num_betas, betas_clamp, pose_scale, poses, pose_fraction, max_yaw_deg, max_tilt_deg, focal_mm, depth,
              image_size, centre_spread)  # fmt: skip
    if in_view is None:
        return _draw(model, n, generator, *ranges)
    if image_size is None:
        raise ValueError("in_view needs a pixel camera (image_size)")
    width, height = image_size
    reg = keypoint_regressor(model, in_view)
    device = model.v_template.device
    out: dict[str, list[Tensor]] = {}
    count = 0
    while count < n:
        bodies = _draw(model, 4 * n, generator, *ranges)
        with torch.no_grad():
            o = model(*(bodies[k].to(device) for k in ("betas", "body_pose", "global_orient", "transl")))
            points = reg.from_vertices(o.joints, o.vertices)
            px = perspective_project(
                points, bodies["focal"].to(device), torch.tensor([width / 2, height / 2], device=device)
            ).cpu()
        inside = ((px[..., 0] > margin_px) & (px[..., 0] < width - margin_px)
                  & (px[..., 1] > margin_px) & (px[..., 1] < height - margin_px)).all(1)  # fmt: skip
        tall = (px[..., 1].amax(1) - px[..., 1].amin(1)) > min_height * height
        keep = torch.nonzero(inside & tall).flatten()[: n - count]
        bodies |= {"joints": o.joints.cpu(), "keypoints": torch.cat([px, torch.ones_like(px[..., :1])], dim=-1)}
        for key, value in bodies.items():
            out.setdefault(key, []).append(value[keep])
        count += len(keep)
    return {k: torch.cat(v) for k, v in out.items()}


def sample_cases(model: BodyModel, n: int, keypoint_set: str = "coco17", seed: int = 0, pose_scale: float = 0.5,
                 poses: np.ndarray | None = None, image_size=(1280, 960), max_yaw_deg: float = 180.0) -> dict:  # fmt: skip
    """n bodies with cameras fully in view, as the keypoint benchmarks and tests use them: 10 betas,
    the default ranges of `sample_bodies`, a generator seeded with `seed`. Returns numpy arrays
    betas, body_pose, global_orient, transl (camera frame), joints (n,24,3), keypoints (n,K,3)
    clean px + confidence 1, focal (n,) px, and image_size (2,) (W, H)."""
    generator = torch.Generator().manual_seed(seed)
    bodies = sample_bodies(model, n, generator, num_betas=10, pose_scale=pose_scale, poses=poses,
                           max_yaw_deg=max_yaw_deg, image_size=image_size, in_view=keypoint_set)  # fmt: skip
    return {k: bodies[k].numpy() for k in _CASE_KEYS} | {"image_size": np.array(image_size)}


def mix_pose_parts(poses: Tensor, n: int, generator: torch.Generator, fraction: float = 0.5) -> Tensor:
    """n body poses (n,69) axis-angle drawn from `poses` (M,69); for a `fraction` of them every
    part of `POSE_PARTS` (torso and head, each leg, each arm with its collar) comes from its own
    independently drawn pose: new combinations of real limb poses, so a pose learner sees more
    than the few thousand whole poses of a small motion-capture set (local rotations, so each
    part keeps its real joint angles)."""
    poses = torch.as_tensor(poses, dtype=torch.float32)
    out = poses[torch.randint(0, len(poses), (n,), generator=generator)].view(n, 23, 3).clone()
    mixed = torch.rand(n, generator=generator) < fraction
    for joints in POSE_PARTS.values():
        donor = poses[torch.randint(0, len(poses), (n,), generator=generator)].view(n, 23, 3)
        index = [j - 1 for j in joints]
        out[:, index] = torch.where(mixed[:, None, None], donor[:, index], out[:, index])
    return out.view(n, 69)


def sample_hand_cases(model: BodyModel, n: int, body_set: str = "coco17", seed: int = 0,
                      image_size: tuple[int, int] = (1125, 1500), person_fraction: tuple[float, float] = (0.6, 0.9),
                      pose_scale: float = 0.5, finger_scale: float = 1.0, side_scale: float = 1.0,
                      max_yaw_deg: float = 180.0) -> dict:  # fmt: skip
    """n whole-body cases for a model with finger joints (anny-hands, SMPL-H/X): bodies as
    `sample_cases` (10 betas, joint-limit poses shrunk by pose_scale), finger poses drawn inside
    the finger limits shrunk by finger_scale / side_scale (priors.finger_limits.sample_finger_poses), each person
    placed at the image centre at a depth where their keypoints span a `person_fraction` of the
    image height (drawn per case), kept only when every point lies inside the image.

    Returns numpy arrays betas, body_pose, global_orient, transl (camera frame, metres),
    hand_pose (n,90), keypoints (n,K,3) of `body_set`+hands42 (clean px + confidence: 1, or 0
    for points the model lacks),
    points3d (n,K,3) the same points in the camera frame (metres), focal (n,) px, image_size (2,)."""
    from fitter.body.hands import hand_joint_frames
    from priors.finger_limits import sample_finger_poses

    keypoint_set = f"{body_set}+hands42"
    reg = keypoint_regressor(model, keypoint_set)
    width, height = image_size
    center = torch.tensor([width / 2, height / 2])
    g = torch.Generator().manual_seed(seed)
    frames = hand_joint_frames(model)
    out: dict[str, list[Tensor]] = {}
    count = 0
    while count < n:
        m = 2 * n
        bodies = _draw(model, m, g, 10, 2.5, pose_scale, None, None, max_yaw_deg, 10.0, (24.0, 85.0), (3.0, 3.0),
                       image_size, 0.0)  # fmt: skip
        hand_pose = sample_finger_poses(m, frames, g, finger_scale, side_scale)
        fraction = person_fraction[0] + (person_fraction[1] - person_fraction[0]) * torch.rand(m, generator=g)
        with torch.no_grad():
            o = model(bodies["betas"], bodies["body_pose"], bodies["global_orient"], None, hand_pose=hand_pose)
            rel = reg.from_vertices(o.joints, o.vertices)  # (m,K,3) relative to the model's origin
            transl = bodies["transl"].clone()
            for _ in range(3):  # depth for the wanted height, then centre the box
                px = perspective_project(rel + transl[:, None], bodies["focal"], center)
                span = px[..., 1].amax(1) - px[..., 1].amin(1)
                transl[:, 2] = transl[:, 2] * span / (fraction * height)
                px = perspective_project(rel + transl[:, None], bodies["focal"], center)
                mid = (px.amax(1) + px.amin(1)) / 2 - center
                transl[:, :2] = transl[:, :2] - mid * transl[:, 2:] / bodies["focal"][:, None]
            points = rel + transl[:, None]
            px = perspective_project(points, bodies["focal"], center)
        known = reg.quality > 0  # points the model has (others, e.g. anny's mouth corners, get confidence 0)
        inside = ((px[..., 0] > 0) & (px[..., 0] < width) & (px[..., 1] > 0) & (px[..., 1] < height))[:, known].all(1)
        keep = torch.nonzero(inside).flatten()[: n - count]
        drawn = {k: bodies[k] for k in ("betas", "body_pose", "global_orient", "focal")}
        drawn |= {"transl": transl, "hand_pose": hand_pose, "points3d": points,
                  "keypoints": torch.cat([px, known[None, :, None].expand_as(px[..., :1]).to(px)], dim=-1)}  # fmt: skip
        for key, value in drawn.items():
            out.setdefault(key, []).append(value[keep])
        count += len(keep)
    return {k: torch.cat(v).numpy() for k, v in out.items()} | {"image_size": np.array(image_size)}


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MPJPE, PA-MPJPE) per item in mm over 24 joints; MPJPE after aligning the pelvis."""
    p, g = torch.as_tensor(pred), torch.as_tensor(gt)
    mpjpe = ((p - p[:, :1]) - (g - g[:, :1])).norm(dim=-1).mean(1) * 1000
    pa = (procrustes_align(p.double(), g.double()).float() - g).norm(dim=-1).mean(1) * 1000
    return mpjpe.numpy(), pa.numpy()


SKIN_TONES = ((224, 172, 140), (150, 105, 80), (200, 150, 120), (120, 85, 65))
_BACKDROP = ((205, 215, 225), (150, 150, 140))  # top, bottom


def render_people(
    model: BodyModel, params: dict, focal: float, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A photo of N people: shaded bodies (one skin tone each) on a plain backdrop, one z-buffer.

    params: betas, body_pose, global_orient, transl (N,...) camera frame, metres; focal px (principal
    point at the image centre); image_size (W,H). Returns the image (H,W,3) uint8 and each
    person's visible pixels (N,H,W) bool.
    """
    from fitter.render.overlay import person_masks, render_shaded

    width, height = image_size
    with torch.no_grad():
        vertices = model(*(torch.as_tensor(np.asarray(params[k]), dtype=torch.float32)
                           for k in ("betas", "body_pose", "global_orient", "transl"))).vertices  # fmt: skip
    colors = [SKIN_TONES[i % len(SKIN_TONES)] for i in range(len(vertices))]
    center = (width / 2, height / 2)
    rgb, mask = render_shaded(vertices, model.faces, focal, center, (width, height), colors)
    ys = np.linspace(0, 1, height)[:, None, None]
    backdrop = (np.array(_BACKDROP[0]) * (1 - ys) + np.array(_BACKDROP[1]) * ys).astype(np.uint8)
    image = np.where(mask[..., None], rgb, np.broadcast_to(backdrop, (height, width, 3))).astype(np.uint8)
    return image, person_masks(vertices, model.faces, focal, center, (width, height))
