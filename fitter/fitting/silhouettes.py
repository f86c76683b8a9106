"""Silhouette targets of a batch: person (and body-part) masks at a working resolution.

Masks are full-image (H,W) bool in pixels; each is scaled so its longest side is at most
SILHOUETTE_RESOLUTION and put top-left on a square canvas, where the chamfer terms of
fitter.objectives.silhouette compare it with the projected mesh (same scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fitter.body.model import VertexSubset
from fitter.body.parts import part_labels
from fitter.fitting.problem import Problem
from fitter.objectives.silhouette import (
    PartSilhouetteTarget,
    SilhouetteTarget,
    prepare_part_silhouette_target,
    prepare_silhouette_target,
)

__all__ = ["SilhouetteTargets", "PartTargets", "prepare_silhouettes", "SILHOUETTE_RESOLUTION"]

SILHOUETTE_RESOLUTION = 256  # masks are matched at this longest side, pixels
SILHOUETTE_VERTEX_STEP = 3  # every k-th vertex takes part in the silhouette term


@dataclass
class PartTargets:
    """Per-part targets of the silhouette items that have part masks: rows (R,) index into the
    silhouette items; labels (S,) the part of each silhouette vertex."""

    rows: Tensor
    target: PartSilhouetteTarget
    labels: Tensor


@dataclass
class SilhouetteTargets:
    """items (S,) the batch items that have a mask; masks (S,R,R) bool the person masks at the
    working resolution R; target at that resolution; scale (S,) pixels -> working resolution;
    vertex_ids the vertices that take part; parts or None."""

    items: Tensor
    masks: Tensor
    target: SilhouetteTarget
    scale: Tensor
    vertex_ids: VertexSubset
    parts: PartTargets | None


def _to_working_resolution(mask: np.ndarray, res: int) -> tuple[np.ndarray, float]:
    """(H,W) bool -> (res,res) bool canvas (top-left aligned, scaled so the longest side is <= res)."""
    scale = min(1.0, res / max(mask.shape))
    if scale < 1.0:
        import cv2

        size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
    canvas = np.zeros((res, res), dtype=bool)
    canvas[: mask.shape[0], : mask.shape[1]] = mask[:res, :res]
    return canvas, scale


def prepare_silhouettes(problem: Problem) -> SilhouetteTargets | None:
    """Targets for the items of `problem` that have a non-empty mask (None if none has)."""
    items = [i for i, m in enumerate(problem.masks) if m is not None and np.asarray(m).any()]
    if not items:
        return None
    res = SILHOUETTE_RESOLUTION
    small, hidden, scales = [], [], []
    for i in items:
        canvas, scale = _to_working_resolution(np.asarray(problem.masks[i], dtype=bool), res)
        small.append(canvas)
        scales.append(scale)
        ignore = problem.ignore_masks[i]
        hidden.append(
            np.zeros_like(canvas) if ignore is None else _to_working_resolution(np.asarray(ignore, bool), res)[0]
        )
    device = problem.target.device
    target = prepare_silhouette_target(np.stack(small), max_boundary_points=256, device=device, ignore=np.stack(hidden))
    subset_ids = torch.arange(0, problem.model.num_vertices, SILHOUETTE_VERTEX_STEP, device=device)
    parts = None
    part_items = [k for k, i in enumerate(items) if problem.part_masks[i] is not None]
    if part_items:
        counts = {np.asarray(problem.part_masks[items[k]]).shape[0] for k in part_items}
        if len(counts) != 1 or counts.pop() not in (12, 24):
            raise ValueError("part_masks must all have 12 or all have 24 parts (fitter.body.parts)")
        num_parts = np.asarray(problem.part_masks[items[part_items[0]]]).shape[0]
        stacked = np.stack([np.stack([_to_working_resolution(np.asarray(p, bool), res)[0]
                                      for p in problem.part_masks[items[k]]]) for k in part_items])  # fmt: skip
        parts = PartTargets(rows=torch.tensor(part_items, device=device),
                            target=prepare_part_silhouette_target(stacked, max_boundary_points_per_part=64, device=device),
                            labels=part_labels(problem.model, num_parts).to(device)[subset_ids])  # fmt: skip
    return SilhouetteTargets(items=torch.tensor(items, device=device), masks=torch.as_tensor(np.stack(small), device=device),
                             target=target,
                             scale=torch.tensor(scales, dtype=problem.target.dtype, device=device),
                             vertex_ids=problem.model.vertex_subset(subset_ids), parts=parts)  # fmt: skip
