"""Priors for fitting SMPL-family body models: GMM pose prior (+ training), angle, shape and
joint-limit priors, and `default_prior_terms` which picks the pose prior set in use (by
default the shipped CMU GMM with the joint limits as bounds).

All terms return per-item costs (B,) so the optimizer can weight and sum them. Reference
weights (they belong to the optimizer; listed here as documentation of the published values):
SPIN (Kolotouros et al. 2019, smplify/losses.py) multiplies the GMM pose prior by 4.78**2, the
shape prior by 5**2 and the angle prior by 15.2**2; original SMPLify anneals the pose prior
weight over [404, 404, 57.4, 4.78] and the shape weight over [100, 50, 10, 5].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from priors._pose import body_pose_axis_angle
from priors.angle import angle_prior
from priors.fit_gmm import fit_gmm, fit_gmm_file, load_pose_files, to_smpl_body_pose
from priors.gmm import GMMParams, MaxMixturePrior, load_gmm, save_gmm
from priors.joint_limits import (
    JOINT_LIMITS,
    AngleRange,
    JointLimit,
    joint_limit_angles,
    joint_limit_bounds,
    joint_limit_penalty,
    joint_limits_table,
    sample_within_limits,
)
from priors.shape import shape_prior
from priors.shipped import load_shipped_gmm, shipped_gmm_path

__all__ = [
    "AngleRange",
    "GMMParams",
    "JOINT_LIMITS",
    "JointLimit",
    "MaxMixturePrior",
    "NO_GMM",
    "PosePriorSet",
    "SPIN_PRIOR_WEIGHTS",
    "angle_prior",
    "default_prior_terms",
    "fit_gmm",
    "fit_gmm_file",
    "joint_limit_angles",
    "joint_limit_bounds",
    "joint_limit_penalty",
    "joint_limits_table",
    "load_gmm",
    "load_shipped_gmm",
    "load_pose_files",
    "pose_l2_prior",
    "sample_within_limits",
    "save_gmm",
    "shape_prior",
    "shipped_gmm_path",
    "to_smpl_body_pose",
]

SPIN_PRIOR_WEIGHTS = {"pose_gmm": 4.78**2, "shape": 5.0**2, "angle": 15.2**2}
"""Published SPIN weights for the terms of the "gmm" prior set (reference for the optimizer)."""

GMM_PRIOR_NAME = "gmm"
FALLBACK_PRIOR_NAME = "limits+angle+shape+l2"
NO_GMM = ("none", "limits")
"""`gmm_path` values that ask for the prior set without a GMM (joint limits + angle + shape + weak L2)."""


def pose_l2_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """Weak pose prior: body_pose (B,69) axis-angle or (B,23,3,3) -> (B,) sum of squared axis-angle values (rad^2)."""
    return body_pose_axis_angle(body_pose).pow(2).sum(dim=-1)


class PosePriorSet(nn.Module):
    """The prior terms used for a fit, and which pose prior that is.

    name: "gmm" (max-mixture GMM pose prior from `gmm_path` + angle + shape, and the joint
    limits as bounds unless `joint_limits` is False) or "limits+angle+shape+l2" (no GMM: joint
    limits + angle + shape + weak pose L2). Calling it with body_pose (B,69) axis-angle or
    (B,23,3,3) and betas (B,K) returns a dict of (B,) tensors, unweighted: keys "pose_gmm",
    "angle", "shape" (+ "joint_limits") for "gmm"; "joint_limits", "angle", "shape", "pose_l2"
    for the fallback. `.to(device)` moves the GMM buffers. shipped: the GMM is the package's
    own (`priors.shipped_gmm_path()`, CMU motion capture).
    """

    def __init__(self, gmm: MaxMixturePrior | None = None, gmm_path: str | None = None,
                 l2_mean: torch.Tensor | None = None, joint_limits: bool = True, shipped: bool = False) -> None:  # fmt: skip
        super().__init__()
        # centre of the weak L2 pose prior (69,), axis-angle; zeros (the rest pose) by default
        self.register_buffer("l2_mean", torch.zeros(69) if l2_mean is None else l2_mean.detach().reshape(69).float())
        self.gmm = gmm
        self.gmm_path = gmm_path
        self.joint_limits = joint_limits or gmm is None
        self.shipped = shipped and gmm is not None
        self.name = GMM_PRIOR_NAME if gmm is not None else FALLBACK_PRIOR_NAME

    @property
    def term_names(self) -> tuple[str, ...]:
        if self.gmm is not None:
            return ("pose_gmm", "angle", "shape") + (("joint_limits",) if self.joint_limits else ())
        return ("joint_limits", "angle", "shape", "pose_l2")

    def describe(self) -> str:
        """One line for logs and result records, e.g. 'gmm (shipped CMU mocap GMM, .../gmm_cmu_08.npz) +
        joint limits + angle + shape' or 'gmm (/path/gmm_08.pkl) + angle + shape'."""
        if self.gmm is None:
            return self.name
        source = f"shipped CMU mocap GMM, {self.gmm_path}" if self.shipped else self.gmm_path
        return f"{self.name} ({source})" + (" + joint limits" if self.joint_limits else "") + " + angle + shape"

    def forward(self, body_pose: torch.Tensor, betas: torch.Tensor) -> dict[str, torch.Tensor]:
        pose = body_pose_axis_angle(body_pose)
        terms = {"angle": angle_prior(pose), "shape": shape_prior(betas)}
        if self.gmm is not None:
            out = {"pose_gmm": self.gmm(pose), **terms}
            if self.joint_limits:
                out["joint_limits"] = joint_limit_penalty(pose)
            return out
        return {
            "joint_limits": joint_limit_penalty(pose),
            **terms,
            "pose_l2": pose_l2_prior(pose - self.l2_mean.to(pose)),
        }


def default_prior_terms(gmm_path: str | Path | None = None, l2_mean: torch.Tensor | None = None,
                        joint_limits: bool = True) -> PosePriorSet:  # fmt: skip
    """The prior set for a fit.

    gmm_path None (or ""): the shipped CMU GMM (`shipped_gmm_path()`), the default; a file: that
    gmm_08-layout GMM; "none" / "limits": no GMM, "limits+angle+shape+l2" (its L2 term centred
    on `l2_mean`, (69,), default zeros). With a GMM the joint-limit term stays on as bounds
    (zero inside the limits) unless `joint_limits` is False (SMPLify's own terms). A given but
    unreadable file raises (never silently falls back)."""
    if gmm_path is not None and str(gmm_path).strip().lower() in NO_GMM:
        return PosePriorSet(l2_mean=l2_mean)
    if gmm_path is None or str(gmm_path) == "":
        path = shipped_gmm_path()
        return PosePriorSet(_shipped_prior(), gmm_path=str(path), joint_limits=joint_limits, shipped=True)
    return PosePriorSet(MaxMixturePrior.from_file(gmm_path), gmm_path=str(gmm_path), joint_limits=joint_limits)


_SHIPPED: list[MaxMixturePrior] = []


def _shipped_prior() -> MaxMixturePrior:
    """The shipped GMM, read once per process (a fit builds its prior set every call)."""
    if not _SHIPPED:
        _SHIPPED.append(load_shipped_gmm())
    return _SHIPPED[0]
