"""A z-buffered triangle rasterizer in plain torch (no OpenGL, no compiled extension).

Frames and units: vertices are in the camera frame (OpenCV: x right, y down, z forward,
metres) and are projected with `fitter.geometry.perspective_project`. Pixel (row i, column j)
has its centre at (x, y) = (j + 0.5, i + 0.5) px; the origin is the top-left corner of the
top-left pixel. A pixel belongs to a triangle when its centre lies inside or on the edge of the
projected triangle; the nearest such triangle (smallest camera z) wins the z-test.

Method (why not a library: pytorch3d/nvdiffrast do not install here, OpenGL needs a display):
every face is expanded into the (face, pixel) pairs of its clipped pixel bounding box. Boxes up
to 64 px a side are grouped by size class (next power of two of width and height) and tested on
one broadcast grid per class; larger boxes are expanded into an explicit pair list. Pairs are
tested with per-face affine edge functions and perspective-correct inverse depth written
relative to the box corner (small integer offsets keep float32 accurate; a 1e-6 barycentric
tolerance closes cracks on shared edges), and the z-test is a `scatter_reduce(amax)` of inverse
depth per pixel. Work is chunked to about `max_pairs` pairs, so memory stays bounded for large
triangles. The search runs without autograd; barycentrics and depth of the winning face are then
recomputed per pixel with autograd, so they are differentiable with respect to the vertices
(the face assignment itself is not). Faces with a vertex closer than `near` to the camera plane
are skipped (no clipping).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from fitter.geometry import perspective_project

__all__ = [
    "Fragments",
    "rasterize",
    "rasterize_projected",
    "render_mask",
    "render_depth",
    "render_part_labels",
    "vertex_visibility",
    "interpolate_vertex_attributes",
    "FaceBoxes",
    "face_boxes",
    "face_pixel_pairs",
    "image_size_wh",
]

DEFAULT_MAX_PAIRS = 1 << 21
_INSIDE_TOLERANCE = 1e-6  # barycentric units


@dataclass
class Fragments:
    """Per-pixel rasterization result for B meshes on an H x W image.

    pix_to_face (B,H,W) long: index into `faces` (0..F-1) of the visible face, -1 background.
    depth (B,H,W) float: camera-frame z of the visible surface in metres, 0 on background.
    bary (B,H,W,3) float: perspective-correct barycentric weights of the face's 3 vertices
    (in the order of `faces`), 0 on background.
    """

    pix_to_face: Tensor
    depth: Tensor
    bary: Tensor

    @property
    def mask(self) -> Tensor:
        """(B,H,W) bool, True where some face is visible."""
        return self.pix_to_face >= 0


def image_size_wh(image_size) -> tuple[int, int]:
    """Validate an image size given as (W, H) and return it as two positive ints."""
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError) as err:
        raise ValueError(f"image_size must be (W, H) in pixels, got {image_size!r}") from err
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (W, H) in pixels, got {image_size!r}")
    return width, height


def _check_mesh(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    if vertices.ndim == 2:
        vertices = vertices[None]
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (B,V,3) or (V,3) camera-frame metres, got shape {tuple(vertices.shape)}")
    faces = torch.as_tensor(faces, device=vertices.device)
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (F,3) vertex indices, got shape {tuple(faces.shape)}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]):
        raise ValueError(f"faces index vertices outside 0..{vertices.shape[1] - 1}")
    return vertices, faces


def _project(vertices: Tensor, focal, principal_point) -> Tensor:
    batch = vertices.shape[0]
    focal = torch.as_tensor(focal, dtype=vertices.dtype, device=vertices.device)
    if focal.ndim >= 1 and focal.shape[0] not in (1, batch):
        raise ValueError(f"focal must be a scalar, (B,) or (B,2) with B={batch}, got shape {tuple(focal.shape)}")
    if focal.ndim >= 1 and focal.shape[0] == 1 and batch > 1:
        focal = focal.expand(batch, *focal.shape[1:])
    pp = torch.as_tensor(principal_point, dtype=vertices.dtype, device=vertices.device)
    if pp.shape[-1] != 2:
        raise ValueError(f"principal_point must be (2,) or (B,2) pixels, got shape {tuple(pp.shape)}")
    if pp.ndim == 2 and pp.shape[0] == 1 and batch > 1:
        pp = pp.expand(batch, 2)
    return perspective_project(vertices, focal, pp)


@dataclass
class FaceBoxes:
    """Clipped pixel bounding boxes of N projected faces (all long tensors of shape (N,)).

    Box k covers columns x0[k] .. x0[k]+width[k]-1 and rows y0[k] .. y0[k]+height[k]-1;
    width or height 0 means the face is skipped (outside the image, invalid or not finite).
    """

    x0: Tensor
    y0: Tensor
    width: Tensor
    height: Tensor


def face_boxes(face_xy: Tensor, width: int, height: int, margin: float = 0.0, valid: Tensor | None = None) -> FaceBoxes:
    """Pixel boxes whose pixel centres lie within `margin` px of each face's bounding box.

    face_xy (N,3,2) projected triangle corners in pixels; valid (N,) bool drops faces.
    """
    with torch.no_grad():
        a, b, c = face_xy.unbind(dim=1)  # elementwise min/max: much faster than amin over a size-3 dim
        lo = torch.minimum(torch.minimum(a, b), c) - margin
        hi = torch.maximum(torch.maximum(a, b), c) + margin
        # Pixel centres c = k + 0.5 with lo <= c <= hi.
        x0 = torch.ceil(lo[:, 0] - 0.5).clamp(min=0)
        y0 = torch.ceil(lo[:, 1] - 0.5).clamp(min=0)
        x1 = torch.floor(hi[:, 0] - 0.5).clamp(max=width - 1)
        y1 = torch.floor(hi[:, 1] - 0.5).clamp(max=height - 1)
        usable = torch.isfinite(face_xy).all(dim=2).all(dim=1)
        if valid is not None:
            usable = usable & valid
        # Clamp before the cast so faces far outside the image cannot overflow.
        box_w = (x1 - x0 + 1).clamp(min=0, max=width).nan_to_num(0).long()
        box_h = (y1 - y0 + 1).clamp(min=0, max=height).nan_to_num(0).long()
        box_w = torch.where(usable, box_w, torch.zeros_like(box_w))
        box_h = torch.where(usable, box_h, torch.zeros_like(box_h))
        x0 = x0.nan_to_num(0).clamp(max=width).long()
        y0 = y0.nan_to_num(0).clamp(max=height).long()
    return FaceBoxes(x0=x0, y0=y0, width=box_w, height=box_h)


# Boxes up to this size are enumerated on a fixed per-size-class grid (broadcast, no
# repeat_interleave); larger ones go through the general path.
_SMALL_BOX = 64


def face_pixel_pairs(
    boxes: FaceBoxes, keep=None, max_pairs: int = DEFAULT_MAX_PAIRS
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Enumerate the (face, pixel) pairs of each face's box, in chunks of about `max_pairs`.

    keep: optional callable (face_ids, dx, dy) -> bool mask over broadcastable index tensors
    (face ids (n,1) with offsets (1,S), or all three (K,)); only kept pairs are yielded.
    Yields (face_ids (K,), dx (K,), dy (K,)) long: the pixel is column x0[f]+dx, row y0[f]+dy.
    """
    # No torch.no_grad() here: a grad-mode context held across `yield` would leak into the
    # caller's loop body. Everything below is integer/bool bookkeeping without autograd.
    device = boxes.x0.device
    count = boxes.width * boxes.height
    small = (count > 0) & (boxes.width <= _SMALL_BOX) & (boxes.height <= _SMALL_BOX)
    large = (count > 0) & ~small
    small_ids = torch.nonzero(small).squeeze(1)
    if small_ids.numel():
        # Size class = next power of two of the box's width and height.
        cls_w = torch.ceil(torch.log2(boxes.width[small_ids].float())).long()
        cls_h = torch.ceil(torch.log2(boxes.height[small_ids].float())).long()
        key = cls_w * 16 + cls_h
        order = torch.argsort(key)
        small_ids, key = small_ids[order], key[order]
        keys, group_sizes = torch.unique_consecutive(key, return_counts=True)
        start = 0
        for k, n in zip(keys.tolist(), group_sizes.tolist()):
            ids = small_ids[start : start + n]
            start += n
            grid_w, grid_h = 1 << (k // 16), 1 << (k % 16)
            slots = grid_w * grid_h
            dx = torch.arange(grid_w, device=device).repeat(grid_h)[None]
            dy = torch.arange(grid_h, device=device).repeat_interleave(grid_w)[None]
            per_chunk = max(1, max_pairs // slots)
            for c0 in range(0, n, per_chunk):
                f = ids[c0 : c0 + per_chunk, None]
                box_w, box_h = boxes.width[f], boxes.height[f]
                mask = (dx < box_w) & (dy < box_h)
                if keep is not None:
                    # keep() only ever sees pixels inside the box (slots past it are clamped).
                    mask = mask & keep(f, torch.minimum(dx, box_w - 1), torch.minimum(dy, box_h - 1))
                rows, cols = torch.nonzero(mask, as_tuple=True)
                if rows.numel():
                    yield f[rows, 0], dx[0, cols], dy[0, cols]
    large_ids = torch.nonzero(large).squeeze(1)
    if large_ids.numel() == 0:
        return
    counts = count[large_ids]
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1])
    bounds = [0, int(large_ids.numel())]
    if total > max_pairs:
        marks = torch.arange(max_pairs, total, max_pairs, device=device)
        bounds = [0, *sorted(set(torch.searchsorted(ends, marks, right=True).tolist())), int(large_ids.numel())]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if stop <= start:
            continue
        faces_c, counts_c = large_ids[start:stop], counts[start:stop]
        n_pairs = int(counts_c.sum())
        local = torch.repeat_interleave(torch.arange(stop - start, device=device), counts_c, output_size=n_pairs)
        offset = torch.arange(n_pairs, device=device) - (torch.cumsum(counts_c, 0) - counts_c)[local]
        f = faces_c[local]
        w = boxes.width[f]
        dy = torch.div(offset, w, rounding_mode="floor")
        dx = offset - dy * w
        if keep is not None:
            sel = torch.nonzero(keep(f, dx, dy)).squeeze(1)
            f, dx, dy = f[sel], dx[sel], dy[sel]
        if f.numel():
            yield f, dx, dy


