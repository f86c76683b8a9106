"""Pictures for people: shaded meshes on photos, side views, keypoints, part colour maps.

Images are numpy (H,W,3) uint8 RGB. Meshes are in the camera frame (OpenCV: x right, y down,
z forward, metres). Shading is Lambertian with one directional light from the camera, a
little above it, plus ambient light; faces are lit on both sides (normals are turned towards
the camera), so the winding order of `faces` does not matter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from fitter.geometry import perspective_project
from fitter.render.rasterizer import Fragments, image_size_wh, rasterize

__all__ = [
    "DEFAULT_MESH_COLOR",
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "CENTER_COLOR",
    "FAILED_COLOR",
    "MIN_DRAWN_CONFIDENCE",
    "vertex_normals",
    "shade_fragments",
    "render_shaded",
    "render_overlay",
    "render_side_view",
    "draw_keypoints",
    "draw_box",
    "colorize_part_labels",
]

DEFAULT_MESH_COLOR = (150, 185, 235)
LEFT_COLOR = (255, 140, 30)  # the person's left side: orange
RIGHT_COLOR = (40, 140, 255)  # the person's right side: blue
CENTER_COLOR = (60, 210, 90)  # centre line: green
FAILED_COLOR = (230, 30, 30)  # the box around a person whose fit cannot be trusted: red
MIN_DRAWN_CONFIDENCE = 0.1  # keypoints below this confidence are not drawn
# Direction towards the light in the camera frame: from the camera, slightly above (y is down).
_LIGHT_DIRECTION = (0.0, -0.45, -1.0)
_AMBIENT = 0.35


def _as_mesh_batch(vertices_cam, faces) -> tuple[Tensor, Tensor]:
    vertices = torch.as_tensor(vertices_cam).detach().to(torch.float32)
    if vertices.ndim == 2:
        vertices = vertices[None]
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(
            f"vertices_cam must be (V,3) or (N,V,3) camera-frame metres, got shape {tuple(vertices.shape)}"
        )
    faces = torch.as_tensor(faces, device=vertices.device).long()
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F,3), got shape {tuple(faces.shape)}")
    return vertices, faces


def _merge_people(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """N meshes (N,V,3) sharing faces -> one mesh (1,N*V,3), faces (N*F,3), person id per face (N*F,)."""
    people, num_vertices = vertices.shape[:2]
    offsets = (torch.arange(people, device=faces.device) * num_vertices)[:, None, None]
    merged_faces = (faces[None] + offsets).reshape(-1, 3)
    person_of_face = torch.arange(people, device=faces.device).repeat_interleave(faces.shape[0])
    return vertices.reshape(1, -1, 3), merged_faces, person_of_face


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (B,V,3) of meshes (B,V,3) with faces (F,3)."""
    corners = vertices[:, faces]  # (B,F,3,3)
    face_normals = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def shade_fragments(fragments: Fragments, vertices: Tensor, faces: Tensor, base_colors: Tensor) -> Tensor:
    """Lambert-shaded colours (B,H,W,3) float in [0,255]; base_colors (B,H,W,3) float RGB.

    Smooth shading: vertex normals interpolated with the barycentrics, turned to face the camera.
    """
    normals = vertex_normals(vertices, faces)
    batch, height, width = fragments.pix_to_face.shape
    corner_ids = faces[fragments.pix_to_face.clamp(min=0)]  # (B,H,W,3)
    batch_index = torch.arange(batch, device=vertices.device)[:, None, None, None]
    bary = fragments.bary.detach()[..., None]
    normal = (normals[batch_index, corner_ids] * bary).sum(dim=3)
    position = (vertices[batch_index, corner_ids] * bary).sum(dim=3)
    normal = torch.nn.functional.normalize(normal, dim=-1, eps=1e-12)
    towards_camera = (normal * position).sum(-1, keepdim=True) > 0  # normal points away from the camera
    normal = torch.where(towards_camera, -normal, normal)
    light = torch.nn.functional.normalize(torch.tensor(_LIGHT_DIRECTION, device=vertices.device), dim=0)
    diffuse = (normal * light).sum(-1, keepdim=True).clamp(min=0.0)
    return base_colors * (_AMBIENT + (1.0 - _AMBIENT) * diffuse)


