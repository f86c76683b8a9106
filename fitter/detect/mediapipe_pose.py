"""Single-person 2D/3D keypoints and a person mask from mediapipe's BlazePose (legacy `solutions.pose`).

mediapipe 0.10.18-0.10.21 ship the pose models inside the wheel; only model_complexity=1 runs
offline (0 and 2 download their models on first use). One person per image: the most
prominent one mediapipe's detector finds.

Frames and units of a `Detection`:
- keypoints: pixels of the given image (x right, y down, origin at the top-left image corner),
  landmark.x * W and landmark.y * H; points may lie outside the image for cut-off body parts.
- world_landmarks: metres, origin at the midpoint of the two hip landmarks, axes parallel to the
  camera frame (OpenCV: x right, y down, z away from the camera). Checked on the 25 photos in
  shared/eval: world x / y correlate with pixel x / y at r >= 0.95 with positive slope, and for
  people facing the camera the nose has a smaller z than the ears (nearer the camera) while for
  people seen from behind it is larger; the cross product (left_hip - right_hip) x (up = shoulder
  mid - hip mid) then points toward the camera (negative z) exactly for the front-facing ones,
  i.e. the axes form a right-handed frame. The lengths are mediapipe's GHUM-based estimate for
  the person, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from fitter.io.keypoint_files import KeypointFile

__all__ = ["BLAZEPOSE33_NAMES", "BlazePoseDetector", "Detection", "person_box", "import_mediapipe"]

BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
"""mediapipe's 33 pose landmarks in its output order; left/right are the person's own sides."""

_MASK_THRESHOLD = 0.5
_BOX_MARGIN = 0.15  # mask pixels count for the box only within this fraction of the landmark box's long side


@dataclass
class Detection:
    """One person found by BlazePose in an image of size image_size = (W, H) pixels.

    keypoints: (33, 3) float32 [x px, y px, visibility in [0, 1]], BLAZEPOSE33_NAMES order.
    world_landmarks: (33, 3) float32 metres, hip-centred, camera-aligned axes (x right, y down,
    z away from the camera). mask: (H, W) float32 person probability in [0, 1], or None when
    segmentation is off. bbox_xyxy: (4,) float32 [x0, y0, x1, y1] pixels inside the image.
    """

    keypoints: np.ndarray
    world_landmarks: np.ndarray
    mask: np.ndarray | None
    bbox_xyxy: np.ndarray
    image_size: tuple[int, int]

    keypoint_set: str = "blazepose33"

    def to_keypoint_file(self, image: str | None = None) -> KeypointFile:
        """The keypoints as a one-person KeypointFile (set "blazepose33") for write_keypoints_file."""
        return KeypointFile(
            keypoints=self.keypoints[None],
            keypoint_set=self.keypoint_set,
            person_ids=np.zeros(1, np.int64),
            image=image,
        )


class BlazePoseDetector:
    """mediapipe BlazePose (full model, static images) with segmentation; create once, call `detect` per image.

    Use as a context manager or call `close()` to free mediapipe's graph. Not thread-safe: use
    one detector per thread.
    """

    def __init__(self, min_detection_confidence: float = 0.5, enable_segmentation: bool = True) -> None:
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence}")
        pose_module = _import_mediapipe_pose()
        self.enable_segmentation = enable_segmentation
        self._pose: Any = pose_module.Pose(
            static_image_mode=True,
            model_complexity=1,
            smooth_landmarks=False,
            enable_segmentation=enable_segmentation,
            smooth_segmentation=False,
            min_detection_confidence=min_detection_confidence,
        )

    def __enter__(self) -> BlazePoseDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release mediapipe's graph; `detect` fails afterwards."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def detect(self, image_rgb: np.ndarray) -> Detection | None:
        """Find one person in an (H, W, 3) uint8 RGB image; None when mediapipe finds nobody."""
        if self._pose is None:
            raise RuntimeError("BlazePoseDetector is closed; create a new one")
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"detect needs an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}; use fitter.io.images.read_image"
            )
        height, width = image.shape[:2]
        result = self._pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None

        landmarks = result.pose_landmarks.landmark
        keypoints = np.array([[lm.x * width, lm.y * height, lm.visibility] for lm in landmarks], dtype=np.float32)
        world = np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks.landmark], dtype=np.float32)
        if keypoints.shape != (33, 3) or world.shape != (33, 3):
            raise RuntimeError(f"mediapipe returned {keypoints.shape[0]} landmarks, expected 33; use mediapipe 0.10.21")
        keypoints[:, 2] = np.clip(keypoints[:, 2], 0.0, 1.0)

        mask = None
        if self.enable_segmentation and result.segmentation_mask is not None:
            mask = np.clip(np.array(result.segmentation_mask, dtype=np.float32, copy=True), 0.0, 1.0)
        return Detection(
            keypoints=keypoints,
            world_landmarks=world,
            mask=mask,
            bbox_xyxy=person_box(keypoints[:, :2], mask, width, height),
            image_size=(width, height),
        )


def person_box(points: np.ndarray, mask: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """Person box [x0, y0, x1, y1] px: the box of mask pixels > 0.5 that lie within the landmark box
    grown by 15% of its long side (which keeps other people's pixels out), else the landmark box;
    clipped to the image. The mask box includes the head top and visible clothing, which landmarks miss.
    """
    landmark_box = np.array([*points.min(axis=0), *points.max(axis=0)], dtype=np.float64)
    limits = np.array([width, height, width, height], dtype=np.float64)
    box = np.clip(landmark_box, 0.0, limits)
    if mask is not None:
        margin = _BOX_MARGIN * max(landmark_box[2] - landmark_box[0], landmark_box[3] - landmark_box[1])
        x0, y0 = np.floor(np.clip(landmark_box[:2] - margin, 0, limits[:2])).astype(int)
        x1, y1 = np.ceil(np.clip(landmark_box[2:] + margin, 0, limits[:2])).astype(int)
        rows, cols = np.nonzero(mask[y0:y1, x0:x1] > _MASK_THRESHOLD)
        if rows.size:
            box = np.array(
                [x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1], dtype=np.float64
            )
    return box.astype(np.float32)


def import_mediapipe() -> Any:
    """The mediapipe module, or an ImportError that says which version to install."""
    try:
        import mediapipe as mp
    except ImportError:
        raise ImportError(
            "person detection needs mediapipe: pip install mediapipe==0.10.21 (or pass a keypoint file instead)"
        ) from None
    return mp


def _import_mediapipe_pose() -> Any:
    """mediapipe.solutions.pose, or an ImportError that says which version to install."""
    mp = import_mediapipe()
    pose_module = getattr(getattr(mp, "solutions", None), "pose", None)
    if pose_module is None:
        version = getattr(mp, "__version__", "unknown")
        raise ImportError(
            f"mediapipe {version} has no solutions.pose with bundled models; pip install mediapipe==0.10.21"
        )
    return pose_module
