"""fitter.detect.hands: hands and face per person from mediapipe Holistic, on real photos from
shared/eval (skipped where absent) and on synthetic numbers for the crop mapping and the checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fitter.detect import BLAZEPOSE33_NAMES, BlazePoseDetector
from fitter.detect.hands import (
    FACE_MESH_IDS,
    FACE_POINT_NAMES,
    HandFaceDetector,
    check_hand,
    face_points_from_mesh,
    grown_box,
)
from fitter.detect.passes import crop_to_image
from fitter.io.images import read_image
from fitter.keypoints import keypoint_names

COCO_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "eval" / "coco" / "images"
needs_eval = pytest.mark.skipif(not COCO_IMAGES.is_dir(), reason=f"evaluation photos not present at {COCO_IMAGES}")
BOTH_HANDS = "000000535506.jpg"  # one person, both hands seen: Holistic finds both, whole image or crop
FRONTAL = "000000030752.jpg"  # one person facing the camera, face found
W = {n: i for i, n in enumerate(BLAZEPOSE33_NAMES)}


@pytest.fixture(scope="module")
def detector() -> Iterator[HandFaceDetector]:
    with HandFaceDetector() as created:
        yield created


@pytest.fixture(scope="module")
def body() -> Iterator[BlazePoseDetector]:
    with BlazePoseDetector() as created:
        yield created


def test_crop_points_map_to_full_image_pixels() -> None:
    box = np.array([10, 20, 110, 220])
    mapped = crop_to_image(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]]), box)
    np.testing.assert_allclose(mapped, [[10, 20], [110, 220], [60, 70]])
    assert grown_box(np.array([100, 100, 200, 300]), 0.25, 640, 480).tolist() == [50, 50, 250, 350]
    assert grown_box(np.array([10, 10, 600, 470]), 0.25, 640, 480).tolist() == [0, 0, 640, 480]  # clipped


def test_hand_far_from_the_body_wrist_is_dropped() -> None:
    body = np.zeros((33, 3))
    body[:, :2] = np.linspace([100, 0], [160, 400], 33)  # a person 400 px tall
    body[W["left_elbow"], :2], body[W["left_wrist"], :2] = (300, 100), (300, 200)  # forearm 100 px
    assert check_hand(np.array([330.0, 210.0]), body, "left") is None  # 32 px off: within 0.5 forearm
    why = check_hand(np.array([300.0, 300.0]), body, "left")
    assert why is not None and "left hand" in why and "100 px" in why and "limit 50 px" in why


def test_face_points_average_their_mesh_landmarks() -> None:
    mesh = np.stack([np.arange(468.0), 2 * np.arange(468.0)], 1)
    points = face_points_from_mesh(mesh)
    assert points.shape == (9, 2)
    for k, name in enumerate(FACE_POINT_NAMES):
        assert points[k, 0] == pytest.approx(np.mean(FACE_MESH_IDS[name]))
    assert set(FACE_POINT_NAMES) <= set(BLAZEPOSE33_NAMES)
    with pytest.raises(ValueError, match="468"):
        face_points_from_mesh(mesh[:100])


def test_bad_input_is_rejected(detector: HandFaceDetector) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="crop_margin"):
        HandFaceDetector(crop_margin=-0.1)
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []


@needs_eval
def test_hands_found_next_to_the_body_wrists(detector: HandFaceDetector, body: BlazePoseDetector) -> None:
    image = read_image(COCO_IMAGES / BOTH_HANDS)
    person = body.detect(image)
    (found,) = detector.detect(image, [person])
    assert found.hands_found == (True, True) and found.hands.shape == (42, 3)
    size = np.ptp(person.keypoints[:, 1])
    for h, side in enumerate(("left", "right")):  # hands42 order: person's left hand, then right
        assert keypoint_names("hands42")[21 * h] == f"{side}_hand_wrist"
        gap = np.linalg.norm(found.hands[21 * h, :2] - person.keypoints[W[f"{side}_wrist"], :2])
        assert gap < 0.05 * size, f"{side} hand wrist {gap:.0f} px from the body's"
        assert np.all(found.hands[21 * h : 21 * h + 21, 2] == 1.0)


@needs_eval
def test_detection_on_crops_maps_back_onto_the_whole_image_detection(
    detector: HandFaceDetector, body: BlazePoseDetector
) -> None:
    image = read_image(COCO_IMAGES / BOTH_HANDS)
    person = body.detect(image)
    (whole,) = detector.detect(image, [person])
    (crop,) = detector.detect(image, [person], crops=True)
    assert grown_box(person.bbox_xyxy, detector.crop_margin, *image.shape[1::-1]).tolist() != [0, 0, 640, 480]
    both = (whole.hands[:, 2] > 0) & (crop.hands[:, 2] > 0)
    assert both.sum() >= 21
    gap = np.linalg.norm(whole.hands[both, :2] - crop.hands[both, :2], axis=1)  # Holistic itself moves a little
    assert np.median(gap) < 2.0 and gap.max() < 8.0, gap  # with the framing; a wrong mapping is off by 100s
    assert whole.face_mesh is not None and crop.face_mesh is not None
    assert np.median(np.abs(whole.face_points[:, :2] - crop.face_points[:, :2])) < 3.0


@needs_eval
def test_hands_of_someone_else_are_dropped(detector: HandFaceDetector, body: BlazePoseDetector) -> None:
    image = read_image(COCO_IMAGES / BOTH_HANDS)
    person = body.detect(image)
    elsewhere = dataclasses.replace(person, keypoints=person.keypoints + [200, 0, 0])  # body 200 px to the right
    (found,) = detector.detect(image, [elsewhere])
    assert found.hands_found == (False, False) and np.all(found.hands == 0)
    assert any(line.startswith("left hand: its wrist is") for line in found.dropped)
    assert found.face_mesh is None and np.all(found.face_points[:, 2] == 0)


@needs_eval
def test_face_points_keep_the_persons_sides(detector: HandFaceDetector) -> None:
    (found,) = detector.detect(read_image(COCO_IMAGES / FRONTAL))  # facing the camera: their left is image right
    assert found.face_mesh is not None and found.face_mesh.shape == (468, 3)
    x = dict(zip(FACE_POINT_NAMES, found.face_points[:, 0]))
    assert x["left_eye_outer"] > x["left_eye"] > x["left_eye_inner"] > x["nose"]
    assert x["right_eye_outer"] < x["right_eye"] < x["right_eye_inner"] < x["nose"]
    assert x["mouth_left"] > x["nose"] > x["mouth_right"]
    assert np.all(found.face_points[:, 2] == 1.0)
