"""Fitting the fingers (SMPLify-X style): hand pose as a fitted variable when the model has
finger joints and the keypoints carry hands42, the finger joint limits, the curl prior, and the
thumb of `curl_hand_pose`'s fist."""

from __future__ import annotations

import pytest
import torch

from fitter.body import BodyModel, load_body_model
from fitter.body.hands import curl_hand_pose
from fitter.keypoints import keypoint_names, keypoint_regressor


@pytest.fixture(scope="module")
def hands_model() -> BodyModel:
    return load_body_model("anny-hands")


def _hand_points(model: BodyModel, hand_pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """hands42 points (3,) of the posed model (rest body), by name."""
    reg = keypoint_regressor(model, "hands42")
    with torch.no_grad():
        out = model(hand_pose=hand_pose)
    points = reg.from_vertices(out.joints, out.vertices)[0]
    return dict(zip(keypoint_names("hands42"), points))


@pytest.mark.parametrize("side", ["left", "right"])
def test_thumb_of_a_fist_folds_over_the_fingers(hands_model: BodyModel, side: str) -> None:
    def thumb_to_middle_phalanges(points: dict[str, torch.Tensor]) -> float:
        tip = points[f"{side}_thumb_tip"]
        mids = [(points[f"{side}_{f}_pip"] + points[f"{side}_{f}_dip"]) / 2 for f in ("index_finger", "middle_finger")]
        return min(float((tip - m).norm()) for m in mids)

    rest = thumb_to_middle_phalanges(_hand_points(hands_model, torch.zeros(1, 90)))
    fist = thumb_to_middle_phalanges(_hand_points(hands_model, curl_hand_pose(hands_model, 1.05)))
    assert rest > 0.08  # the flat hand's thumb is well away from the fingers
    assert fist < 0.03  # the fist's thumb tip lies on the index / middle middle phalanges
