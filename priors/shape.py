"""Shape prior: squared norm of the shape coefficients (betas are unit-variance PCA coefficients,
so this is the negative log-likelihood of a standard normal up to a factor 2 and a constant).
SPIN weights it by 5**2, original SMPLify by [100, 50, 10, 5] over its stages (optimizer's choice)."""

from __future__ import annotations

import torch

__all__ = ["shape_prior"]


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """betas (B,K) -> (B,) sum of squares."""
    if not torch.is_tensor(betas) or betas.ndim != 2:
        shape = tuple(betas.shape) if torch.is_tensor(betas) else type(betas).__name__
        raise ValueError(f"betas must be a (B,K) torch tensor, got {shape}")
    return betas.pow(2).sum(dim=-1)