def _color_array(color, people: int) -> Tensor:
    colors = torch.as_tensor(color, dtype=torch.float32)
    if colors.ndim == 1:
        colors = colors[None].expand(people, 3)
    if colors.shape != (people, 3):
        raise ValueError(
            f"color must be one RGB triple or one per person ({people},3), got shape {tuple(colors.shape)}"
        )
    return colors


def render_shaded(
    vertices_cam, faces, focal, principal_point, image_size, color=DEFAULT_MESH_COLOR
) -> tuple[np.ndarray, np.ndarray]:
    """Shaded mesh(es) on black: returns (rgb (H,W,3) uint8, mask (H,W) bool).

    vertices_cam (V,3) or (N,V,3): N people in the same camera, drawn with a shared z-buffer
    (so they occlude each other correctly); color one RGB triple or (N,3).
    """
    vertices, faces = _as_mesh_batch(vertices_cam, faces)
    people = vertices.shape[0]
    colors = _color_array(color, people).to(vertices.device)
    with torch.no_grad():
        merged, merged_faces, person_of_face = _merge_people(vertices, faces)
        focal_t = torch.as_tensor(focal, dtype=torch.float32).reshape(-1)[:2]
        focal_t = focal_t.reshape(1, -1) if focal_t.numel() == 2 else focal_t.reshape(1)
        pp = torch.as_tensor(principal_point, dtype=torch.float32).reshape(1, 2)
        fragments = rasterize(merged, merged_faces, focal_t, pp, image_size)
        person = person_of_face[fragments.pix_to_face.clamp(min=0)]
        base = colors[person]  # (1,H,W,3)
        shaded = shade_fragments(fragments, merged, merged_faces, base)[0]
        mask = fragments.mask[0]
        rgb = torch.where(mask[..., None], shaded, torch.zeros_like(shaded))
    return rgb.round().clamp(0, 255).to(torch.uint8).cpu().numpy(), mask.cpu().numpy()


def person_masks(vertices_cam, faces, focal, principal_point, image_size) -> np.ndarray:
    """(N,H,W) bool: the pixels where each of N people (N,V,3), camera frame, is the nearest
    surface (one z-buffer, so people hide each other)."""
    vertices, faces = _as_mesh_batch(vertices_cam, faces)
    with torch.no_grad():
        merged, merged_faces, person_of_face = _merge_people(vertices, faces)
        fragments = rasterize(merged, merged_faces, focal, torch.as_tensor(principal_point, dtype=torch.float32).reshape(1, 2),
                              image_size)  # fmt: skip
        person = torch.where(fragments.mask[0], person_of_face[fragments.pix_to_face[0].clamp(min=0)], -1)
    return (person[None] == torch.arange(vertices.shape[0], device=person.device)[:, None, None]).cpu().numpy()


