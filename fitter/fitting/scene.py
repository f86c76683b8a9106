"""Terms between the people of one photo (items with the same `Problem.scene`, different person).

* penetration: each body is a set of spheres on its SMPL joints and bone midpoints (a cheap
  stand-in for the mesh); overlapping spheres of two people cost (overlap in metres)^2.
* depth order (in the spirit of Jiang et al., CVPR 2020, "Coherent reconstruction of multiple
  humans"): where person a's mask shows a (away from b's mask edge), but b's body projects there,
  b must be behind a: a vertex v of b there costs relu(z(a's nearest vertex) - z(v) + margin)^2
  (metres). Pixels within DEPTH_EDGE_PX of b's own mask are left out: a body overhanging its
  mask edge by a few pixels is the silhouette term's business, not a depth-order violation.
Both are added to each person of the pair.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["scene_pairs", "body_spheres", "penetration_term", "depth_order_term"]

# sphere radius (metres) per SMPL joint: pelvis, hips, spine1, knees, spine2, ankles, spine3,
# feet, neck, collars, head, shoulders, elbows, wrists, hands
_JOINT_RADII = (0.13, 0.09, 0.09, 0.12, 0.06, 0.06, 0.12, 0.05, 0.05, 0.12, 0.04, 0.04, 0.06, 0.06, 0.06,
                0.10, 0.06, 0.06, 0.05, 0.05, 0.04, 0.04, 0.04, 0.04)  # fmt: skip
_BONES = ((0, 1), (0, 2), (1, 4), (2, 5), (4, 7), (5, 8), (0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (16, 18),
          (17, 19), (18, 20), (19, 21), (13, 16), (14, 17))  # fmt: skip
DEPTH_MARGIN = 0.02  # metres
DEPTH_VERTEX_STEP = 3  # of the silhouette vertices
DEPTH_NEIGHBOUR_PX = 4.0  # a's nearest vertex must be this close (working-resolution px) to count
DEPTH_EDGE_PX = 4  # working-resolution px: only pixels this far inside a's mask and outside b's count


def scene_pairs(scene: Tensor | None, person: Tensor | None, items: Tensor | None = None) -> Tensor | None:
    """(P,2) long: pairs (a, b), a < b, of rows in one scene and of different people (flip-test
    copies of one person never interact); rows are `items` of the batch (default all). None if none."""
    if scene is None:
        return None
    s, p = (scene, person) if items is None else (scene[items], person[items])
    same = (s[:, None] == s[None]) & (p[:, None] != p[None])
    pairs = torch.nonzero(torch.triu(same, diagonal=1))
    return pairs if len(pairs) else None


def body_spheres(joints: Tensor) -> tuple[Tensor, Tensor]:
    """Centres (B,S,3) and radii (S,) of the body's spheres from its SMPL joints (B,24,3)."""
    radii = torch.tensor(_JOINT_RADII, dtype=joints.dtype, device=joints.device)
    a, b = zip(*_BONES)
    mid = (joints[:, list(a)] + joints[:, list(b)]) / 2
    return torch.cat([joints, mid], 1), torch.cat([radii, torch.minimum(radii[list(a)], radii[list(b)])])


def penetration_term(joints: Tensor, pairs: Tensor) -> Tensor:
    """(B,) sum over each item's pairs of squared sphere overlaps (m^2); joints (B,24,3) camera frame."""
    centres, radii = body_spheres(joints)
    a, b = pairs[:, 0], pairs[:, 1]
    dist = torch.cdist(centres[a], centres[b])  # (P,S,S)
    overlap = torch.relu(radii[:, None] + radii[None] - dist).pow(2).sum((1, 2))
    out = torch.zeros(joints.shape[0], dtype=joints.dtype, device=joints.device)
    return out.index_add(0, a, overlap).index_add(0, b, overlap)


def depth_order_term(points: Tensor, pixels: Tensor, masks: Tensor, pairs: Tensor) -> Tensor:
    """(S,) depth-order cost of the silhouette rows (see the module docstring).

    points (S,V,3) camera frame metres and pixels (S,V,2) at the masks' working resolution of
    the rows' silhouette vertices; masks (S,R,R) bool person masks at that resolution.
    """
    pts, px = points[:, ::DEPTH_VERTEX_STEP], pixels[:, ::DEPTH_VERTEX_STEP]
    res = masks.shape[-1]
    kernel = 2 * DEPTH_EDGE_PX + 1
    grown = torch.nn.functional.max_pool2d(masks[:, None].float(), kernel, stride=1, padding=DEPTH_EDGE_PX)[:, 0] > 0
    core = ~(
        torch.nn.functional.max_pool2d((~masks)[:, None].float(), kernel, stride=1, padding=DEPTH_EDGE_PX)[:, 0] > 0
    )
    cells = px.detach().long().clamp(0, res - 1)
    inside = ((px.detach() >= 0) & (px.detach() < res)).all(-1)
    out = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    for a, b in pairs.tolist():
        for front, back in ((a, b), (b, a)):
            x, y = cells[back, :, 0], cells[back, :, 1]
            shown = inside[back] & core[front, y, x] & ~grown[back, y, x]  # front visible, back's body there
            if not bool(shown.any()):
                continue
            near = torch.cdist(px[back][shown].detach(), px[front].detach())  # (M,V)
            dist, nearest = near.min(1)
            close = dist < DEPTH_NEIGHBOUR_PX
            if not bool(close.any()):
                continue
            z_back = pts[back][shown][close, 2]
            z_front = pts[front][nearest[close], 2]
            cost = torch.relu(z_front - z_back + DEPTH_MARGIN).pow(2).mean()
            out = out.index_add(0, torch.tensor([front, back], device=out.device), torch.stack([cost, cost]))
    return out
