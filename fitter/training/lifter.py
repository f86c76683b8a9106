"""Train the keypoint lifter (fitter.regressors.lifter) on synthetic bodies, no data needed.

Each step draws a fresh batch:

* bodies (`fitter.synthetic.sample_bodies`, ray camera): betas ~ N(0, 1) clamped to +-2.5; body
  poses uniform inside the joint limits (`priors.sample_within_limits`) shrunk towards
  `fitter.body.poses.mean_body_pose()` by a factor drawn per body in `pose_scale` (so both
  everyday and extreme poses are seen) — or, with a pose file (`poses`: AMASS-style npz files
  or folders, read by `priors.fit_gmm.load_pose_files`; in files with a `split` array, as
  `fitter mocap import` writes, only the `pose_split` frames, "train" by default, so held-out
  subjects stay held out) and their left/right mirror images (`pose_mirror`), real
  motion-capture poses for a `pose_file_fraction` of the bodies;
  any heading, up to `max_tilt_deg` of forward/sideways lean;
* cameras: 18-120 mm (35 mm-equivalent) lenses, 1.5-15 m away, the person anywhere in the frame;
* keypoints: per body one keypoint set drawn from `input_sets` (by `input_set_weights`), its
  points on the body (`points_regressor`, fast landmark path; points the model has no
  counterpart for are missing) projected to camera rays and put in the lifter's slots (the
  union of the sets' point names); with probability 0.7 Gaussian noise of up to 3 % of the
  keypoint box, with probability 0.4 up to 30 % of the points dropped (at least 6 kept),
  confidences U(0.3, 1).

Losses: squared Frobenius distance of the 24 rotation matrices (camera-frame root + 23 joints),
pelvis-centred 3D joints and COCO-17 keypoints (m^2, x 20), betas (x 0.01).
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
from fitter.keypoints import keypoint_names, points_regressor
from fitter.regressors.lifter import LIFTER_INPUT_SETS, LIFTER_SET, KeypointLifter, lifter_features, union_point_names

__all__ = ["LifterTrainConfig", "sample_lifter_batch", "lifter_loss", "train_lifter", "save_lifter", "lifter_skin"]

# how often each of LIFTER_INPUT_SETS is drawn (COCO-17, what most detectors give, the most)
DEFAULT_SET_WEIGHTS = (3.0, 1.5, 0.5, 1.5, 1.5, 1.0, 1.5)


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
    pose_split: str | None = "train"  # in pose files with a `split` array, only these frames (None: all)
    pose_mirror: bool = False  # add the left/right mirror image of every pose-file pose (as the shipped GMM does)
    pose_mix: float = 0.0  # share of pose-file bodies whose arms, legs and torso come from different poses
    input_sets: tuple[str, ...] = LIFTER_INPUT_SETS  # keypoint sets shown to the lifter; its inputs: their points
    input_set_weights: tuple[float, ...] = DEFAULT_SET_WEIGHTS  # how often each set is drawn
    max_seconds: float | None = None  # stop (and save) after this much wall time, the cosine decay finished by then
    workers: int = 0  # processes drawing batches (0: the training process itself, one generator: reproducible)
    device: str = "cpu"  # where the lifter and its loss run; batches are drawn on the CPU


def sample_lifter_batch(model: BodyModel, n: int, generator: torch.Generator, pose_scale=(0.25, 1.0),
                        max_tilt_deg: float = 25.0, skin=None, pose_bank: Tensor | None = None,
                        pose_file_fraction: float = 0.8, input_sets: tuple[str, ...] = (LIFTER_SET,),
                        input_set_weights: tuple[float, ...] | None = None,
                        pose_mix: float = 0.0) -> dict[str, Tensor]:  # fmt: skip
    """Synthetic bodies, cameras and noisy keypoints (see the module docstring).

    Returns features (n,3S+3) for the S = len(union_point_names(input_sets)) lifter slots and
    targets: rotations (n,24,3,3) (camera-frame root first), betas (n,num_betas), points
    (n,24+17,3) pelvis-centred joints + COCO-17 keypoints, metres, camera frame. Keypoints are in
    ray units (focal 1, principal point 0). pose_bank: optional (M,69) body poses (axis-angle)
    used for a `pose_file_fraction` of the bodies, a `pose_mix` share of them with their parts
    drawn from different poses (`fitter.synthetic.mix_pose_parts`). skin: `lifter_skin(model,
    input_sets)`."""
    from fitter.synthetic import mix_pose_parts, sample_bodies

    g = generator
    dev = model.v_template.device
    bank = pose_bank if pose_bank is not None and len(pose_bank) > 0 else None
    if bank is not None and pose_mix > 0:
        bank = mix_pose_parts(bank, n, g, pose_mix)
    bodies = sample_bodies(model, n, g, pose_scale=tuple(pose_scale), poses=bank, pose_fraction=pose_file_fraction,
                           max_tilt_deg=max_tilt_deg, focal_mm=(18.0, 120.0), depth=(1.5, 15.0), image_size=None,
                           centre_spread=0.7)  # fmt: skip
    betas, body_pose, root, transl = (bodies[k] for k in ("betas", "body_pose", "root_rotation", "transl"))
    skin = skin if skin is not None else lifter_skin(model, input_sets)
    names, in_set, known = skin.names, skin.in_set, skin.known
    S = len(names)
    body_rot = axis_angle_to_matrix(body_pose.view(n, 23, 3))
    with torch.no_grad():
        joints, points = model.pose_landmarks(
            skin.skin, betas.to(dev), body_pose.to(dev), root[:, None].to(dev), transl.to(dev)
        )
    joints, points = joints.cpu(), points.cpu()
    if len(input_sets) > 1:
        weights = torch.as_tensor(input_set_weights if input_set_weights is not None else [1.0] * len(input_sets))
        shown = in_set[torch.multinomial(weights / weights.sum(), n, replacement=True, generator=g)]  # (n,S)
    else:
        shown = in_set[:1].expand(n, S)
    shown = shown & known[None]
    rays = points[..., :2] / points[..., 2:].clamp(min=0.1)
    big = torch.tensor(1e6)
    box = (torch.where(shown[..., None], rays, -big).amax(1) - torch.where(shown[..., None], rays, big).amin(1)).amax(
        -1
    )
    noisy = torch.rand(n, generator=g) < 0.7
    sigma = noisy * torch.rand(n, generator=g) * 0.03 * box
    rays = rays + torch.randn(rays.shape, generator=g) * sigma[:, None, None]
    dropping = torch.rand(n, generator=g) < 0.4
    rate = dropping * torch.rand(n, generator=g) * 0.3
    drop = torch.rand(n, S, generator=g) < rate[:, None]
    order = torch.where(shown, torch.rand(n, S, generator=g), torch.full((n, S), 2.0))
    keep_rank = order.argsort(1).argsort(1) < 6  # 6 random points of the set always kept
    visible = shown & (~drop | keep_rank)
    conf = torch.where(visible, 0.3 + 0.7 * torch.rand(n, S, generator=g), torch.zeros(n, S))
    keypoints = torch.cat([rays * visible[..., None], conf[..., None]], dim=-1)
    features = lifter_features(keypoints, torch.ones(n), torch.zeros(n, 2))
    coco = points[:, skin.coco_index]
    pts = torch.cat([joints, coco], dim=1)
    return {
        "features": features,
        "rotations": torch.cat([root[:, None], body_rot], dim=1),
        "betas": betas,
        "points": pts - joints[:, :1],
    }


class LifterSkin:
    """The lifter's input points on a body model: names (S,) (default: the union of `input_sets`),
    in_set (len(input_sets),S) bool: which slots each set fills, known (S,) bool: the model has
    the point, coco_index (17,): the COCO-17 slots (the loss's points), skin: pre-skinned points."""

    def __init__(self, model: BodyModel, input_sets: tuple[str, ...], names: list[str] | None = None) -> None:
        self.names = list(names) if names is not None else union_point_names(input_sets)
        reg = points_regressor(model, self.names, "lifter")
        self.skin = model.landmark_skin(reg.vertex_ids, reg.vertex_weights, reg.joint_weights)
        self.known = (reg.quality > 0).cpu()
        self.in_set = torch.tensor([[n in keypoint_names(s) for n in self.names] for s in input_sets])
        self.coco_index = torch.tensor([self.names.index(n) for n in keypoint_names(LIFTER_SET)])


def lifter_skin(model: BodyModel, input_sets: tuple[str, ...] = (LIFTER_SET,)) -> LifterSkin:
    """The lifter's input points of `input_sets` on `model` (fast landmark path)."""
    return LifterSkin(model, tuple(input_sets))


def lifter_loss(
    model: BodyModel, skin: LifterSkin, pred: dict[str, Tensor], batch: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Loss terms (scalars) of one batch (see the module docstring)."""
    rot = torch.cat([pred["global_orient"][:, None], pred["body_pose"]], dim=1)
    rot_loss = (rot - batch["rotations"]).pow(2).sum((-1, -2)).mean()
    joints, points = model.pose_landmarks(skin.skin, pred["betas"], pred["body_pose"], pred["global_orient"][:, None])
    pts = torch.cat([joints, points[:, skin.coco_index]], dim=1)
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
        torch.save({"config": lifter.config, "keypoint_names": list(lifter.point_names), "body_model": record.get("body_model"),
                    "state_dict": {k: v.detach().cpu().half() for k, v in lifter.state_dict().items()},
                    "train": record}, f)  # fmt: skip


class _LifterBatches(torch.utils.data.IterableDataset):
    """Endless training batches drawn on the CPU: one generator seeded with `config.seed` in the
    training process, or generator (seed, k) in DataLoader worker k."""

    def __init__(self, model: BodyModel, config: LifterTrainConfig, skin: LifterSkin, pose_bank: Tensor | None):
        self.model, self.config, self.skin, self.pose_bank = model, config, skin, pose_bank

    def __iter__(self):
        c = self.config
        worker = torch.utils.data.get_worker_info()
        if worker is not None:
            torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(c.seed if worker is None else c.seed * 1000 + 1 + worker.id)
        while True:
            yield sample_lifter_batch(self.model, c.batch_size, gen, c.pose_scale, c.max_tilt_deg, self.skin,
                                      self.pose_bank, c.pose_file_fraction, tuple(c.input_sets),
                                      tuple(c.input_set_weights), c.pose_mix)  # fmt: skip


def _batch_stream(model: BodyModel, config: LifterTrainConfig, skin: LifterSkin, pose_bank: Tensor | None):
    data = _LifterBatches(model, config, skin, pose_bank)
    if config.workers <= 0:
        return iter(data)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=config.workers, prefetch_factor=4,
                                         persistent_workers=True, pin_memory=config.device.startswith("cuda"))  # fmt: skip
    return iter(loader)


def train_lifter(model: BodyModel, config: LifterTrainConfig, out: str | Path,
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> dict:  # fmt: skip
    """Train a lifter on `model`'s bodies (a CPU model: batches are drawn there), from scratch or
    continuing `config.init_from` (its inputs widened to the points of `config.input_sets` where
    it lacks some, `widen_inputs`); the lifter and its loss run on `config.device`; writes the
    checkpoint to `out`."""
    import copy

    from fitter.regressors.lifter import widen_inputs

    torch.manual_seed(config.seed)
    previous = None
    point_names = union_point_names(config.input_sets)
    if len(config.input_set_weights) != len(config.input_sets) and len(config.input_sets) > 1:
        raise ValueError(
            f"input_set_weights has {len(config.input_set_weights)} values for {len(config.input_sets)} input sets"
        )
    if config.init_from:  # continue: that checkpoint's architecture and weights
        from fitter.regressors.lifter import load_lifter

        source = load_lifter(config.init_from)
        lifter = KeypointLifter(**source.config, point_names=source.point_names)
        lifter.load_state_dict(source.state_dict())
        if set(point_names) - set(lifter.point_names):
            lifter = widen_inputs(lifter, point_names + [n for n in lifter.point_names if n not in point_names])
        previous = source.train_record
    else:
        lifter = KeypointLifter(config.width, config.blocks, model.num_betas, point_names=point_names)
    device = torch.device(config.device)
    model = model if model.v_template.device.type == "cpu" else copy.deepcopy(model).cpu()
    log_every = 1 if device.type == "cpu" else 25  # reading a loss waits for the device
    skin = LifterSkin(model, tuple(config.input_sets), lifter.point_names)  # in the lifter's slot order
    loss_model = model if device.type == "cpu" else copy.deepcopy(model).to(device)
    loss_skin = skin if device.type == "cpu" else LifterSkin(loss_model, tuple(config.input_sets), lifter.point_names)
    lifter = lifter.to(device)
    opt = torch.optim.AdamW(lifter.parameters(), lr=config.lr, weight_decay=1e-4)
    pose_bank = None
    if config.poses:
        from priors.fit_gmm import load_pose_files

        pose_bank = torch.as_tensor(load_pose_files(config.poses, split=config.pose_split), dtype=torch.float32)
        if config.pose_mirror:
            from fitter.body.mirror import mirror_body_pose

            pose_bank = torch.cat([pose_bank, mirror_body_pose(pose_bank)])
    batches = _batch_stream(model, config, skin, pose_bank)
    start = time.perf_counter()
    recent: list[dict[str, float]] = []
    steps_done = 0
    for step in range(config.steps):
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            break
        done = step / max(1, config.steps - 1)  # the schedule's progress: steps, or wall time when capped and further
        if config.max_seconds is not None:
            done = min(1.0, max(done, (time.perf_counter() - start) / config.max_seconds))
        frac = config.lr_final_fraction + (1 - config.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * done))
        for group in opt.param_groups:
            group["lr"] = config.lr * frac
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        losses = lifter_loss(loss_model, loss_skin, lifter(batch["features"]), batch)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        steps_done = step + 1
        if step % log_every == 0 or step == config.steps - 1:
            recent = (recent + [{k: float(v.detach()) for k, v in losses.items()}])[-200:]
            if progress is not None:
                progress(step + 1, recent[-1])
    mean = {k: sum(r[k] for r in recent) / len(recent) for k in recent[0]} if recent else {}
    record = {"steps": steps_done, "continued_from": previous, "pose_file_poses": 0 if pose_bank is None else len(pose_bank),
              "config": asdict(config), "body_model": model.name, "point_names": list(lifter.point_names),
              "final_losses": mean, "seconds": time.perf_counter() - start}  # fmt: skip
    save_lifter(lifter.cpu(), out, record)
    return record
