"""Motion capture: import CMU mocap (../shared/mocap/cmu) as SMPL-layout body poses.

`fitter mocap import ../shared/mocap/cmu --out cmu_poses.npz` (see `fitter.mocap.importer`).
Source skeletons and their forward kinematics: `fitter.mocap.skeleton`; which source joint
stands for which SMPL joint: `fitter.mocap.mapping`; the retargeting (calibration + batched
inverse kinematics on the body model's 24 joints): `fitter.mocap.retarget`.
"""

from fitter.mocap.importer import (
    HELDOUT_SUBJECTS,
    SOURCE_FILES,
    ImportResult,
    import_cmu,
    save_poses,
)
from fitter.mocap.mapping import JOINT_MAPS, JointMap, joint_map
from fitter.mocap.retarget import (
    Calibration,
    IKWeights,
    calibrate,
    joint_errors,
    retarget,
    source_targets,
)
from fitter.mocap.skeleton import SourceMotion, load_source, source_forward_kinematics

__all__ = [
    "HELDOUT_SUBJECTS",
    "JOINT_MAPS",
    "SOURCE_FILES",
    "Calibration",
    "IKWeights",
    "ImportResult",
    "JointMap",
    "SourceMotion",
    "calibrate",
    "import_cmu",
    "joint_errors",
    "joint_map",
    "load_source",
    "retarget",
    "save_poses",
    "source_forward_kinematics",
    "source_targets",
]
