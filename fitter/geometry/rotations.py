"""Rotation conversions: axis-angle (rotation vectors), 3x3 matrices and the 6D representation.

All functions take and return torch tensors with arbitrary leading batch dimensions and are
differentiable. Axis-angle vectors are in radians. This is the only place rotations are
converted; everything else in fitter imports from here. The axis-angle <-> matrix conversions
delegate to `roma` (installed with anny), whose small-angle handling is numerically safe.
"""

from __future__ import annotations

import roma
import torch

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "axis_angle_to_rot6d",
    "rot6d_to_axis_angle",
    "rotation_about",
]


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors (radians) -> (..., 3, 3) rotation matrices."""
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) rotation vectors (radians, angle in [0, pi])."""
    return roma.rotmat_to_rotvec(matrix)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3), the convention of Zhou et al. used by HMR/SPIN/CLIFF/PARE.

    The 6 values are viewed as a (3, 2) matrix (row-major); its two columns are
    Gram-Schmidt-orthonormalised into b1, b2, and b3 = b1 x b2. The result has columns
    [b1 b2 b3].
    """
    return roma.special_gramschmidt(rot6d.reshape(*rot6d.shape[:-1], 3, 2))


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, flattened row-major (inverse of rot6d_to_matrix)."""
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3) rotation vectors."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def rotation_about(axis: str, angle: float | torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """3x3 rotation of `angle` radians about the coordinate axis 'x', 'y' or 'z' (right-handed)."""
    vec = torch.zeros(3, dtype=dtype)
    vec["xyz".index(axis)] = float(angle) if not torch.is_tensor(angle) else angle
    return axis_angle_to_matrix(vec)