def render_overlay(
    image: np.ndarray,
    vertices_cam,
    faces,
    focal,
    principal_point,
    color=DEFAULT_MESH_COLOR,
    alpha: float = 0.85,
) -> np.ndarray:
    """Lambert-shaded mesh(es) composited on the photo -> (H,W,3) uint8.

    image (H,W,3) uint8 RGB; vertices_cam (V,3) or (N,V,3) camera frame metres; faces (F,3);
    focal scalar or (fx, fy) px; principal_point (2,) px; alpha: mesh opacity in [0,1].
    Only the meshes' box in the photo is rasterized and shaded (a person covers a small part
    of a big photo: 3 s -> 0.2 s at 2048 x 2048); its pixels are those of the whole frame.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H,W,3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _mesh_window(vertices_cam, focal, principal_point, width, height)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shift = np.array([x0, y0], dtype=np.float64)
    rgb, mask = render_shaded(vertices_cam, faces, focal, np.asarray(principal_point, dtype=np.float64).reshape(2) - shift,
                              (x1 - x0, y1 - y0), color)  # fmt: skip
    window = image[y0:y1, x0:x1].astype(np.float32)
    weight = alpha * mask[..., None].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(np.round(window * (1.0 - weight) + rgb.astype(np.float32) * weight), 0, 255)
    return out


def _mesh_window(vertices_cam, focal, principal_point, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer px: the box of the vertices in front of the camera, projected, one
    pixel wider each side, inside the width x height photo; the whole photo when a vertex lies
    behind the camera (its faces may still cross the view)."""
    vertices = torch.as_tensor(vertices_cam).detach().to(torch.float32).reshape(-1, 3)
    if not len(vertices) or bool((vertices[:, 2] <= 1e-3).any()):
        return 0, 0, width, height
    focal_xy = torch.as_tensor(focal, dtype=torch.float32).reshape(1, -1)  # (1,1) or (1,2): fx, fy
    centre = torch.as_tensor(np.asarray(principal_point, dtype=np.float64).reshape(1, 2), dtype=torch.float32)
    px = perspective_project(vertices[None], focal_xy, centre)[0]
    lo, hi = px.min(0).values, px.max(0).values
    x0, y0 = (max(0, math.floor(float(v)) - 1) for v in lo)
    x1, y1 = min(width, math.ceil(float(hi[0])) + 1), min(height, math.ceil(float(hi[1])) + 1)
    return x0, y0, x1, y1


def render_side_view(
    vertices_cam,
    faces,
    image_size,
    focal: float | None = None,
    angle_degrees: float = 90.0,
    color=DEFAULT_MESH_COLOR,
    background=(255, 255, 255),
    fill: float = 0.9,
) -> np.ndarray:
    """The mesh(es) turned about the vertical axis through their centre, re-framed to fit -> (H,W,3) uint8.

    vertices_cam (V,3) or (N,V,3) camera frame metres; image_size (W,H) of the output;
    angle_degrees: rotation about the camera's y axis (90 = seen from the person's left when
    they face the camera); focal px (default: the image diagonal); fill: fraction of the
    image the mesh may span. Centre = centre of the bounding box of all vertices.
    """
    width, height = image_size_wh(image_size)
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    vertices, faces = _as_mesh_batch(vertices_cam, faces)
    focal = float(focal) if focal is not None else math.hypot(width, height)
    flat = vertices.reshape(-1, 3)
    centre = (flat.amin(0) + flat.amax(0)) / 2
    angle = math.radians(angle_degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # Rotation about the camera y axis (down): x' = cos x + sin z, z' = -sin x + cos z.
    rotation = torch.tensor(
        [[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]], dtype=vertices.dtype, device=vertices.device
    )
    turned = (vertices - centre) @ rotation.T
    # Distance so every vertex projects within `fill` of the half-width/height: f*|x|/(z+d) <= fill*W/2.
    x, y, z = turned.reshape(-1, 3).unbind(-1)
    need_x = focal * x.abs() / (fill * width / 2) - z
    need_y = focal * y.abs() / (fill * height / 2) - z
    distance = float(torch.maximum(need_x, need_y).max())
    distance = max(distance, float((-z).max()) + 1e-2)
    placed = turned + torch.tensor([0.0, 0.0, distance], dtype=vertices.dtype, device=vertices.device)
    rgb, mask = render_shaded(placed, faces, focal, (width / 2, height / 2), (width, height), color)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = np.asarray(background, dtype=np.uint8)
    out[mask] = rgb[mask]
    return out


def draw_keypoints(
    image: np.ndarray,
    points,
    confidence=None,
    skeleton: Sequence[tuple[int, int]] = (),
    left: Iterable[int] = (),
    right: Iterable[int] = (),
    min_confidence: float = MIN_DRAWN_CONFIDENCE,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Keypoints and limbs drawn on a copy of the image -> (H,W,3) uint8.

    points (K,2) px (x, y); confidence (K,) (None = all 1); skeleton: index pairs to join;
    left/right: keypoint indices on the person's left/right side (LEFT_COLOR / RIGHT_COLOR,
    others CENTER_COLOR; a limb takes its side if either end has one). Points below
    `min_confidence` and limbs touching them are skipped. Radius/thickness default to image size.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H,W,3) uint8, got shape {image.shape} dtype {image.dtype}")
    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (K,2) pixels, got shape {pts.shape}")
    conf = (
        np.ones(len(pts))
        if confidence is None
        else np.asarray(
            confidence.detach().cpu() if torch.is_tensor(confidence) else confidence, dtype=np.float64
        ).reshape(-1)
    )
    if conf.shape[0] != len(pts):
        raise ValueError(f"confidence must have one value per keypoint ({len(pts)}), got {conf.shape[0]}")
    left_set, right_set = set(int(i) for i in left), set(int(i) for i in right)
    scale = max(image.shape[:2]) / 512.0
    radius = radius if radius is not None else max(2, int(round(4 * scale)))
    thickness = thickness if thickness is not None else _line_thickness(image)
    usable = (conf >= min_confidence) & np.isfinite(pts).all(axis=1)

    def side_color(indices: Iterable[int]) -> tuple[int, int, int]:
        indices = set(indices)
        if indices & left_set:
            return LEFT_COLOR
        if indices & right_set:
            return RIGHT_COLOR
        return CENTER_COLOR

    canvas = np.ascontiguousarray(image.copy())
    shift = 4  # sub-pixel precision for cv2 drawing
    to_fixed = lambda p: (int(round(p[0] * (1 << shift))), int(round(p[1] * (1 << shift))))  # noqa: E731
    for a, b in skeleton:
        if not (0 <= a < len(pts) and 0 <= b < len(pts)):
            raise ValueError(f"skeleton pair ({a}, {b}) is outside 0..{len(pts) - 1}")
        if usable[a] and usable[b]:
            # Pixel centres are at +0.5; cv2 puts pixel centres at integers.
            cv2.line(
                canvas,
                to_fixed(pts[a] - 0.5),
                to_fixed(pts[b] - 0.5),
                side_color((a, b)),
                thickness,
                cv2.LINE_AA,
                shift,
            )
    for index in np.nonzero(usable)[0]:
        cv2.circle(
            canvas, to_fixed(pts[index] - 0.5), radius << shift, side_color((int(index),)), -1, cv2.LINE_AA, shift
        )
    return canvas


