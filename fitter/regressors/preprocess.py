"""Regressor input preparation as published (SPIN/HMR, PARE, CLIFF) and output conversion.

Pixels: full-image coordinates with the origin at the top-left CORNER of the top-left pixel
(pixel (i, j) covers [j, j+1] x [i, i+1]), as in `fitter.geometry`. A crop box is
(center (N,2) px, scale (N,)) with box HEIGHT b = 200 * scale px (the SPIN/CLIFF convention);
its width is b * W_in / H_in for a model input of H_in x W_in (square for HMR/PARE/NBF at
224x224, 4:3 for CLIFF at 256x192). The crop maps the box onto the model input by a uniform
scale H_in / b about the box centre (continuous affine warp, cv2.warpAffine, zero padding
outside the image); the originals cut the box at whole pixels and cv2.resize it, which differs
by under a pixel.

Published box rules (`box_from_*`):
- HMR/SPIN, PARE (224x224 square): from keypoints, size = largest side of the keypoint box,
  scale = size / 200 * 1.2 (SPIN demo `bbox_from_openpose`, SPIN's dataset preprocessing);
  from a detector/annotation box, scale = max(w, h) / 200 (SPIN `bbox_from_json`, PARE demo
  bbox_scale 1.0).
- CLIFF (256x192): size = max(w * 256/192, h), scale = size / 200 * 1.1 (CLIFF
  `bbox_from_detector`); from keypoints fitter uses the same size rule with SPIN's 1.2 (the
  training data CLIFF used were SPIN-preprocessed).
- A mask is treated like a detector box (its tight bounding box).
Images are RGB; crops are divided by 255 and normalised with ImageNet mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from fitter.geometry import crop_cam_to_full_translation, default_focal_length, matrix_to_axis_angle

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_INPUT_SIZE",
    "CropBox",
    "box_rescale",
    "box_from_xyxy",
    "box_from_keypoints",
    "box_from_mask",
    "crop_matrix",
    "full_to_crop_points",
    "crop_to_full_points",
    "crop_image",
    "normalize_crops",
    "crop_for_model",
    "part_labels_to_one_hot",
    "cliff_bbox_info",
    "regressor_output_to_full_frame",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Model input (height, width) in pixels.
MODEL_INPUT_SIZE: dict[str, tuple[int, int]] = {
    "hmr": (224, 224),
    "pare": (224, 224),
    "nbf": (224, 224),
    "cliff_res50": (256, 192),
    "cliff_hr48": (256, 192),
}
# (from a box or mask, from keypoints) box enlargement factors, see module docstring.
_RESCALE = {
    "hmr": (1.0, 1.2),
    "pare": (1.0, 1.2),
    "nbf": (1.0, 1.2),
    "cliff_res50": (1.1, 1.2),
    "cliff_hr48": (1.1, 1.2),
}


def _check_model(model: str) -> str:
    if model not in MODEL_INPUT_SIZE:
        raise ValueError(f"unknown regressor {model!r}: choose one of {', '.join(MODEL_INPUT_SIZE)}")
    return model


def _as_float_tensor(x, dtype: torch.dtype | None = None) -> Tensor:
    t = torch.as_tensor(x)
    if dtype is not None:
        return t.to(dtype)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


@dataclass
class CropBox:
    """Crop boxes for N people: center (N,2) full-image px, scale (N,) with box height = 200*scale px."""

    center: Tensor
    scale: Tensor

    def __post_init__(self) -> None:
        self.center = _as_float_tensor(self.center).reshape(-1, 2)
        self.scale = _as_float_tensor(self.scale, self.center.dtype).reshape(-1)
        if self.center.shape[0] != self.scale.shape[0]:
            raise ValueError(f"CropBox: {self.center.shape[0]} centers but {self.scale.shape[0]} scales")
        if not torch.all(self.scale > 0):
            raise ValueError(f"CropBox: scale must be > 0, got {self.scale.tolist()}")

    @property
    def size(self) -> Tensor:
        """Box height b = 200 * scale in full-image pixels, (N,)."""
        return 200.0 * self.scale

    def __len__(self) -> int:
        return self.center.shape[0]


def box_rescale(model: str, source: str) -> float:
    """Published enlargement factor for `model` and source 'box' (detector box / mask) or 'keypoints'."""
    factors = _RESCALE[_check_model(model)]
    if source not in ("box", "keypoints"):
        raise ValueError(f"source must be 'box' or 'keypoints', got {source!r}")
    return factors[0] if source == "box" else factors[1]


def _box_from_extent(center: Tensor, width: Tensor, height: Tensor, model: str, rescale: float) -> CropBox:
    """Box size rule: size = max(w * H_in/W_in, h) (square models: max(w, h)); scale = size/200*rescale."""
    in_h, in_w = MODEL_INPUT_SIZE[model]
    size = torch.maximum(width * (in_h / in_w), height)
    return CropBox(center, size / 200.0 * rescale)


def box_from_xyxy(xyxy, model: str = "hmr", rescale: float | None = None) -> CropBox:
    """Crop boxes from detector boxes (N,4) or (4,) [x_min, y_min, x_max, y_max] px, by `model`'s rule."""
    _check_model(model)
    boxes = _as_float_tensor(xyxy).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if torch.any(width <= 0) or torch.any(height <= 0):
        raise ValueError(f"boxes must be [x_min, y_min, x_max, y_max] with positive size, got {boxes.tolist()}")
    center = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=-1)
    return _box_from_extent(center, width, height, model, box_rescale(model, "box") if rescale is None else rescale)


