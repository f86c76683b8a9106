"""Tests for the keypoint objective terms in `fitter.objectives`: the Geman-McClure robust cost,
the weighted 2D reprojection term (pixels rescaled to 224 px crop units), the camera-depth
regulariser and the rigidly aligned 3D landmark term. Values are checked against hand-computed
numbers."""

from __future__ import annotations

import math

import pytest
import torch

from fitter.geometry import axis_angle_to_matrix
from fitter.objectives import depth_term, gmof, landmarks3d_term, reprojection_term

DT = torch.float64


def test_gmof_hand_computed_values():
    x = torch.tensor([0.0, 50.0, -50.0, 100.0, 1e6], dtype=DT)
    out = gmof(x, sigma=100.0)
    # 100^2 * 50^2 / (100^2 + 50^2) = 2000; at x = sigma it is sigma^2 / 2; it saturates at sigma^2
    expected = torch.tensor([0.0, 2000.0, 2000.0, 5000.0, 1e4 * 1e12 / (1e4 + 1e12)], dtype=DT)
    torch.testing.assert_close(out, expected)
    assert out.shape == x.shape
    torch.testing.assert_close(gmof(torch.tensor([3.0], dtype=DT), sigma=2.0), torch.tensor([4 * 9 / 13], dtype=DT))


def test_gmof_keeps_shape_and_is_below_square_and_sigma_squared():
    x = torch.linspace(-500, 500, 24, dtype=DT).reshape(2, 3, 4)
    out = gmof(x, 100.0)
    assert out.shape == (2, 3, 4)
    assert torch.all(out <= x.pow(2) + 1e-9) and torch.all(out < 100.0**2)


def test_reprojection_term_hand_computed_two_points():
    projected = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]], dtype=DT)
    target = torch.tensor([[[13.0, 24.0], [5.0, 40.0]]], dtype=DT)
    weights = torch.tensor([[0.5, 2.0]], dtype=DT)
    scale = torch.tensor([2.0], dtype=DT)
    # residuals x scale: point 0 (-6, -8), point 1 (50, 0); cost = sum w^2 * s^2 r^2 / (s^2 + r^2), s = 100
    point0 = 0.5**2 * (1e4 * 36 / (1e4 + 36) + 1e4 * 64 / (1e4 + 64))
    point1 = 2.0**2 * (1e4 * 2500 / (1e4 + 2500) + 0.0)
    out = reprojection_term(projected, target, weights, scale, sigma=100.0)
    assert out.shape == (1,)
    torch.testing.assert_close(out, torch.tensor([point0 + point1], dtype=DT))
    assert abs(point1 - 8000.0) < 1e-9  # the GMoF(50) = 2000 value, weight 2 squared


def test_reprojection_term_is_per_item_with_per_item_scale():
    projected = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=DT)
    target = torch.tensor([[[10.0, 0.0], [0.0, 0.0]], [[10.0, 0.0], [0.0, 0.0]]], dtype=DT)
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=DT)
    scale = torch.tensor([1.0, 5.0], dtype=DT)
    out = reprojection_term(projected, target, weights, scale, sigma=100.0)
    expected = torch.tensor([1e4 * 100 / (1e4 + 100), 2000.0], dtype=DT)  # item 1: residual 50 after scaling
    torch.testing.assert_close(out, expected)
    # zero weight removes a point entirely
    target[1, 1] = torch.tensor([300.0, -300.0], dtype=DT)
    torch.testing.assert_close(reprojection_term(projected, target, weights, scale, 100.0)[1], expected[1])


def test_depth_term_is_squared_z_change_only():
    transl = torch.tensor([[0.0, 0.0, 5.0], [1.0, 2.0, 3.0]], dtype=DT)
    init = torch.tensor([[9.0, 9.0, 4.0], [0.0, 0.0, 3.0]], dtype=DT)
    torch.testing.assert_close(depth_term(transl, init), torch.tensor([1.0, 0.0], dtype=DT))
    torch.testing.assert_close(depth_term(init, transl), torch.tensor([1.0, 0.0], dtype=DT))


@pytest.fixture()
def model_points() -> torch.Tensor:
    """(2,6,3) model points in metres (a rough skeleton-sized cloud)."""
    gen = torch.Generator().manual_seed(3)
    return torch.randn(2, 6, 3, generator=gen, dtype=DT) * 0.4


def rigid_copy(points: torch.Tensor) -> torch.Tensor:
    """The points rotated and translated (another frame with another root), per item."""
    rot = axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 0.5], [math.pi * 0.9, 0.1, 0.0]], dtype=DT))
    shift = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.3, 10.0]], dtype=DT)
    return torch.einsum("bij,bnj->bni", rot, points) + shift[:, None]


def test_landmarks3d_term_zero_for_rigidly_moved_copy(model_points):
    weights = torch.ones(2, 6, dtype=DT)
    out = landmarks3d_term(model_points, rigid_copy(model_points), weights)
    assert out.shape == (2,)
    assert torch.all(out.abs() < 1e-12), out


def test_landmarks3d_term_positive_for_non_rigid_change(model_points):
    weights = torch.ones(2, 6, dtype=DT)
    bent = model_points.clone()
    bent[:, 2] += torch.tensor([0.1, -0.05, 0.2], dtype=DT)  # one landmark moved 23 cm
    out = landmarks3d_term(model_points, rigid_copy(bent), weights)
    assert torch.all(out > 1e-3), out
    # a uniformly scaled copy is not rigid either (no scale in the alignment)
    assert torch.all(landmarks3d_term(model_points, rigid_copy(model_points * 1.3), weights) > 1e-3)
    # giving the moved landmark weight 0 makes the rest agree again
    weights[:, 2] = 0.0
    assert torch.all(landmarks3d_term(model_points, rigid_copy(bent), weights).abs() < 1e-12)


def test_landmarks3d_term_gradient_pulls_model_points(model_points):
    weights = torch.ones(2, 6, dtype=DT)
    bent = model_points.clone()
    bent[:, 2] += 0.2
    joints = model_points.clone().requires_grad_(True)
    landmarks3d_term(joints, rigid_copy(bent), weights).sum().backward()
    assert torch.isfinite(joints.grad).all()
    assert joints.grad[:, 2].norm(dim=-1).min() > 1e-3  # the mismatched point gets a pull
