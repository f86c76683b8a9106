"""Import the CMU motion-capture subset (../shared/mocap/cmu) as SMPL-layout body poses.

`import_cmu(folder)` reads both files (`cmu_mb31_10fps.npz`: 31-joint CMU skeleton;
`cmu_daz43_10fps.npz`: 43-joint Daz figure), drops the Daz copies of trials the 31-joint file
also holds (`convseq2seq_cmu_matches.csv`, plus the BVH trials named in the 31-joint file: the
original skeleton is kept, not the retarget), retargets every frame to the body model
(`fitter.mocap.retarget`) and returns AMASS-style arrays:

    poses     (F,72) float32  global orientation + 23 body joints, axis-angle (radians), SMPL order
    trans     (F,3)  float32  body-model translation (metres of the calibrated body)
    betas     (F,10) float32  the shape the poses were fitted with (one per source skeleton)
    subject   (F,)   int16    CMU subject number, -1 where unknown
    motion    (F,)   str      CMU trial 'SS_TT' where known, else the sequence's own name
    frame     (F,)   int32    frame index in the source motion (120 fps numbering)
    source    (F,)   str      which file the frame came from
    split     (F,)   str      'heldout' for subjects 13 and 14, else 'train' (unknown: train)
    error_mm  (F,)   float32  conversion error of the frame (see `retarget.joint_errors`)

Frames are at the files' 10 fps. `fitter priors fit-gmm` and benchmarks/synthetic.py read `poses`.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fitter.body.model import SMPL_JOINT_NAMES, BodyModel
from fitter.mocap.retarget import (
    Calibration,
    IKWeights,
    calibrate,
    joint_errors,
    retarget,
    source_targets,
)
from fitter.mocap.skeleton import SourceMotion, load_source

__all__ = [
    "HELDOUT_SUBJECTS",
    "SOURCE_FILES",
    "ImportResult",
    "SourceReport",
    "import_cmu",
    "rest_frame_angles",
    "save_poses",
    "trial_names",
]

SOURCE_FILES = ("cmu_mb31_10fps.npz", "cmu_daz43_10fps.npz")
MATCHES_FILE = "convseq2seq_cmu_matches.csv"
HELDOUT_SUBJECTS = (13, 14)
_TRIAL = re.compile(r"^(\d\d)_(\d\d)$")


@dataclass
class SourceReport:
    """What happened to one source file."""

    file: str
    kind: str
    frames_in: int
    frames_out: int
    duplicates_dropped: int
    calibration: Calibration
    error_mm: np.ndarray  # (frames_out,) per-frame mean joint error
    joint_error_mm: dict[str, float]  # per matched SMPL joint, mean over frames
    rest_angles_deg: np.ndarray  # (24,) rotation angle of each joint for the all-zero source frame
    seconds: float


@dataclass
class ImportResult:
    arrays: dict[str, np.ndarray]
    sources: list[SourceReport] = field(default_factory=list)

    def split_counts(self) -> dict[str, int]:
        values, counts = np.unique(self.arrays["split"], return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts)}


def _read_matches(path: Path) -> dict[str, str]:
    """convseq2seq sequence name ('cs2s/' + file without .txt) -> CMU trial, for accepted matches."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("cmu_name") and row.get("decision", "").startswith("match"):
                out["cs2s/" + row["file"].removesuffix(".txt")] = row["cmu_name"]
    return out


def trial_names(motion: SourceMotion, matches: dict[str, str]) -> list[str]:
    """CMU trial 'SS_TT' of every motion of the file where known, else ''."""
    names = []
    for name, cmu in zip(motion.motion_names, motion.motion_cmu_names):
        trial = matches.get(str(name)) or (str(cmu) if _TRIAL.match(str(cmu)) else "")
        if not trial and _TRIAL.match(str(name)):
            trial = str(name)
        names.append(trial)
    return names


def _subject(trial: str) -> int:
    found = _TRIAL.match(trial)
    return int(found.group(1)) if found else -1


def rest_frame_angles(
    model: BodyModel, calib: Calibration, motion: SourceMotion, weights: IKWeights | None = None
) -> np.ndarray:
    """(24,) degrees: how far each SMPL joint's local rotation is from rest when the source's
    all-zero frame (its rest configuration) is converted (joint 0: the global orientation)."""
    pose, _ = retarget(model, calib, motion.rest(), weights=weights)
    return np.degrees(np.linalg.norm(pose.reshape(24, 3), axis=1))


