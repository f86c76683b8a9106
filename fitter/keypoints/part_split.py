"""A 12-part body-part map from a person mask and the 2D skeleton (input for the NBF regressor).

A photo has no part segmenter here, so `--init nbf` makes NBF's input from what mediapipe
gives: the person mask, split into the 12 parts of `fitter.body.parts.PART_NAMES_12` by the
nearest bone of the 2D skeleton. Each part is a set of 2D primitives built from the keypoints
(pixels of the same image as the mask):

    head            segment from 0.45 to 1.4 of the way from the shoulder midpoint to the face centre
    neck            segment from the shoulder midpoint to 0.3 of that way
    upper_torso     polygon shoulders -> waist (midpoints of shoulder and hip per side)
    lower_torso     polygon waist -> hips, pushed 15 % of the torso length below the hips
    upper arm       shoulder -> elbow;  lower arm: elbow -> wrist -> hand tip (index/pinky/thumb)
    upper leg       hip -> knee;        lower leg: knee -> ankle -> heel / toe
    (left/right are the person's own sides, as in the keypoint names)

A mask pixel takes the part at the smallest distance; torso polygons count as `torso_bias` x
torso length farther than they are, so a limb lying over the torso keeps its pixels. Missing
keypoints (confidence <= conf_threshold) drop the primitives that need them. Without a mask,
one is drawn from the same primitives (capsules around bones, filled torso, a head disc),
with widths as fractions of the torso length.

Labels: 0 = background, 1 + i = PART_NAMES_12[i] (the convention of
`fitter.regressors.preprocess.part_labels_to_one_hot`).
"""

from __future__ import annotations

import cv2
import numpy as np

from fitter.body.parts import PART_NAMES_12
from fitter.keypoints import convert_keypoints, keypoint_names

__all__ = ["split_mask_by_skeleton", "skeleton_mask", "part_primitives"]

_NAMES = keypoint_names("blazepose33")
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left", "mouth_right")
# capsule radius per part as a fraction of the torso length (only used to draw a mask)
_RADIUS = {
    "head": 0.24, "neck": 0.13, "left_upper_arm": 0.1, "right_upper_arm": 0.1,
    "left_lower_arm": 0.08, "right_lower_arm": 0.08, "left_upper_leg": 0.15, "right_upper_leg": 0.15,
    "left_lower_leg": 0.1, "right_lower_leg": 0.1,
}  # fmt: skip


def _points(keypoints: np.ndarray, keypoint_set: str, conf_threshold: float) -> dict[str, np.ndarray]:
    """name -> (2,) px for every BlazePose-33 point present above the threshold (other sets converted)."""
    kp = np.asarray(keypoints, dtype=np.float32)
    names = keypoint_names(keypoint_set)
    if kp.ndim != 2 or kp.shape != (len(names), 3):
        raise ValueError(
            f"keypoints must be ({len(names)}, 3) px + confidence for set {keypoint_set!r}, got {kp.shape}"
        )
    kp33 = kp if keypoint_set == "blazepose33" else convert_keypoints(kp, keypoint_set, "blazepose33")
    return {n: kp33[i, :2].astype(np.float64) for i, n in enumerate(_NAMES)
            if kp33[i, 2] > conf_threshold and np.all(np.isfinite(kp33[i, :2]))}  # fmt: skip


def _mean(pts: dict[str, np.ndarray], names) -> np.ndarray | None:
    found = [pts[n] for n in names if n in pts]
    return np.mean(found, axis=0) if found else None


