"""Keypoint objective terms: robust 2D reprojection, camera-depth regulariser, 3D landmarks."""

from __future__ import annotations

import torch

from fitter.geometry import procrustes_align

__all__ = ["gmof", "reprojection_term", "depth_term", "landmarks3d_term"]


def gmof(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust cost rho(x) = sigma^2 x^2 / (sigma^2 + x^2), elementwise."""
    sq = residual.pow(2)
    return sigma**2 * sq / (sigma**2 + sq)


def reprojection_term(projected: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                      scale: torch.Tensor, sigma: float) -> torch.Tensor:  # fmt: skip
    """(B,) sum over points of weight^2 * GMoF(residual) over x and y.

    projected, target (B,K,2) pixels; weights (B,K) = confidence x correspondence quality;
    scale (B,) pixels -> normalised units (residuals are expressed as if the person filled a
    224 px crop, so SPIN's sigma = 100 and prior weights apply at any image size).
    """
    squared = (projected - target).square() * (scale * scale)[:, None, None]  # residual^2, crop units
    # weight^2 * GMoF = (weight^2 sigma^2) * r^2 / (sigma^2 + r^2): the same value in fewer ops
    robust = squared / (squared + sigma**2)
    return ((weights * weights * sigma**2)[..., None] * robust).sum(dim=(1, 2))


def depth_term(transl: torch.Tensor, init_transl: torch.Tensor) -> torch.Tensor:
    """(B,) squared change of camera depth (metres^2) from its initial estimate."""
    return (transl[:, 2] - init_transl[:, 2]).pow(2)


def landmarks3d_term(joints: torch.Tensor, landmarks: torch.Tensor, weights: torch.Tensor,
                     scale: bool = False) -> torch.Tensor:  # fmt: skip
    """(B,) weighted squared distance (metres^2) between model points (B,K,3) and given 3D
    landmarks (B,K,3) (e.g. mediapipe's world landmarks) after a rigid (or, with `scale`,
    similarity) alignment of the landmarks onto the model points (their frame, root and, with
    `scale`, size are arbitrary). weights (B,K)."""
    aligned = procrustes_align(landmarks, joints.detach(), weights, scale=scale)
    return (weights * (joints - aligned).pow(2).sum(-1)).sum(-1)