def _line_thickness(image: np.ndarray) -> int:
    """Default line width (px) for drawings on `image`: 2 px per 512 px of its long side."""
    return max(1, int(round(2 * max(image.shape[:2]) / 512.0)))


def draw_box(image: np.ndarray, box_xyxy, color=FAILED_COLOR, thickness: int | None = None) -> np.ndarray:
    """A rectangle (x0, y0, x1, y1) px drawn on a copy of the image (H,W,3) uint8; thickness
    defaults to the image size (like draw_keypoints' limbs)."""
    canvas = np.ascontiguousarray(np.asarray(image).copy())
    x0, y0, x1, y1 = (int(round(float(v))) for v in box_xyxy)
    thickness = thickness if thickness is not None else _line_thickness(canvas)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), tuple(int(c) for c in color), thickness)
    return canvas


def colorize_part_labels(labels, colors, background=(0, 0, 0)) -> np.ndarray:
    """Part id image (H,W) (ids >= 0, anything else background) -> (H,W,3) uint8 colour map.

    colors (P,3) uint8 RGB, e.g. `fitter.body.parts.part_colors(12)`.
    """
    ids = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels).astype(np.int64)
    palette = np.asarray(colors.cpu() if torch.is_tensor(colors) else colors, dtype=np.uint8)
    if ids.ndim != 2:
        raise ValueError(f"labels must be (H,W), got shape {ids.shape}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"colors must be (P,3) RGB, got shape {palette.shape}")
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    out[:] = np.asarray(background, dtype=np.uint8)
    known = (ids >= 0) & (ids < len(palette))
    out[known] = palette[ids[known]]
    return out
