"""Tests for fitter.render (rasterizer, pictures) and fitter.body.parts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh

from fitter.body.model import BodyModel
from fitter.body.parts import (
    PART_NAMES_12,
    PART_NAMES_24,
    SMPL_JOINT_TO_PART_12,
    body_face_part_labels,
    face_part_labels,
    load_part_label_mapping,
    part_colors,
    part_labels,
    part_labels_from_weights,
    smpl_joint_weights,
)
from fitter.render import (
    colorize_part_labels,
    draw_keypoints,
    interpolate_vertex_attributes,
    rasterize,
    render_depth,
    render_mask,
    render_overlay,
    render_part_labels,
    render_side_view,
    vertex_visibility,
)
from fitter.render.overlay import CENTER_COLOR, LEFT_COLOR

FOCAL = 100.0


def quad_at_pixels(x0: float, y0: float, x1: float, y1: float, depth: float, focal: float = FOCAL, pp=(0.0, 0.0)):
    """Two triangles whose projection is the axis-aligned rectangle [x0,x1] x [y0,y1] px at camera z = depth."""
    corners_px = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float64)
    xy = (corners_px - torch.tensor(pp, dtype=torch.float64)) * depth / focal
    vertices = torch.cat([xy, torch.full((4, 1), depth, dtype=torch.float64)], dim=1).float()
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return vertices, faces


def pixel_centres_in(lo: float, hi: float) -> int:
    """How many pixel centres k + 0.5 lie in [lo, hi]."""
    return max(0, math.floor(hi - 0.5) - math.ceil(lo - 0.5) + 1)


def icosphere(subdivisions: int = 2, radius: float = 0.3, centre=(0.0, 0.0, 2.0)):
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    vertices = torch.tensor(sphere.vertices, dtype=torch.float32) + torch.tensor(centre)
    return vertices, torch.tensor(sphere.faces, dtype=torch.long)


# ---------------------------------------------------------------- rasterizer


def test_square_mask_matches_pixel_centre_rule_exactly():
    vertices, faces = quad_at_pixels(10.2, 5.6, 50.7, 30.4, depth=2.0)
    mask = render_mask(vertices[None], faces, torch.tensor([FOCAL]), torch.zeros(1, 2), (64, 40))[0]
    expected = np.zeros((40, 64), dtype=bool)
    cols = np.arange(64) + 0.5
    rows = np.arange(40) + 0.5
    expected[np.ix_((rows >= 5.6) & (rows <= 30.4), (cols >= 10.2) & (cols <= 50.7))] = True
    assert mask.shape == (1, 40, 64)[1:]
    assert np.array_equal(mask.numpy(), expected)
    assert int(mask.sum()) == pixel_centres_in(10.2, 50.7) * pixel_centres_in(5.6, 30.4)


def test_large_square_uses_general_path_and_is_exact():
    # A 150x120 px box exceeds the small-box grid (64 px) and goes through the general path.
    vertices, faces = quad_at_pixels(3.3, 2.2, 153.6, 122.9, depth=3.0)
    fragments = rasterize(vertices, faces, FOCAL, torch.zeros(2), (160, 128))
    assert int(fragments.mask.sum()) == pixel_centres_in(3.3, 153.6) * pixel_centres_in(2.2, 122.9)
    assert torch.allclose(fragments.depth[fragments.mask], torch.tensor(3.0), atol=1e-5)
    # Chunking with a tiny pair budget gives the identical result.
    small_chunks = rasterize(vertices, faces, FOCAL, torch.zeros(2), (160, 128), max_pairs=1000)
    assert torch.equal(small_chunks.pix_to_face, fragments.pix_to_face)


def test_disc_area_and_border():
    radius_px, centre_px, segments = 20.0, (32.0, 32.0), 512
    angles = torch.arange(segments) * (2 * math.pi / segments)
    rim = torch.stack(
        [centre_px[0] + radius_px * torch.cos(angles), centre_px[1] + radius_px * torch.sin(angles)], dim=1
    )
    points = torch.cat([torch.tensor([centre_px]), rim])
    depth = 1.5
    vertices = torch.cat([points * depth / FOCAL, torch.full((segments + 1, 1), depth)], dim=1)
    faces = torch.stack(
        [
            torch.zeros(segments, dtype=torch.long),
            torch.arange(1, segments + 1),
            torch.arange(1, segments + 1) % segments + 1,
        ],
        dim=1,
    )
    mask = render_mask(vertices, faces, FOCAL, torch.zeros(2), (64, 64))[0]
    yy, xx = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    distance = torch.sqrt((xx - centre_px[0]) ** 2 + (yy - centre_px[1]) ** 2)
    assert bool(mask[distance < radius_px - 0.05].all())  # polygon vs circle: sagitta < 0.001 px
    assert not bool(mask[distance > radius_px + 0.01].any())
    assert abs(int(mask.sum()) - math.pi * radius_px**2) < 2 * math.pi * radius_px * 0.5


def test_nearer_face_wins_regardless_of_face_order():
    near_v, near_f = quad_at_pixels(5, 5, 40, 40, depth=2.0)
    far_v, far_f = quad_at_pixels(20, 20, 60, 60, depth=3.0)
    for near_first in (True, False):
        parts = [(near_v, near_f, 0), (far_v, far_f, 1)] if near_first else [(far_v, far_f, 1), (near_v, near_f, 0)]
        vertices = torch.cat([p[0] for p in parts])
        faces = torch.cat([parts[0][1], parts[1][1] + 4])
        face_labels = torch.tensor([parts[0][2]] * 2 + [parts[1][2]] * 2)
        labels = render_part_labels(vertices, faces, FOCAL, torch.zeros(2), (64, 64), face_labels=face_labels)[0]
        depth = render_depth(vertices, faces, FOCAL, torch.zeros(2), (64, 64))[0]
        assert int(labels[30, 30]) == 0 and float(depth[30, 30]) == pytest.approx(2.0, abs=1e-5)  # overlap: near wins
        assert int(labels[50, 50]) == 1 and float(depth[50, 50]) == pytest.approx(3.0, abs=1e-5)
        assert int(labels[10, 10]) == 0 and int(labels[2, 2]) == -1


def test_cube_front_face_wins_and_depth_is_front_plane():
    box = trimesh.creation.box(extents=(0.4, 0.4, 0.4))
    vertices = torch.tensor(box.vertices, dtype=torch.float32) + torch.tensor([0.0, 0.0, 2.0])
    faces = torch.tensor(box.faces)
    fragments = rasterize(vertices, faces, FOCAL, torch.tensor([32.0, 32.0]), (64, 64))
    centre_face = int(fragments.pix_to_face[0, 32, 32])
    face_z = vertices[faces[centre_face]][:, 2]
    assert torch.allclose(face_z, torch.tensor(1.8))  # a triangle of the near side (z = 2 - 0.2)
    assert float(fragments.depth[0, 32, 32]) == pytest.approx(1.8, abs=1e-5)
    # The silhouette is the front square: half-size 0.2 / 1.8 * 100 px around the centre.
    half = 0.2 / 1.8 * FOCAL
    assert int(fragments.mask.sum()) == pixel_centres_in(32 - half, 32 + half) ** 2


def test_depth_and_barycentrics_are_perspective_correct_on_a_tilted_plane():
    # Plane z = 2 + 0.5 x (metres), a large quad; depth at each pixel = ray / plane intersection.
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    vertices = torch.cat([corners, (2.0 + 0.5 * corners[:, :1])], dim=1)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    pp = torch.tensor([24.0, 24.0])
    fragments = rasterize(vertices, faces, 40.0, pp, (48, 48))
    rows, cols = torch.nonzero(fragments.mask[0], as_tuple=True)
    ray_x = (cols.float() + 0.5 - pp[0]) / 40.0
    expected_depth = 2.0 / (1.0 - 0.5 * ray_x)
    assert len(rows) > 500
    assert torch.allclose(fragments.depth[0, rows, cols], expected_depth, rtol=1e-4)
    assert torch.allclose(fragments.bary.sum(-1)[fragments.mask], torch.tensor(1.0), atol=1e-5)
    # Interpolating the camera-frame vertices gives the 3D point on the pixel's ray.
    points = interpolate_vertex_attributes(fragments, faces, vertices)[0, rows, cols]
    assert torch.allclose(points[:, 0] / points[:, 2] * 40.0 + pp[0], cols.float() + 0.5, atol=1e-3)
    assert torch.allclose(points[:, 2], expected_depth, rtol=1e-4)


def test_batch_and_barycentric_gradients():
    vertices, faces = icosphere(2)
    shifted = vertices + torch.tensor([0.1, -0.05, 0.3])
    batch = torch.stack([vertices, shifted])
    focal = torch.tensor([[80.0, 90.0], [70.0, 70.0]])
    pp = torch.tensor([[30.0, 32.0], [33.0, 31.0]])
    together = rasterize(batch, faces, focal, pp, (64, 64))
    for b in range(2):
        alone = rasterize(batch[b : b + 1], faces, focal[b : b + 1], pp[b : b + 1], (64, 64))
        assert torch.equal(alone.pix_to_face[0], together.pix_to_face[b])
        assert torch.allclose(alone.depth[0], together.depth[b])
    leaf = batch.clone().requires_grad_(True)
    depth = rasterize(leaf, faces, focal, pp, (64, 64)).depth
    depth.sum().backward()
    # Moving the mesh away increases the rendered depth: dz gradient positive.
    assert float(leaf.grad[..., 2].sum()) > 0


def test_vertex_visibility_front_half_of_a_sphere():
    vertices, faces = icosphere(3, radius=0.3, centre=(0.0, 0.0, 2.0))
    visible = vertex_visibility(vertices, faces, 200.0, torch.tensor([64.0, 64.0]), (128, 128))[0]
    facing = (vertices[:, 2] - 2.0) < -0.05  # clearly on the camera side
    hidden = (vertices[:, 2] - 2.0) > 0.05
    assert bool(visible[facing].all())
    assert not bool(visible[hidden].any())


def test_faces_behind_the_camera_are_skipped():
    vertices, faces = quad_at_pixels(0, 0, 20, 20, depth=2.0)
    vertices[0, 2] = -1.0
    labels = render_part_labels(vertices, faces, FOCAL, torch.zeros(2), (32, 32), face_labels=torch.tensor([0, 1]))[0]
    assert set(torch.unique(labels).tolist()) <= {-1, 1}  # face 1 uses vertex 0 too: both dropped
    assert int((labels >= 0).sum()) == 0


def test_vertex_labels_follow_the_largest_barycentric_corner():
    vertices, faces = quad_at_pixels(0, 0, 32, 32, depth=2.0)
    labels = render_part_labels(
        vertices, faces, FOCAL, torch.zeros(2), (32, 32), vertex_labels=torch.tensor([0, 1, 2, 3])
    )[0]
    assert int(labels[1, 1]) == 0 and int(labels[1, 30]) == 1 and int(labels[30, 30]) == 2 and int(labels[30, 1]) == 3
    with pytest.raises(ValueError, match="exactly one"):
        render_part_labels(vertices, faces, FOCAL, torch.zeros(2), (32, 32))


def test_bad_inputs_raise_clear_errors():
    vertices, faces = quad_at_pixels(0, 0, 10, 10, depth=2.0)
    with pytest.raises(ValueError, match="image_size"):
        render_mask(vertices, faces, FOCAL, torch.zeros(2), (0, 10))
    with pytest.raises(ValueError, match="faces index"):
        render_mask(vertices, faces + 10, FOCAL, torch.zeros(2), (16, 16))
    with pytest.raises(ValueError, match="vertices"):
        render_mask(vertices[:, :2], faces, FOCAL, torch.zeros(2), (16, 16))


# ---------------------------------------------------------------- pictures


def test_render_overlay_composites_only_on_the_mesh():
    vertices, faces = icosphere(2, radius=0.3, centre=(0.0, 0.0, 2.0))
    image = np.full((48, 64, 3), 40, dtype=np.uint8)
    out = render_overlay(image, vertices, faces, 60.0, (32.0, 24.0), color=(200, 100, 50), alpha=1.0)
    mask = render_mask(vertices, faces, 60.0, torch.tensor([32.0, 24.0]), (64, 48))[0].numpy()
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != 40).any(axis=1).all()
    # Lambert: the centre (facing the light) is brighter than the rim; colour hue kept (R > G > B).
    centre, rim = out[24, 32].astype(int), out[mask][np.argmin(out[mask].sum(1))].astype(int)
    assert centre.sum() > rim.sum() and centre[0] > centre[1] > centre[2]
    assert np.array_equal(render_overlay(image, vertices, faces, 60.0, (32.0, 24.0), alpha=0.0), image)


@pytest.mark.parametrize("centre", [(0.0, 0.0, 4.0), (1.55, -1.1, 4.0), (9.0, 0.0, 4.0)])
def test_render_overlay_draws_the_meshes_window_as_the_whole_frame_would(centre):
    """The overlay rasterizes and shades only the meshes' box in the photo (a person in a big
    photo covers a small part of it); the pixels are those of the whole-frame render: a mesh in
    the middle, one cut by the photo's corner, one outside it."""
    from fitter.render import render_shaded

    vertices, faces = icosphere(2, radius=0.3, centre=centre)
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out = render_overlay(image, vertices, faces, (150.0, 140.0), (81.0, 58.5), alpha=0.85)
    rgb, mask = render_shaded(vertices, faces, (150.0, 140.0), (81.0, 58.5), (160, 120))
    weight = 0.85 * mask[..., None]
    whole = np.clip(np.round(image * (1.0 - weight) + rgb * weight), 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def test_render_overlay_two_people_occlude_each_other():
    front, faces = icosphere(2, radius=0.3, centre=(0.0, 0.0, 2.0))
    back, _ = icosphere(2, radius=0.3, centre=(0.2, 0.0, 3.0))
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    out = render_overlay(
        image, torch.stack([front, back]), faces, 60.0, (32.0, 24.0), color=[(255, 0, 0), (0, 0, 255)], alpha=1.0
    )
    assert out[24, 32, 0] > 0 and out[24, 32, 2] == 0  # the near red one covers the centre


def test_side_view_shows_the_depth_extent():
    box = trimesh.creation.box(extents=(0.2, 1.0, 0.6))  # thin in x, deep in z
    vertices = torch.tensor(box.vertices, dtype=torch.float32) + torch.tensor([0.3, 0.0, 3.0])
    faces = torch.tensor(box.faces)
    side = render_side_view(vertices, faces, (100, 100), background=(255, 255, 255))
    covered = (side != 255).any(axis=2)
    rows, cols = np.nonzero(covered)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert 80 <= height <= 92  # re-framed to fill 90% of the image
    assert 0.45 < width / height < 0.9  # the 0.6 m depth seen side-on (perspective widens it a bit)
    front = render_mask(vertices, faces, 100.0, torch.tensor([50.0, 50.0]), (100, 100))[0].numpy()
    r, c = np.nonzero(front)
    assert (c.max() - c.min() + 1) / (r.max() - r.min() + 1) < 0.3


def test_draw_keypoints_colours_by_side_and_skips_low_confidence():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    points = np.array([[10.5, 10.5], [50.5, 10.5], [30.5, 50.5]])
    out = draw_keypoints(
        image, points, confidence=[1.0, 1.0, 0.01], skeleton=[(0, 1), (1, 2)], left=[0], right=[], radius=3, thickness=3
    )
    assert tuple(out[10, 10]) == LEFT_COLOR
    assert tuple(out[10, 50]) == CENTER_COLOR
    assert tuple(out[50, 30]) == (0, 0, 0)  # below min_confidence: not drawn
    assert tuple(out[10, 30]) == LEFT_COLOR  # limb 0-1 takes the left colour
    assert image.sum() == 0  # input untouched


def test_colorize_part_labels():
    labels = np.array([[-1, 0], [1, 5]])
    out = colorize_part_labels(labels, part_colors(12))
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[0, 1]) == tuple(part_colors(12)[0].tolist()) and tuple(out[1, 1]) == tuple(
        part_colors(12)[5].tolist()
    )


