"""Checks after a fit: results it cannot trust get a "failed: ..." status with the reason.

Thresholds (measured on the project's 24 real eval photos with default fits: mean 2D error
0.7-3 % of the person's size, at least 82 % of the seen keypoints inside the photo):
* most seen keypoints outside the image (a crop, or keypoints for another image);
* mean 2D error over MAX_RELATIVE_ERROR of the person's size (the fit does not follow the keypoints);
* facing ambiguous: the fit faces the other way than 3D landmarks of the same person say
  (mediapipe's world landmarks; a back view with left/right swapped, or a wrong heading). On the
  eval photos 1 of 34 detected people was flagged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fitter.geometry import axis_angle_to_matrix, visible_box

__all__ = ["untrusted_reasons", "facing_conflicts", "MAX_RELATIVE_ERROR", "MIN_INSIDE_FRACTION"]

MAX_RELATIVE_ERROR = 0.10  # mean 2D error / longest side of the seen keypoints' box
MIN_INSIDE_FRACTION = 0.5  # of the seen keypoints


def untrusted_reasons(keypoints: Tensor, weights: Tensor, error_px: Tensor, image_size: Tensor) -> list[str | None]:
    """Per person, why the fit cannot be trusted (None: no reason found).

    keypoints (N,K,3) px + confidence; weights (N,K) (> 0: used by the fit); error_px (N,) mean
    2D error of the fit over the used points; image_size (N,2) (W,H) px.
    """
    seen = weights > 0
    xy = keypoints[..., :2]
    inside = (xy >= 0).all(-1) & (xy[..., 0] <= image_size[:, None, 0]) & (xy[..., 1] <= image_size[:, None, 1])
    inside_fraction = (inside & seen).sum(1) / seen.sum(1).clamp(min=1)
    lo, hi = visible_box(xy, seen)
    size = (hi - lo).amax(-1).clamp(min=1.0)
    reasons: list[str | None] = []
    for i in range(len(keypoints)):
        w, h = (int(v) for v in image_size[i].tolist())
        if float(inside_fraction[i]) < MIN_INSIDE_FRACTION:
            reasons.append(f"most keypoints lie outside the {w}x{h} image; are they for this photo?")
        elif float(error_px[i]) > MAX_RELATIVE_ERROR * float(size[i]):
            reasons.append(f"untrusted fit: the mean 2D error ({float(error_px[i]):.0f} px) is "
                           f"{100 * float(error_px[i] / size[i]):.0f}% of the person's size")  # fmt: skip
        else:
            reasons.append(None)
    return reasons


def facing_conflicts(global_orient: Tensor, landmarks: Tensor, names: list[str]) -> Tensor:
    """(N,) bool: the fitted body faces away from where 3D landmarks say the person faces.

    global_orient (N,3) axis-angle, camera frame (the model faces +Z in its own frame);
    landmarks (N,K,3) metres, camera-aligned axes, with hips and shoulders among `names`. The
    landmarks' facing is (left hip - right hip) x (shoulder centre - hip centre)."""
    lh, rh, ls, rs = (names.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"))
    across = landmarks[:, lh] - landmarks[:, rh]
    up = (landmarks[:, ls] + landmarks[:, rs]) / 2 - (landmarks[:, lh] + landmarks[:, rh]) / 2
    seen = torch.linalg.cross(across, up)
    fitted = axis_angle_to_matrix(global_orient)[..., 2]  # R @ (0, 0, 1)
    return (seen * fitted).sum(-1) < 0
