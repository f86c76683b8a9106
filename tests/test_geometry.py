"""fitter.geometry: rotation conversions, pinhole projection and the crop <-> full camera conversion,
checked against hand-written definitions and hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fitter.geometry import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    crop_cam_to_full_translation,
    default_focal_length,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    perspective_project,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
    rotation_about,
    translation_to_crop_cam,
)


def _random_axis_angles(n: int, seed: int = 0) -> torch.Tensor:
    """(n,3) rotation vectors with angles in (0.01, pi - 0.01) (unique axis-angle form), float64."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    angle = 0.01 + (math.pi - 0.02) * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return axis * angle


def _assert_rotation_matrices(R: torch.Tensor) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=1e-10, rtol=0)


def test_axis_angle_matrix_known_values_and_round_trip() -> None:
    quarter_z = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(quarter_z, expected, atol=1e-12, rtol=0)  # x axis -> y axis
    torch.testing.assert_close(rotation_about("z", math.pi / 2, dtype=torch.float64), expected, atol=1e-12, rtol=0)
    upright = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64))
    flip_yz = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(upright, flip_yz, atol=1e-12, rtol=0)

    aa = _random_axis_angles(64).reshape(4, 16, 3)  # arbitrary leading dims
    R = axis_angle_to_matrix(aa)
    assert R.shape == (4, 16, 3, 3)
    _assert_rotation_matrices(R)
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-9, rtol=0)
    # Rodrigues' formula written out, as an independent definition.
    angle = aa.norm(dim=-1, keepdim=True)[..., None]
    k = aa / aa.norm(dim=-1, keepdim=True)
    K = torch.zeros(*k.shape[:-1], 3, 3, dtype=k.dtype)
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - K.transpose(-1, -2)
    rodrigues = torch.eye(3, dtype=k.dtype) + torch.sin(angle) * K + (1 - torch.cos(angle)) * K @ K
    torch.testing.assert_close(R, rodrigues, atol=1e-12, rtol=0)
    # Near zero: identity, finite gradients.
    tiny = torch.full((1, 3), 1e-9, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(tiny).sum().backward()
    assert torch.isfinite(tiny.grad).all()


def _gram_schmidt_reference(x: np.ndarray) -> np.ndarray:
    """Zhou et al.'s 6D -> matrix, as in FIELD_NOTES: view 6 values as (3,2) row-major; b1 =
    normalise(col0); b2 = normalise(col1 - <b1,col1> b1); b3 = b1 x b2; columns [b1 b2 b3]."""
    m = x.reshape(3, 2)
    a1, a2 = m[:, 0], m[:, 1]
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 = b2 / np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=1)


def test_rot6d_equals_gram_schmidt_definition_and_round_trips() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    R = rot6d_to_matrix(x)
    assert R.shape == (20, 3, 3)
    for i in range(20):
        np.testing.assert_allclose(R[i].numpy(), _gram_schmidt_reference(x[i].numpy()), atol=1e-12)
    _assert_rotation_matrices(R)
    # matrix -> 6D -> matrix is exact; 6D of a matrix is its first two columns, row-major.
    R2 = axis_angle_to_matrix(_random_axis_angles(10, seed=4))
    six = matrix_to_rot6d(R2)
    torch.testing.assert_close(six, R2[..., :2].reshape(10, 6), atol=0, rtol=0)
    torch.testing.assert_close(rot6d_to_matrix(six), R2, atol=1e-12, rtol=0)
    aa = _random_axis_angles(10, seed=5)
    torch.testing.assert_close(rot6d_to_axis_angle(axis_angle_to_rot6d(aa)), aa, atol=1e-9, rtol=0)
    # The identity's 6D vector is [1,0, 0,1, 0,0].
    torch.testing.assert_close(
        matrix_to_rot6d(torch.eye(3)), torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), atol=0, rtol=0
    )


