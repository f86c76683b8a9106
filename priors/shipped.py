"""The pose prior that ships with the package: an 8-component GMM (SMPLify's gmm_08 layout)
trained on real human motion, CMU motion capture, converted to SMPL-layout body poses by
`fitter mocap import` and mirrored left/right.

    path = priors.shipped_gmm_path()        # .../priors/data/gmm_cmu_08.npz
    prior = priors.load_shipped_gmm()       # MaxMixturePrior

It is the fitter's default pose prior (`priors.default_prior_terms(None)`), with the joint limits
kept as bounds.

Rebuild (the CMU data are used by path, never copied into the package):

    fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz
    fitter mocap fit-gmm cmu_poses.npz --out priors/data/gmm_cmu_08.npz

Training poses: the `train` split (every subject but the held-out 13 and 14; frames of unknown
subject included) plus each pose mirrored (`fitter.body.mirror.mirror_body_pose`). SMPL joints
for which the motion capture holds no data (collars and hands: the source skeletons never move
them, so the conversion leaves them at rest) would come out with variance `reg_covar` only,
pinning them at rest; instead every component gets an independent N(0, (no_data_std_deg)^2)
on those 12 dimensions.

The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with
funding from NSF EIA-0196217.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from priors.fit_gmm import fit_gmm
from priors.gmm import GMMParams, MaxMixturePrior, validate_gmm

__all__ = [
    "NO_DATA_JOINTS",
    "SHIPPED_GMM_NAME",
    "fit_mocap_gmm",
    "load_mocap_poses",
    "load_shipped_gmm",
    "nll_table",
    "shipped_gmm_path",
]

SHIPPED_GMM_NAME = "gmm_cmu_08.npz"
NO_DATA_JOINTS = ("left_collar", "right_collar", "left_hand", "right_hand")
"""SMPL joints the CMU skeletons never move (see fitter.mocap.mapping)."""


def shipped_gmm_path() -> Path:
    """Path of the shipped GMM file (package data, gmm_08 layout, .npz)."""
    return Path(__file__).resolve().parent / "data" / SHIPPED_GMM_NAME


def load_shipped_gmm(dtype: torch.dtype = torch.float32) -> MaxMixturePrior:
    """The shipped GMM as a max-mixture prior (same class as for `--gmm PATH`)."""
    path = shipped_gmm_path()
    if not path.is_file():
        raise FileNotFoundError(f"shipped GMM not found at {path}: the package was installed without its data files")
    return MaxMixturePrior.from_file(path, dtype=dtype)


def load_mocap_poses(path: str | Path, split: str | None = "train") -> np.ndarray:
    """(N,69) body poses of an imported mocap file (`fitter mocap import`), only the frames of
    `split` ('train' / 'heldout'; None: all)."""
    with np.load(path, allow_pickle=False) as npz:
        poses = npz["poses"]
        if split is not None:
            if "split" not in npz.files:
                raise ValueError(f"{path}: no 'split' array; write it with `fitter mocap import`")
            poses = poses[npz["split"] == split]
    if poses.shape[0] == 0:
        raise ValueError(f"{path}: no poses in split {split!r}")
    return np.asarray(poses[:, 3:72], dtype=np.float64)


def _no_data_dims() -> list[int]:
    from fitter.body.model import SMPL_JOINT_NAMES

    dims = []
    for name in NO_DATA_JOINTS:
        joint = SMPL_JOINT_NAMES.index(name)
        dims += [3 * (joint - 1) + k for k in range(3)]
    return dims


def fit_mocap_gmm(
    body_poses: np.ndarray,
    components: int = 8,
    mirror: bool = True,
    no_data_std_deg: float | None = 10.0,
    seed: int = 0,
    reg_covar: float = 1e-4,
) -> GMMParams:
    """GMM (gmm_08 layout) on (N,69) body poses, with their mirror images when `mirror`, and an
    independent N(0, no_data_std_deg^2) on the collar and hand dimensions (None: leave them as
    fitted)."""
    poses = np.asarray(body_poses, dtype=np.float64)
    if mirror:
        from fitter.body.mirror import mirror_body_pose

        poses = np.concatenate([poses, mirror_body_pose(poses)])
    params = fit_gmm(poses, components=components, seed=seed, reg_covar=reg_covar)
    if no_data_std_deg is None:
        return params
    dims = _no_data_dims()
    means, covars = params.means.copy(), params.covars.copy()
    means[:, dims] = 0.0
    covars[:, dims, :] = 0.0
    covars[:, :, dims] = 0.0
    covars[:, dims, dims] = np.radians(no_data_std_deg) ** 2
    return validate_gmm(means, covars, params.weights, source="fit_mocap_gmm")


def nll_table(
    prior: MaxMixturePrior, poses_path: str | Path, random_poses: int = 10000, seed: int = 0
) -> dict[str, float]:
    """Mean max-mixture NLL (as `MaxMixturePrior` computes it) of the train and held-out poses
    of an imported mocap file, and of `random_poses` poses drawn uniformly inside the joint
    limits (`priors.sample_within_limits`, seeded)."""
    from priors.joint_limits import sample_within_limits

    out = {}
    with torch.no_grad():
        for split in ("train", "heldout"):
            body = torch.as_tensor(load_mocap_poses(poses_path, split), dtype=torch.float32)
            out[split] = float(prior(body).mean())
        generator = torch.Generator().manual_seed(seed)
        out["random_within_limits"] = float(prior(sample_within_limits(random_poses, generator=generator)).mean())
    return out
