"""Fit a gmm_08-style Gaussian-mixture pose prior to motion-capture poses (e.g. AMASS).

Which 69 columns are used (`to_smpl_body_pose`), by the width of the input pose array:
    63   SMPL-H/SMPL-X body joints 1..21 only (e.g. AMASS `pose_body`) -> + 6 zeros (SMPL hands)
    69   SMPL body pose (joints 1..23)                                  -> as is
    72   SMPL full pose: global orientation (3) + body pose (69)         -> columns 3..71
    156  AMASS SMPL-H `poses`: 52 joints x 3 = global (3), 21 body joints (63), 30 hand joints
         (90)                                                           -> columns 3..65 + 6 zeros
    165  AMASS SMPL-X `poses`: 55 joints x 3 = global (3), 21 body (63), jaw, eyes, hands
                                                                        -> columns 3..65 + 6 zeros
SMPL-H/SMPL-X joints 1..21 are SMPL's joints 1..21 (same tree and order); SMPL's two hand
joints (22 L_hand, 23 R_hand) have no counterpart there (the fingers replace them), so their 6
values are set to zero. A prior fitted this way therefore has variance `reg_covar` only on
those 6 dimensions: it pins SMPL's hand joints at rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from priors.gmm import GMMParams, save_gmm, validate_gmm

__all__ = ["fit_gmm", "fit_gmm_file", "to_smpl_body_pose", "load_pose_files", "SUPPORTED_POSE_WIDTHS"]

SUPPORTED_POSE_WIDTHS = {
    63: "SMPL-H/X body joints 1..21",
    69: "SMPL body pose",
    72: "SMPL full pose (global orient + body)",
    156: "AMASS SMPL-H poses (52 joints)",
    165: "AMASS SMPL-X poses (55 joints)",
}


def to_smpl_body_pose(poses: np.ndarray) -> np.ndarray:
    """(N, W) pose array, W in {63, 69, 72, 156, 165} -> (N, 69) SMPL body pose (see module doc)."""
    poses = np.asarray(poses)
    if poses.ndim != 2:
        raise ValueError(f"poses must be a 2-D (N, W) array, got shape {poses.shape}")
    width = poses.shape[1]
    if width == 69:
        return poses
    if width == 72:
        return poses[:, 3:72]
    if width in (63, 156, 165):
        body = poses if width == 63 else poses[:, 3:66]
        return np.concatenate([body, np.zeros((poses.shape[0], 6), dtype=poses.dtype)], axis=1)
    known = ", ".join(f"{w} ({name})" for w, name in SUPPORTED_POSE_WIDTHS.items())
    raise ValueError(f"poses have {width} columns; expected one of {known}")


def fit_gmm(
    poses: np.ndarray,
    components: int = 8,
    seed: int = 0,
    reg_covar: float = 1e-4,
    max_iter: int = 200,
) -> GMMParams:
    """Fit a full-covariance Gaussian mixture to body poses (axis-angle radians).

    poses (N, W): see `to_smpl_body_pose` for accepted widths. Uses
    sklearn.mixture.GaussianMixture(covariance_type='full', reg_covar, random_state=seed;
    k-means initialisation). Returns GMMParams(means (K,69), covars (K,69,69), weights (K,)),
    the gmm_08 layout, ready for `save_gmm` / `MaxMixturePrior`.
    """
    if components < 1:
        raise ValueError(f"components must be >= 1, got {components}")
    body = to_smpl_body_pose(poses).astype(np.float64)
    if not np.all(np.isfinite(body)):
        raise ValueError("poses contain NaN or inf")
    if body.shape[0] < 2 * components:
        raise ValueError(f"need at least {2 * components} poses to fit {components} components, got {body.shape[0]}")
    from sklearn.mixture import GaussianMixture  # imported here: sklearn takes seconds to import

    mixture = GaussianMixture(
        n_components=components, covariance_type="full", reg_covar=reg_covar,
        random_state=seed, max_iter=max_iter,
    )  # fmt: skip
    mixture.fit(body)
    return validate_gmm(mixture.means_, mixture.covariances_, mixture.weights_, source="fit_gmm")


def _expand_pose_paths(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Files as given, folders searched recursively for *.npz. Returns [(file, found_in_folder)]."""
    files: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob("*.npz"))
            if not found:
                raise FileNotFoundError(f"no .npz files under folder {path}")
            files.extend((file, True) for file in found)
        elif path.is_file():
            files.append((path, False))
        else:
            raise FileNotFoundError(f"pose file or folder not found: {path}")
    if not files:
        raise ValueError("no pose files given")
    return files


def load_pose_files(
    paths: str | Path | Iterable[str | Path],
    progress: Callable[[str], None] | None = None,
    split: str | None = None,
) -> np.ndarray:
    """Read AMASS-style .npz files (array `poses`, (N, W)) -> concatenated (M, 69) float32 body poses.

    paths: one file, a folder (searched recursively; .npz files without `poses`, such as
    AMASS's per-subject shape.npz, are skipped) or several of those. split: in files with a
    `split` array (`fitter mocap import`: "train" / "heldout" per frame) keep only the frames of
    that split (files without one are read whole); None: every frame.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = _expand_pose_paths(paths)
    chunks = []
    for index, (file, in_folder) in enumerate(files):
        try:
            with np.load(file, allow_pickle=False) as npz:
                poses = npz["poses"] if "poses" in npz.files else None
                names = list(npz.files)
                if poses is not None and split is not None and "split" in npz.files:
                    poses = poses[npz["split"] == split]
        except (OSError, ValueError) as exc:
            raise ValueError(f"{file}: not a readable .npz ({exc})") from exc
        if poses is None:
            if in_folder:
                continue
            raise ValueError(f"{file}: no 'poses' array (found {names}); expected an AMASS-style .npz")
        try:
            chunks.append(to_smpl_body_pose(poses).astype(np.float32))
        except ValueError as exc:
            raise ValueError(f"{file}: {exc}") from exc
        if progress is not None:
            progress(f"read {index + 1}/{len(files)}: {file.name} ({poses.shape[0]} poses)")
    if not chunks:
        raise ValueError("none of the given .npz files holds a 'poses' array")
    body = np.concatenate(chunks, axis=0)
    if len(body) == 0:
        raise ValueError(f"no poses in split {split!r} in the given files")
    return body


def fit_gmm_file(
    poses_npz: str | Path | Iterable[str | Path],
    out_path: str | Path,
    components: int = 8,
    max_samples: int | None = None,
    seed: int = 0,
    reg_covar: float = 1e-4,
    progress: Callable[[str], None] | None = None,
) -> GMMParams:
    """Read pose files (see `load_pose_files`), optionally subsample `max_samples` poses at random
    (seeded), fit with `fit_gmm` and write `out_path` (.npz or .pkl, gmm_08 layout). Returns the fit."""
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".npz", ".pkl", ".pickle"):
        raise ValueError(f"output {out_path}: use a .npz or .pkl file name")
    body = load_pose_files(poses_npz, progress=progress)
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        if body.shape[0] > max_samples:
            rng = np.random.default_rng(seed)
            body = body[np.sort(rng.choice(body.shape[0], size=max_samples, replace=False))]
    if progress is not None:
        progress(f"fitting {components} components to {body.shape[0]} poses")
    params = fit_gmm(body, components=components, seed=seed, reg_covar=reg_covar)
    save_gmm(out_path, *params)
    if progress is not None:
        progress(f"wrote {out_path}")
    return params
