"""A differentiable soft silhouette in plain torch (SoftRas-like, contour based).

At a pixel centre p the soft silhouette is S(p) = sigmoid(s(p) * d(p) / tau), where d is the
distance (px) from p to the nearest edge of the projected silhouette contour, s = +1 inside the
hard silhouette and -1 outside, and `tau` (px) sets the softness. Gradients reach the vertices
through d (the nearest contour edge's end points). Frames: vertices in the camera frame
(OpenCV, metres) projected with `fitter.geometry.perspective_project`; pixel centres at
(col + 0.5, row + 0.5).

How this differs from SoftRas (Liu et al., ICCV 2019), and why: SoftRas takes a sigmoid of the
squared distance to every face's edges and aggregates 1 - prod(1 - D_f). With the many small
faces of a body mesh that union dilates the mask (measured: +13 % area at 128 px, +5.5 % at 256 px, 20k-face
ellipsoid, sigma = 1 px^2) and interior edges leave seams; the squared distance also has zero
gradient at the contour. Here only contour edges count and the nearest one wins (for pixels
outside the mesh this equals SoftRas's max-aggregated distance to the nearest face), the
sigmoid takes the signed distance itself, so S = 0.5 exactly on the contour and the gradient
is largest there.

Culling, so it runs on a CPU: the hard rasterizer gives the mask; only pixels within the band
where the sigmoid is not saturated (|d| < tau * ln(1/eps - 1)) get soft values with gradients,
pixels deeper inside are 1 and pixels farther outside are 0 (constants, no gradient). Contour
edges = edges whose two faces have opposite orientation in the image (or open edges) and that
lie next to a background pixel; each is evaluated only on band pixels within its box grown
by the band width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fitter.render.rasterizer import (
    DEFAULT_MAX_PAIRS,
    _check_mesh,
    _project,
    face_boxes,
    face_pixel_pairs,
    image_size_wh,
    rasterize_projected,
)

__all__ = ["soft_silhouette", "soft_silhouette_projected", "mesh_edges", "rim_edges"]


_EDGE_CACHE: list[tuple[Tensor, tuple[Tensor, Tensor]]] = []


def mesh_edges(faces: Tensor) -> tuple[Tensor, Tensor]:
    """Unique undirected edges of a triangle mesh.

    Returns edges (E,2) long (vertex ids, smaller first) and edge_of_corner (F,3): the edge
    index of each face's sides (v0-v1, v1-v2, v2-v0). The last few topologies are cached
    (compared by value), since fitting calls this every step with the same faces.
    """
    for cached_faces, result in _EDGE_CACHE:
        if cached_faces.shape == faces.shape and cached_faces.device == faces.device and torch.equal(cached_faces, faces):
            return result
    first = faces[:, [0, 1, 2]].reshape(-1)
    second = faces[:, [1, 2, 0]].reshape(-1)
    lo, hi = torch.minimum(first, second), torch.maximum(first, second)
    base = int(faces.max()) + 1
    keys, edge_of = torch.unique(lo * base + hi, return_inverse=True)
    edges = torch.stack([torch.div(keys, base, rounding_mode="floor"), keys % base], dim=1)
    result = (edges, edge_of.view(-1, 3))
    _EDGE_CACHE.insert(0, (faces.clone(), result))
    del _EDGE_CACHE[4:]
    return result


def rim_edges(points_px: Tensor, faces: Tensor, edges: Tensor, edge_of_corner: Tensor) -> Tensor:
    """(B,E) bool: open edges and edges whose faces have opposite (or zero) projected orientation.

    points_px (B,V,2) projected vertices; faces (F,3); edges/edge_of_corner from `mesh_edges`.
    """
    corners = points_px[:, faces]  # (B,F,3,2)
    a, b, c = corners[:, :, 0], corners[:, :, 1], corners[:, :, 2]
    area2 = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    orientation = torch.sign(area2).repeat_interleave(3, dim=1)  # (B,3F), same order as edge_of_corner
    flat = edge_of_corner.reshape(-1)
    num_edges = edges.shape[0]
    signed_sum = torch.zeros(points_px.shape[0], num_edges, dtype=orientation.dtype, device=points_px.device)
    signed_sum.index_add_(1, flat, orientation)
    abs_sum = torch.zeros_like(signed_sum).index_add_(1, flat, orientation.abs())
    count = torch.bincount(flat, minlength=num_edges).to(orientation.dtype)[None]
    return (count < 2) | (signed_sum.abs() < abs_sum) | (abs_sum < count)


def _square_max_filter(image: Tensor, radius: int) -> Tensor:
    """Max over the (2r+1)^2 square around each pixel of (B,1,H,W), ignoring outside; separable."""
    kernel = 2 * radius + 1
    rows = F.max_pool2d(image, (1, kernel), stride=1, padding=(0, radius))
    return F.max_pool2d(rows, (kernel, 1), stride=1, padding=(radius, 0))


def _point_segment_distance(q: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Distance (K,) from points q (K,2) to segments u-v (K,2); differentiable (safe at 0)."""
    edge = v - u
    t = ((q - u) * edge).sum(-1) / (edge * edge).sum(-1).clamp(min=1e-12)
    closest = u + t.clamp(0.0, 1.0)[:, None] * edge
    return torch.sqrt(((q - closest) ** 2).sum(-1) + 1e-12)


