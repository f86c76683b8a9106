"""fitter.detect.face: face51 keypoints from mediapipe's face mesh, on synthetic numbers and on a
real photo from shared/eval (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fitter.detect.face import FACE51_MESH_IDS, face51_from_mesh
from fitter.detect.hands import HandFaceDetector, HandsFace
from fitter.io.images import read_image
from fitter.keypoints import keypoint_names

COCO_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "eval" / "coco" / "images"
needs_eval = pytest.mark.skipif(not COCO_IMAGES.is_dir(), reason=f"evaluation photos not present at {COCO_IMAGES}")
FRONTAL_CLOSE = "000000463557.jpg"  # a child facing the camera, face ~75 px wide: Holistic finds the face
NAMES = keypoint_names("face51")


def test_face51_points_average_their_mesh_landmarks() -> None:
    assert len(FACE51_MESH_IDS) == len(NAMES) == 51
    assert all(0 <= i < 468 for ids in FACE51_MESH_IDS for i in ids)
    mesh = np.stack([np.arange(468.0), 2 * np.arange(468.0), np.zeros(468)], 1)
    points = face51_from_mesh(mesh, confidence=0.5)
    assert points.shape == (51, 3) and points.dtype == np.float32
    np.testing.assert_allclose(points[:, 0], [np.mean(ids) for ids in FACE51_MESH_IDS])
    np.testing.assert_allclose(points[:, 1], 2 * points[:, 0])
    assert np.all(points[:, 2] == 0.5)
    with pytest.raises(ValueError, match="468"):
        face51_from_mesh(mesh[:100])
    no_face = HandsFace(hands=np.zeros((42, 3), np.float32), face_mesh=None, face_points=np.zeros((9, 3), np.float32))
    assert no_face.face51.shape == (51, 3) and np.all(no_face.face51 == 0)


@needs_eval
def test_face51_on_a_photo_keeps_the_persons_sides_and_order() -> None:
    with HandFaceDetector() as detector:
        (found,) = detector.detect(read_image(COCO_IMAGES / FRONTAL_CLOSE))
    assert found.face_mesh is not None
    points = found.face51
    assert points.shape == (51, 3) and np.all(points[:, 2] == 1.0)
    x0, y0 = found.face_mesh[:, :2].min(0)
    x1, y1 = found.face_mesh[:, :2].max(0)
    assert np.all((points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1))
    x = {n: float(points[k, 0]) for k, n in enumerate(NAMES)}
    y = {n: float(points[k, 1]) for k, n in enumerate(NAMES)}
    # facing the camera: the person's right is the image's left; iBUG order runs left to right
    assert x["right_eye1"] < x["right_eye4"] < x["nose4"] < x["left_eye4"] < x["left_eye1"]  # eye corners
    assert x["right_eye_brow1"] < x["right_eye_brow5"] < x["left_eye_brow5"] < x["left_eye_brow1"]
    assert x["right_mouth_1"] < x["mouth_top"] < x["left_mouth_1"] and x["right_lip_1"] < x["left_lip_1"]
    assert x["right_nose_2"] < x["nose_middle"] < x["left_nose_2"]
    # top to bottom: brows, eyes, nose tip, upper lip, lower lip
    assert y["right_eye_brow3"] < y["right_eye2"] < y["right_eye6"] < y["nose4"] < y["mouth_top"] < y["lip_top"]
    assert y["lip_top"] < y["lip_bottom"] < y["mouth_bottom"]
    assert y["nose1"] < y["nose2"] < y["nose3"] < y["nose4"]