def _face_affine_coefficients(face_xy: Tensor, face_z: Tensor, x0: Tensor, y0: Tensor) -> tuple[Tensor, Tensor]:
    """Per-face affine functions of the pixel offset (dx, dy) from the box corner's pixel centre.

    Returns coef (9,N): rows [a, b, c] of barycentric l0, then l1, then inverse depth 1/z, each
    value = a*dx + b*dy + c; and ok (N,) bool (non-degenerate). Computed in float64 for
    accuracy, returned in float32 (row-major per coefficient, so gathers stay contiguous).
    """
    xy = face_xy.double()
    origin = torch.stack([x0.double() + 0.5, y0.double() + 0.5], dim=-1)  # (N,2)
    p = xy - origin[:, None, :]  # corners relative to the first pixel centre
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = area2.abs() > 1e-12
    inv_area = torch.where(ok, 1.0 / torch.where(ok, area2, torch.ones_like(area2)), torch.zeros_like(area2))

    def edge(u: Tensor, v: Tensor) -> Tensor:
        # Signed area of (u, v, q) as an affine function of q = (dx, dy), divided by area2.
        ca = -(v[:, 1] - u[:, 1])
        cb = v[:, 0] - u[:, 0]
        cc = (v[:, 1] - u[:, 1]) * u[:, 0] - (v[:, 0] - u[:, 0]) * u[:, 1]
        return torch.stack([ca, cb, cc], dim=-1) * inv_area[:, None]

    l0 = edge(b, c)  # weight of corner a
    l1 = edge(c, a)  # weight of corner b
    l2 = -l0 - l1
    l2[:, 2] += 1.0
    inv_z = 1.0 / face_z.double()  # (N,3)
    inv_depth = l0 * inv_z[:, 0:1] + l1 * inv_z[:, 1:2] + l2 * inv_z[:, 2:3]
    coef = torch.cat([l0, l1, inv_depth], dim=1).t().contiguous().float()
    return coef, ok