# ---------------------------------------------------------------- parts


def test_part_labels_from_a_made_up_weight_matrix():
    weights = torch.zeros(5, 24)
    weights[0, 15] = 1.0  # head
    weights[1, [18, 20]] = torch.tensor([0.4, 0.35])  # elbow + wrist; shoulder has more alone
    weights[1, 16] = 0.25
    weights[2, [6, 9, 13]] = torch.tensor([0.3, 0.3, 0.4])
    weights[3, 0], weights[3, 1] = 0.45, 0.55
    weights[4, 7], weights[4, 4] = 0.6, 0.4
    assert part_labels_from_weights(weights, 24).tolist() == [15, 18, 13, 1, 7]
    labels_12 = part_labels_from_weights(weights, 12).tolist()
    names = [PART_NAMES_12[i] for i in labels_12]
    assert names == ["head", "left_lower_arm", "upper_torso", "left_upper_leg", "left_lower_leg"]
    with pytest.raises(ValueError, match="12 or 24"):
        part_labels_from_weights(weights, 6)


def test_grouping_covers_every_joint_once_with_sides():
    assert len(SMPL_JOINT_TO_PART_12) == 24 and set(SMPL_JOINT_TO_PART_12) == set(range(12))
    for joint, part in enumerate(SMPL_JOINT_TO_PART_12):
        joint_name, part_name = PART_NAMES_24[joint], PART_NAMES_12[part]
        for side in ("left", "right"):
            if joint_name.startswith(side) and joint_name.split("_")[1] != "collar":
                assert part_name.startswith(side)


