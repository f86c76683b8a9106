"""Hand and face landmarks per person from mediapipe's legacy Holistic (in the 0.10.21 wheel, offline).

One person: Holistic on the whole image (`detect(image)`, or `detect(image, [person])`). Several
people (the `Detection`s of `PeopleDetector`): Holistic on each person's crop, the box grown by
`crop_margin` of its long side, landmarks mapped back to full-image pixels. (On the 17 demo + COCO
photos of shared/eval, single-person crops found 11 hands where the whole image found 13: Holistic's
hand detection is borderline on small hands and flips with the framing; the whole image is kept
where there is one person.)

Every hand Holistic finds keeps Holistic's own left/right label (the person's own side) and is then
checked against that person's body wrist: a hand whose wrist landmark lies further than
max(WRIST_TOLERANCE x forearm length, PERSON_TOLERANCE x person size) from the body's wrist of
that side is dropped (it belongs to someone else, or the label is wrong). The face mesh is kept
only when its nose tip lies within max(ear-to-ear distance, PERSON_TOLERANCE x person size) of the
body's nose.

Frames and units of a `HandsFace`: pixels of the given image (x right, y down, origin at the
top-left corner). Holistic gives no per-landmark confidence for hands or face: every landmark of a
hand (or face) that was found and passed the check gets confidence FOUND_CONFIDENCE = 1.0 (the
fit weighs it like a visible body point), every landmark of a missing or dropped one 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from fitter.detect.face import face51_from_mesh
from fitter.detect.mediapipe_pose import BLAZEPOSE33_NAMES, Detection, import_mediapipe
from fitter.detect.passes import crop_to_image

__all__ = ["HandFaceDetector", "HandsFace", "FACE_POINT_NAMES", "FACE_MESH_IDS", "grown_box", "check_hand",
           "face_points_from_mesh"]  # fmt: skip

FOUND_CONFIDENCE = 1.0  # confidence of every landmark of a hand / face that was found and kept
WRIST_TOLERANCE = 0.5  # a hand's wrist may lie this many forearm lengths from the body's wrist ...
PERSON_TOLERANCE = 0.05  # ... or this fraction of the person's size (long side of the landmark box)

FACE_POINT_NAMES: tuple[str, ...] = ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
                                     "right_eye", "right_eye_outer", "mouth_left", "mouth_right")  # fmt: skip
"""The BlazePose face points the face mesh gives better versions of (person's own left/right)."""

FACE_MESH_IDS: dict[str, tuple[int, ...]] = {
    "nose": (1,),  # nose tip
    "left_eye_inner": (362,),  # person's left eye: image right for a frontal face
    "left_eye": (362, 263, 386, 374),  # eye centre: mean of its corners and mid upper / lower lid
    "left_eye_outer": (263,),
    "right_eye_inner": (133,),
    "right_eye": (33, 133, 159, 145),
    "right_eye_outer": (33,),
    "mouth_left": (291,),
    "mouth_right": (61,),
}
"""Face-mesh (468 landmarks) indices averaged for each of FACE_POINT_NAMES."""

_BODY = {name: i for i, name in enumerate(BLAZEPOSE33_NAMES)}


@dataclass
class HandsFace:
    """Hands and face of one person, pixels of the full image.

    hands: (42, 3) float32 [x px, y px, confidence]: the person's left hand's 21 MediaPipe Hands
    landmarks (wrist, thumb CMC..tip, index MCP..tip, middle, ring, pinky), then the right hand's
    (keypoint set "hands42"); confidence FOUND_CONFIDENCE, or 0 (and x = y = 0) for a hand not found.
    face_mesh: (468, 3) float32 [x px, y px, z] (z: mediapipe's relative depth, in x's scale) or None.
    face_points: (9, 3) float32 [x px, y px, confidence] in FACE_POINT_NAMES order (0 without a face).
    dropped: why a hand or face Holistic found was not kept (one line each).
    """

    hands: np.ndarray
    face_mesh: np.ndarray | None
    face_points: np.ndarray
    dropped: list[str] = field(default_factory=list)

    @property
    def face51(self) -> np.ndarray:
        """(51, 3) float32 [x px, y px, confidence]: keypoint set "face51" from the face mesh
        (fitter.detect.face), confidence FOUND_CONFIDENCE; all zeros without a face."""
        if self.face_mesh is None:
            return np.zeros((51, 3), np.float32)
        return face51_from_mesh(self.face_mesh, FOUND_CONFIDENCE)

    @property
    def hands_found(self) -> tuple[bool, bool]:
        """(left hand found, right hand found)."""
        return bool(self.hands[0, 2] > 0), bool(self.hands[21, 2] > 0)


def grown_box(box_xyxy: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """(4,) int64 [x0, y0, x1, y1] px: the box grown by `margin` x its long side on every side,
    clipped to the (width, height) image (x1, y1 exclusive), at least 1 px wide and high."""
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    grow = margin * max(box[2] - box[0], box[3] - box[1])
    x0, y0 = np.floor(np.clip(box[:2] - grow, 0, [width - 1, height - 1])).astype(np.int64)
    x1, y1 = np.ceil(np.clip(box[2:] + grow, 0, [width, height])).astype(np.int64)
    return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)], dtype=np.int64)