def rasterize_projected(
    points_px: Tensor,
    depths: Tensor,
    faces: Tensor,
    image_size,
    near: float = 1e-3,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Fragments:
    """Rasterize meshes already projected to pixels.

    points_px (B,V,2) pixel coordinates; depths (B,V) camera-frame z in metres (must be > near
    for a face to be drawn); faces (F,3) long; image_size (W,H). Barycentrics are perspective
    correct for a pinhole camera (1/z is interpolated linearly in the image).
    """
    width, height = image_size_wh(image_size)
    if points_px.ndim != 3 or points_px.shape[-1] != 2 or depths.shape != points_px.shape[:2]:
        raise ValueError(
            f"points_px must be (B,V,2) and depths (B,V), got {tuple(points_px.shape)} and {tuple(depths.shape)}"
        )
    faces = torch.as_tensor(faces, device=points_px.device).long()
    batch, num_faces = points_px.shape[0], faces.shape[0]
    device = points_px.device
    num_pixels = batch * height * width
    face_to_global = torch.full((num_pixels,), -1, dtype=torch.long, device=device)
    with torch.no_grad():
        face_xy = points_px.detach()[:, faces].reshape(batch * num_faces, 3, 2)
        face_z = depths.detach()[:, faces].reshape(batch * num_faces, 3)
        boxes = face_boxes(face_xy, width, height, valid=(face_z > near).all(dim=1))
        coef, ok = _face_affine_coefficients(face_xy, face_z.clamp(min=near), boxes.x0, boxes.y0)
        pixel_base = torch.arange(batch, device=device).repeat_interleave(num_faces) * (height * width)
        pixel_base = pixel_base + boxes.y0 * width + boxes.x0

        def inside(f: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
            dxf, dyf = dx.float(), dy.float()
            l0 = coef[0][f] * dxf + coef[1][f] * dyf + coef[2][f]
            l1 = coef[3][f] * dxf + coef[4][f] * dyf + coef[5][f]
            return (l0 >= -_INSIDE_TOLERANCE) & (l1 >= -_INSIDE_TOLERANCE) & (l0 + l1 <= 1 + _INSIDE_TOLERANCE) & ok[f]

        best_inv_z = torch.zeros(num_pixels, dtype=torch.float32, device=device)
        for f, dx, dy in face_pixel_pairs(boxes, keep=inside, max_pairs=max_pairs):
            inv_z = coef[6][f] * dx.float() + coef[7][f] * dy.float() + coef[8][f]
            pix = pixel_base[f] + dy * width + dx
            best_inv_z.scatter_reduce_(0, pix, inv_z, reduce="amax")
            win = inv_z >= best_inv_z[pix]
            pix_w, face_w = pix[win], f[win]
            # A strictly nearer face replaces the entry; equal depths keep the larger face id.
            face_to_global[pix_w] = -1
            face_to_global.scatter_reduce_(0, pix_w, face_w, reduce="amax")
    face_to_global = face_to_global.view(batch, height, width)
    batch_offset = (torch.arange(batch, device=device) * num_faces).view(batch, 1, 1)
    pix_to_face = torch.where(face_to_global >= 0, face_to_global - batch_offset, face_to_global)
    bary, depth = _barycentrics_at_pixels(points_px, depths, faces, pix_to_face, width, height)
    return Fragments(pix_to_face=pix_to_face, depth=depth, bary=bary)


def _barycentrics_at_pixels(
    points_px: Tensor, depths: Tensor, faces: Tensor, pix_to_face: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """Differentiable perspective-correct barycentrics (B,H,W,3) and depth (B,H,W) of the visible faces."""
    batch = points_px.shape[0]
    dtype = points_px.dtype
    bary = torch.zeros(batch, height, width, 3, dtype=dtype, device=points_px.device)
    depth = torch.zeros(batch, height, width, dtype=dtype, device=points_px.device)
    b_idx, rows, cols = torch.nonzero(pix_to_face >= 0, as_tuple=True)
    if b_idx.numel() == 0:
        return bary, depth
    corner_ids = faces[pix_to_face[b_idx, rows, cols]]  # (P,3)
    corners = points_px[b_idx[:, None], corner_ids]  # (P,3,2)
    corner_z = depths[b_idx[:, None], corner_ids]  # (P,3)
    q = torch.stack([cols.to(dtype) + 0.5, rows.to(dtype) + 0.5], dim=-1)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]

    def cross(u: Tensor, v: Tensor) -> Tensor:
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    area2 = cross(b - a, c - a)
    safe = torch.where(area2.abs() > 1e-12, area2, torch.full_like(area2, 1e-12))
    l0 = cross(c - b, q - b) / safe
    l1 = cross(a - c, q - c) / safe
    l2 = 1.0 - l0 - l1
    screen = torch.stack([l0, l1, l2], dim=-1)
    weighted = screen / corner_z
    inv_depth = weighted.sum(dim=-1)
    bary_p = weighted / inv_depth[:, None]
    bary.index_put_((b_idx, rows, cols), bary_p)
    depth.index_put_((b_idx, rows, cols), 1.0 / inv_depth)
    return bary, depth


def rasterize(
    vertices_cam: Tensor,
    faces: Tensor,
    focal,
    principal_point,
    image_size,
    near: float = 1e-3,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Fragments:
    """Rasterize B meshes seen by a pinhole camera.

    vertices_cam (B,V,3) or (V,3) camera frame, metres; faces (F,3); focal scalar, (B,) or
    (B,2) px; principal_point (2,) or (B,2) px; image_size (W,H). Returns `Fragments`.
    """
    vertices_cam, faces = _check_mesh(vertices_cam, faces)
    points_px = _project(vertices_cam, focal, principal_point)
    return rasterize_projected(points_px, vertices_cam[..., 2], faces, image_size, near=near, max_pairs=max_pairs)


def render_mask(vertices_cam: Tensor, faces: Tensor, focal, principal_point, image_size, near: float = 1e-3) -> Tensor:
    """Binary person mask (B,H,W) bool: pixels whose centre is covered by the mesh."""
    return rasterize(vertices_cam, faces, focal, principal_point, image_size, near=near).mask


def render_depth(vertices_cam: Tensor, faces: Tensor, focal, principal_point, image_size, near: float = 1e-3) -> Tensor:
    """Depth map (B,H,W): camera-frame z (metres) of the nearest surface, 0 on background."""
    return rasterize(vertices_cam, faces, focal, principal_point, image_size, near=near).depth


def interpolate_vertex_attributes(fragments: Fragments, faces: Tensor, attributes: Tensor) -> Tensor:
    """Interpolate per-vertex attributes (B,V,C) or (V,C) with the barycentrics -> (B,H,W,C); 0 on background."""
    faces = torch.as_tensor(faces, device=fragments.pix_to_face.device).long()
    batch, height, width = fragments.pix_to_face.shape
    if attributes.ndim == 2:
        attributes = attributes[None].expand(batch, -1, -1)
    face_index = fragments.pix_to_face.clamp(min=0).reshape(batch, -1)  # (B,HW)
    corner_ids = faces[face_index]  # (B,HW,3)
    batch_index = torch.arange(batch, device=attributes.device)[:, None, None]
    values = attributes[batch_index, corner_ids]  # (B,HW,3,C)
    out = (values * fragments.bary.reshape(batch, -1, 3, 1).to(values.dtype)).sum(dim=2)
    out = out * fragments.mask.reshape(batch, -1, 1)
    return out.reshape(batch, height, width, -1)


def render_part_labels(
    vertices_cam: Tensor,
    faces: Tensor,
    focal,
    principal_point,
    image_size,
    vertex_labels: Tensor | None = None,
    face_labels: Tensor | None = None,
    background: int = -1,
    near: float = 1e-3,
) -> Tensor:
    """Per-pixel part id (B,H,W) long of the visible surface; `background` elsewhere.

    Give exactly one of vertex_labels (V,) or face_labels (F,) (ints >= 0). With per-vertex
    labels a pixel takes the label of the visible face's corner with the largest barycentric
    weight, so part borders inside a face follow the vertex labels.
    """
    if (vertex_labels is None) == (face_labels is None):
        raise ValueError("give exactly one of vertex_labels (V,) or face_labels (F,)")
    vertices_cam, faces = _check_mesh(vertices_cam, faces)
    fragments = rasterize(vertices_cam, faces, focal, principal_point, image_size, near=near)
    face_index = fragments.pix_to_face.clamp(min=0)
    if face_labels is not None:
        face_labels = torch.as_tensor(face_labels, device=faces.device).long()
        if face_labels.shape != (faces.shape[0],):
            raise ValueError(f"face_labels must be ({faces.shape[0]},), got {tuple(face_labels.shape)}")
        labels = face_labels[face_index]
    else:
        vertex_labels = torch.as_tensor(vertex_labels, device=faces.device).long()
        if vertex_labels.shape != (vertices_cam.shape[1],):
            raise ValueError(f"vertex_labels must be ({vertices_cam.shape[1]},), got {tuple(vertex_labels.shape)}")
        corner = fragments.bary.detach().argmax(dim=-1, keepdim=True)  # (B,H,W,1)
        vertex_index = torch.gather(faces[face_index], -1, corner).squeeze(-1)
        labels = vertex_labels[vertex_index]
    return torch.where(fragments.mask, labels, torch.full_like(labels, background))


def vertex_visibility(
    vertices_cam: Tensor,
    faces: Tensor,
    focal,
    principal_point,
    image_size,
    depth_tolerance: float = 0.02,
    near: float = 1e-3,
) -> Tensor:
    """(B,V) bool: vertex projects into the image and is not hidden by the mesh itself.

    The 2x2 pixel centres around the vertex's projection are looked up; the vertex counts as
    visible when its camera z is at most `depth_tolerance` metres behind the farthest of their
    rendered depths (background counts as infinitely far). This errs towards "visible" on the
    silhouette rim, where the surface is seen edge-on.
    """
    vertices_cam, faces = _check_mesh(vertices_cam, faces)
    width, height = image_size_wh(image_size)
    with torch.no_grad():
        vertices_cam = vertices_cam.detach()
        points_px = _project(vertices_cam, focal, principal_point)
        fragments = rasterize_projected(points_px, vertices_cam[..., 2], faces, (width, height), near=near)
        depth = torch.where(fragments.mask, fragments.depth, torch.full_like(fragments.depth, float("inf")))
        batch = vertices_cam.shape[0]
        b_idx = torch.arange(batch, device=vertices_cam.device)[:, None]
        # Pixel centres left/above the point: floor(p - 0.5); the 2x2 block starts there.
        col0 = torch.floor(points_px[..., 0] - 0.5).long()
        row0 = torch.floor(points_px[..., 1] - 0.5).long()
        farthest = torch.full(points_px.shape[:2], -float("inf"), device=vertices_cam.device)
        for d_row in (0, 1):
            for d_col in (0, 1):
                rows, cols = row0 + d_row, col0 + d_col
                in_image = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
                value = depth[b_idx, rows.clamp(0, height - 1), cols.clamp(0, width - 1)]
                value = torch.where(in_image, value, torch.full_like(value, float("inf")))
                farthest = torch.maximum(farthest, value)
        px, py = points_px[..., 0], points_px[..., 1]
        inside = (px >= 0) & (px <= width) & (py >= 0) & (py <= height) & (vertices_cam[..., 2] > near)
        return inside & (vertices_cam[..., 2] <= farthest + depth_tolerance)
