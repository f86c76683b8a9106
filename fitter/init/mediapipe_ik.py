"""Initial body pose from mediapipe's 3D world landmarks by inverse kinematics on the body model.

mediapipe's BlazePose gives 33 `world_landmarks` per person: metres, origin at the midpoint of
the hips, axes parallel to the camera frame (OpenCV: x right, y down, z away from the camera;
see fitter.detect.mediapipe_pose). Because the axes are the camera's, a body pose fitted to
them also gives the body's orientation in the camera frame directly.

Method (batched over people):

1. start: the body's orientation from a rigid (Kabsch) alignment of the model's torso points
   (shoulders, hips) in its start pose onto the landmarks' torso points (`fitter.geometry.similarity_transform`), body pose
   `fitter.body.poses.mean_body_pose()`, betas 0;
2. inverse kinematics: Adam on global_orient (as a rotation increment) + body_pose so the model's
   `blazepose33` points (`keypoint_regressor(model, "blazepose33")`, fast landmark path) match
   the landmarks after a translation + scale alignment (weighted centroids; no rotation, so the
   orientation is kept), weighted by mediapipe's visibility x the point's correspondence quality,
   with the joint-limit prior (`priors.joint_limit_penalty`) and a small L2 pull to the start pose;
3. camera translation: weighted linear least squares on the 2D keypoints (every visible point,
   full perspective; `fitter.geometry.least_squares_translation`), falling back to similar triangles when that fails.

Shape stays at betas = 0: mediapipe's landmark lengths are GHUM's guess, not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import BodyModel
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, similarity_transform
from fitter.geometry.translation import least_squares_translation, similar_triangles_translation
from fitter.init.start import Start, StartInputs
from fitter.keypoints import keypoint_names, keypoint_regressor

__all__ = ["MEDIAPIPE_SET", "IKConfig", "ik_from_world_landmarks", "translation_from_keypoints", "mediapipe_start"]

MEDIAPIPE_SET = "blazepose33"
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass
class IKConfig:
    """Settings of the landmark IK. Loss = data (m^2, weighted mean) + weights x priors."""

    iters: int = 60
    lr: float = 0.1
    joint_limit_weight: float = 0.2  # x joint_limit_penalty (rad^2)
    pose_l2_weight: float = 2e-4  # x sum of squared (body_pose - start pose) (rad^2)
    min_scale: float = 0.75  # landmark / model size ratio is clamped to this range
    max_scale: float = 1.35
    min_weight: float = 0.1  # landmark weights below this (visibility x quality) are ignored


def _as_tensor(x, dtype=torch.float32, device="cpu") -> Tensor:
    return torch.as_tensor(np.array(x) if not torch.is_tensor(x) else x, dtype=dtype, device=device)


def _frontal(n: int, dtype, device) -> Tensor:
    return torch.tensor([math.pi, 0.0, 0.0], dtype=dtype, device=device).expand(n, 3).clone()


def _start_pose(n: int, dtype, device) -> Tensor:
    from fitter.body.poses import mean_body_pose

    return mean_body_pose(dtype).to(device).expand(n, 69).clone()


def ik_from_world_landmarks(
    world_landmarks,
    body_model: BodyModel,
    visibility=None,
    config: IKConfig | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Tensor]:
    """Body pose and orientation (camera frame) from mediapipe world landmarks by IK.

    world_landmarks (N,33,3) metres, hip-centred, camera axes (x right, y down, z away), in
    BlazePose-33 order; visibility (N,33) in [0,1] or None (all 1). Returns dict of float32
    tensors on `device`: global_orient (N,3) and body_pose (N,69) axis-angle radians (SMPL
    order), betas (N,num_betas) zeros, landmark_error_m (N,) weighted RMS landmark error after the
    translation + scale alignment, scale (N,) landmark size / model size.
    """
    cfg = config or IKConfig()
    lm = _as_tensor(world_landmarks, device=device)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1:] != (33, 3):
        raise ValueError(
            f"world_landmarks must be (N, 33, 3) mediapipe world landmarks in metres, got {tuple(lm.shape)}"
        )
    if not torch.isfinite(lm).all():
        raise ValueError(
            "world_landmarks contain NaN or inf; drop those people or pass visibility 0 with finite values"
        )
    n, dt = lm.shape[0], lm.dtype
    vis = (
        torch.ones(n, 33, dtype=dt, device=device)
        if visibility is None
        else _as_tensor(visibility, device=device).reshape(n, 33)
    )
    model = body_model.to(device)
    reg = keypoint_regressor(model, MEDIAPIPE_SET)
    skin = model.landmark_skin(reg.vertex_ids, reg.vertex_weights)
    weights = vis.clamp(0, 1) * reg.quality[None].to(dt)
    weights = torch.where(weights >= cfg.min_weight, weights, torch.zeros_like(weights))
    betas = torch.zeros(n, model.num_betas, dtype=dt, device=device)
    start_pose = _start_pose(n, dt, device)
    names = keypoint_names(MEDIAPIPE_SET)
    torso = [names.index(k) for k in _TORSO]

    def model_points(body_pose: Tensor, rotation: Tensor) -> Tensor:
        joints, landmarks = model.pose_landmarks(skin, betas, body_pose, rotation[:, None], None)
        return torch.einsum("kj,bjc->bkc", reg.joint_weights, joints) + landmarks

    # 1. start orientation: Kabsch on the torso (model frame at the start pose -> landmarks)
    with torch.no_grad():
        eye = torch.eye(3, dtype=dt, device=device).expand(n, 3, 3)
        rest = model_points(start_pose, eye)
        torso_w = weights[:, torso].clamp(min=1e-3)
        rot0, _, _ = similarity_transform(rest[:, torso].double(), lm[:, torso].double(), torso_w.double(), scale=False)
        rot0 = rot0.to(dt)

    # 2. IK by Adam on a rotation increment and the body pose
    delta = torch.zeros(n, 3, dtype=dt, device=device, requires_grad=True)
    body_pose = start_pose.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([delta, body_pose], lr=cfg.lr)
    from priors import joint_limit_penalty

    wsum = weights.sum(1).clamp(min=1e-6)

    def alignment_residual(points: Tensor) -> tuple[Tensor, Tensor]:
        w = weights / wsum[:, None]
        p = points - (w[..., None] * points).sum(1, keepdim=True)
        t = lm - (w[..., None] * lm).sum(1, keepdim=True)
        scale = (w * (p * t).sum(-1)).sum(1) / (w * p.pow(2).sum(-1)).sum(1).clamp(min=1e-9)
        scale = scale.clamp(cfg.min_scale, cfg.max_scale)
        return scale[:, None, None] * p - t, scale

    for _ in range(cfg.iters):
        optimizer.zero_grad(set_to_none=True)
        rotation = rot0 @ axis_angle_to_matrix(delta)
        residual, _ = alignment_residual(model_points(body_pose, rotation))
        data = (weights * residual.pow(2).sum(-1)).sum(1) / wsum
        prior = cfg.joint_limit_weight * joint_limit_penalty(body_pose)
        prior = prior + cfg.pose_l2_weight * (body_pose - start_pose).pow(2).sum(1)
        (data + prior).sum().backward()
        optimizer.step()

    with torch.no_grad():
        rotation = rot0 @ axis_angle_to_matrix(delta)
        residual, scale = alignment_residual(model_points(body_pose, rotation))
        error = ((weights * residual.pow(2).sum(-1)).sum(1) / wsum).sqrt()
        ok = torch.isfinite(error) & torch.isfinite(body_pose).all(1) & torch.isfinite(rotation).flatten(1).all(1)
        global_orient = torch.where(ok[:, None], matrix_to_axis_angle(rotation), _frontal(n, dt, device))
        pose = torch.where(ok[:, None], body_pose.detach(), start_pose)
    return {
        "global_orient": global_orient,
        "body_pose": pose,
        "betas": betas,
        "landmark_error_m": error,
        "scale": scale,
    }


def translation_from_keypoints(body_model: BodyModel, params: dict[str, Tensor], keypoints, keypoint_set: str,
                               focal, principal_point) -> Tensor:  # fmt: skip
    """Camera translation (N,3) metres for posed bodies from their 2D keypoints (N,K,3) px + confidence."""
    dev = params["body_pose"].device
    kp = _as_tensor(keypoints, device=dev)
    reg = keypoint_regressor(body_model.to(dev), keypoint_set)
    skin = body_model.landmark_skin(reg.vertex_ids, reg.vertex_weights)
    with torch.no_grad():
        joints, landmarks = body_model.pose_landmarks(
            skin, params["betas"], params["body_pose"], params["global_orient"], None
        )
        pts = torch.einsum("kj,bjc->bkc", reg.joint_weights, joints) + landmarks
    weights = kp[..., 2] * reg.quality[None]
    f = _as_tensor(focal, device=dev).reshape(-1)
    c = _as_tensor(principal_point, device=dev).reshape(-1, 2)
    transl, ok = least_squares_translation(pts, kp[..., :2], weights, f, c)
    if not bool(ok.all()):
        fallback = similar_triangles_translation(pts, kp[..., :2], weights, f, c)
        transl = torch.where(ok[:, None], transl, fallback)
    return transl


def _landmarks_from_crops(images: list[np.ndarray], keypoints: np.ndarray,
                          owners: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Run BlazePose on a crop around each person (box from their keypoints) for world landmarks.

    Returns (landmarks (N,33,3) metres, visibility (N,33), found (N,) bool); people mediapipe
    misses get zeros.
    """
    from fitter.detect import BlazePoseDetector

    out = np.zeros((len(owners), 33, 3), np.float32)
    vis = np.zeros((len(owners), 33), np.float32)
    found = np.zeros(len(owners), bool)
    with BlazePoseDetector(enable_segmentation=False) as detector:
        for i, owner in enumerate(owners):
            image = images[owner]
            valid = keypoints[i, :, 2] > 0.2
            if valid.sum() < 2:
                continue
            pts = keypoints[i, valid, :2]
            lo, hi = pts.min(0), pts.max(0)
            half = 0.65 * max(hi - lo) + 8.0
            cx, cy = (lo + hi) / 2
            h, w = image.shape[:2]
            x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
            x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            det = detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
            if det is not None:
                out[i], vis[i], found[i] = det.world_landmarks, det.keypoints[:, 2], True
    return out, vis, found