def _person_size(body: np.ndarray) -> float:
    xy = body[:, :2]
    return float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1])))


def check_hand(hand_wrist_xy: np.ndarray, body: np.ndarray, side: str) -> str | None:
    """None when a hand whose wrist landmark is at `hand_wrist_xy` (px) can be `side`'s
    ("left" / "right") hand of the person with BlazePose keypoints `body` (33, 3) px; else why not."""
    wrist = body[_BODY[f"{side}_wrist"], :2]
    forearm = float(np.linalg.norm(wrist - body[_BODY[f"{side}_elbow"], :2]))
    limit = max(WRIST_TOLERANCE * forearm, PERSON_TOLERANCE * _person_size(body))
    distance = float(np.linalg.norm(np.asarray(hand_wrist_xy, dtype=np.float64) - wrist))
    if distance > limit:
        return f"{side} hand: its wrist is {distance:.0f} px from the body's {side} wrist (limit {limit:.0f} px)"
    return None


def _check_face(nose_xy: np.ndarray, body: np.ndarray) -> str | None:
    ears = float(np.linalg.norm(body[_BODY["left_ear"], :2] - body[_BODY["right_ear"], :2]))
    limit = max(ears, PERSON_TOLERANCE * _person_size(body))
    distance = float(np.linalg.norm(np.asarray(nose_xy, dtype=np.float64) - body[_BODY["nose"], :2]))
    if distance > limit:
        return f"face: its nose is {distance:.0f} px from the body's nose (limit {limit:.0f} px)"
    return None


def face_points_from_mesh(face_mesh: np.ndarray) -> np.ndarray:
    """(9, 2) px: FACE_POINT_NAMES from a (468, >=2) face mesh in pixels (FACE_MESH_IDS)."""
    mesh = np.asarray(face_mesh, dtype=np.float64)
    if mesh.ndim != 2 or mesh.shape[0] != 468:
        raise ValueError(f"face_mesh must be the 468 face-mesh landmarks (468, 2+), got {mesh.shape}")
    return np.stack([mesh[list(FACE_MESH_IDS[name]), :2].mean(0) for name in FACE_POINT_NAMES])