def box_from_keypoints(
    keypoints,
    model: str = "hmr",
    conf_threshold: float = 0.2,
    rescale: float | None = None,
    center_mode: str = "box",
) -> CropBox:
    """Crop boxes from 2D keypoints (N,K,2) or (N,K,3) [x, y, confidence] px (or (K,2|3) for one person).

    Keypoints with confidence <= conf_threshold are ignored (SPIN demo: 0.2). center_mode "box"
    = centre of the keypoint box (SPIN's dataset preprocessing); "mean" = mean of the keypoints
    (SPIN's demo). Needs >= 2 valid keypoints per person.
    """
    _check_model(model)
    if center_mode not in ("box", "mean"):
        raise ValueError(f"center_mode must be 'box' or 'mean', got {center_mode!r}")
    kps = _as_float_tensor(keypoints)
    if kps.ndim == 2:
        kps = kps[None]
    if kps.ndim != 3 or kps.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must be (N, K, 2) or (N, K, 3), got {tuple(kps.shape)}")
    valid = kps[..., 2] > conf_threshold if kps.shape[-1] == 3 else torch.ones(kps.shape[:2], dtype=torch.bool)
    centers, widths, heights = [], [], []
    for person, (points, ok) in enumerate(zip(kps[..., :2], valid)):
        if int(ok.sum()) < 2:
            raise ValueError(
                f"person {person}: fewer than 2 keypoints with confidence > {conf_threshold}; cannot place a box"
            )
        pts = points[ok]
        low, high = pts.min(dim=0).values, pts.max(dim=0).values
        centers.append((low + high) / 2 if center_mode == "box" else pts.mean(dim=0))
        widths.append(high[0] - low[0])
        heights.append(high[1] - low[1])
    factor = box_rescale(model, "keypoints") if rescale is None else rescale
    return _box_from_extent(torch.stack(centers), torch.stack(widths), torch.stack(heights), model, factor)


def box_from_mask(mask, model: str = "hmr", rescale: float | None = None) -> CropBox:
    """Crop boxes from person masks (H,W) or (N,H,W) (nonzero = person), by the detector-box rule."""
    masks = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"mask must be (H, W) or (N, H, W), got shape {masks.shape}")
    boxes = []
    for index, m in enumerate(masks):
        rows, cols = np.nonzero(m)
        if rows.size == 0:
            raise ValueError(f"mask {index} is empty: no person pixels to place a box around")
        boxes.append([cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0])  # pixel-corner extent
    return box_from_xyxy(np.asarray(boxes, dtype=np.float64), model, rescale)


