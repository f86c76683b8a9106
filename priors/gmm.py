"""Gaussian-mixture pose prior over SMPL's 69-d body pose (SMPLify's gmm_08.pkl layout).

File layout (SMPLify gmm_08.pkl, also written by `save_gmm` / `priors.fit_gmm`): a dict with
    means   (K, D)     component means, axis-angle radians (D = 69 for the SMPL body pose)
    covars  (K, D, D)  full covariances
    weights (K,)       mixture weights (positive; 1 in sum for a fitted mixture)
The official pickle may hold chumpy arrays; `load_gmm` reads it without chumpy.

Cost (SMPLify, SPIN smplify/prior.py and SMPLify-X prior.py, `MaxMixturePrior`): the sum over
components is replaced by the single best component,

    nll(x) = min_k [ 0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k) + c_k ],
    c_k    = -log( w_k / ((2 pi)^(D/2) * sqrt(det Sigma_k) / min_j sqrt(det Sigma_j)) )
           = -log w_k + (D/2) log(2 pi) + 0.5 (logdet Sigma_k - min_j logdet Sigma_j).

This is the exact max-component negative log-likelihood -log max_k w_k N(x; mu_k, Sigma_k)
shifted by the constant -0.5 min_j logdet Sigma_j (the published normalisation by the smallest
determinant); the minimiser and gradients are the same. SMPLify-X's `use_merged` flag only
picks a vectorised implementation of this min; `MaxMixturePrior.mixture_nll` offers the smooth
full-mixture alternative (log-sum-exp over components, no max approximation).
SPIN weights the term by 4.78**2 (optimizer's choice, see `priors.SPIN_PRIOR_WEIGHTS`).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy.linalg import solve_triangular
from torch import nn

from fitter.io.pickle_compat import load_pickle
from priors._pose import BODY_POSE_DIM, body_pose_axis_angle

__all__ = ["GMMParams", "MaxMixturePrior", "load_gmm", "save_gmm", "validate_gmm"]

GMM_KEYS = ("means", "covars", "weights")


class GMMParams(NamedTuple):
    """Mixture parameters in the gmm_08 layout: means (K,D), covars (K,D,D), weights (K,), float64."""

    means: np.ndarray
    covars: np.ndarray
    weights: np.ndarray


def validate_gmm(means, covars, weights, source: str = "GMM") -> GMMParams:
    """Check shapes/values of mixture parameters; return them as float64 numpy arrays.

    Raises ValueError naming what is wrong (source names the file or caller in the message).
    """
    try:
        means = np.asarray(means, dtype=np.float64)
        covars = np.asarray(covars, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: means/covars/weights must be numeric arrays ({exc})") from exc
    if means.ndim != 2:
        raise ValueError(f"{source}: means must be (K,D), got shape {means.shape}")
    num_components, dim = means.shape
    if covars.shape != (num_components, dim, dim):
        raise ValueError(
            f"{source}: covars must be (K,D,D) = {(num_components, dim, dim)} to match means, got {covars.shape}"
        )
    if weights.shape != (num_components,):
        raise ValueError(f"{source}: weights must be (K,) = ({num_components},) to match means, got {weights.shape}")
    for name, arr in (("means", means), ("covars", covars), ("weights", weights)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{source}: {name} contains NaN or inf")
    if np.any(weights <= 0):
        raise ValueError(f"{source}: mixture weights must all be > 0, got min {weights.min():.3g}")
    if not np.allclose(covars, np.swapaxes(covars, 1, 2), rtol=1e-5, atol=1e-8):
        raise ValueError(f"{source}: covariances must be symmetric")
    covars = 0.5 * (covars + np.swapaxes(covars, 1, 2))  # remove rounding asymmetry
    return GMMParams(means, covars, weights)


def _cholesky(covars: np.ndarray, source: str) -> np.ndarray:
    try:
        return np.linalg.cholesky(covars)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"{source}: a covariance is not positive definite ({exc}); refit with a larger reg_covar"
        ) from exc


class MaxMixturePrior(nn.Module):
    """Max-mixture Gaussian pose prior (SMPLify / SPIN constants; see the module docstring).

    Buffers: means (K,D); precision_cholesky (K,D,D) U_k with Sigma_k^-1 = U_k U_k^T (from the
    Cholesky factor L_k of Sigma_k: U_k = L_k^-T, computed in float64 by triangular solves, no
    explicit inverse); log_det_covars (K,); nll_constants (K,) the c_k above; weights (K,).
    """

    def __init__(self, means, covars, weights, dtype: torch.dtype = torch.float32, source: str = "GMM") -> None:
        super().__init__()
        params = validate_gmm(means, covars, weights, source)
        chol = _cholesky(params.covars, source)  # (K,D,D) lower
        num_components, dim = params.means.shape
        eye = np.eye(dim)
        # U_k = L_k^-T: solve L_k X = I for X = L_k^-1, transpose.
        inv_chol = np.stack([solve_triangular(chol[k], eye, lower=True) for k in range(num_components)])
        precision_chol = np.swapaxes(inv_chol, 1, 2)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        constants = -np.log(params.weights) + 0.5 * dim * math.log(2.0 * math.pi) + 0.5 * (log_det - log_det.min())
        self.source = source
        self.register_buffer("means", torch.as_tensor(params.means, dtype=dtype))
        self.register_buffer("precision_cholesky", torch.as_tensor(precision_chol, dtype=dtype))
        self.register_buffer("log_det_covars", torch.as_tensor(log_det, dtype=dtype))
        self.register_buffer("nll_constants", torch.as_tensor(constants, dtype=dtype))
        self.register_buffer("weights", torch.as_tensor(params.weights, dtype=dtype))

    @classmethod
    def from_file(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> "MaxMixturePrior":
        """Build from a gmm_08-layout .pkl (plain or chumpy) or .npz file."""
        params = load_gmm(path)
        return cls(params.means, params.covars, params.weights, dtype=dtype, source=str(path))

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def mean_pose(self) -> torch.Tensor:
        """(D,) weighted mean of the component means (a plausible initial body pose)."""
        return (self.weights / self.weights.sum()) @ self.means

    def _inputs(self, body_pose: torch.Tensor) -> torch.Tensor:
        if self.dim == BODY_POSE_DIM:
            pose = body_pose_axis_angle(body_pose)
        elif torch.is_tensor(body_pose) and body_pose.ndim == 2 and body_pose.shape[1] == self.dim:
            pose = body_pose
        else:
            shape = tuple(body_pose.shape) if torch.is_tensor(body_pose) else type(body_pose).__name__
            raise ValueError(f"this GMM ({self.source}) is {self.dim}-dimensional; got input of shape {shape}")
        return pose

    def component_nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B,D) (or (B,23,3,3) for D = 69) -> (B,K): 0.5 Mahalanobis^2 + c_k for every component."""
        pose = self._inputs(body_pose)
        diff = pose[:, None, :] - self.means.to(pose.dtype)  # (B,K,D)
        whitened = torch.einsum("bkd,kde->bke", diff, self.precision_cholesky.to(pose.dtype))
        return 0.5 * whitened.pow(2).sum(dim=-1) + self.nll_constants.to(pose.dtype)

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Max-mixture NLL (SMPLify/SPIN): (B,69) axis-angle or (B,23,3,3) -> (B,)."""
        return self.component_nll(body_pose).min(dim=-1).values

    def mixture_nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Full-mixture NLL -log sum_k w_k N(x; mu_k, Sigma_k) (exact normalisation): -> (B,)."""
        per_component = self.component_nll(body_pose) + 0.5 * self.log_det_covars.min().to(body_pose.dtype)
        return -torch.logsumexp(-per_component, dim=-1)


