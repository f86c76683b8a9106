"""Keypoint sets (COCO-17, OpenPose BODY_25 / COCO-18, BlazePose-33, H36M-17, LSP-14, SMPL-24, hands-42, face-51)
and how each body model produces them."""

from fitter.keypoints.model_keypoints import (
    KeypointRegressor,
    keypoint_regressor,
    keypoint_skin,
    point_definition,
    points_regressor,
)
from fitter.keypoints.sets import (
    KEYPOINT_SETS,
    SKELETONS,
    canonical_name,
    convert_keypoints,
    keypoint_names,
    keypoint_skeleton,
)

__all__ = [
    "KEYPOINT_SETS",
    "SKELETONS",
    "KeypointRegressor",
    "canonical_name",
    "convert_keypoints",
    "keypoint_names",
    "keypoint_regressor",
    "keypoint_skeleton",
    "keypoint_skin",
    "point_definition",
    "points_regressor",
]
