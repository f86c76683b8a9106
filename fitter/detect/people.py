"""Every person in a photo: mediapipe's Tasks `PoseLandmarker` on the models inside the wheel.

mediapipe 0.10.21 ships BlazePose's detector and full landmark model for its legacy single-person
`solutions.pose`; the Tasks API runs the same two models for several people once they carry
TFLite image-input metadata (detector input in [-1, 1]: mean = std = 127.5; landmarks in [0, 1]:
mean 0, std 255). `landmarker_bundle()` writes them, with that metadata, into an uncompressed
`.task` bundle under $FITTER_HOME/models once (nothing is downloaded or committed). Each person
comes with the same 33 landmarks, world landmarks and a person mask as `BlazePoseDetector`'s
single `Detection` (frames and units there), largest person first; a person found twice (landmark
boxes overlapping by DUPLICATE_IOU) is kept once.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from fitter.detect.mediapipe_pose import Detection, import_mediapipe, person_box
from fitter.io.atomic import atomic_write
from fitter.paths import cache_dir

__all__ = ["PeopleDetector", "landmarker_bundle"]

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
    thresholds (the latter defaults to the former). Not thread-safe: one detector per thread.
    """

    def __init__(self, max_people: int = 6, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float | None = None) -> None:  # fmt: skip
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
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
        """Everyone found in an (H, W, 3) uint8 RGB image, largest landmark box first (may be empty)."""
        if self._landmarker is None:
            raise RuntimeError("PeopleDetector is closed; create a new one")
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}; "
                             "use fitter.io.images.read_image")  # fmt: skip
        height, width = image.shape[:2]
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                                                        data=np.ascontiguousarray(image)))  # fmt: skip
        people = []
        masks = result.segmentation_masks or []
        for k, landmarks in enumerate(result.pose_landmarks):
            keypoints = np.array([[p.x * width, p.y * height, p.visibility] for p in landmarks], dtype=np.float32)
            world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks[k]], dtype=np.float32)
            keypoints[:, 2] = np.clip(keypoints[:, 2], 0.0, 1.0)
            mask = None
            if k < len(masks):
                mask = np.clip(np.array(masks[k].numpy_view(), dtype=np.float32).reshape(height, width), 0.0, 1.0)
            people.append(Detection(keypoints=keypoints, world_landmarks=world, mask=mask,
                                    bbox_xyxy=person_box(keypoints[:, :2], mask, width, height), image_size=(width, height)))  # fmt: skip
        people.sort(key=lambda d: -_area(_landmark_box(d)))
        kept: list[Detection] = []
        for det in people:  # the detector sometimes reports a heavily overlapped person twice
            if all(_iou(_landmark_box(det), _landmark_box(other)) < DUPLICATE_IOU for other in kept):
                kept.append(det)
        return kept


DUPLICATE_IOU = 0.5  # landmark boxes overlapping this much are one person found twice


def _landmark_box(det: Detection) -> np.ndarray:
    return np.concatenate([det.keypoints[:, :2].min(0), det.keypoints[:, :2].max(0)])


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _area(np.concatenate([np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])]))
    return inter / max(1e-9, _area(a) + _area(b) - inter)