def mediapipe_start(inputs: StartInputs, config: IKConfig | None = None) -> Start:
    """The "mediapipe" initializer: IK on world landmarks, then translation from the 2D keypoints.

    Uses inputs.world_landmarks (N,33,3) metres when given; otherwise (e.g. keypoints from a
    file) BlazePose is run on a crop around each person (needs inputs.images and owners). A
    person mediapipe misses starts upright facing the camera (global_orient [pi,0,0],
    `mean_body_pose()`). With "blazepose33" keypoints their confidences weight the landmarks.
    Diagnostics: landmark_error_m (N,) (NaN where not fitted).
    """
    keypoint_set, model, device = inputs.keypoint_set, inputs.model, inputs.keypoints.device
    kp = inputs.keypoints.detach().cpu().numpy().astype(np.float32)
    n = kp.shape[0]
    visibility = kp[..., 2] if keypoint_set == MEDIAPIPE_SET else None
    if inputs.world_landmarks is None:
        if inputs.images is None or inputs.owners is None:
            raise ValueError(
                "the mediapipe initializer needs world_landmarks (N,33,3) or the images and owners to detect them"
            )
        landmarks, crop_vis, found = _landmarks_from_crops(inputs.images, kp, list(inputs.owners))
        visibility = crop_vis
    else:
        landmarks = np.asarray(inputs.world_landmarks, dtype=np.float32).reshape(n, 33, 3)
        found = np.isfinite(landmarks).all(axis=(1, 2))
        landmarks = np.where(found[:, None, None], landmarks, 0.0).astype(np.float32)
    dt = torch.float32
    params = {
        "betas": torch.zeros(n, model.num_betas, dtype=dt, device=device),
        "body_pose": _start_pose(n, dt, device),
        "global_orient": _frontal(n, dt, device),
    }
    error = torch.full((n,), float("nan"), device=device)
    idx = np.nonzero(found)[0]
    if len(idx):
        vis = None if visibility is None else np.asarray(visibility, dtype=np.float32)[idx]
        ik = ik_from_world_landmarks(landmarks[idx], model, vis, config, device)
        sel = torch.as_tensor(idx, device=device)
        for key in ("betas", "body_pose", "global_orient"):
            params[key][sel] = ik[key]
        error[sel] = ik["landmark_error_m"]
    transl = translation_from_keypoints(model, params, kp, keypoint_set, inputs.focal, inputs.center)
    return Start(body_pose=params["body_pose"].detach(), global_orient=params["global_orient"].detach(),
                 betas=params["betas"].detach(), transl=transl.detach().to(dt), source=["mediapipe"] * n,
                 diagnostics={"landmark_error_m": error.cpu().numpy().astype(np.float32)})  # fmt: skip