def test_extra_joints_fold_onto_smpl_parts():
    # 26 joints: SMPL's first 22 (no hand joints) + 2 left fingers + 2 head children (jaw, eye).
    parents = (
        list(range(-1, 0)) + [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19] + [20, 22, 15, 15]
    )
    body_to_full = list(range(22)) + [-1, -1]
    weights = torch.eye(26)
    folded = smpl_joint_weights(weights, parents, body_to_full)
    assert folded.shape == (26, 24)
    assert folded[22].argmax() == 22 and folded[23].argmax() == 22  # fingers -> left hand part
    assert folded[24].argmax() == 15 and folded[25].argmax() == 15  # jaw/eye -> head
    assert folded[20].argmax() == 20


def test_part_labels_of_a_small_body_model_and_face_majority():
    generator = torch.Generator().manual_seed(0)
    num_vertices = 30
    weights = torch.rand(num_vertices, 24, generator=generator) ** 8
    weights = weights / weights.sum(1, keepdim=True)
    faces = torch.randint(0, num_vertices, (40, 3), generator=generator)
    model = BodyModel(
        name="tiny",
        v_template=torch.rand(num_vertices, 3, generator=generator),
        shapedirs=torch.zeros(num_vertices, 3, 2),
        posedirs=torch.zeros(207, num_vertices * 3),
        J_regressor=torch.full((24, num_vertices), 1.0 / num_vertices),
        lbs_weights=weights,
        parents=torch.tensor([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]),
        faces=faces,
    )
    assert torch.equal(part_labels(model, 24), weights.argmax(1))
    labels_12 = part_labels(model, 12)
    assert labels_12.shape == (num_vertices,) and int(labels_12.max()) < 12
    face_labels = body_face_part_labels(model, 24)
    vertex_labels = part_labels(model, 24)
    for face, label in zip(faces, face_labels):
        votes = torch.bincount(vertex_labels[face], minlength=24)
        assert votes[label] == votes.max()
    assert face_part_labels(torch.tensor([[0, 1, 2]]), torch.tensor([3, 5, 5])).tolist() == [5]