class HandFaceDetector:
    """mediapipe Holistic (static images, model_complexity 1); create once, call `detect` per image.

    crop_margin: a person's box grows by this fraction of its long side before cropping.
    Use as a context manager or call `close()`. Not thread-safe: one detector per thread.
    """

    def __init__(self, crop_margin: float = 0.25, min_detection_confidence: float = 0.5) -> None:
        if crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0 (a fraction of the box's long side), got {crop_margin}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence}")
        mp = import_mediapipe()
        holistic = getattr(getattr(mp, "solutions", None), "holistic", None)
        if holistic is None:
            raise ImportError(f"mediapipe {getattr(mp, '__version__', 'unknown')} has no solutions.holistic with "
                              "bundled models; pip install mediapipe==0.10.21")  # fmt: skip
        self.crop_margin = crop_margin
        self._holistic: Any = holistic.Holistic(static_image_mode=True, model_complexity=1,
                                                min_detection_confidence=min_detection_confidence)  # fmt: skip

    def __enter__(self) -> HandFaceDetector:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        """Release mediapipe's graph; `detect` fails afterwards."""
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None

    def detect(self, image_rgb: np.ndarray, people: Sequence[Detection] | None = None,
               crops: bool | None = None) -> list[HandsFace]:  # fmt: skip
        """Hands and face per person of an (H, W, 3) uint8 RGB image.

        people None: Holistic on the whole image, one HandsFace checked against Holistic's own body
        landmarks (empty when it finds nobody). Else one HandsFace per given person (same order),
        checked against that person's keypoints: from Holistic on each person's crop (crops=True),
        or on the whole image (crops=False); crops=None: the whole image for one person, crops for several."""
        if self._holistic is None:
            raise RuntimeError("HandFaceDetector is closed; create a new one")
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}; "
                             "use fitter.io.images.read_image")  # fmt: skip
        height, width = image.shape[:2]
        if people is None:
            found = self._run(image, np.array([0, 0, width, height]), None)
            return [] if found is None else [found]
        out = []
        crops = len(people) > 1 if crops is None else crops
        whole = np.array([0, 0, width, height])
        for person in people:
            box = grown_box(person.bbox_xyxy, self.crop_margin, width, height) if crops else whole
            found = self._run(image[box[1] : box[3], box[0] : box[2]], box, person.keypoints)
            out.append(found if found is not None else _empty())
        return out

    def _run(self, crop: np.ndarray, box: np.ndarray, body: np.ndarray | None) -> HandsFace | None:
        """Holistic on `crop` (the image's pixels in `box`); None when it finds no body."""
        result = self._holistic.process(np.ascontiguousarray(crop))
        if result.pose_landmarks is None:
            return None
        if body is None:  # Holistic's own body landmarks, for the checks
            body = np.zeros((33, 3))
            body[:, :2] = crop_to_image(_landmarks(result.pose_landmarks)[:, :2], box)
        found = _empty()
        for h, (side, landmarks) in enumerate((("left", result.left_hand_landmarks),
                                               ("right", result.right_hand_landmarks))):  # fmt: skip
            if landmarks is None:
                continue
            points = crop_to_image(_landmarks(landmarks)[:, :2], box)
            why = check_hand(points[0], body, side)
            if why is None:
                found.hands[21 * h : 21 * h + 21] = np.concatenate([points, np.full((21, 1), FOUND_CONFIDENCE)], 1)
            else:
                found.dropped.append(why)
        if result.face_landmarks is not None:
            raw = _landmarks(result.face_landmarks)
            mesh = np.concatenate([crop_to_image(raw[:, :2], box), raw[:, 2:3] * (box[2] - box[0])], 1)
            why = _check_face(mesh[FACE_MESH_IDS["nose"][0], :2], body)
            if why is None:
                found.face_mesh = mesh.astype(np.float32)
                found.face_points[:, :2] = face_points_from_mesh(mesh)
                found.face_points[:, 2] = FOUND_CONFIDENCE
            else:
                found.dropped.append(why)
        return found


def _landmarks(landmark_list: Any) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in landmark_list.landmark], dtype=np.float64)


def _empty() -> HandsFace:
    return HandsFace(hands=np.zeros((42, 3), np.float32), face_mesh=None, face_points=np.zeros((9, 3), np.float32))
