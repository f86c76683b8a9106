"""Silhouette objectives that need no differentiable renderer.

Units and frames: pixels, origin at the top-left corner of the top-left pixel, pixel (row i,
column j) centred at (x, y) = (j + 0.5, i + 0.5); points are (x, y). Masks are (H,W) or
(B,H,W) bool, True on the person. All losses are normalised by the image diagonal
sqrt(H^2 + W^2) (distances are divided by it before squaring), so weights carry over between
resolutions.

Chamfer-style silhouette loss (`silhouette_chamfer_loss`), two terms per batch element:
1. outside: every projected vertex that lies outside the target mask is pulled in: the
   distance map of the mask (0 inside) is sampled bilinearly with `grid_sample`, so gradients
   reach the vertex positions; vertices outside the image add their distance to the image
   rectangle. Every projected vertex lies inside the rendered silhouette, so this needs no
   visibility for a whole-body mask.
2. coverage: every target boundary point is pulled by its nearest projected vertex (or face
   centroid when `faces` is given). All projected points lie inside the rendered silhouette,
   so this measures how far the mask reaches beyond it, again without visibility. The nearest
   point is found without autograd in chunks (memory stays O(chunk x V)); only the chosen
   distances carry gradients.
Resolution of term 2 is limited by the vertex spacing in pixels; pass `faces` to add face
centroids when the mesh is coarse relative to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

__all__ = [
    "SilhouetteTarget",
    "PartSilhouetteTarget",
    "mask_distance_transform",
    "mask_boundary_pixels",
    "sample_boundary_points",
    "prepare_silhouette_target",
    "prepare_part_silhouette_target",
    "sample_distance_map",
    "silhouette_chamfer_loss",
    "part_silhouette_loss",
]


def _as_bool_numpy(mask) -> np.ndarray:
    if torch.is_tensor(mask):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype != bool:
        mask = mask > 0
    return mask


def mask_distance_transform(mask, device: torch.device | str | None = None) -> Tensor:
    """Euclidean distance (px) from each pixel centre to the nearest mask pixel; 0 inside.

    mask (H,W) or (B,H,W) bool (numpy or torch; nonzero = person). Returns float32 of the same
    shape (on `device`, else on the mask's device for torch input). Raises ValueError for an
    empty mask (there is nothing to be near).
    """
    if device is None and torch.is_tensor(mask):
        device = mask.device
    array = _as_bool_numpy(mask)
    if array.ndim not in (2, 3):
        raise ValueError(f"mask must be (H,W) or (B,H,W), got shape {array.shape}")
    stack = array[None] if array.ndim == 2 else array
    out = np.empty(stack.shape, dtype=np.float32)
    for index, single in enumerate(stack):
        if not single.any():
            raise ValueError(f"mask {index} is empty: a distance transform needs at least one mask pixel")
        out[index] = ndimage.distance_transform_edt(~single)
    result = torch.from_numpy(out if array.ndim == 3 else out[0])
    return result.to(device) if device is not None else result


def mask_boundary_pixels(mask) -> np.ndarray:
    """(N,2) int (row, col) of mask pixels with a 4-neighbour outside the mask.

    The image border does not count as outside: a mask cut off by the frame (truncated person)
    has no boundary pixels along the frame.
    """
    array = _as_bool_numpy(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be (H,W), got shape {array.shape}")
    eroded = ndimage.binary_erosion(array, structure=ndimage.generate_binary_structure(2, 1), border_value=1)
    return np.argwhere(array & ~eroded)


def sample_boundary_points(mask, max_points: int = 512, seed: int = 0, ignore=None) -> Tensor:
    """(M,2) float32 pixel-centre (x, y) coordinates of boundary pixels, M <= max_points.

    When the boundary has more pixels than `max_points`, an evenly strided subset of the
    boundary pixels in a random order (fixed by `seed`) is returned. ignore (H,W) bool or None:
    boundary pixels within 2 px of it are left out (the mask ends there because something in
    front hides the person, not because the body does).
    """
    if max_points <= 0:
        raise ValueError(f"max_points must be positive, got {max_points}")
    rows_cols = mask_boundary_pixels(mask)
    if ignore is not None and _as_bool_numpy(ignore).any():
        near = ndimage.binary_dilation(_as_bool_numpy(ignore), iterations=2)
        rows_cols = rows_cols[~near[rows_cols[:, 0], rows_cols[:, 1]]]
    if len(rows_cols) > max_points:
        order = np.random.default_rng(seed).permutation(len(rows_cols))[:max_points]
        rows_cols = rows_cols[np.sort(order)]
    xy = rows_cols[:, ::-1].astype(np.float32) + 0.5
    return torch.from_numpy(np.ascontiguousarray(xy))


@dataclass
class SilhouetteTarget:
    """Precomputed target for `silhouette_chamfer_loss` (compute once per image, reuse every step).

    dist_maps (B,H,W) px; boundary_points (B,M,2) px (x, y), padded; boundary_valid (B,M) bool.
    """

    dist_maps: Tensor
    boundary_points: Tensor
    boundary_valid: Tensor

    def to(self, device: torch.device | str) -> SilhouetteTarget:
        return SilhouetteTarget(
            self.dist_maps.to(device), self.boundary_points.to(device), self.boundary_valid.to(device)
        )


def _pad_points(point_sets: Sequence[Tensor], device) -> tuple[Tensor, Tensor]:
    """List of (M_b,2) point sets -> padded (B,M,2) float32 and valid (B,M) bool on `device`."""
    longest = max([len(p) for p in point_sets] + [1])
    points = torch.zeros(len(point_sets), longest, 2, device=device)
    valid = torch.zeros(len(point_sets), longest, dtype=torch.bool, device=device)
    for index, p in enumerate(point_sets):
        points[index, : len(p)] = torch.as_tensor(p, dtype=torch.float32, device=device)
        valid[index, : len(p)] = True
    return points, valid


def prepare_silhouette_target(masks, max_boundary_points: int = 512, seed: int = 0, device=None,
                              ignore=None) -> SilhouetteTarget:  # fmt: skip
    """Distance maps and padded boundary points for masks (B,H,W) (or one mask (H,W)).

    ignore: (B,H,W) bool (or None): pixels covered by something in front of the person (another
    person): neither required nor forbidden -- the body may project there at no cost, and the
    mask's edge along them is not a silhouette edge.
    """
    if device is None and torch.is_tensor(masks):
        device = masks.device
    array = _as_bool_numpy(masks)
    if array.ndim == 2:
        array = array[None]
    hidden = np.zeros_like(array) if ignore is None else _as_bool_numpy(ignore).reshape(array.shape)
    dist = mask_distance_transform(array | hidden, device=device)
    points, valid = _pad_points([sample_boundary_points(m, max_boundary_points, seed, ignore=h) for m, h in zip(array, hidden)],
                                dist.device)  # fmt: skip
    return SilhouetteTarget(dist, points, valid)


def sample_distance_map(dist_maps: Tensor, points: Tensor) -> Tensor:
    """Bilinear sample of distance maps (B,C,H,W) at points (B,N,2) px -> (B,C,N), differentiable in points.

    Outside the image the map's border value is used, plus the point's distance to the image
    rectangle where that border value is positive, so gradients point back into the image;
    where the border value is 0 (a mask that reaches the frame: a person the photo cuts off),
    points beyond it cost nothing: the body may go on past the frame.
    """
    height, width = dist_maps.shape[-2:]
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=points.dtype, device=points.device)
    grid = points * scale - 1.0  # align_corners=False: pixel centres at (k + 0.5) * 2 / size - 1
    sampled = F.grid_sample(
        dist_maps.to(points.dtype), grid[:, None], mode="bilinear", padding_mode="border", align_corners=False
    )
    sampled = sampled[:, :, 0]  # (B,C,N)
    limits = torch.tensor([width, height], dtype=points.dtype, device=points.device)
    excess = F.relu(-points) + F.relu(points - limits)  # (B,N,2)
    sq_excess = (excess**2).sum(-1)
    outside = torch.where(sq_excess > 0, torch.sqrt(sq_excess.clamp(min=1e-12)), torch.zeros_like(sq_excess))
    return sampled + outside[:, None] * (sampled > 0)


def _weighted_mean(values: Tensor, weights: Tensor, dim: int) -> Tensor:
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1e-8)


def _nearest_sq_distance(
    queries: Tensor,
    candidates: Tensor,
    candidate_ok: Tensor,
    query_groups: Tensor | None = None,
    candidate_groups: Tensor | None = None,
    max_elements: int = 1 << 22,
) -> Tensor:
    """For queries (B,M,2) the squared distance (B,M) to the nearest allowed candidate (B,N,2).

    candidate_ok (B,N) bool; with query_groups (M,) and candidate_groups (N,) a query may only
    match candidates of its own group. The nearest index is searched without autograd in chunks
    of queries (about `max_elements` distances at a time); the returned distances are
    differentiable in queries and candidates. Queries with no allowed candidate get distance 0.
    """
    batch, num_queries = queries.shape[:2]
    chunk = max(1, max_elements // max(1, batch * candidates.shape[1]))
    nearest = torch.zeros(batch, num_queries, dtype=torch.long, device=queries.device)
    found = torch.zeros(batch, num_queries, dtype=torch.bool, device=queries.device)
    with torch.no_grad():
        # argmin_n |q - c_n|^2 = argmin_n (|c_n|^2 - 2 q.c_n): one batched matmul per chunk, with
        # disallowed candidates priced at +inf (no sqrt, no (B,c,N) masking pass).
        cand = candidates.detach().float()
        price = (cand**2).sum(-1).masked_fill(~candidate_ok, float("inf"))[:, None, :]  # (B,1,N)
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            offset = price
            if query_groups is not None:
                same = query_groups[start:stop, None] == candidate_groups[None, :]  # (c,N)
                offset = price + torch.zeros_like(same, dtype=price.dtype).masked_fill_(~same, float("inf"))[None]
            score = torch.baddbmm(offset, queries[:, start:stop].detach().float(), cand.transpose(1, 2), alpha=-2.0)
            best, index = score.min(dim=-1)
            nearest[:, start:stop] = index
            found[:, start:stop] = torch.isfinite(best)
    chosen = torch.gather(candidates, 1, nearest[..., None].expand(-1, -1, 2))
    sq = ((queries - chosen) ** 2).sum(-1)
    return torch.where(found, sq, torch.zeros_like(sq))


def _coverage_points(projected_vertices: Tensor, faces: Tensor | None) -> Tensor:
    if faces is None:
        return projected_vertices
    faces = torch.as_tensor(faces, device=projected_vertices.device).long()
    centroids = projected_vertices[:, faces].mean(dim=2)  # (B,F,2)
    return torch.cat([projected_vertices, centroids], dim=1)


def _vertex_weight_tensor(vertex_weights, batch: int, num_vertices: int, like: Tensor) -> Tensor:
    if vertex_weights is None:
        return torch.ones(batch, num_vertices, dtype=like.dtype, device=like.device)
    weights = torch.as_tensor(vertex_weights, dtype=like.dtype, device=like.device)
    if weights.ndim == 1:
        weights = weights[None].expand(batch, -1)
    if weights.shape != (batch, num_vertices):
        raise ValueError(f"vertex_weights must be (V,) or (B,V) = ({batch},{num_vertices}), got {tuple(weights.shape)}")
    return weights


def _check_points(projected_vertices: Tensor) -> None:
    if projected_vertices.ndim != 3 or projected_vertices.shape[-1] != 2:
        raise ValueError(f"projected_vertices must be (B,V,2) pixels, got shape {tuple(projected_vertices.shape)}")


def silhouette_chamfer_loss(
    projected_vertices: Tensor,
    dist_maps: Tensor,
    boundary_points: Tensor | Sequence[Tensor],
    boundary_valid: Tensor | None = None,
    vertex_weights: Tensor | None = None,
    faces: Tensor | None = None,
    outside_weight: float = 1.0,
    coverage_weight: float = 1.0,
) -> Tensor:
    """Chamfer silhouette loss (B,): pull vertices into the mask and the mask's boundary onto the vertices.

    projected_vertices (B,V,2) px; dist_maps (B,H,W) from `mask_distance_transform`;
    boundary_points (B,M,2) px padded with boundary_valid (B,M), or a list of (M_b,2);
    vertex_weights (V,) or (B,V) >= 0: weights of term 1, and vertices with weight 0 are not
    candidates in term 2 (e.g. pass a visibility mask); faces (F,3): add face centroids as
    coverage candidates. Returns outside_weight * mean_v w_v (d_v / diag)^2 + coverage_weight *
    mean_m (d_m / diag)^2 per batch element, d in px.
    """
    _check_points(projected_vertices)
    batch, num_vertices = projected_vertices.shape[:2]
    if dist_maps.ndim == 2:
        dist_maps = dist_maps[None]
    if dist_maps.ndim != 3 or dist_maps.shape[0] != batch:
        raise ValueError(f"dist_maps must be (B,H,W) with B={batch}, got shape {tuple(dist_maps.shape)}")
    if not torch.is_tensor(boundary_points):
        boundary_points, boundary_valid = _pad_points(list(boundary_points), projected_vertices.device)
    if boundary_valid is None:
        boundary_valid = torch.ones(boundary_points.shape[:2], dtype=torch.bool, device=boundary_points.device)
    if boundary_points.shape[0] != batch or boundary_points.shape[-1] != 2:
        raise ValueError(f"boundary_points must be (B,M,2) with B={batch}, got shape {tuple(boundary_points.shape)}")
    height, width = dist_maps.shape[-2:]
    diag = float((height**2 + width**2) ** 0.5)
    weights = _vertex_weight_tensor(vertex_weights, batch, num_vertices, projected_vertices)

    dist = sample_distance_map(dist_maps[:, None], projected_vertices)[:, 0] / diag  # (B,V)
    outside = _weighted_mean(dist**2, weights, dim=1)

    candidates = _coverage_points(projected_vertices, faces)
    candidate_ok = weights > 0
    if faces is not None:
        faces_t = torch.as_tensor(faces, device=candidate_ok.device).long()
        candidate_ok = torch.cat([candidate_ok, candidate_ok[:, faces_t].all(dim=2)], dim=1)
    queries = boundary_points.to(projected_vertices.dtype)
    sq = _nearest_sq_distance(queries, candidates, candidate_ok) / diag**2
    coverage = _weighted_mean(sq, boundary_valid.to(sq.dtype), dim=1)
    return outside_weight * outside + coverage_weight * coverage


@dataclass
class PartSilhouetteTarget:
    """Precomputed per-part target for `part_silhouette_loss`.

    dist_maps (B,P,H,W) px (zeros for absent parts); boundary_points (B,P,M,2) px (x, y),
    padded; boundary_valid (B,P,M) bool; present (B,P) bool (part mask not empty).
    """

    dist_maps: Tensor
    boundary_points: Tensor
    boundary_valid: Tensor
    present: Tensor

    def to(self, device: torch.device | str) -> PartSilhouetteTarget:
        return PartSilhouetteTarget(
            *(t.to(device) for t in (self.dist_maps, self.boundary_points, self.boundary_valid, self.present))
        )


def prepare_part_silhouette_target(
    part_masks, max_boundary_points_per_part: int = 128, seed: int = 0, device=None
) -> PartSilhouetteTarget:
    """Per-part distance maps and boundary points from part masks (B,P,H,W) bool (or (P,H,W))."""
    if device is None and torch.is_tensor(part_masks):
        device = part_masks.device
    array = _as_bool_numpy(part_masks)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"part_masks must be (B,P,H,W) or (P,H,W), got shape {array.shape}")
    batch, parts, height, width = array.shape
    present = array.reshape(batch, parts, -1).any(-1)
    dist = np.zeros(array.shape, dtype=np.float32)
    point_sets: list[Tensor] = []
    for b in range(batch):
        for p in range(parts):
            if present[b, p]:
                dist[b, p] = ndimage.distance_transform_edt(~array[b, p])
                point_sets.append(sample_boundary_points(array[b, p], max_boundary_points_per_part, seed))
            else:
                point_sets.append(torch.zeros(0, 2))
    points, valid = _pad_points(point_sets, "cpu")
    target = PartSilhouetteTarget(
        torch.from_numpy(dist),
        points.view(batch, parts, -1, 2),
        valid.view(batch, parts, -1),
        torch.from_numpy(present),
    )
    return target.to(device) if device is not None else target


def part_silhouette_loss(
    projected_vertices: Tensor,
    vertex_part_labels: Tensor,
    target: PartSilhouetteTarget | Tensor | np.ndarray,
    vertex_weights: Tensor | None = None,
    outside_weight: float = 1.0,
    coverage_weight: float = 1.0,
) -> Tensor:
    """Per-part chamfer silhouette loss (B,), the average over parts present in the target.

    projected_vertices (B,V,2) px; vertex_part_labels (V,) long in 0..P-1 (e.g. from
    `fitter.body.parts.part_labels`; -1 = no part); target from `prepare_part_silhouette_target`,
    or the part masks (B,P,H,W) themselves (then prepared on every call: slower).
    Term 1 pulls each vertex of part p into part p's mask, term 2 pulls each boundary point of
    part p onto the nearest vertex of part p; both are normalised by the image diagonal.
    Parts absent from the target mask are skipped. Unlike the whole-body loss, a vertex hidden
    behind another part does project outside its own (visible-part) mask: pass the visibility
    (`fitter.render.vertex_visibility`) as vertex_weights to leave hidden vertices out.
    """
    _check_points(projected_vertices)
    batch, num_vertices = projected_vertices.shape[:2]
    if not isinstance(target, PartSilhouetteTarget):
        target = prepare_part_silhouette_target(target, device=projected_vertices.device)
    dist_maps = target.dist_maps
    if dist_maps.ndim != 4 or dist_maps.shape[0] != batch:
        raise ValueError(f"target.dist_maps must be (B,P,H,W) with B={batch}, got shape {tuple(dist_maps.shape)}")
    parts = dist_maps.shape[1]
    labels = torch.as_tensor(vertex_part_labels, device=projected_vertices.device).long()
    if labels.shape != (num_vertices,):
        raise ValueError(f"vertex_part_labels must be ({num_vertices},), got {tuple(labels.shape)}")
    if int(labels.max()) >= parts:
        raise ValueError(f"vertex_part_labels has label {int(labels.max())} but the target has only {parts} parts")
    height, width = dist_maps.shape[-2:]
    diag = float((height**2 + width**2) ** 0.5)
    weights = _vertex_weight_tensor(vertex_weights, batch, num_vertices, projected_vertices)
    present = target.present.to(projected_vertices.device)
    labelled = labels >= 0
    safe_labels = labels.clamp(min=0)
    # Term 1: each vertex samples its own part's distance map (all parts sampled at once).
    sampled = sample_distance_map(dist_maps, projected_vertices)  # (B,P,V)
    own = torch.gather(sampled, 1, safe_labels[None, None].expand(batch, 1, -1))[:, 0] / diag  # (B,V)
    vertex_present = torch.gather(present, 1, safe_labels[None].expand(batch, -1)) & labelled[None]
    w1 = weights * vertex_present.to(weights.dtype)
    one_hot = F.one_hot(safe_labels, parts).to(weights.dtype) * labelled[:, None].to(weights.dtype)  # (V,P)
    part_sums = torch.einsum("bv,vp->bp", w1 * own**2, one_hot)
    part_norm = torch.einsum("bv,vp->bp", w1, one_hot).clamp(min=1e-8)
    outside = part_sums / part_norm  # (B,P)
    # Term 2: boundary points of part p against vertices of part p (mask out other parts).
    points = target.boundary_points.to(projected_vertices.dtype)
    num_points = points.shape[2]
    queries = points.reshape(batch, parts * num_points, 2)
    query_part = torch.arange(parts, device=labels.device).repeat_interleave(num_points)  # (P*M,)
    candidate_labels = torch.where(labelled, labels, torch.full_like(labels, -2))
    sq = _nearest_sq_distance(queries, projected_vertices, weights > 0, query_part, candidate_labels) / diag**2
    valid = target.boundary_valid.reshape(batch, parts * num_points).to(sq.dtype)
    coverage = (sq * valid).view(batch, parts, num_points).sum(-1) / valid.view(batch, parts, num_points).sum(-1).clamp(
        min=1
    )
    per_part = outside_weight * outside + coverage_weight * coverage
    present_f = present.to(per_part.dtype)
    return (per_part * present_f).sum(1) / present_f.sum(1).clamp(min=1)
