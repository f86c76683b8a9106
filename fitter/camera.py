"""The full-frame pinhole camera used for fitting.

Camera frame: OpenCV (x right, y down, z forward, metres); pixels with the origin at the image's
top-left corner. The principal point is the image centre. The focal length comes from, in order:
the user; the photo's EXIF (35 mm-equivalent focal f35 -> f35 / 36 * max(W, H) pixels); else
CLIFF's guess, the image diagonal sqrt(W^2 + H^2): a 43 mm-equivalent "normal" lens (a 35 mm
frame's diagonal is 43.3 mm; by the EXIF rule above, 45 mm for a 4:3 photo). SMPLify's fixed
f = 5000 px is what users complain about. `focal_source` records which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitter.geometry import default_focal_length

__all__ = ["Camera", "resolve_camera"]


@dataclass
class Camera:
    """Per-item intrinsics: focal_length (N,) px, principal_point (N,2) px, image_size (N,2)
    (W,H) px, focal_source one of "user", "exif", "diagonal" per item."""

    focal_length: np.ndarray
    principal_point: np.ndarray
    image_size: np.ndarray
    focal_source: list[str]


def resolve_camera(
    image_size,
    num_items: int,
    focal_length: float | np.ndarray | None = None,
    image_paths: list[str | Path | None] | None = None,
    principal_point=None,
) -> Camera:
    """Intrinsics for `num_items` items. image_size: (W,H) for all or (N,2); focal_length: None,
    a number, or (N,) pixels (NaN entries fall back); image_paths: per item, for EXIF;
    principal_point: None (image centre), (2,) or (N,2) pixels."""
    size = np.asarray(image_size, dtype=np.float64)
    if size.shape == (2,):
        size = np.tile(size, (num_items, 1))
    if size.shape != (num_items, 2) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise ValueError(f"image_size must be (W, H) or ({num_items}, 2) positive pixels, got shape {size.shape}")
    focal = np.full(num_items, np.nan)
    if focal_length is not None:
        focal = np.broadcast_to(np.asarray(focal_length, dtype=np.float64), (num_items,)).copy()
        if np.any(focal[np.isfinite(focal)] <= 0):
            raise ValueError("focal_length must be positive (pixels)")
    source = ["user" if np.isfinite(f) else "" for f in focal]
    for i in range(num_items):
        if source[i]:
            continue
        path = image_paths[i] if image_paths is not None else None
        exif = None
        if path is not None:
            from fitter.io.images import focal_px_from_exif

            exif = focal_px_from_exif(path, size[i, 0], size[i, 1])
        if exif:
            focal[i], source[i] = exif, "exif"
        else:
            focal[i], source[i] = default_focal_length(size[i, 0], size[i, 1]), "diagonal"
    center = size / 2
    if principal_point is not None:
        center = np.broadcast_to(np.asarray(principal_point, dtype=np.float64), (num_items, 2)).copy()
        if not np.all(np.isfinite(center)):
            raise ValueError("principal_point must be finite pixels")
    return Camera(focal_length=focal.astype(np.float32), principal_point=center.astype(np.float32),
                  image_size=size.astype(np.float32), focal_source=source)  # fmt: skip
