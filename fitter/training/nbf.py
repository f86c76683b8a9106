"""Train fitter's NBF regressor on 12-part maps rendered from the free body model (no data needed).

No NBF weights exist in PyTorch (the TF1 release links are dead), so `fitter train nbf` trains
one on synthetic data made on the fly:

* bodies (`fitter.synthetic.sample_bodies`): betas ~ N(0, 1) (clamped to +-2.5); body poses
  uniform inside the joint limits (`priors.sample_within_limits`) shrunk towards
  `fitter.body.poses.mean_body_pose()` by `pose_scale`; any heading (yaw uniform in +-180 deg)
  with up to +-15 deg of tilt;
* cameras: a 512 x 512 virtual image, 24-85 mm (35 mm-equivalent) lenses, 2.5-10 m away, the
  person anywhere near the centre; the crop box comes from the body's projected COCO-17 points
  by NBF's rule (`box_from_keypoints(..., "nbf")`: 1.2 x the keypoint box, square), jittered by
  +-10 % in size and +-5 % in position;
* input (resolution x resolution, rendered straight into the crop): "rendered" = the 12-part
  map of `fitter.body.parts.part_labels(model, 12)` (z-buffered, `render_part_labels`);
  "split" = the rendered silhouette split by the noisy 2D skeleton
  (`fitter.keypoints.part_split.split_mask_by_skeleton`), i.e. what `--init nbf` sees on a photo;
* losses (SPIN's weights): rotation matrices of the 24 parts in the camera frame (MSE, 1),
  betas (MSE, 0.01), pelvis-centred 3D joints (MSE in m^2, 5), 2D joints in half-box units
  about the box centre (MSE, 5): targets projected in full perspective, predictions by the
  crop camera's weak perspective s (X + tx, Y + ty) (SPIN/CLIFF's crop camera; bounded for any s).

Checkpoint: `save_nbf_checkpoint` at $FITTER_HOME/data/checkpoints/nbf_<body model>.pt
(`nbf_anny.pt` for the default), which `find_checkpoint("nbf")` finds through its `nbf*.pt`
pattern (an exact `nbf_checkpoint.pt` there would win). The config records the training
resolution as `input_size`; the file also holds a `train` record (steps, losses, body model).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import SMPL_PARENTS, BodyModel
from fitter.geometry import axis_angle_to_matrix, perspective_project, translation_to_crop_cam
from fitter.keypoints import keypoint_regressor
from fitter.regressors.checkpoints import checkpoints_dir, save_nbf_checkpoint
from fitter.regressors.heads import NBFRegressor, build_nbf
from fitter.regressors.preprocess import box_from_keypoints, part_labels_to_one_hot

__all__ = ["NBFTrainConfig", "NBFBatch", "default_nbf_path", "sample_nbf_batch", "nbf_losses", "train_nbf"]

INPUT_KINDS = ("rendered", "split")
_VIRTUAL_IMAGE = (512, 512)  # (W, H) px


@dataclass
class NBFTrainConfig:
    """Settings of one NBF training run (see the module docstring)."""

    steps: int = 300
    batch_size: int = 16
    resolution: int = 64  # input crop side, pixels
    lr: float = 1e-4  # Adam
    input_kind: str = "rendered"  # "rendered" part maps or "split" silhouettes
    pose_scale: float = 0.6
    seed: int = 0
    weight_rotation: float = 1.0
    weight_betas: float = 0.01
    weight_joints3d: float = 5.0
    weight_joints2d: float = 5.0
    split_noise: float = 0.01  # keypoint noise for "split" inputs, fraction of the crop side


@dataclass
class NBFBatch:
    """One synthetic batch. part_maps (B,12,R,R) one-hot; global_rotmat (B,24,3,3) part rotations
    in the camera frame; betas (B,NB); joints3d (B,24,3) pelvis-centred metres (camera axes);
    joints2d (B,24,2) half-box units about the box centre; box_center (B,2) px, box_size (B,)
    px, focal (B,) px, image_size (2,) px of the virtual camera; crop_cam (B,3) target [s,tx,ty];
    params: the true betas/body_pose/global_orient/transl (camera frame)."""

    part_maps: Tensor
    global_rotmat: Tensor
    betas: Tensor
    joints3d: Tensor
    joints2d: Tensor
    box_center: Tensor
    box_size: Tensor
    focal: Tensor
    image_size: Tensor
    crop_cam: Tensor
    params: dict[str, Tensor]

    def to(self, device) -> "NBFBatch":
        moved = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self.__dict__.items() if k != "params"}
        return NBFBatch(**moved, params={k: v.to(device) for k, v in self.params.items()})


def default_nbf_path(body_model_name: str = "anny") -> Path:
    """$FITTER_HOME/data/checkpoints/nbf_<body model>.pt (found by find_checkpoint("nbf"))."""
    return checkpoints_dir() / f"nbf_{body_model_name}.pt"


def _global_rotations(global_orient: Tensor, body_pose: Tensor) -> Tensor:
    """Axis-angle SMPL pose -> (B,24,3,3) rotation of every part in the camera frame (forward kinematics)."""
    local = axis_angle_to_matrix(torch.cat([global_orient[:, None], body_pose.reshape(-1, 23, 3)], dim=1))
    world = [local[:, 0]]
    for joint in range(1, 24):
        world.append(world[SMPL_PARENTS[joint]] @ local[:, joint])
    return torch.stack(world, dim=1)


def sample_nbf_batch(
    body_model: BodyModel,
    batch_size: int,
    resolution: int,
    generator: torch.Generator,
    input_kind: str = "rendered",
    pose_scale: float = 0.6,
    split_noise: float = 0.01,
    vertex_labels: Tensor | None = None,
) -> NBFBatch:
    """Draw bodies and cameras and render their NBF inputs (see the module docstring); CPU tensors
    from `generator`'s stream, rendered on the body model's device."""
    from fitter.body.parts import part_labels
    from fitter.render import render_mask, render_part_labels
    from fitter.synthetic import sample_bodies

    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {', '.join(INPUT_KINDS)}, got {input_kind!r}")
    device = body_model.v_template.device
    n, g = batch_size, generator
    width, height = _VIRTUAL_IMAGE
    bodies = sample_bodies(body_model, n, g, pose_scale=pose_scale, max_tilt_deg=15.0, focal_mm=(24.0, 85.0),
                           depth=(2.5, 10.0), image_size=_VIRTUAL_IMAGE, centre_spread=0.3)  # fmt: skip
    betas, body_pose, global_orient, transl, focal = (
        bodies[k] for k in ("betas", "body_pose", "global_orient", "transl", "focal")
    )
    jitter_scale = 0.9 + 0.2 * torch.rand(n, generator=g)
    jitter_shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.05
    noise = torch.randn(n, 33, 2, generator=g) * split_noise * resolution

    params = {"betas": betas, "body_pose": body_pose, "global_orient": global_orient, "transl": transl}
    dev_params = {k: v.to(device) for k, v in params.items()}
    principal = torch.tensor([width / 2.0, height / 2.0], device=device)
    with torch.no_grad():
        out = body_model(**dev_params)
        coco = keypoint_regressor(body_model, "coco17")
        coco_px = perspective_project(coco.from_vertices(out.joints, out.vertices), focal.to(device), principal)
        box = box_from_keypoints(coco_px.cpu(), "nbf")
        size = box.size * jitter_scale
        center = box.center + jitter_shift * size[:, None]
        k = resolution / size  # full px -> crop px
        crop_focal = (focal * k).to(device)
        crop_pp = ((principal.cpu() - center) * k[:, None] + resolution / 2.0).to(device)
        if input_kind == "rendered":
            labels_v = part_labels(body_model, 12) if vertex_labels is None else vertex_labels
            labels = render_part_labels(out.vertices, body_model.faces, crop_focal, crop_pp, (resolution, resolution),
                                        vertex_labels=labels_v.to(device)) + 1  # fmt: skip
        else:
            from fitter.keypoints.part_split import split_mask_by_skeleton

            masks = (
                render_mask(out.vertices, body_model.faces, crop_focal, crop_pp, (resolution, resolution)).cpu().numpy()
            )
            blaze = keypoint_regressor(body_model, "blazepose33")
            crop_kp = (
                perspective_project(blaze.from_vertices(out.joints, out.vertices), crop_focal, crop_pp).cpu() + noise
            )
            conf = (blaze.quality.cpu() > 0).float().expand(n, -1)[..., None]
            kp = torch.cat([crop_kp, conf], dim=-1).numpy()
            labels = torch.as_tensor(
                np.stack([split_mask_by_skeleton(masks[i], kp[i], "blazepose33") for i in range(n)])
            )
        joints_px = perspective_project(out.joints, focal.to(device), principal).cpu()
    joints = out.joints.cpu()
    return NBFBatch(
        part_maps=part_labels_to_one_hot(labels.cpu(), 12),
        global_rotmat=_global_rotations(global_orient, body_pose),
        betas=betas,
        joints3d=joints - joints[:, :1],
        joints2d=(joints_px - center[:, None]) / (size[:, None, None] / 2.0),
        box_center=center,
        box_size=size,
        focal=focal,
        image_size=torch.tensor([float(width), float(height)]),
        crop_cam=translation_to_crop_cam(transl, center, size, torch.tensor([float(width), float(height)]), focal),
        params=params,
    )


def nbf_losses(
    pred: dict[str, Tensor], batch: NBFBatch, body_model: BodyModel, config: NBFTrainConfig
) -> dict[str, Tensor]:
    """The weighted loss terms (scalars) and their sum under "total" (see the module docstring)."""
    rotmat = pred["pred_rotmat"]
    betas = pred["pred_betas"]
    joints = body_model.forward_joints(betas, rotmat[:, 1:], rotmat[:, :1], None).joints
    cam = pred["pred_cam"]
    # weak perspective in half-box units, (x - cx) / (b / 2) = s (X + tx): bounded for any s, and the
    # full-frame camera of `crop_cam_to_full_translation` up to the body's depth extent
    joints2d = cam[:, None, :1] * (joints[..., :2] + cam[:, None, 1:])
    terms = {
        "rotation": config.weight_rotation * (pred["pred_global_rotmat"] - batch.global_rotmat).pow(2).mean(),
        "betas": config.weight_betas * (betas - batch.betas).pow(2).mean(),
        "joints3d": config.weight_joints3d * ((joints - joints[:, :1]) - batch.joints3d).pow(2).sum(-1).mean(),
        "joints2d": config.weight_joints2d * (joints2d - batch.joints2d).pow(2).sum(-1).mean(),
    }
    terms["total"] = sum(terms.values())
    return terms


def train_nbf(
    body_model: BodyModel,
    config: NBFTrainConfig | None = None,
    out_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    model: NBFRegressor | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    fixed_batch: NBFBatch | None = None,
) -> tuple[NBFRegressor, dict]:
    """Train NBF for config.steps Adam steps on fresh synthetic batches (or on `fixed_batch`, for tests).

    Writes the checkpoint to out_path (default `default_nbf_path(body_model.name)`).
    on_step(step, {term: value}) is called after every step. Returns (model in eval mode,
    record dict with the config, per-step total losses, seconds and the path written).
    """
    cfg = config or NBFTrainConfig()
    if cfg.resolution < 32:
        raise ValueError(f"resolution must be >= 32 px (ResNet-50 downsamples 32x), got {cfg.resolution}")
    if cfg.steps < 0 or cfg.batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {cfg.steps} and {cfg.batch_size}")
    if cfg.input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {', '.join(INPUT_KINDS)}, got {cfg.input_kind!r}")
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    body = body_model.to(device)
    from fitter.body.parts import part_labels

    vertex_labels = part_labels(body, 12)
    net = (model if model is not None else build_nbf()).to(device)
    net.input_size = (cfg.resolution, cfg.resolution)  # recorded in the checkpoint config
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history: list[float] = []
    start = time.perf_counter()
    for step in range(cfg.steps):
        if fixed_batch is not None:
            batch = fixed_batch.to(device)
        else:
            batch = sample_nbf_batch(body, cfg.batch_size, cfg.resolution, generator, cfg.input_kind, cfg.pose_scale,
                                     cfg.split_noise, vertex_labels).to(device)  # fmt: skip
        terms = nbf_losses(net(batch.part_maps), batch, body, cfg)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        values = {k: float(v.detach()) for k, v in terms.items()}
        history.append(values["total"])
        if on_step is not None:
            on_step(step, values)
    net.eval()
    record = {
        "config": asdict(cfg),
        "body_model": body_model.name,
        "part_set": "fitter.body.parts PART_NAMES_12 (one-hot, channel i = part i)",
        "loss_history": history,
        "seconds": time.perf_counter() - start,
        "torch": str(torch.__version__),
    }
    path = Path(out_path) if out_path is not None else default_nbf_path(body_model.name)
    save_nbf_checkpoint(net, path, extra={"train": {k: v for k, v in record.items()}})
    record["path"] = str(path)
    return net, record
