"""Tests for fitter.objectives.silhouette (chamfer and per-part silhouette losses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from fitter.geometry import perspective_project
from fitter.objectives.silhouette import (
    mask_boundary_pixels,
    mask_distance_transform,
    part_silhouette_loss,
    prepare_part_silhouette_target,
    prepare_silhouette_target,
    sample_boundary_points,
    sample_distance_map,
    silhouette_chamfer_loss,
)
from fitter.render import render_mask, render_part_labels, vertex_visibility

FOCAL = torch.tensor([120.0])
PP = torch.tensor([[40.0, 40.0]])
SIZE = (80, 80)


def sphere(subdivisions: int = 3, radius: float = 0.3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces, dtype=torch.long)


def placed(vertices: torch.Tensor, offset) -> torch.Tensor:
    return (vertices + torch.tensor([0.0, 0.0, 2.5]) + torch.as_tensor(offset, dtype=torch.float32))[None]


def test_distance_transform_values_and_empty_mask():
    mask = np.zeros((10, 12), dtype=bool)
    mask[5, 5] = True
    dist = mask_distance_transform(mask)
    assert dist.dtype == torch.float32 and dist.shape == (10, 12)
    assert float(dist[5, 5]) == 0.0 and float(dist[5, 8]) == 3.0 and float(dist[1, 2]) == 5.0
    batch = mask_distance_transform(torch.from_numpy(np.stack([mask, mask])))
    assert batch.shape == (2, 10, 12)
    with pytest.raises(ValueError, match="empty"):
        mask_distance_transform(np.zeros((4, 4), dtype=bool))


def test_boundary_pixels_and_sampler():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 4:12] = True  # 10 x 8 rectangle: perimeter ring has 2*10 + 2*8 - 4 pixels
    assert len(mask_boundary_pixels(mask)) == 32
    points = sample_boundary_points(mask, max_points=1000)
    assert points.shape == (32, 2)
    assert float(points[:, 0].min()) == 4.5 and float(points[:, 0].max()) == 11.5  # pixel centres (x)
    assert sample_boundary_points(mask, max_points=10).shape == (10, 2)
    # A mask cut off by the image frame has no boundary along the frame.
    truncated = np.zeros((10, 10), dtype=bool)
    truncated[:, :4] = True
    boundary = mask_boundary_pixels(truncated)
    assert set(boundary[:, 1].tolist()) == {3}


def test_distance_sampling_is_bilinear_and_extends_outside_the_image():
    """Beyond the frame: the border's distance plus the way back to the image, except where the
    mask reaches the border (distance 0 there): the person may go on past the frame."""
    dist = torch.arange(16.0).view(1, 1, 4, 4)
    points = torch.tensor([[[0.5, 0.5], [1.0, 0.5], [1.5, 2.5], [-2.0, 2.5], [-2.0, 0.5]]])
    values = sample_distance_map(dist, points)[0, 0]
    assert values.tolist() == pytest.approx([0.0, 0.5, 9.0, 10.0, 0.0])


def test_a_body_the_frame_cuts_off_is_not_pulled_into_the_photo():
    """A person mask cut off by the bottom of the photo: vertices below the frame, under the
    mask's cut, cost nothing (the legs go on out of the picture); beside the mask they do."""
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:, 15:25] = True  # the lower body leaves the photo at the bottom
    target = prepare_silhouette_target(torch.as_tensor(mask))
    below = torch.tensor([[[20.0, 55.0], [18.0, 70.0]]])  # under the cut
    beside = torch.tensor([[[5.0, 55.0]]])  # below the frame, but left of the mask
    assert sample_distance_map(target.dist_maps[:, None], below).abs().max() < 1e-6
    assert float(sample_distance_map(target.dist_maps[:, None], beside)[0, 0, 0]) > 20.0


def test_chamfer_loss_falls_as_the_mesh_moves_into_the_mask_and_is_zero_on_it():
    vertices, faces = sphere()
    target_mask = render_mask(placed(vertices, [0, 0, 0]), faces, FOCAL, PP, SIZE)
    target = prepare_silhouette_target(target_mask)
    losses = []
    for shift in (0.6, 0.3, 0.15, 0.05, 0.0):
        projected = perspective_project(placed(vertices, [shift, 0.5 * shift, 0]), FOCAL, PP)
        losses.append(
            float(silhouette_chamfer_loss(projected, target.dist_maps, target.boundary_points, target.boundary_valid))
        )
    assert all(a > b for a, b in zip(losses, losses[1:])), losses
    # On target: only sub-pixel rasterisation/vertex-spacing residue remains.
    assert losses[-1] < 1e-3 * losses[0]
    assert losses[-1] < (1.0 / np.hypot(*SIZE)) ** 2


def test_face_centroids_help_coarse_meshes():
    vertices, faces = sphere(subdivisions=1)  # 42 vertices: a few px apart at this size
    target = prepare_silhouette_target(render_mask(placed(vertices, [0, 0, 0]), faces, FOCAL, PP, SIZE))
    projected = perspective_project(placed(vertices, [0, 0, 0]), FOCAL, PP)
    args = (projected, target.dist_maps, target.boundary_points, target.boundary_valid)
    vertices_only = float(silhouette_chamfer_loss(*args, outside_weight=0.0))
    with_centroids = float(silhouette_chamfer_loss(*args, faces=faces, outside_weight=0.0))
    assert with_centroids < 0.8 * vertices_only


