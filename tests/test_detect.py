"""Tests for fitter.detect (mediapipe BlazePose) on real COCO photos from shared/eval and on blank images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fitter.detect import BLAZEPOSE33_NAMES, BlazePoseDetector, Detection
from fitter.io.images import read_image

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
COCO_DIR = EVAL_DIR / "coco"
needs_eval = pytest.mark.skipif(
    not (COCO_DIR / "annotations.json").is_file(), reason=f"evaluation photos not present at {COCO_DIR}"
)

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
CHECKED_JOINTS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee")
# Clearly single-person, front-facing COCO images with all checked joints labelled.
SINGLE_PERSON_IMAGES = ("000000030752.jpg", "000000153797.jpg")


@pytest.fixture(scope="module")
def detector() -> Iterator[BlazePoseDetector]:
    with BlazePoseDetector() as created:
        yield created


def _coco_entry(file_name: str) -> dict:
    annotations = json.loads((COCO_DIR / "annotations.json").read_text())
    return next(entry for entry in annotations["images"] if Path(entry["file"]).name == file_name)


def test_names_follow_mediapipe_order() -> None:
    mediapipe = pytest.importorskip("mediapipe")
    official = [landmark.name.lower() for landmark in mediapipe.solutions.pose.PoseLandmark]
    assert list(BLAZEPOSE33_NAMES) == official and len(BLAZEPOSE33_NAMES) == 33


def test_blank_image_gives_none_and_bad_input_is_rejected(detector: BlazePoseDetector) -> None:
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) is None
    assert detector.detect(np.full((240, 320, 3), 255, np.uint8)) is None
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((240, 320, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((240, 320), np.uint8))


@needs_eval
@pytest.mark.parametrize("file_name", SINGLE_PERSON_IMAGES)
def test_detects_labelled_person(detector: BlazePoseDetector, file_name: str) -> None:
    entry = _coco_entry(file_name)
    image = read_image(COCO_DIR / entry["file"])
    height, width = image.shape[:2]
    detection = detector.detect(image)
    assert isinstance(detection, Detection)
    assert detection.keypoints.shape == (33, 3) and detection.keypoints.dtype == np.float32
    assert detection.world_landmarks.shape == (33, 3) and detection.image_size == (width, height)

    # Torso and knee landmarks lie within 10% of the labelled box size of the COCO labels.
    labels = np.asarray(entry["target"]["keypoints"], dtype=np.float64)
    x, y, box_w, box_h = entry["target"]["bbox_xywh"]
    tolerance = 0.10 * max(box_w, box_h)
    for name in CHECKED_JOINTS:
        label = labels[COCO17_NAMES.index(name)]
        assert label[2] > 0, f"{file_name}: {name} is not labelled"
        found = detection.keypoints[BLAZEPOSE33_NAMES.index(name)]
        distance = float(np.linalg.norm(found[:2] - label[:2]))
        assert distance < tolerance, f"{file_name}: {name} is {distance:.1f} px from the label (limit {tolerance:.1f})"
        assert found[2] > 0.5, f"{file_name}: {name} visibility {found[2]:.2f}"

    # The box and the mask match the labelled person.
    box = detection.bbox_xyxy
    labelled_box = np.array([x, y, x + box_w, y + box_h])
    assert _box_iou(box, labelled_box) > 0.9
    assert detection.mask is not None and detection.mask.shape == (height, width)
    assert detection.mask.dtype == np.float32 and 0.0 <= detection.mask.min() and detection.mask.max() <= 1.0
    labelled_mask = np.asarray(Image.open(COCO_DIR / entry["target_mask_file"])) > 127
    predicted_mask = detection.mask > 0.5
    iou = (labelled_mask & predicted_mask).sum() / (labelled_mask | predicted_mask).sum()
    assert iou > 0.8, f"{file_name}: mask IoU {iou:.2f}"

    # World landmarks: metres, hip-centred, x right, y down, z away from the camera (person faces it).
    world = detection.world_landmarks
    index = BLAZEPOSE33_NAMES.index
    hip_mid = (world[index("left_hip")] + world[index("right_hip")]) / 2
    assert np.linalg.norm(hip_mid) < 0.02
    shoulder_width = np.linalg.norm(world[index("left_shoulder")] - world[index("right_shoulder")])
    assert 0.2 < shoulder_width < 0.6
    assert world[index("left_shoulder"), 0] > world[index("right_shoulder"), 0]
    assert world[index("nose"), 1] < world[index("left_knee"), 1]
    ears_z = (world[index("left_ear"), 2] + world[index("right_ear"), 2]) / 2
    assert world[index("nose"), 2] < ears_z

    kp_file = detection.to_keypoint_file(image=file_name)
    assert kp_file.keypoints.shape == (1, 33, 3) and kp_file.keypoint_set == "blazepose33"


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def test_closed_detector_refuses_work() -> None:
    created = BlazePoseDetector(enable_segmentation=False)
    created.close()
    with pytest.raises(RuntimeError, match="closed"):
        created.detect(np.zeros((64, 64, 3), np.uint8))
