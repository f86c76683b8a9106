"""Every person in a photo: mediapipe's Tasks `PoseLandmarker` on the models inside the wheel.

mediapipe 0.10.21 ships BlazePose's detector and full landmark model for its legacy single-person
`solutions.pose`; the Tasks API runs the same two models for several people once they carry
TFLite image-input metadata (detector input in [-1, 1]: mean = std = 127.5; landmarks in [0, 1]:
mean 0, std 255). `landmarker_bundle()` writes them, with that metadata, into an uncompressed
`.task` bundle under $FITTER_HOME/models once (nothing is downloaded or committed). Each person
comes with the same 33 landmarks, world landmarks and a person mask as `BlazePoseDetector`'s
single `Detection` (frames and units there), largest person first; a person found twice (landmark
boxes overlapping by DUPLICATE_IOU) is kept once.

Passes after the first (fitter.detect.passes has the geometry): `refine` (default on) runs the
landmarker again on each person's own crop (their box grown to 1.25x its long side, as top-down pose
estimators crop) and keeps that crop's landmarks when they are the same person: better landmarks
for small, back-facing or twisted people; `hide_found` detects again with everyone found painted
over; `tiles` runs on an n x n grid of overlapping tiles (everyone found painted over) for small
people. Each pass is one more landmarker call per person / image / tile (27-145 ms here).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from fitter.detect.mediapipe_pose import Detection, import_mediapipe, person_box
from fitter.detect.passes import (
    SAME_PERSON_IOS,
    box_area,
    box_ios,
    box_iou,
    crop_box,
    crop_to_image,
    cut_by_tile,
    is_duplicate,
    landmark_box,
    mostly_painted,
    paint,
    painted_region,
    tile_boxes,
)
from fitter.io.atomic import atomic_write
from fitter.paths import cache_dir

__all__ = ["PeopleDetector", "landmarker_bundle", "merge_people"]

_MODELS = {  # bundle name -> (file in the wheel, input normalisation mean, std)
    "pose_detector.tflite": ("modules/pose_detection/pose_detection.tflite", 127.5, 127.5),
    "pose_landmarks_detector.tflite": ("modules/pose_landmark/pose_landmark_full.tflite", 0.0, 255.0),
}


def landmarker_bundle() -> Path:
    """The PoseLandmarker `.task` bundle built from the installed mediapipe wheel (cached per version)."""
    mp = import_mediapipe()
    path = cache_dir("models") / f"pose_landmarker_full_mediapipe{mp.__version__}.task"
    if path.exists():
        return path
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    root = Path(mp.__file__).parent
    with atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as bundle:
        for name, (source, mean, std) in _MODELS.items():
            writer = metadata_writer.MetadataWriter.create(bytearray((root / source).read_bytes()))
            writer.add_general_info(name.removesuffix(".tflite"), "BlazePose from the mediapipe wheel")
            writer.add_image_input(norm_mean=[mean], norm_std=[std])
            model, _ = writer.populate()
            bundle.writestr(name, model)  # stored uncompressed: mediapipe refuses compressed bundles
    return path


class PeopleDetector:
    """Up to `max_people` people per image (largest first); create once, call `detect` per image.

    min_detection_confidence / min_presence_confidence: the detector's and the landmark model's
    thresholds (the latter defaults to the former). hide_found: a second pass on the photo with the
    people found painted over; tiles: n > 1 runs an n x n tile pass; refine: each person's landmarks
    again from their own crop. Not thread-safe: one detector per thread.
    """

    def __init__(self, max_people: int = 6, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float | None = None, hide_found: bool = False, tiles: int = 1,
                 refine: bool = True) -> None:  # fmt: skip
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        if tiles < 1:
            raise ValueError(f"tiles must be >= 1 (1: no tile pass), got {tiles}")
        self.max_people, self.hide_found, self.tiles, self.refine = max_people, hide_found, tiles, refine
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(landmarker_bundle())),
            running_mode=vision.RunningMode.IMAGE, num_poses=max_people, output_segmentation_masks=True,
            min_pose_detection_confidence=min_detection_confidence,
            min_pose_presence_confidence=min_detection_confidence if min_presence_confidence is None else min_presence_confidence,
        )  # fmt: skip
        self._mp = mp
        self._landmarker: Any = vision.PoseLandmarker.create_from_options(options)

    def __enter__(self) -> PeopleDetector:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        """Release mediapipe's graph; `detect` fails afterwards."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Everyone found in an (H, W, 3) uint8 RGB image, largest landmark box first, at most
        max_people (may be empty); the extra passes chosen at construction run after the first."""
        if self._landmarker is None:
            raise RuntimeError("PeopleDetector is closed; create a new one")
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}; "
                             "use fitter.io.images.read_image")  # fmt: skip
        height, width = image.shape[:2]
        people = merge_people([], self._run(image))
        if self.hide_found and people:  # 2nd pass: the people found so far painted over
            people = merge_people(people, self._run_painted(image, painted_region(_masks(people), height, width)))
        if self.tiles > 1:  # tiles of the photo with everyone found painted over: small people
            painted = painted_region(_masks(people), height, width)
            for tile in tile_boxes(width, height, self.tiles):
                found = self._run_painted(image, painted, tile)
                people = merge_people(people, [d for d in found if not cut_by_tile(d.keypoints, tile, width, height)])
        if self.refine:  # top-down: the landmarks again on each person's own crop
            for k, det in enumerate(people):
                people[k] = self._refine(image, det, people[:k] + people[k + 1 :])
        people.sort(key=lambda d: -box_area(landmark_box(d.keypoints)))
        return people[: self.max_people]

    def _run_painted(self, image: np.ndarray, painted: np.ndarray,
                     tile: tuple[int, int, int, int] | None = None) -> list[Detection]:  # fmt: skip
        """`_run` on the image with the (H, W) bool `painted` region in its mean colour, without the
        people seen mostly on the paint (mostly_painted)."""
        return [d for d in self._run(paint(image, painted), tile) if not mostly_painted(d.keypoints, painted)]

    def _refine(self, image: np.ndarray, det: Detection, others: list[Detection]) -> Detection:
        """`det` with the landmarks found on its crop (crop_box): the crop's person most like it
        (landmark-box IoU), when their landmark boxes overlap by SAME_PERSON_IOS of the smaller one
        and it is no duplicate of the `others`; else `det` unchanged."""
        height, width = image.shape[:2]
        tile = crop_box(det.bbox_xyxy, width, height)
        box = landmark_box(det.keypoints)
        found = self._run(image, tile)
        if not found:
            return det
        best = max(found, key=lambda d: box_iou(box, landmark_box(d.keypoints)))
        if box_ios(box, landmark_box(best.keypoints)) < SAME_PERSON_IOS or \
                is_duplicate(best.keypoints, [other.keypoints for other in others]):  # fmt: skip
            return det
        mask = det.mask
        if mask is not None and best.mask is not None:
            x0, y0, x1, y1 = tile
            mask = mask.copy()
            mask[y0:y1, x0:x1] = best.mask[y0:y1, x0:x1]
        return Detection(keypoints=best.keypoints, world_landmarks=best.world_landmarks, mask=mask,
                         bbox_xyxy=person_box(best.keypoints[:, :2], mask, width, height), image_size=(width, height))  # fmt: skip

    def _run(self, image: np.ndarray, tile: tuple[int, int, int, int] | None = None) -> list[Detection]:
        """One landmarker call on the image (or its tile (x0, y0, x1, y1) px); full-image pixels and masks."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = tile or (0, 0, width, height)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=crop))
        people = []
        masks = result.segmentation_masks or []
        for k, landmarks in enumerate(result.pose_landmarks):
            raw = np.array([[p.x, p.y, p.visibility] for p in landmarks])
            keypoints = np.concatenate([crop_to_image(raw[:, :2], (x0, y0, x1, y1)), raw[:, 2:]], 1).astype(np.float32)
            world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks[k]], dtype=np.float32)
            keypoints[:, 2] = np.clip(keypoints[:, 2], 0.0, 1.0)
            mask = None
            if k < len(masks):
                mask = np.zeros((height, width), dtype=np.float32)
                part = np.array(masks[k].numpy_view(), dtype=np.float32).reshape(y1 - y0, x1 - x0)
                mask[y0:y1, x0:x1] = np.clip(part, 0.0, 1.0)
            people.append(Detection(keypoints=keypoints, world_landmarks=world, mask=mask,
                                    bbox_xyxy=person_box(keypoints[:, :2], mask, width, height), image_size=(width, height)))  # fmt: skip
        return people


def merge_people(kept: list[Detection], new: list[Detection]) -> list[Detection]:
    """`kept` plus the people of `new` (largest first) that are not duplicates of one already kept
    (the detector also sometimes reports a heavily overlapped person twice in one call)."""
    kept = list(kept)
    for det in sorted(new, key=lambda d: -box_area(landmark_box(d.keypoints))):
        if not is_duplicate(det.keypoints, [other.keypoints for other in kept]):
            kept.append(det)
    return kept


def _masks(people: list[Detection]) -> list[np.ndarray]:
    return [d.mask for d in people if d.mask is not None]