def test_chamfer_gradient_points_towards_the_mask():
    vertices, faces = sphere()
    target = prepare_silhouette_target(render_mask(placed(vertices, [0, 0, 0]), faces, FOCAL, PP, SIZE))
    offset = torch.tensor([0.25, -0.15, 0.0], requires_grad=True)
    projected = perspective_project(placed(vertices, [0, 0, 0]) + offset, FOCAL, PP)
    silhouette_chamfer_loss(projected, target.dist_maps, target.boundary_points, target.boundary_valid).sum().backward()
    assert float(offset.grad[0]) > 0 and float(offset.grad[1]) < 0  # descent moves x down, y up
    # Each term on its own also points the right way; a larger mesh (closer) is pulled back by term 1.
    for weights in ((1.0, 0.0), (0.0, 1.0)):
        shift = torch.tensor([0.2, 0.0, 0.0], requires_grad=True)
        projected = perspective_project(placed(vertices, [0, 0, 0]) + shift, FOCAL, PP)
        silhouette_chamfer_loss(projected, target.dist_maps, target.boundary_points, target.boundary_valid,
                                outside_weight=weights[0], coverage_weight=weights[1]).sum().backward()  # fmt: skip
        assert float(shift.grad[0]) > 0


def test_chamfer_loss_is_resolution_independent_and_batched():
    vertices, faces = sphere()
    losses = []
    for scale in (1, 2):
        focal, pp, size = FOCAL * scale, PP * scale, (SIZE[0] * scale, SIZE[1] * scale)
        target = prepare_silhouette_target(render_mask(placed(vertices, [0, 0, 0]), faces, focal, pp, size))
        projected = perspective_project(placed(vertices, [0.2, 0.0, 0.0]), focal, pp)
        losses.append(
            float(silhouette_chamfer_loss(projected, target.dist_maps, target.boundary_points, target.boundary_valid))
        )
    assert losses[1] == pytest.approx(losses[0], rel=0.1)
    # Batch of two with list boundary points = the two computed alone.
    masks = torch.cat([render_mask(placed(vertices, [dx, 0, 0]), faces, FOCAL, PP, SIZE) for dx in (0.0, 0.1)])
    target = prepare_silhouette_target(masks)
    projected = perspective_project(torch.cat([placed(vertices, [0.05, 0, 0])] * 2), FOCAL, PP)
    points = [target.boundary_points[b][target.boundary_valid[b]] for b in range(2)]
    batched = silhouette_chamfer_loss(projected, target.dist_maps, points)
    for b in range(2):
        alone = silhouette_chamfer_loss(projected[b : b + 1], target.dist_maps[b : b + 1], [points[b]])
        assert float(batched[b]) == pytest.approx(float(alone[0]), rel=1e-5)


def test_vertex_weights_exclude_vertices():
    vertices, faces = sphere()
    target = prepare_silhouette_target(render_mask(placed(vertices, [0, 0, 0]), faces, FOCAL, PP, SIZE))
    moved = placed(vertices, [0, 0, 0]).clone()
    stray = vertices[:, 0] > 0.25
    moved[0, stray, 0] += 1.0  # drag a cap of vertices far outside the mask
    projected = perspective_project(moved, FOCAL, PP)
    args = (projected, target.dist_maps, target.boundary_points, target.boundary_valid)
    with_stray = float(silhouette_chamfer_loss(*args, coverage_weight=0.0))
    without = float(silhouette_chamfer_loss(*args, vertex_weights=(~stray).float(), coverage_weight=0.0))
    assert with_stray > 100 * max(without, 1e-9)
    with pytest.raises(ValueError, match="vertex_weights"):
        silhouette_chamfer_loss(*args, vertex_weights=torch.ones(5))


def test_part_silhouette_loss_wants_parts_in_their_own_masks():
    vertices, faces = sphere()
    labels = (vertices[:, 0] > 0).long()  # part 0: camera-left half, part 1: right half
    on_target = placed(vertices, [0, 0, 0])
    label_image = render_part_labels(on_target, faces, FOCAL, PP, SIZE, vertex_labels=labels)[0]
    part_masks = torch.stack([label_image == 0, label_image == 1])
    target = prepare_part_silhouette_target(part_masks)
    assert target.dist_maps.shape == (1, 2, 80, 80) and bool(target.present.all())
    projected = perspective_project(on_target, FOCAL, PP)
    visibility = vertex_visibility(on_target, faces, FOCAL, PP, SIZE).float()
    correct = float(part_silhouette_loss(projected, labels, target, vertex_weights=visibility))
    swapped = float(part_silhouette_loss(projected, 1 - labels, target, vertex_weights=visibility))
    assert correct < 0.02 * swapped
    direct = float(part_silhouette_loss(projected, labels, part_masks[None], vertex_weights=visibility))
    assert direct == pytest.approx(correct, rel=1e-5)  # masks given directly = prepared target
    # Shifting the sphere sideways raises the loss, and the gradient pulls it back.
    shift = torch.tensor([0.1, 0.0, 0.0], requires_grad=True)
    loss = part_silhouette_loss(
        perspective_project(on_target + shift, FOCAL, PP), labels, target, vertex_weights=visibility
    )
    loss.sum().backward()
    assert float(loss.detach()) > correct and float(shift.grad[0]) > 0
    # An absent part is skipped (no NaN, no error).
    half = prepare_part_silhouette_target(torch.stack([part_masks[0], torch.zeros_like(part_masks[1])]))
    assert not bool(half.present[0, 1])
    value = part_silhouette_loss(projected, labels, half, vertex_weights=visibility)
    assert torch.isfinite(value).all()
    with pytest.raises(ValueError, match="only 2 parts"):
        part_silhouette_loss(projected, labels + 1, target)
