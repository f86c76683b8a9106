"""`fitter fit --hands`: hands and face detected per person and fitted as "blazepose33+hands42" with a
body model that has finger joints; one-line errors for models without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fitter.cli.main import app
from fitter.detect.hands import FACE_POINT_NAMES
from fitter.keypoints import keypoint_names
from fitter.pipeline import FitOptions, FitWorker
from fitter.pipeline.jobs import HANDS_KEYPOINT_SET, hands_body_model
from fitter.result import FitResult

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
ONE_HAND = EVAL / "demo" / "images" / "pymaf_COCO_val2014_000000019667.jpg"  # football player: a hand and the face
TWO_PEOPLE = EVAL / "coco" / "images" / "000000181303.jpg"  # two people, hands hidden
needs_eval = pytest.mark.skipif(not ONE_HAND.is_file(), reason=f"evaluation photos not present at {EVAL}")


def test_hands_needs_a_model_with_finger_joints(tmp_path: Path) -> None:
    assert hands_body_model("anny", True) == "anny-hands"
    assert hands_body_model("anny", None) == hands_body_model("anny", False) == "anny"
    assert hands_body_model("smplx", True) == "smplx"
    result = CliRunner().invoke(app, ["fit", str(tmp_path), "--hands", "--body-model", "smpl", "--out",
                                      str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --hands needs a body model with finger joints"), lines
    result = CliRunner().invoke(
        app, ["fit", str(tmp_path), "--hands", "--keypoints", str(tmp_path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code != 0 and "drop --hands" in result.output


def test_hands_with_a_loaded_model_without_fingers_is_refused(anny_model, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finger joints .* has none"):
        FitWorker(FitOptions(out_dir=tmp_path, hands=True), model=anny_model)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ONE_HAND.is_file():
        pytest.skip(f"evaluation photos not present at {EVAL}")
    out = tmp_path_factory.mktemp("hands") / "out"
    result = CliRunner().invoke(app, ["fit", str(ONE_HAND), str(TWO_PEOPLE), "--hands", "--out", str(out),
                                      "--config", "fast"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@needs_eval
def test_fit_with_hands_uses_hand_and_face_points(fitted: Path) -> None:
    from fitter.detect import PeopleDetector
    from fitter.io.images import read_image

    result = FitResult.load(fitted / f"{ONE_HAND.stem}.npz")
    assert result.keypoint_set == HANDS_KEYPOINT_SET and result.keypoints.shape == (1, 75, 3)
    assert (fitted / f"{ONE_HAND.stem}_overlay.png").is_file()
    hands = result.keypoints[0, 33:].reshape(2, 21, 3)
    conf = hands[..., 2]
    assert np.all((conf == conf[:, :1]) & np.isin(conf, (0.0, 1.0)))  # per hand: found (1) or not (0)
    assert conf[:, 0].sum() >= 1
    names = keypoint_names("blazepose33")
    face = [names.index(n) for n in FACE_POINT_NAMES]
    with PeopleDetector(min_detection_confidence=0.1) as detector:
        (body, *_) = detector.detect(read_image(ONE_HAND))
    assert np.all(result.keypoints[0, face, 2] == 1.0)  # the face mesh's points, not BlazePose's
    assert np.abs(result.keypoints[0, face, :2] - body.keypoints[face, :2]).max() > 0.5
    others = [i for i in range(33) if i not in face]
    np.testing.assert_allclose(result.keypoints[0, others], body.keypoints[others], atol=1e-3)


@needs_eval
def test_several_people_are_fitted_with_hands(fitted: Path) -> None:
    listing = json.loads((fitted / f"{TWO_PEOPLE.stem}.json").read_text())
    assert len(listing["people"]) == 2 and (fitted / f"{TWO_PEOPLE.stem}_scene.glb").is_file()
    for person in listing["people"]:
        result = FitResult.load(fitted / person["files"])
        assert result.keypoint_set == HANDS_KEYPOINT_SET and result.keypoints.shape == (1, 75, 3)


@needs_eval
def test_fit_with_hands_writes_hand_poses(fitted: Path) -> None:
    npz = np.load(fitted / f"{ONE_HAND.stem}.npz")
    sidecar = json.loads((fitted / f"{ONE_HAND.stem}.json").read_text())
    for key in ("left_hand_pose", "right_hand_pose"):
        assert npz[key].shape == (1, 45) and np.shape(sidecar[key]) == (1, 45)