def crop_matrix(box: CropBox, input_size: tuple[int, int]) -> Tensor:
    """(N,2,3) affine maps full-image px -> crop px (corner convention) for a crop of (H_in, W_in).

    u = (x - cx) * H_in / b + W_in / 2,  v = (y - cy) * H_in / b + H_in / 2, b = 200 * scale.
    """
    in_h, in_w = input_size
    k = in_h / box.size
    mat = torch.zeros(len(box), 2, 3, dtype=box.center.dtype)
    mat[:, 0, 0] = k
    mat[:, 1, 1] = k
    mat[:, 0, 2] = in_w / 2.0 - k * box.center[:, 0]
    mat[:, 1, 2] = in_h / 2.0 - k * box.center[:, 1]
    return mat


def full_to_crop_points(points: Tensor, box: CropBox, input_size: tuple[int, int]) -> Tensor:
    """Full-image points (N,K,2) px -> crop points (N,K,2) px of a crop of (H_in, W_in)."""
    mat = crop_matrix(box, input_size).to(points.dtype)
    return points @ mat[:, :, :2].transpose(1, 2) + mat[:, None, :, 2]


def crop_to_full_points(points: Tensor, box: CropBox, input_size: tuple[int, int]) -> Tensor:
    """Crop points (N,K,2) px -> full-image points (N,K,2) px (inverse of full_to_crop_points)."""
    mat = crop_matrix(box, input_size).to(points.dtype)
    return (points - mat[:, None, :, 2]) / mat[:, 0, 0][:, None, None]


def crop_image(
    image: np.ndarray,
    box: CropBox,
    input_size: tuple[int, int],
    interpolation: str = "linear",
    border_value: float = 0.0,
) -> np.ndarray:
    """Cut N boxes out of one image (H,W) or (H,W,C) and resample each to (H_in, W_in).

    Returns float32 (N, H_in, W_in[, C]) in the image's own value range; outside the image =
    border_value. interpolation "linear" for photos, "nearest" for label / part maps.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    flags = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
    if interpolation not in flags:
        raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
    keep_dtype = interpolation == "nearest" and img.dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
    src = img if keep_dtype else img.astype(np.float32)  # cv2 cannot warp int32/int64/bool
    in_h, in_w = input_size
    crops = []
    for mat in crop_matrix(box, input_size).double().numpy():
        # corner convention -> cv2's pixel-centre convention: shift by half a pixel on both sides.
        centred = mat.copy()
        centred[:, 2] += 0.5 * mat[:, 0] + 0.5 * mat[:, 1] - 0.5
        out = cv2.warpAffine(
            src, centred, (in_w, in_h), flags=flags[interpolation],
            borderMode=cv2.BORDER_CONSTANT, borderValue=border_value,
        )  # fmt: skip
        crops.append(out.reshape(in_h, in_w, *img.shape[2:]))
    return np.stack(crops).astype(np.float32)


def normalize_crops(crops: np.ndarray | Tensor) -> Tensor:
    """RGB crops (N,H,W,3) with values 0..255 -> (N,3,H,W) float32: /255, then ImageNet mean/std."""
    x = torch.as_tensor(np.asarray(crops) if not torch.is_tensor(crops) else crops, dtype=torch.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"crops must be (N, H, W, 3) RGB, got {tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
    return ((x / 255.0 - mean) / std).permute(0, 3, 1, 2).contiguous()


def crop_for_model(image: np.ndarray, box: CropBox, model: str) -> Tensor:
    """RGB image (H,W,3) uint8 (0..255) -> the model's normalised input (N,3,H_in,W_in) float32."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {img.shape}")
    if img.dtype != np.uint8 and img.size and float(img.max()) <= 1.0:
        raise ValueError("image looks scaled to [0, 1]; pass 0..255 RGB values (uint8)")
    return normalize_crops(crop_image(img, box, MODEL_INPUT_SIZE[_check_model(model)]))


