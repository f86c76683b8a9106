"""Exemplar Fine-Tuning (EFT, Joo et al. 3DV 2021): fit a regressor's weights to one person's 2D keypoints.

Per sample: back up the weights, fine-tune the WHOLE network with Adam (published: lr 5e-6, at
most 20 iterations) with BatchNorm and Dropout in eval mode, on the confidence-weighted 2D
keypoint loss plus a small betas prior, stop early once the 2D error is below a threshold, keep
the output of the last forward pass, and restore the weights (bit-identical) before the next
sample. The loss path: the regressor's SMPL output (rotation matrices, betas, crop camera) ->
fitter's body model -> the points of the keypoint set (`keypoint_regressor`) -> full-image
perspective projection with the crop camera turned into the full image's camera
(`crop_cam_to_full_translation`, CLIFF's rule, with the image's focal length) -> compared with
the keypoints in units of half the crop box (weights = confidence x correspondence quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fitter.body.model import BodyModel
from fitter.geometry import crop_cam_to_full_translation, matrix_to_axis_angle, perspective_project
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.regressors import CropBox

__all__ = ["EFTConfig", "eft_refine"]


@dataclass
class EFTConfig:
    """EFT settings. stop_error_px: weighted RMS 2D error in pixels of a 224-px crop of the person (SPIN units)."""

    lr: float = 5e-6  # published
    max_iters: int = 20  # published upper bound
    stop_error_px: float = 2.0
    beta_weight: float = 1e-3  # x sum of squared betas
    grad_clip: float | None = None


def _weighted_error(proj: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """(B,) confidence-weighted root-mean-square 2D distance (what the loss minimises), input units."""
    return ((weights * (proj - target).pow(2).sum(-1)).sum(1) / weights.sum(1).clamp(min=1e-9)).sqrt()


def eft_refine(
    regressor_name: str,
    model_nn: nn.Module,
    crops: Tensor,
    keypoints,
    keypoint_set: str,
    boxes: CropBox,
    image_sizes,
    focal,
    body_model: BodyModel,
    bbox_info: Tensor | None = None,
    config: EFTConfig | None = None,
    device: str | torch.device = "cpu",
    use_betas: bool = True,
) -> dict[str, np.ndarray]:
    """Refine a regressor's prediction for each of N people by EFT; the network is left unchanged.

    crops (N,C,H,W): the model's normalised inputs (`fitter.init.regressor_inputs`); bbox_info
    (N,3) for CLIFF; keypoints (N,K,3) full-image px + confidence of `keypoint_set`; boxes: the
    crop boxes (N); image_sizes (N,2) (W,H) px; focal (N,) px (principal point = image centre).
    use_betas=False feeds zero betas to the body model (SMPL betas on a non-SMPL model).
    Returns float32 numpy: global_orient (N,3), body_pose (N,69) axis-angle (camera frame),
    betas (N,10) as regressed, transl (N,3) metres, error_before_px / error_after_px (N,)
    weighted RMS 2D error in full-image px, iterations (N,) Adam steps taken.
    """
    cfg = config or EFTConfig()
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32), device=device)
    n = crops.shape[0]
    if kp.shape != (n, len(keypoint_names(keypoint_set)), 3):
        raise ValueError(
            f"keypoints must be ({n}, {len(keypoint_names(keypoint_set))}, 3) for set {keypoint_set!r}, got {tuple(kp.shape)}"
        )
    if len(boxes) != n:
        raise ValueError(f"{n} crops but {len(boxes)} boxes")
    if regressor_name.startswith("cliff") and bbox_info is None:
        raise ValueError("CLIFF needs bbox_info (N,3): compute it with fitter.regressors.cliff_bbox_info")
    sizes = torch.as_tensor(np.broadcast_to(np.asarray(image_sizes, dtype=np.float32), (n, 2)).copy(), device=device)
    f = torch.as_tensor(np.broadcast_to(np.asarray(focal, dtype=np.float32), (n,)).copy(), device=device)
    body = body_model.to(device)
    reg = keypoint_regressor(body, keypoint_set)
    skin = body.landmark_skin(reg.vertex_ids, reg.vertex_weights)
    weights_all = kp[..., 2] * reg.quality[None]
    centers, box_sizes = boxes.center.to(device).float(), boxes.size.to(device).float()

    module = model_nn.to(device)
    was_training = module.training
    requires = {name: p.requires_grad for name, p in module.named_parameters()}
    backup = {k: v.detach().clone() for k, v in module.state_dict().items()}
    rows: dict[str, list] = {k: [] for k in ("global_orient", "body_pose", "betas", "transl", "error_before_px",
                                             "error_after_px", "iterations")}  # fmt: skip
    try:
        module.eval()  # BatchNorm uses running statistics, Dropout is off
        for p in module.parameters():
            p.requires_grad_(True)
        for i in range(n):
            x = crops[i : i + 1].to(device)
            info = None if bbox_info is None else bbox_info[i : i + 1].to(device).float()
            target, weights = kp[i : i + 1, :, :2], weights_all[i : i + 1]
            half_box = box_sizes[i] / 2.0
            optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr)
            before = None
            for step in range(cfg.max_iters + 1):
                out = module(x) if info is None else module(x, info)
                rotmat, betas, cam = out["pred_rotmat"], out["pred_betas"], out["pred_cam"]
                transl = crop_cam_to_full_translation(
                    cam, centers[i : i + 1], box_sizes[i : i + 1], sizes[i : i + 1], f[i : i + 1]
                )
                shape = betas if use_betas else torch.zeros_like(betas)
                joints, landmarks = body.pose_landmarks(skin, shape, rotmat[:, 1:], rotmat[:, :1], transl)
                pts = torch.einsum("kj,bjc->bkc", reg.joint_weights, joints) + landmarks
                proj = perspective_project(pts, f[i : i + 1], sizes[i : i + 1] / 2.0)
                error_px = _weighted_error(proj.detach(), target, weights)
                before = error_px if before is None else before
                crop_error = float(error_px) * 224.0 / float(box_sizes[i])
                if step == cfg.max_iters or crop_error < cfg.stop_error_px or not torch.isfinite(error_px).all():
                    break
                residual = (proj - target) / half_box
                data = (weights * residual.pow(2).sum(-1)).sum() / weights.sum().clamp(min=1e-9)
                loss = data + cfg.beta_weight * betas.pow(2).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                optimizer.step()
            with torch.no_grad():
                axis_angle = matrix_to_axis_angle(rotmat.detach())
                rows["global_orient"].append(axis_angle[:, 0])
                rows["body_pose"].append(axis_angle[:, 1:].reshape(1, 69))
                rows["betas"].append(betas.detach())
                rows["transl"].append(transl.detach())
                rows["error_before_px"].append(before.reshape(1))
                rows["error_after_px"].append(error_px.reshape(1))
                rows["iterations"].append(torch.tensor([step], dtype=torch.float32))
            module.load_state_dict(backup)  # restore before the next sample
    finally:
        module.load_state_dict(backup)
        for name, p in module.named_parameters():
            p.requires_grad_(requires[name])
            p.grad = None
        module.train(was_training)
    return {k: torch.cat(v).detach().cpu().numpy().astype(np.float32) for k, v in rows.items()}
