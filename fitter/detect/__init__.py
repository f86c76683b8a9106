"""Person detection and 2D keypoints from photos (mediapipe BlazePose, 33 landmarks)."""

from fitter.detect.mediapipe_pose import BLAZEPOSE33_NAMES, BlazePoseDetector, Detection

__all__ = ["BLAZEPOSE33_NAMES", "BlazePoseDetector", "Detection"]
