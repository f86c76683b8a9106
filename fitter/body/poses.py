"""Reference body poses (SMPL layout: `body_pose` (69,) = 23 joints x axis-angle, radians).

The one home of the poses fitting starts from and priors centre on; imported by fitting,
initializers, training, benchmarks and tests.
"""

from __future__ import annotations

import torch

__all__ = ["mean_body_pose", "bent_legs_pose", "POSE_PARTS"]

# SMPL joints (1..23) of the body's parts: body_pose values 3 (j - 1) .. 3 (j - 1) + 2 of joint j.
# Parts are exchanged between poses in training (fitter.synthetic.mix_pose_parts) and a limb the
# photo does not show starts from the mean pose (fitter.init.keypoint_starts).
POSE_PARTS: dict[str, tuple[int, ...]] = {
    "torso_head": (3, 6, 9, 12, 15),
    "left_leg": (1, 4, 7, 10),
    "right_leg": (2, 5, 8, 11),
    "left_arm": (13, 16, 18, 20, 22),
    "right_arm": (14, 17, 19, 21, 23),
}


def mean_body_pose(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(69,) the default starting / L2-prior pose: arms lowered ~60 degrees from the T-pose.

    (Left shoulder = body_pose joint 15, arm adduction = -z; right mirrored.)
    """
    pose = torch.zeros(69, dtype=dtype)
    pose[15 * 3 + 2] = -1.05
    pose[16 * 3 + 2] = 1.05
    return pose


def bent_legs_pose(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(69,) an alternative start: mean_body_pose with hips flexed 0.5 rad and knees 0.8 rad
    (hip flexion = -x, knee flexion = +x in SMPL's joint frames). 2D keypoints often cannot tell
    a thigh pointing forward from one pointing back; starting from both sides finds the other
    branch when the first one ends in a poor 2D fit."""
    pose = mean_body_pose(dtype)
    pose[0 * 3] = pose[1 * 3] = -0.5  # left / right hip
    pose[3 * 3] = pose[4 * 3] = 0.8  # left / right knee
    return pose
