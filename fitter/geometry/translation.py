"""Camera translation from 2D keypoints: where to put a posed body so it projects onto them.

Inputs are the body's points in the camera frame's orientation without translation (metres),
their 2D keypoints (pixels, origin at the top-left corner), per-point weights, the focal length
(px) and the principal point (px). Two solvers, each written once here:

* `similar_triangles_translation`: depth = focal x 3D length / 2D length (SMPLify's start),
  then the mean visible point is put on the ray through the mean visible keypoint;
* `least_squares_translation`: full-perspective weighted linear least squares (3 unknowns).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fitter.geometry.projection import visible_box

__all__ = ["similar_triangles_translation", "least_squares_translation"]


def similar_triangles_translation(
    points3d: Tensor,
    keypoints2d: Tensor,
    weights: Tensor,
    focal: Tensor,
    principal_point: Tensor,
    length_pairs: Sequence[Sequence[tuple[int, int]]] = (),
) -> Tensor:
    """Translation (B,3) metres by similar triangles.

    points3d (B,K,3); keypoints2d (B,K,2) px; weights (B,K) >= 0 (> 0 = seen); focal (B,) px;
    principal_point (B,2) px. length_pairs: groups of (i, j) point-index pairs whose lengths set
    the depth, tried in order: an item uses the first group with a pair seen at both ends (e.g.
    shoulder-hip pairs first: widths foreshorten when the body turns); items without any use
    the extent of all their seen points. Depth is clamped to [0.5, 100] m.
    """
    B = keypoints2d.shape[0]
    seen = weights > 0
    lengths3d = torch.zeros(B, dtype=keypoints2d.dtype, device=keypoints2d.device)
    lengths2d = torch.zeros_like(lengths3d)
    for pairs in length_pairs:
        missing = lengths2d <= 1.0
        for i, j in pairs:
            pw = (seen[:, i] & seen[:, j] & missing).to(keypoints2d.dtype)
            lengths3d = lengths3d + pw * (points3d[:, i] - points3d[:, j])[:, :2].norm(dim=-1)
            lengths2d = lengths2d + pw * (keypoints2d[:, i] - keypoints2d[:, j]).norm(dim=-1)

    def extent(x: Tensor) -> Tensor:
        lo, hi = visible_box(x, seen)
        return (hi - lo).amax(-1)

    ratio = torch.where(lengths2d > 1.0, lengths3d / lengths2d.clamp(min=1e-3),
                        extent(points3d[..., :2]) / extent(keypoints2d).clamp(min=1e-3))  # fmt: skip
    vis = seen.to(keypoints2d.dtype)
    depth = (focal * ratio).clamp(0.5, 100.0)
    mean2d = (vis[..., None] * keypoints2d).sum(1) / vis.sum(1, keepdim=True).clamp(min=1)
    mean3d = (vis[..., None] * points3d).sum(1) / vis.sum(1, keepdim=True).clamp(min=1)
    xy = (mean2d - principal_point) / focal[:, None] * depth[:, None]
    return torch.cat([xy - mean3d[:, :2], (depth - mean3d[:, 2])[:, None]], dim=1)


def least_squares_translation(points3d: Tensor, keypoints2d: Tensor, weights: Tensor, focal: Tensor,
                              principal_point: Tensor, min_depth: float = 0.3) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Translation t (B,3) metres that best projects points3d + t onto keypoints2d.

    Shapes as for `similar_triangles_translation`. Solves the linear equations
    f (X + tx) = (u - cx) (Z + tz) (and the same for y) by weighted least squares in float64
    (a 3-unknown normal equation; no library routine needed). Returns (transl (B,3), ok (B,)
    bool): ok is False when fewer than 2 points have weight or the depth comes out below
    `min_depth` (then transl holds NaN).
    """
    p = points3d.double()
    a = keypoints2d.double() - principal_point.double()[:, None]
    f = focal.double()[:, None].expand_as(a[..., 0])
    w = weights.double()
    zeros = torch.zeros_like(f)
    # rows: [f, 0, -a_x] t = a_x Z - f X ; [0, f, -a_y] t = a_y Z - f Y
    rows_x = torch.stack([f, zeros, -a[..., 0]], dim=-1)
    rows_y = torch.stack([zeros, f, -a[..., 1]], dim=-1)
    rhs_x = a[..., 0] * p[..., 2] - f * p[..., 0]
    rhs_y = a[..., 1] * p[..., 2] - f * p[..., 1]
    A = torch.cat([rows_x, rows_y], dim=1)  # (B,2K,3)
    b = torch.cat([rhs_x, rhs_y], dim=1)
    ww = torch.cat([w, w], dim=1)
    # normalise rows by f so every equation is in pixel-ish units at unit depth
    A, b = A / f.repeat(1, 2)[..., None], b / f.repeat(1, 2)
    ata = torch.einsum("bk,bki,bkj->bij", ww, A, A) + 1e-9 * torch.eye(3, dtype=A.dtype, device=A.device)
    atb = torch.einsum("bk,bki,bk->bi", ww, A, b)
    t = torch.linalg.solve(ata, atb)
    enough = (w > 0).sum(1) >= 2
    ok = enough & torch.isfinite(t).all(1) & (t[:, 2] + p[..., 2].mean(1) > min_depth)
    t = torch.where(ok[:, None], t, torch.full_like(t, float("nan")))
    return t.to(points3d.dtype), ok