def part_primitives(keypoints, keypoint_set: str = "blazepose33", conf_threshold: float = 0.2):
    """The 2D primitives of each part: (segments {part: [(a, b), ...]}, polygons {part: (P,2)}, torso length px).

    Returns None when the torso cannot be placed (needs both shoulders or both hips).
    """
    pts = _points(keypoints, keypoint_set, conf_threshold)
    ls, rs, lh, rh = (pts.get(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    s_mid = None if ls is None or rs is None else (ls + rs) / 2
    h_mid = None if lh is None or rh is None else (lh + rh) / 2
    if s_mid is None and h_mid is None:
        return None
    valid = np.array(list(pts.values()))
    if s_mid is not None and h_mid is not None:
        torso = float(np.linalg.norm(s_mid - h_mid))
    else:
        torso = 0.0
    extent = float((valid.max(0) - valid.min(0)).max()) if len(valid) > 1 else 0.0
    torso = max(torso, 0.18 * extent, 4.0)
    segments: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in PART_NAMES_12}
    polygons: dict[str, np.ndarray] = {}
    face = _mean(pts, _FACE)
    if s_mid is not None and face is not None:
        up = face - s_mid
        segments["neck"].append((s_mid, s_mid + 0.3 * up))
        segments["head"].append((s_mid + 0.45 * up, s_mid + 1.4 * up))
    elif face is not None:
        segments["head"].append((face, face))
    if s_mid is not None and h_mid is not None:
        axis = h_mid - s_mid
        lw, rw = (ls + lh) / 2, (rs + rh) / 2
        polygons["upper_torso"] = np.stack([ls, rs, rw, lw])
        polygons["lower_torso"] = np.stack([lw, rw, rh + 0.15 * axis, lh + 0.15 * axis])
    for side in ("left", "right"):
        s, e, w = pts.get(f"{side}_shoulder"), pts.get(f"{side}_elbow"), pts.get(f"{side}_wrist")
        hand = _mean(pts, (f"{side}_index", f"{side}_pinky", f"{side}_thumb"))
        if s is not None and e is not None:
            segments[f"{side}_upper_arm"].append((s, e))
        if e is not None and w is not None:
            segments[f"{side}_lower_arm"].append((e, w))
            segments[f"{side}_lower_arm"].append((w, hand if hand is not None else w + 0.35 * (w - e)))
        h, k, a = pts.get(f"{side}_hip"), pts.get(f"{side}_knee"), pts.get(f"{side}_ankle")
        if h is not None and k is not None:
            segments[f"{side}_upper_leg"].append((h, k))
        if k is not None and a is not None:
            segments[f"{side}_lower_leg"].append((k, a))
            feet = [pts[n] for n in (f"{side}_heel", f"{side}_foot_index") if n in pts]
            for tip in feet or [a + 0.15 * (a - k)]:
                segments[f"{side}_lower_leg"].append((a, tip))
    return segments, polygons, torso


def _segment_distance(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) distance of pixels (M,2) to the segment a-b, px."""
    ab = b - a
    denom = float(ab @ ab)
    t = np.zeros(len(pixels)) if denom < 1e-12 else np.clip((pixels - a) @ ab / denom, 0.0, 1.0)
    return np.linalg.norm(pixels - (a + t[:, None] * ab), axis=1)


def _polygon_inside(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H,W) bool: pixel centres inside the polygon (px, corner convention)."""
    canvas = np.zeros(shape, np.uint8)
    # cv2 pixel centres sit at integer coordinates: shift by half a pixel, 4 bits of sub-pixel precision
    pts = np.round((polygon - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _distances(pixels: np.ndarray, shape: tuple[int, int], segments, polygons, torso: float,
               torso_bias: float) -> np.ndarray:  # fmt: skip
    """(M,12) distance of each pixel to each part (inf where the part is absent)."""
    dist = np.full((len(pixels), len(PART_NAMES_12)), np.inf)
    rows, cols = np.floor(pixels[:, 1]).astype(int), np.floor(pixels[:, 0]).astype(int)
    for j, part in enumerate(PART_NAMES_12):
        for a, b in segments.get(part, []):
            dist[:, j] = np.minimum(dist[:, j], _segment_distance(pixels, a, b))
        if part in polygons:
            poly = polygons[part]
            edge = np.min(
                [_segment_distance(pixels, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))], axis=0
            )
            inside = _polygon_inside(poly, shape)[rows, cols]
            dist[:, j] = np.minimum(dist[:, j], np.where(inside, 0.0, edge) + torso_bias * torso)
    return dist


def skeleton_mask(keypoints, image_size: tuple[int, int], keypoint_set: str = "blazepose33",
                  conf_threshold: float = 0.2) -> np.ndarray:  # fmt: skip
    """(H,W) bool person mask drawn from the skeleton alone (capsules, torso polygons, head disc).

    image_size (W,H) px; keypoints (K,3) px + confidence in `keypoint_set`.
    """
    width, height = int(image_size[0]), int(image_size[1])
    prims = part_primitives(keypoints, keypoint_set, conf_threshold)
    mask = np.zeros((height, width), bool)
    if prims is None:
        return mask
    segments, polygons, torso = prims
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1).astype(np.float64)
    flat = mask.ravel()
    for part, segs in segments.items():
        for a, b in segs:
            flat |= _segment_distance(pixels, a, b) <= _RADIUS.get(part, 0.1) * torso
    for poly in polygons.values():
        flat |= _polygon_inside(poly, (height, width)).ravel()
    return flat.reshape(height, width)


def split_mask_by_skeleton(
    mask: np.ndarray | None,
    keypoints,
    keypoint_set: str = "blazepose33",
    image_size: tuple[int, int] | None = None,
    conf_threshold: float = 0.2,
    torso_bias: float = 0.1,
) -> np.ndarray:
    """Part labels (H,W) int64 of a person: 0 background, 1..12 = PART_NAMES_12 (nearest bone).

    mask: (H,W) bool/0-1 person mask, or None to draw one from the skeleton (then image_size
    (W,H) is needed); keypoints (K,3) px + confidence of `keypoint_set`, same image as the mask.
    """
    if mask is None:
        if image_size is None:
            raise ValueError(
                "split_mask_by_skeleton: without a mask, pass image_size (W, H) to draw one from the skeleton"
            )
        mask = skeleton_mask(keypoints, image_size, keypoint_set, conf_threshold)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    person = mask > 0.5 if mask.dtype != bool else mask
    labels = np.zeros(person.shape, np.int64)
    prims = part_primitives(keypoints, keypoint_set, conf_threshold)
    if prims is None or not person.any():
        return labels
    segments, polygons, torso = prims
    rows, cols = np.nonzero(person)
    pixels = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
    dist = _distances(pixels, person.shape, segments, polygons, torso, torso_bias)
    nearest = dist.argmin(axis=1)
    known = np.isfinite(dist.min(axis=1))
    labels[rows[known], cols[known]] = nearest[known] + 1
    return labels