def soft_silhouette_projected(
    points_px: Tensor,
    depths: Tensor,
    faces: Tensor,
    image_size,
    tau: float = 1.0,
    eps: float = 1e-3,
    near: float = 1e-3,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Tensor:
    """Soft silhouette (B,H,W) in [0,1] of meshes already projected to pixels.

    points_px (B,V,2) px (gradients flow to them); depths (B,V) camera z, metres (faces with a
    corner nearer than `near` are skipped); faces (F,3); image_size (W,H); tau px: softness;
    eps: sigmoid values below eps (or above 1 - eps) are snapped to 0 (1), which sets the band.
    """
    if tau <= 0 or not 0 < eps < 0.5:
        raise ValueError(f"tau must be > 0 px and eps in (0, 0.5), got tau={tau}, eps={eps}")
    width, height = image_size_wh(image_size)
    faces = torch.as_tensor(faces, device=points_px.device).long()
    batch = points_px.shape[0]
    device = points_px.device
    margin = tau * math.log(1.0 / eps - 1.0)
    radius = int(math.ceil(margin))
    with torch.no_grad():
        points = points_px.detach()
        hard = rasterize_projected(points, depths.detach(), faces, (width, height), near=near).mask
        hard_f = hard.float()[:, None]
        grown = _square_max_filter(hard_f, radius)[:, 0] > 0
        shrunk = -_square_max_filter(-hard_f, radius)[:, 0] > 0
        band = grown & ~shrunk  # (B,H,W)
        # Background pixels and their 8 neighbours: where a contour edge must pass.
        near_background = _square_max_filter(1.0 - hard_f, 1)[:, 0] > 0
        edges, edge_of_corner = mesh_edges(faces)
        in_front = depths.detach() > near
        candidate = rim_edges(points, faces, edges, edge_of_corner) & in_front[:, edges].all(dim=2)  # (B,E)
        ends = points[:, edges]  # (B,E,2,2)
        probes = torch.stack([ends[:, :, 0], ends.mean(dim=2), ends[:, :, 1]], dim=2)  # (B,E,3,2)
        cols = torch.floor(probes[..., 0]).long().clamp(0, width - 1)
        rows = torch.floor(probes[..., 1]).long().clamp(0, height - 1)
        b_idx = torch.arange(batch, device=device)[:, None, None]
        candidate &= near_background[b_idx, rows, cols].any(dim=2)
        num_edges = edges.shape[0]
        # Enumerate (edge, band pixel) pairs; an edge is a degenerate triangle (u, v, v).
        segment_xy = ends[:, :, [0, 1, 1]].reshape(batch * num_edges, 3, 2)
        boxes = face_boxes(segment_xy, width, height, margin=margin, valid=candidate.reshape(-1))
        pixel_base = torch.arange(batch, device=device).repeat_interleave(num_edges) * (height * width)
        pixel_base = pixel_base + boxes.y0 * width + boxes.x0
        band_flat = band.reshape(-1)

        def in_band(e: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
            return band_flat[pixel_base[e] + dy * width + dx]

        flat_u = ends[:, :, 0].reshape(-1, 2)
        flat_v = ends[:, :, 1].reshape(-1, 2)
        best = torch.full((batch * height * width,), float("inf"), device=device)
        chosen_edge = torch.full((batch * height * width,), -1, dtype=torch.long, device=device)
        for e, dx, dy in face_pixel_pairs(boxes, keep=in_band, max_pairs=max_pairs):
            pix = pixel_base[e] + dy * width + dx
            q = torch.stack([boxes.x0[e] + dx, boxes.y0[e] + dy], dim=-1).to(points.dtype) + 0.5
            distance = _point_segment_distance(q, flat_u[e], flat_v[e]).float()
            best.scatter_reduce_(0, pix, distance, reduce="amin")
            win = distance <= best[pix]
            chosen_edge[pix[win]] = -1
            chosen_edge.scatter_reduce_(0, pix[win], e[win], reduce="amax")
        soft_pixels = torch.nonzero((chosen_edge >= 0) & (best <= margin)).squeeze(1)
    result = hard.to(points_px.dtype).reshape(-1)
    if soft_pixels.numel() == 0:
        return result.view(batch, height, width)
    edge = chosen_edge[soft_pixels]
    b = torch.div(edge, num_edges, rounding_mode="floor")
    vertex_pair = edges[edge - b * num_edges]  # (P,2)
    u = points_px[b, vertex_pair[:, 0]]
    v = points_px[b, vertex_pair[:, 1]]
    within = soft_pixels - b * (height * width)
    q = torch.stack([within % width, torch.div(within, width, rounding_mode="floor")], dim=-1).to(points_px.dtype) + 0.5
    sign = torch.where(hard.reshape(-1)[soft_pixels], 1.0, -1.0).to(points_px.dtype)
    values = torch.sigmoid(sign * _point_segment_distance(q, u, v) / tau)
    result = result.index_put((soft_pixels,), values)
    return result.view(batch, height, width)


def soft_silhouette(
    vertices_cam: Tensor,
    faces: Tensor,
    focal,
    principal_point,
    image_size,
    tau: float = 1.0,
    eps: float = 1e-3,
    near: float = 1e-3,
) -> Tensor:
    """Soft silhouette (B,H,W) in [0,1] of meshes seen by a pinhole camera, differentiable in the vertices.

    vertices_cam (B,V,3) or (V,3) camera frame, metres; faces (F,3); focal scalar, (B,) or (B,2)
    px; principal_point (2,) or (B,2) px; image_size (W,H); tau px (edge softness).
    """
    vertices_cam, faces = _check_mesh(vertices_cam, faces)
    points_px = _project(vertices_cam, focal, principal_point)
    return soft_silhouette_projected(points_px, vertices_cam[..., 2], faces, image_size, tau=tau, eps=eps, near=near)
