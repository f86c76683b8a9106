"""Similarity / rigid alignment of point sets (Procrustes), batched and differentiable."""

from __future__ import annotations

import torch

__all__ = ["procrustes_align"]


def procrustes_align(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                     scale: bool = True) -> torch.Tensor:  # fmt: skip
    """Align source (B,N,3) onto target (B,N,3) with the best rotation, translation (and scale,
    if `scale`) in the weighted least-squares sense (Umeyama 1991); returns the aligned source.
    weights (B,N) >= 0 or None. Units are whatever the inputs use."""
    if weights is None:
        weights = torch.ones(source.shape[:2], dtype=source.dtype, device=source.device)
    w = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
    mu_s = (w[..., None] * source).sum(1, keepdim=True)
    mu_t = (w[..., None] * target).sum(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    cov = torch.einsum("bn,bni,bnj->bij", w, xt, xs)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = U @ D @ Vh
    if scale:
        var_s = (w * xs.pow(2).sum(-1)).sum(1)
        s = (S * torch.diagonal(D, dim1=-2, dim2=-1)).sum(-1) / var_s.clamp(min=1e-12)
    else:
        s = torch.ones_like(d)
    return s[:, None, None] * torch.einsum("bij,bnj->bni", R, xs) + mu_t
