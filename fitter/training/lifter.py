"""Train the COCO-17 keypoint lifter (fitter.regressors.lifter) on synthetic bodies, no data needed.

Each step draws a fresh batch:

* bodies (`fitter.synthetic.sample_bodies`, ray camera): betas ~ N(0, 1) clamped to +-2.5; body
  poses uniform inside the joint limits (`priors.sample_within_limits`) shrunk towards
  `fitter.body.poses.mean_body_pose()` by a factor drawn per body in `pose_scale` (so both
  everyday and extreme poses are seen) — or, with a pose file (`poses`: AMASS-style npz files
  or folders, read by `priors.fit_gmm.load_pose_files`), real motion-capture poses for a
  `pose_file_fraction` of the bodies; any heading, up to `max_tilt_deg` of forward/sideways lean;
* cameras: 18-120 mm (35 mm-equivalent) lenses, 1.5-15 m away, the person anywhere in the frame;
* keypoints: the body's COCO-17 points (`keypoint_regressor`, fast landmark path) projected to
  camera rays; with probability 0.7 Gaussian noise of up to 3 % of the keypoint box, with
  probability 0.4 up to 30 % of the points dropped (at least 6 kept), confidences U(0.3, 1).

Losses: squared Frobenius distance of the 24 rotation matrices (camera-frame root + 23 joints),
pelvis-centred 3D joints and keypoints (m^2, x 20), betas (x 0.01).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from fitter.body.model import BodyModel
from fitter.geometry import axis_angle_to_matrix
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.regressors.lifter import LIFTER_SET, KeypointLifter, lifter_features

__all__ = ["LifterTrainConfig", "sample_lifter_batch", "lifter_loss", "train_lifter", "save_lifter"]


@dataclass
class LifterTrainConfig:
    steps: int = 20000
    batch_size: int = 512
    lr: float = 1e-3
    lr_final_fraction: float = 0.02  # cosine decay to this fraction of lr
    width: int = 512
    blocks: int = 3
    pose_scale: tuple[float, float] = (0.25, 1.0)
    max_tilt_deg: float = 25.0
    seed: int = 0
    init_from: str | None = None  # continue from these weights (a lifter checkpoint) instead of random ones
    poses: str | None = None  # AMASS-style npz file or folder of body poses to draw from (see the module docstring)
    pose_file_fraction: float = 0.8  # share of the bodies posed from `poses` when given


def sample_lifter_batch(model: BodyModel, n: int, generator: torch.Generator, pose_scale=(0.25, 1.0),
                        max_tilt_deg: float = 25.0, skin=None, pose_bank: Tensor | None = None,
                        pose_file_fraction: float = 0.8) -> dict[str, Tensor]:  # fmt: skip
    """Synthetic bodies, cameras and noisy COCO-17 keypoints (see the module docstring).

    Returns features (n,54) and targets: rotations (n,24,3,3) (camera-frame root first), betas
    (n,num_betas), points (n,24+17,3) pelvis-centred joints + keypoints, metres, camera frame.
    Keypoints are in ray units (focal 1, principal point 0). pose_bank: optional (M,69) body poses
    (axis-angle) used for a `pose_file_fraction` of the bodies."""
    from fitter.synthetic import sample_bodies

    g = generator
    dev = model.v_template.device
    bank = pose_bank if pose_bank is not None and len(pose_bank) > 0 else None
    bodies = sample_bodies(model, n, g, pose_scale=tuple(pose_scale), poses=bank, pose_fraction=pose_file_fraction,
                           max_tilt_deg=max_tilt_deg, focal_mm=(18.0, 120.0), depth=(1.5, 15.0), image_size=None,
                           centre_spread=0.7)  # fmt: skip
    betas, body_pose, root, transl = (bodies[k] for k in ("betas", "body_pose", "root_rotation", "transl"))
    skin = skin if skin is not None else lifter_skin(model)
    body_rot = axis_angle_to_matrix(body_pose.view(n, 23, 3))
    with torch.no_grad():
        joints, points = model.pose_landmarks(skin, betas.to(dev), body_pose.to(dev), root[:, None].to(dev), transl.to(dev))
    joints, points = joints.cpu(), points.cpu()
    rays = points[..., :2] / points[..., 2:].clamp(min=0.1)
    box = (rays.amax(1) - rays.amin(1)).amax(-1)
    noisy = torch.rand(n, generator=g) < 0.7
    sigma = noisy * torch.rand(n, generator=g) * 0.03 * box
    rays = rays + torch.randn(rays.shape, generator=g) * sigma[:, None, None]
    dropping = torch.rand(n, generator=g) < 0.4
    rate = dropping * torch.rand(n, generator=g) * 0.3
    drop = torch.rand(n, 17, generator=g) < rate[:, None]
    keep_rank = torch.rand(n, 17, generator=g).argsort(1).argsort(1) < 6  # 6 random points always kept
    visible = ~drop | keep_rank
    conf = torch.where(visible, 0.3 + 0.7 * torch.rand(n, 17, generator=g), torch.zeros(n, 17))
    keypoints = torch.cat([rays, conf[..., None]], dim=-1)
    features = lifter_features(keypoints, torch.ones(n), torch.zeros(n, 2))
    pts = torch.cat([joints, points], dim=1)
    return {
        "features": features,
        "rotations": torch.cat([root[:, None], body_rot], dim=1),
        "betas": betas,
        "points": pts - joints[:, :1],
    }


def lifter_skin(model: BodyModel):
    """The pre-skinned COCO-17 keypoints of `model` (fast landmark path)."""
    reg = keypoint_regressor(model, LIFTER_SET)
    return model.landmark_skin(reg.vertex_ids, reg.vertex_weights, reg.joint_weights)


def lifter_loss(model: BodyModel, skin, pred: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Loss terms (scalars) of one batch (see the module docstring)."""
    rot = torch.cat([pred["global_orient"][:, None], pred["body_pose"]], dim=1)
    rot_loss = (rot - batch["rotations"]).pow(2).sum((-1, -2)).mean()
    joints, points = model.pose_landmarks(skin, pred["betas"], pred["body_pose"], pred["global_orient"][:, None])
    pts = torch.cat([joints, points], dim=1)
    pts = pts - joints[:, :1]
    point_loss = (pts - batch["points"]).pow(2).sum(-1).mean()
    beta_loss = (pred["betas"] - batch["betas"]).pow(2).mean()
    total = rot_loss + 20.0 * point_loss + 0.01 * beta_loss
    return {"total": total, "rotations": rot_loss, "points_m2": point_loss, "betas": beta_loss}


