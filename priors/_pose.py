"""Input checks shared by the pose priors: SMPL body pose in axis-angle or rotation matrices."""

from __future__ import annotations

import torch

from fitter.geometry import matrix_to_axis_angle

NUM_BODY_JOINTS = 23  # SMPL joints 1..23 (everything but the pelvis / global orientation)
BODY_POSE_DIM = 3 * NUM_BODY_JOINTS  # 69


def body_pose_axis_angle(body_pose: torch.Tensor) -> torch.Tensor:
    """(B,69) axis-angle or (B,23,3,3) rotation matrices -> (B,69) axis-angle (radians).

    SMPL joint frames: rest pose T-pose, Y up, body facing +Z, X to the body's left; joint i's
    3 values sit at [3*(i-1), 3*i) of the 69 (joint 0, the pelvis, is global_orient, not here).
    """
    if not torch.is_tensor(body_pose):
        raise ValueError(f"body_pose must be a torch tensor, got {type(body_pose).__name__}")
    if body_pose.ndim == 4 and body_pose.shape[1:] == (NUM_BODY_JOINTS, 3, 3):
        return matrix_to_axis_angle(body_pose).reshape(body_pose.shape[0], BODY_POSE_DIM)
    if body_pose.ndim == 2 and body_pose.shape[1] == BODY_POSE_DIM:
        return body_pose
    raise ValueError(
        f"body_pose must be (B,69) axis-angle or (B,23,3,3) rotation matrices, got shape "
        f"{tuple(body_pose.shape)}; drop global_orient (the first 3 values of a 72-d SMPL pose)"
    )