def _even_subset(count: int, limit: int | None) -> np.ndarray:
    if limit is None or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def import_cmu(
    folder: str | Path,
    model: BodyModel | None = None,
    step: int = 1,
    limit: int | None = None,
    calibration_frames: int = 256,
    calibration_iterations: int = 400,
    iterations: int = 80,
    batch_size: int = 1024,
    weights: IKWeights | None = None,
    heldout_subjects: tuple[int, ...] = HELDOUT_SUBJECTS,
    progress: Callable[[str], None] | None = None,
    hinges: bool = False,
) -> ImportResult:
    """Convert both CMU files in `folder` (see the module docstring).

    step: keep every step-th frame; limit: at most this many frames per file (evenly spaced,
    after step), for quick tries and tests; calibration on `calibration_frames` frames of each
    file (all of its frames, not only the kept ones) with `calibration_iterations` L-BFGS steps;
    `iterations` L-BFGS steps per batch of `batch_size` frames; hinges: elbows and knees bent as
    hinges (`fitter.mocap.retarget.hinge_twist`; off: the shipped prior and lifter were made without).
    """
    folder = Path(folder)
    missing = [name for name in SOURCE_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (expected the CMU folder of ../shared/mocap)")
    if model is None:
        from fitter.body import load_body_model

        model = load_body_model("anny")
    say = progress or (lambda message: None)
    matches = _read_matches(folder / MATCHES_FILE)
    motions = [load_source(folder / name) for name in SOURCE_FILES]
    trials = [trial_names(motion, matches) for motion in motions]
    kept_trials = {t for t in trials[0] if t}  # the 31-joint file's trials win over the Daz copies
    columns: dict[str, list[np.ndarray]] = {}
    reports = []
    for name, motion, names in zip(SOURCE_FILES, motions, trials):
        started = time.perf_counter()
        is_copy = np.array([name != SOURCE_FILES[0] and bool(t) and t in kept_trials for t in names])
        keep = ~is_copy[motion.frame_motion]
        frames = np.flatnonzero(keep)[::step]
        frames = frames[_even_subset(len(frames), limit)]
        say(f"{name}: calibrating the body to the {motion.kind} skeleton")
        calib = calibrate(
            model, motion, sample_frames=calibration_frames, iterations=calibration_iterations, weights=weights
        )
        part = motion.subset(frames)
        poses, trans = retarget(
            model, calib, part, batch_size=batch_size, iterations=iterations, weights=weights, hinges=hinges,
            progress=lambda done, total, name=name: say(f"{name}: {done}/{total} frames"),
        )  # fmt: skip
        points, _ = source_targets(part, calib.table)
        errors = joint_errors(model, calib, poses, points).numpy() * 1000.0
        rest = rest_frame_angles(model, calib, motion, weights)
        motion_trial = np.array([t or str(n) for t, n in zip(names, motion.motion_names)])
        subjects = np.array([_subject(t) for t in names], dtype=np.int16)[part.frame_motion]
        columns.setdefault("poses", []).append(poses)
        columns.setdefault("trans", []).append(trans)
        columns.setdefault("betas", []).append(np.tile(calib.betas.numpy().astype(np.float32), (len(frames), 1)))
        columns.setdefault("subject", []).append(subjects)
        columns.setdefault("motion", []).append(motion_trial[part.frame_motion])
        columns.setdefault("frame", []).append(part.frame_source_index.astype(np.int32))
        columns.setdefault("source", []).append(np.full(len(frames), name))
        split = np.where(np.isin(subjects, heldout_subjects), "heldout", "train")
        columns.setdefault("split", []).append(split)
        columns.setdefault("error_mm", []).append(errors.mean(1).astype(np.float32))
        seconds = time.perf_counter() - started
        reports.append(SourceReport(
            file=name, kind=motion.kind, frames_in=motion.num_frames, frames_out=len(frames),
            duplicates_dropped=int(is_copy[motion.frame_motion].sum()), calibration=calib,
            error_mm=errors.mean(1), joint_error_mm=dict(zip(calib.position_names(), errors.mean(0).tolist())),
            rest_angles_deg=rest, seconds=seconds,
        ))  # fmt: skip
        say(f"{name}: {len(frames)} frames, {errors.mean():.1f} mm, {seconds:.0f} s")
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    return ImportResult(arrays, reports)


def save_poses(path: str | Path, result: ImportResult) -> Path:
    """Write the arrays (plus `joint_names`, SMPL's 24, and `mocap_fps`) as an npz without
    pickled objects, atomically."""
    from fitter.io.atomic import atomic_save_npz

    arrays = dict(result.arrays)
    arrays["joint_names"] = np.array(SMPL_JOINT_NAMES)
    arrays["mocap_fps"] = np.array(10.0)
    atomic_save_npz(path, compress=True, **arrays)
    return Path(path)