def part_labels_to_one_hot(labels, num_parts: int = 12) -> Tensor:
    """Part label maps (N,H,W) or (H,W) ints, 0 = background, 1..num_parts = parts -> (N,num_parts,H,W) float32."""
    lab = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    if lab.ndim == 2:
        lab = lab[None]
    if lab.ndim != 3:
        raise ValueError(f"labels must be (N, H, W) or (H, W), got {tuple(lab.shape)}")
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) > num_parts):
        raise ValueError(f"labels must lie in 0..{num_parts} (0 = background), got {int(lab.min())}..{int(lab.max())}")
    one_hot = torch.nn.functional.one_hot(lab, num_parts + 1)[..., 1:]
    return one_hot.permute(0, 3, 1, 2).float().contiguous()


def _image_size_tensor(image_size, n: int, dtype: torch.dtype) -> Tensor:
    size = _as_float_tensor(image_size, dtype)
    if size.ndim == 1:
        if size.shape[0] != 2:
            raise ValueError(f"image_size must be (W, H) or (N, 2), got {tuple(size.shape)}")
        size = size.expand(n, 2)
    if size.shape != (n, 2):
        raise ValueError(f"image_size must be (W, H) or (N={n}, 2), got {tuple(size.shape)}")
    return size


def _focal_tensor(focal, image_size: Tensor) -> Tensor:
    if focal is None:
        return default_focal_length(image_size[:, 0], image_size[:, 1]).to(image_size.dtype)
    f = _as_float_tensor(focal, image_size.dtype)
    return f.expand(image_size.shape[0]) if f.ndim == 0 else f.reshape(-1)


def cliff_bbox_info(box: CropBox, image_size, focal=None) -> Tensor:
    """CLIFF's bbox_info (N,3): [(cx - W/2) / f * 2.8, (cy - H/2) / f * 2.8, (b - 0.24 f) / (0.06 f)].

    image_size (W, H) or (N, 2) of the FULL image, px; focal (N,) or scalar px, default
    sqrt(W^2 + H^2) of the full image; b = 200 * scale.
    """
    size = _image_size_tensor(image_size, len(box), box.center.dtype)
    f = _focal_tensor(focal, size)
    offset = box.center - size / 2.0
    return torch.stack([offset[:, 0] / f * 2.8, offset[:, 1] / f * 2.8, (box.size - 0.24 * f) / (0.06 * f)], dim=-1)


def regressor_output_to_full_frame(out: dict[str, Tensor], box: CropBox, image_size, focal=None) -> dict[str, Tensor]:
    """A regressor's crop-space output -> SMPL parameters and camera of the FULL image.

    out: dict with pred_rotmat (N,24,3,3), pred_betas (N,10), pred_cam (N,3) [s, tx, ty].
    Returns global_orient (N,3) and body_pose (N,69) axis-angle radians (SMPL order; the body
    in the OpenCV camera frame), betas (N,10), transl (N,3) metres = the body model's `transl`
    argument (CLIFF's cam_crop2full: tz = 2 f / (b s), tx += 2 (cx - W/2) / (b s), same for y),
    focal_length (N,) px and principal_point (N,2) = image centre px. Same rule for every model:
    the weak-perspective crop camera is focal-agnostic, so default focal = sqrt(W^2 + H^2).
    """
    rotmat, cam = out["pred_rotmat"], out["pred_cam"]
    n = rotmat.shape[0]
    if len(box) != n:
        raise ValueError(f"{n} predictions but {len(box)} boxes")
    size = _image_size_tensor(image_size, n, cam.dtype).to(cam.device)
    f = _focal_tensor(focal, size).to(cam.device)
    transl = crop_cam_to_full_translation(cam, box.center.to(cam), box.size.to(cam), size, f)
    axis_angle = matrix_to_axis_angle(rotmat)
    return {
        "global_orient": axis_angle[:, 0],
        "body_pose": axis_angle[:, 1:].reshape(n, 69),
        "betas": out["pred_betas"],
        "transl": transl,
        "focal_length": f,
        "principal_point": size / 2.0,
        "rotmat": rotmat,
    }