def save_lifter(lifter: KeypointLifter, path: str | Path, record: dict) -> None:
    """Write a lifter checkpoint (fp16 weights, config, keypoint names, training record) atomically."""
    from fitter.io.atomic import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save({"config": lifter.config, "keypoint_names": keypoint_names(LIFTER_SET), "body_model": record.get("body_model"),
                    "state_dict": {k: v.detach().cpu().half() for k, v in lifter.state_dict().items()},
                    "train": record}, f)  # fmt: skip


def train_lifter(model: BodyModel, config: LifterTrainConfig, out: str | Path,
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> dict:  # fmt: skip
    """Train a lifter on `model`'s bodies, from scratch or continuing `config.init_from`; writes
    the checkpoint to `out`."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    previous = None
    if config.init_from:  # continue: that checkpoint's architecture and weights
        from fitter.regressors.lifter import load_lifter

        source = load_lifter(config.init_from)
        lifter = KeypointLifter(**source.config)
        lifter.load_state_dict(source.state_dict())
        previous = source.train_record
    else:
        lifter = KeypointLifter(config.width, config.blocks, model.num_betas)
    opt = torch.optim.AdamW(lifter.parameters(), lr=config.lr, weight_decay=1e-4)
    skin = lifter_skin(model)
    pose_bank = None
    if config.poses:
        from priors.fit_gmm import load_pose_files

        pose_bank = torch.as_tensor(load_pose_files(config.poses), dtype=torch.float32)
    start = time.perf_counter()
    recent: list[dict[str, float]] = []
    for step in range(config.steps):
        frac = config.lr_final_fraction + (1 - config.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * step / max(1, config.steps - 1)))
        for group in opt.param_groups:
            group["lr"] = config.lr * frac
        batch = sample_lifter_batch(model, config.batch_size, gen, config.pose_scale, config.max_tilt_deg, skin,
                                    pose_bank, config.pose_file_fraction)  # fmt: skip
        losses = lifter_loss(model, skin, lifter(batch["features"]), batch)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        recent = (recent + [{k: float(v.detach()) for k, v in losses.items()}])[-200:]
        if progress is not None:
            progress(step + 1, recent[-1])
    mean = {k: sum(r[k] for r in recent) / len(recent) for k in recent[0]} if recent else {}
    record = {"steps": config.steps, "continued_from": previous, "pose_file_poses": 0 if pose_bank is None else len(pose_bank),
              "config": asdict(config), "body_model": model.name,
              "final_losses": mean, "seconds": time.perf_counter() - start}  # fmt: skip
    save_lifter(lifter, out, record)
    return record
