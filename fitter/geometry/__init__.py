"""Geometry used everywhere in fitter: rotations, projection, camera conversions, alignment,
translation from keypoints.

Import from here; nothing else in fitter re-implements these.
"""

from fitter.geometry.alignment import procrustes_align, similarity_transform
from fitter.geometry.projection import (
    crop_cam_to_full_translation,
    default_focal_length,
    perspective_project,
    translation_to_crop_cam,
    visible_box,
)
from fitter.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
    rotation_about,
    rotation_angle_between,
)
from fitter.geometry.translation import least_squares_translation, similar_triangles_translation

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_rot6d",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "rot6d_to_axis_angle",
    "rot6d_to_matrix",
    "rotation_about",
    "rotation_angle_between",
    "perspective_project",
    "default_focal_length",
    "crop_cam_to_full_translation",
    "translation_to_crop_cam",
    "visible_box",
    "procrustes_align",
    "similarity_transform",
    "similar_triangles_translation",
    "least_squares_translation",
]
