"""Image-side helpers for `PeopleDetector`'s extra passes (pure numpy, no mediapipe).

* `hide_people`: paint the people already found (their person masks, grown a little) with the
  image's mean colour, so a second detector pass looks for the others;
* `tile_boxes`: an overlapping n x n grid of tiles (SAHI-style) in which small people appear
  larger to the detector (mediapipe scales every input to 224 px);
* `mostly_painted`: a person found mostly on painted pixels is a ghost of the paint;
* `cut_by_tile`: a person whose landmark box crosses an inner tile edge is cut by the tile (the
  overlap or the full-image pass covers them);
* `crop_box`: a person's own crop for the refine pass (box grown to CROP_SCALE x its long side);
* `crop_to_image`: landmarks found on a crop (mediapipe's [0, 1] crop units) in full-image pixels;
* `unseen_outside`: landmarks outside the photo (mediapipe's guesses of a cut-off body) marked unseen;
* `is_duplicate`: landmark boxes overlapping by DUPLICATE_IOU are one person found twice.
All coordinates are full-image pixels, boxes [x0, y0, x1, y1].
"""

from __future__ import annotations

import numpy as np

__all__ = ["CROP_SCALE", "DUPLICATE_IOU", "SAME_PERSON_IOS", "box_area", "box_ios", "box_iou", "crop_box", "crop_to_image",
           "cut_by_tile", "hide_people", "is_duplicate", "landmark_box", "mostly_painted", "paint", "painted_region", "tile_boxes",
           "unseen_outside"]  # fmt: skip

DUPLICATE_IOU = 0.5  # landmark boxes overlapping this much are one person found twice
HIDE_GROW = 0.01  # person masks are grown by this fraction of the image's long side before painting
SAME_PERSON_IOS = 0.5  # a crop's person is the cropped one when their landmark boxes overlap this much of the smaller (SAHI's IOS 0.5)
TILE_OVERLAP = 0.2  # neighbouring tiles share this fraction of a tile (SAHI's default overlap ratio)


def landmark_box(points: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] px of (N, >=2) landmark pixels."""
    return np.concatenate([points[:, :2].min(0), points[:, :2].max(0)]).astype(np.float64)


def box_area(box: np.ndarray) -> float:
    """Area (px²) of a box, 0 when empty."""
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes."""
    inter = box_area(np.concatenate([np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])]))
    return inter / max(1e-9, box_area(a) + box_area(b) - inter)


def box_ios(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area (SAHI's IOS merge metric)."""
    inter = box_area(np.concatenate([np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])]))
    return inter / max(1e-9, min(box_area(a), box_area(b)))


def is_duplicate(points: np.ndarray, found: list[np.ndarray]) -> bool:
    """Whether a person's (33, >=2) landmark pixels repeat one of `found` (landmark-box IoU >= DUPLICATE_IOU)."""
    box = landmark_box(points)
    return any(box_iou(box, landmark_box(other)) >= DUPLICATE_IOU for other in found)


def painted_region(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels `hide_people` paints, every person mask (> 0.5) grown by HIDE_GROW of the long side."""
    hidden = np.zeros((height, width), dtype=bool)
    for mask in masks:
        if mask.shape != (height, width):
            raise ValueError(f"person mask is {mask.shape}, the image {(height, width)}")
        hidden |= mask > 0.5
    return _grow(hidden, max(1, round(HIDE_GROW * max(height, width)))) if masks else hidden


def hide_people(image: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 image with `painted_region(masks)` painted with the image's mean colour."""
    return paint(image, painted_region(masks, *image.shape[:2]))


def paint(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 image with the (H, W) bool region in the image's mean colour."""
    out = image.copy()
    out[region] = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
    return out


def mostly_painted(keypoints: np.ndarray, painted: np.ndarray) -> bool:
    """Whether most of a person's seen landmarks ((N, 3) [x px, y px, visibility], visibility >= 0.5)
    lie on painted pixels: a shape the detector saw in the paint, not a person in the photo."""
    seen = keypoints[keypoints[:, 2] >= 0.5, :2]
    if not len(seen):
        return True
    height, width = painted.shape
    cols = np.clip(seen[:, 0].astype(int), 0, width - 1)
    rows = np.clip(seen[:, 1].astype(int), 0, height - 1)
    return bool(painted[rows, cols].mean() > 0.5)


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)² square, as two running maxima (O(H·W) per pixel of radius)."""
    from scipy.ndimage import maximum_filter1d

    grown = maximum_filter1d(mask.astype(np.uint8), 2 * radius + 1, axis=0)
    return maximum_filter1d(grown, 2 * radius + 1, axis=1) > 0


def tile_boxes(width: int, height: int, grid: int, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The (x0, y0, x1, y1) integer pixel boxes of a grid x grid tiling of a width x height image,
    neighbours overlapping by `overlap` of a tile; row by row, the last tile flush with the edge."""
    if grid < 1 or not 0 <= overlap < 1:
        raise ValueError(f"tiles need grid >= 1 and overlap in [0, 1), got {grid}, {overlap}")

    def spans(length: int) -> list[tuple[int, int]]:
        size = length / (grid - (grid - 1) * overlap)
        step = size * (1 - overlap)
        return [(round(k * step), min(length, round(k * step + size))) for k in range(grid)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height) for x0, x1 in spans(width)]


def cut_by_tile(points: np.ndarray, tile: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether landmark pixels (N, >=2, full image) reach past an edge of `tile` that is not the image's own."""
    x0, y0, x1, y1 = landmark_box(points)
    tx0, ty0, tx1, ty1 = tile
    return bool((tx0 > 0 and x0 < tx0) or (ty0 > 0 and y0 < ty0) or (tx1 < width and x1 > tx1)
                or (ty1 < height and y1 > ty1))  # fmt: skip


CROP_SCALE = (
    1.25  # a person's crop is their box grown to this many times its long side (top-down pose estimators' padding)
)


def crop_box(box: np.ndarray, width: int, height: int, scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) integer pixel square of side scale x the box's long side around its
    centre, clipped to the width x height image."""
    centre = (np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64)) / 2
    half = scale * max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0) / 2
    x0, y0 = np.clip(np.floor(centre - half), 0, [width - 1, height - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(centre + half), [x0 + 1, y0 + 1], [width, height]).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def crop_to_image(normalized: np.ndarray, box) -> np.ndarray:
    """(K, 2) float64 full-image pixels of landmarks given normalised to the crop `box` [x0, y0, x1, y1]
    px (mediapipe's x, y in [0, 1] of the crop's width and height)."""
    pts = np.asarray(normalized, dtype=np.float64)
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return np.stack([x0 + pts[:, 0] * (x1 - x0), y0 + pts[:, 1] * (y1 - y0)], axis=1)


def unseen_outside(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """A copy of (P,K,3) detected keypoints [x px, y px, confidence] with confidence 0 for the points
    outside the width x height photo: mediapipe places a body the photo cuts off (a half-body shot)
    where it guesses it would be; the fit follows what the photo shows, and a guess is no keypoint."""
    out = keypoints.copy()
    x, y = out[..., 0], out[..., 1]
    out[..., 2] = np.where((x >= 0) & (x <= width) & (y >= 0) & (y <= height), out[..., 2], 0.0)
    return out
