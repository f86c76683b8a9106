"""Pinhole projection and camera conversions.

Frames: the camera frame is OpenCV's (x right, y down, z forward, metres); image points are
pixels with the origin at the top-left corner of the top-left pixel. Body models live in their
own frame (Y up, facing +Z); `global_orient` rotates the body into the camera frame, so a person
facing the camera upright has global_orient = [pi, 0, 0].
"""

from __future__ import annotations

import torch

__all__ = [
    "perspective_project",
    "visible_box",
    "crop_cam_to_full_translation",
    "translation_to_crop_cam",
    "default_focal_length",
]


def perspective_project(
    points: torch.Tensor,
    focal_length: torch.Tensor | float,
    principal_point: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Project camera-frame points (B, N, 3) in metres to pixels (B, N, 2).

    focal_length: scalar, (B,) or (B, 2) (fx, fy) in pixels; principal_point: (2,) or (B, 2) pixels.
    Depths are clamped to `eps` so points behind the camera do not produce inf/NaN.
    """
    f = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    if f.ndim == 0:
        f = f.expand(points.shape[0], 2)
    elif f.ndim == 1:
        f = f[:, None].expand(-1, 2)
    c = torch.as_tensor(principal_point, dtype=points.dtype, device=points.device)
    if c.ndim == 1:
        c = c.expand(points.shape[0], 2)
    z = points[..., 2:3].clamp(min=eps)
    return points[..., :2] / z * f[:, None, :] + c[:, None, :]


def default_focal_length(image_width: torch.Tensor | float, image_height: torch.Tensor | float):
    """CLIFF's full-frame focal-length guess: the image diagonal sqrt(W^2 + H^2), in pixels."""
    if torch.is_tensor(image_width) or torch.is_tensor(image_height):
        return torch.sqrt(torch.as_tensor(image_width) ** 2 + torch.as_tensor(image_height) ** 2)
    return float((image_width**2 + image_height**2) ** 0.5)


def crop_cam_to_full_translation(
    crop_cam: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor,
    image_size: torch.Tensor,
    focal_length: torch.Tensor,
) -> torch.Tensor:
    """Weak-perspective crop camera (s, tx, ty) -> full-frame camera translation (N, 3), metres.

    As in CLIFF (and PARE's `convert_pare_to_full_img_cam`): with bs = box_size * s,
    tz = 2 f / bs, tx' = tx + 2 (cx - W/2) / bs, ty' = ty + 2 (cy - H/2) / bs.
    box_center (N, 2) and box_size (N,) are in full-image pixels (box_size = 200 * scale);
    image_size (N, 2) or (2,) is (W, H); focal_length (N,) or scalar is the full image's, pixels.
    """
    s, tx, ty = crop_cam[:, 0], crop_cam[:, 1], crop_cam[:, 2]
    img = torch.as_tensor(image_size, dtype=crop_cam.dtype, device=crop_cam.device)
    if img.ndim == 1:
        img = img.expand(crop_cam.shape[0], 2)
    f = torch.as_tensor(focal_length, dtype=crop_cam.dtype, device=crop_cam.device)
    bs = torch.as_tensor(box_size, dtype=crop_cam.dtype, device=crop_cam.device) * s
    tz = 2.0 * f / bs
    cx = 2.0 * (box_center[:, 0] - img[:, 0] / 2.0) / bs
    cy = 2.0 * (box_center[:, 1] - img[:, 1] / 2.0) / bs
    return torch.stack([tx + cx, ty + cy, tz], dim=-1)


def translation_to_crop_cam(
    transl: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor,
    image_size: torch.Tensor,
    focal_length: torch.Tensor,
) -> torch.Tensor:
    """Inverse of `crop_cam_to_full_translation`: full-frame translation (N, 3) -> (s, tx, ty)."""
    img = torch.as_tensor(image_size, dtype=transl.dtype, device=transl.device)
    if img.ndim == 1:
        img = img.expand(transl.shape[0], 2)
    f = torch.as_tensor(focal_length, dtype=transl.dtype, device=transl.device)
    bs = 2.0 * f / transl[:, 2]
    s = bs / torch.as_tensor(box_size, dtype=transl.dtype, device=transl.device)
    tx = transl[:, 0] - 2.0 * (box_center[:, 0] - img[:, 0] / 2.0) / bs
    ty = transl[:, 1] - 2.0 * (box_center[:, 1] - img[:, 1] / 2.0) / bs
    return torch.stack([s, tx, ty], dim=-1)


def visible_box(points: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the (min, max) corners (B,C) of the points (B,K,C) whose `visible` (B,K) is set
    (any units: pixels, camera rays). Items with no visible point get min > max."""
    hidden = (~visible).to(points.dtype)[..., None] * 1e9
    return (points + hidden).amin(1), (points - hidden).amax(1)