def load_gmm(path: str | Path) -> GMMParams:
    """Read a mixture in the gmm_08 layout from .pkl/.pickle (plain or chumpy-pickled) or .npz.

    Returns GMMParams(means (K,D), covars (K,D,D), weights (K,)) as float64; ValueError on a wrong
    layout, FileNotFoundError if the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GMM file not found: {path} (pass the path of gmm_08.pkl or a fitted .npz/.pkl)")
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        try:
            data = load_pickle(path)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
            raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a pickled dict with keys {GMM_KEYS}, got {type(data).__name__}")
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a readable .npz ({exc})") from exc
    else:
        raise ValueError(f"{path}: unknown GMM file type '{suffix}'; use .pkl, .pickle or .npz")
    missing = [key for key in GMM_KEYS if key not in data]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing}; a GMM file needs {list(GMM_KEYS)}, found {sorted(map(str, data))}"
        )
    return validate_gmm(data["means"], data["covars"], data["weights"], source=str(path))


def save_gmm(path: str | Path, means, covars, weights) -> Path:
    """Write a mixture in the gmm_08 layout: .npz (numpy archive) or .pkl (plain pickle of a dict
    of numpy arrays, readable by SMPLify-style loaders) chosen by the suffix. Returns the path."""
    path = Path(path)
    params = validate_gmm(means, covars, weights, source=f"save_gmm({path})")
    data = {"means": params.means, "covars": params.covars, "weights": params.weights}
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pkl", ".pickle"):
        raise ValueError(f"{path}: unknown GMM file type '{suffix}'; use .npz or .pkl")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez(handle, **data)
    else:
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=2)
    return path
