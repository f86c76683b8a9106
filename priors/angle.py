"""SMPLify/SPIN angle prior: penalise elbows and knees bending the unnatural way.

For each of the left elbow, right elbow, left knee, right knee the cost is exp(sign * a)^2,
where a is one axis-angle component of that joint (radians): small when the joint bends the
natural way, growing exponentially when it hyper-extends. Components and signs (SMPL frames:
Y up, body facing +Z, X to the body's left; knees flex about +X, elbows about Y):

    joint        SMPL 72-d pose index   index in the 69-d body_pose   sign   natural bend
    left elbow   55 (joint 18, y)       52                            +1     a < 0
    right elbow  58 (joint 19, y)       55                            -1     a > 0
    left knee    12 (joint 4, x)        9                             -1     a > 0
    right knee   15 (joint 5, x)        12                            -1     a > 0

The published indices 55, 58, 12, 15 (SMPLify; SPIN smplify/losses.py) count into the full
72-d pose including global orientation; SPIN subtracts 3 when applying them to body_pose.
SPIN weights this term by 15.2**2 (the optimizer's choice, see `priors.SPIN_PRIOR_WEIGHTS`).
"""

from __future__ import annotations

import functools

import torch

from priors._pose import body_pose_axis_angle

__all__ = ["angle_prior", "ANGLE_PRIOR_FULL_POSE_INDICES", "ANGLE_PRIOR_BODY_POSE_INDICES", "ANGLE_PRIOR_SIGNS"]

ANGLE_PRIOR_FULL_POSE_INDICES = (55, 58, 12, 15)
ANGLE_PRIOR_BODY_POSE_INDICES = tuple(i - 3 for i in ANGLE_PRIOR_FULL_POSE_INDICES)  # (52, 55, 9, 12)
ANGLE_PRIOR_SIGNS = (1.0, -1.0, -1.0, -1.0)


@functools.lru_cache(maxsize=None)
def _doubled_sign_selector(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(69,4): pose @ this = 2 sign * angle for the four joints (a matmul; its backward is one
    too, unlike index_select's scatter-add, which stalls with several torch threads)."""
    with torch.inference_mode(False):
        selector = torch.zeros(69, 4, dtype=dtype, device=device)
        for column, (index, sign) in enumerate(zip(ANGLE_PRIOR_BODY_POSE_INDICES, ANGLE_PRIOR_SIGNS)):
            selector[index, column] = 2.0 * sign
        return selector


def angle_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """SPIN angle prior. body_pose (B,69) axis-angle or (B,23,3,3) -> (B,) sum over the 4 joints
    of exp(sign * angle)^2 = exp(2 sign angle) (dimensionless)."""
    pose = body_pose_axis_angle(body_pose)
    return torch.exp(pose @ _doubled_sign_selector(pose.dtype, pose.device)).sum(dim=-1)