def test_label_mapping_file(tmp_path):
    path = tmp_path / "mapping.json"
    path.write_text(
        json.dumps(
            {"labels": {"0": "background", "1": "head", "2": "upper_torso", "7": "upper_torso", "9": "left_lower_leg"}}
        )
    )
    mapping = load_part_label_mapping(path)
    assert mapping.num_parts == 12
    image = np.array([[0, 1, 2], [7, 9, 200]], dtype=np.uint8)
    ids = mapping.part_ids(image)
    assert ids.tolist() == [[-1, 0, 2], [2, 10, -1]]
    masks = mapping.part_masks(image)
    assert masks.shape == (12, 2, 3) and int(masks[2].sum()) == 2


def test_label_mapping_rejects_bad_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"labels": {"1": "head", "2": "left_forearm"}}))
    with pytest.raises(ValueError, match="unknown part name.*left_forearm"):
        load_part_label_mapping(path)
    path.write_text(json.dumps({"labels": {"1": "head", "2": "neck"}}))
    with pytest.raises(ValueError, match="num_parts"):
        load_part_label_mapping(path)
    path.write_text(json.dumps({"num_parts": 24, "labels": {"1": "head", "2": "upper_torso"}}))
    with pytest.raises(ValueError, match="unknown part name 'upper_torso'"):
        load_part_label_mapping(path)
    path.write_text(json.dumps({"labels": {"x": "head"}}))
    with pytest.raises(ValueError, match="not an integer"):
        load_part_label_mapping(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_part_label_mapping(tmp_path / "missing.json")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    vertices, faces = icosphere(3)
    pp = torch.tensor([[32.0, 32.0]])
    cpu = rasterize(vertices[None], faces, torch.tensor([100.0]), pp, (64, 64))
    gpu = rasterize(vertices[None].cuda(), faces.cuda(), torch.tensor([100.0]).cuda(), pp.cuda(), (64, 64))
    assert torch.equal(cpu.pix_to_face, gpu.pix_to_face.cpu())
