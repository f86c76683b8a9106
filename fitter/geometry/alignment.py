"""Rigid / similarity alignment of point sets (Procrustes, Umeyama 1991), batched and differentiable.

The one home of point-set alignment in fitter; the solve itself is `roma.rigid_points_registration`.
"""

from __future__ import annotations

import roma
import torch

__all__ = ["similarity_transform", "procrustes_align"]


def similarity_transform(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                         scale: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """The rotation R (B,3,3), translation t (B,3) and scale s (B,) (1 unless `scale`) that best map
    source (B,N,3) onto target (B,N,3): s R x + t ~ y in the weighted least-squares sense.
    weights (B,N) >= 0 or None. Units are whatever the inputs use."""
    if scale:
        R, t, s = roma.rigid_points_registration(source, target, weights=weights, compute_scaling=True)
    else:
        R, t = roma.rigid_points_registration(source, target, weights=weights)
        s = torch.ones(source.shape[0], dtype=source.dtype, device=source.device)
    return R, t, s


def procrustes_align(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                     scale: bool = True) -> torch.Tensor:  # fmt: skip
    """`source` (B,N,3) aligned onto `target` by `similarity_transform`."""
    R, t, s = similarity_transform(source, target, weights, scale)
    return s[:, None, None] * torch.einsum("bij,bnj->bni", R, source) + t[:, None]