def test_perspective_project_known_points() -> None:
    points = torch.tensor([[[0.5, -0.2, 2.0], [0.0, 0.0, 4.0]]])  # (1,2,3) camera frame, metres
    pixels = perspective_project(points, 1000.0, torch.tensor([320.0, 240.0]))
    # u = f x / z + cx = 1000 * 0.25 + 320; v = 1000 * (-0.1) + 240
    torch.testing.assert_close(pixels, torch.tensor([[[570.0, 140.0], [320.0, 240.0]]]), atol=1e-4, rtol=0)
    # Per-sample focal (B,), (fx, fy) pairs (B,2) and principal points (B,2).
    batch = torch.cat([points, points])
    per_sample = perspective_project(batch, torch.tensor([1000.0, 500.0]), torch.tensor([[320.0, 240.0], [0.0, 0.0]]))
    torch.testing.assert_close(per_sample[1, 0], torch.tensor([125.0, -50.0]), atol=1e-4, rtol=0)
    fxfy = perspective_project(points, torch.tensor([[1000.0, 2000.0]]), torch.tensor([320.0, 240.0]))
    torch.testing.assert_close(fxfy[0, 0], torch.tensor([570.0, 40.0]), atol=1e-4, rtol=0)
    # Points behind the camera stay finite.
    behind = perspective_project(torch.tensor([[[0.1, 0.1, -1.0]]]), 1000.0, torch.tensor([0.0, 0.0]))
    assert torch.isfinite(behind).all()


def test_default_focal_length_is_the_image_diagonal() -> None:
    assert default_focal_length(640, 480) == pytest.approx(800.0)
    torch.testing.assert_close(
        default_focal_length(torch.tensor([300.0, 640.0]), torch.tensor([400.0, 480.0])), torch.tensor([500.0, 800.0])
    )


def test_crop_cam_to_full_translation_hand_computed_and_inverse() -> None:
    crop_cam = torch.tensor([[0.8, 0.1, -0.05]], dtype=torch.float64)
    box_center = torch.tensor([[700.0, 300.0]], dtype=torch.float64)
    box_size = torch.tensor([400.0], dtype=torch.float64)
    image_size = torch.tensor([1000.0, 800.0], dtype=torch.float64)
    focal = torch.tensor([1280.0], dtype=torch.float64)
    transl = crop_cam_to_full_translation(crop_cam, box_center, box_size, image_size, focal)
    bs = 400.0 * 0.8  # = 320 px
    expected = [0.1 + 2 * (700 - 500) / bs, -0.05 + 2 * (300 - 400) / bs, 2 * 1280 / bs]  # [1.35, -0.675, 8.0]
    torch.testing.assert_close(transl, torch.tensor([expected], dtype=torch.float64), atol=1e-12, rtol=0)
    back = translation_to_crop_cam(transl, box_center, box_size, image_size, focal)
    torch.testing.assert_close(back, crop_cam, atol=1e-12, rtol=0)

    # A body origin at a zero-offset crop camera projects onto the box centre in the full image.
    centred = crop_cam_to_full_translation(
        torch.tensor([[1.1, 0.0, 0.0]], dtype=torch.float64), box_center, box_size, image_size, focal
    )
    pixel = perspective_project(centred[:, None], focal, image_size / 2)
    torch.testing.assert_close(pixel[0, 0], box_center[0], atol=1e-9, rtol=0)

    gen = torch.Generator().manual_seed(2)
    n = 8
    cams = torch.cat([0.5 + torch.rand(n, 1, generator=gen), torch.randn(n, 2, generator=gen)], 1)
    centers = 100 + 500 * torch.rand(n, 2, generator=gen)
    sizes = 100 + 300 * torch.rand(n, generator=gen)
    sizes_img = 600 + 400 * torch.rand(n, 2, generator=gen)
    focals = 800 + 500 * torch.rand(n, generator=gen)
    full = crop_cam_to_full_translation(cams, centers, sizes, sizes_img, focals)
    back = translation_to_crop_cam(full, centers, sizes, sizes_img, focals)
    torch.testing.assert_close(back, cams, atol=1e-4, rtol=1e-4)


def test_rotation_angle_between_known_values() -> None:
    from fitter.geometry import rotation_angle_between

    a = torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    b = torch.tensor([[0.8, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -3.0]])
    expected = torch.tensor([0.5, 0.0, 2 * math.acos(math.cos(0.5) ** 2), 2 * math.pi - 6.0])  # quaternion products
    torch.testing.assert_close(rotation_angle_between(a, b), expected, atol=2e-3, rtol=0)
