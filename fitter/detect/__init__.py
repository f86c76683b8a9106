"""Person detection and 2D keypoints from photos (mediapipe BlazePose, 33 landmarks): one person
(`BlazePoseDetector`, legacy solutions.pose) or everyone (`PeopleDetector`, Tasks PoseLandmarker);
hands and face per person (`HandFaceDetector`, legacy solutions.holistic)."""

from fitter.detect.hands import HandFaceDetector, HandsFace
from fitter.detect.mediapipe_pose import BLAZEPOSE33_NAMES, BlazePoseDetector, Detection
from fitter.detect.people import PeopleDetector, landmarker_bundle

__all__ = ["BLAZEPOSE33_NAMES", "BlazePoseDetector", "Detection", "HandFaceDetector", "HandsFace", "PeopleDetector",
           "landmarker_bundle"]  # fmt: skip
