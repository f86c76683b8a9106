"""Tests for `fitter.camera.resolve_camera`: focal length from the user, else the photo's EXIF
(35 mm equivalent f35 -> f35 / 36 * max(W, H) px), else the image diagonal; `focal_source`
records which; principal point at the image centre; bad sizes rejected. Also checks that
`fit_keypoints` passes image paths through and records the source."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fitter.camera import Camera, resolve_camera
from fitter.fitting import fit_config, fit_keypoints
from fitter.geometry import perspective_project
from fitter.keypoints import keypoint_regressor

EXIF_IFD = 0x8769
FOCAL_35MM = 0xA405
FOCAL_MM = 0x920A
W, H = 640, 480


def write_jpeg(path, tags: dict[int, object] | None = None, size=(W, H)):
    """A small JPEG with the given tags in its Exif sub-IFD (none: no EXIF at all)."""
    image = Image.new("RGB", size, (120, 90, 60))
    if tags is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif.get_ifd(EXIF_IFD).update(tags)
        image.save(path, exif=exif)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("photos")
    return {
        "f35_50": write_jpeg(folder / "f35_50.jpg", {FOCAL_35MM: 50}),
        "f35_zero": write_jpeg(folder / "f35_zero.jpg", {FOCAL_35MM: 0}),  # 0 = unknown in EXIF
        "focal_only": write_jpeg(folder / "focal_only.jpg", {FOCAL_MM: 4.2}),  # no sensor size
        "plain": write_jpeg(folder / "plain.jpg"),
    }


EXIF_50 = 50.0 / 36.0 * max(W, H)  # 888.9 px
DIAGONAL = math.hypot(W, H)  # 800 px


def test_user_focal_wins_over_exif(photos):
    cam = resolve_camera((W, H), 1, focal_length=500.0, image_paths=[photos["f35_50"]])
    assert isinstance(cam, Camera)
    np.testing.assert_allclose(cam.focal_length, [500.0])
    assert cam.focal_source == ["user"]


def test_exif_35mm_focal_used_when_present(photos):
    cam = resolve_camera((W, H), 1, image_paths=[photos["f35_50"]])
    np.testing.assert_allclose(cam.focal_length, [EXIF_50], rtol=1e-6)
    assert cam.focal_source == ["exif"]


@pytest.mark.parametrize("photo", [None, "plain", "f35_zero", "focal_only"])
def test_diagonal_without_usable_exif(photos, photo):
    paths = None if photo is None else [photos[photo]]
    cam = resolve_camera((W, H), 1, image_paths=paths)
    np.testing.assert_allclose(cam.focal_length, [DIAGONAL], rtol=1e-6)
    assert cam.focal_source == ["diagonal"]


def test_per_item_sources_sizes_and_principal_point(photos):
    sizes = np.array([[W, H], [W, H], [1000, 500], [300, 400]])
    cam = resolve_camera(sizes, 4, focal_length=np.array([700.0, np.nan, np.nan, np.nan]),
                         image_paths=[photos["f35_50"], photos["f35_50"], None, photos["plain"]])  # fmt: skip
    assert cam.focal_source == ["user", "exif", "diagonal", "diagonal"]
    np.testing.assert_allclose(cam.focal_length, [700.0, EXIF_50, math.hypot(1000, 500), 500.0], rtol=1e-6)
    np.testing.assert_allclose(cam.principal_point, sizes / 2)
    np.testing.assert_allclose(cam.image_size, sizes)
    assert cam.focal_length.shape == (4,) and cam.principal_point.shape == (4, 2)


def test_single_size_and_scalar_focal_broadcast():
    cam = resolve_camera((W, H), 3, focal_length=1200.0)
    np.testing.assert_allclose(cam.focal_length, [1200.0] * 3)
    np.testing.assert_allclose(cam.principal_point, [[W / 2, H / 2]] * 3)
    assert cam.focal_source == ["user"] * 3


@pytest.mark.parametrize(
    "size, n",
    [((W,), 1), ((W, H, 3), 1), ((0, H), 1), ((-W, H), 1), ((float("nan"), H), 1), (np.full((2, 2), 100.0), 3)],
)
def test_bad_image_size_raises(size, n):
    with pytest.raises(ValueError, match="image_size"):
        resolve_camera(size, n)


@pytest.mark.parametrize("focal", [0.0, -800.0])
def test_non_positive_focal_raises(focal):
    with pytest.raises(ValueError, match="focal_length"):
        resolve_camera((W, H), 1, focal_length=focal)


# --------------------------------------------------------------------------------------------
# through fit_keypoints


def standing_keypoints(model, focal: float) -> np.ndarray:
    """(1,17,3) COCO-17 pixels of the model in its rest shape, upright facing the camera, 4 m away."""
    reg = keypoint_regressor(model, "coco17")
    with torch.no_grad():
        out = model(torch.zeros(1, 10), torch.zeros(1, 69), torch.tensor([[math.pi, 0.0, 0.0]]),
                    torch.tensor([[0.0, 0.0, 4.0]]))  # fmt: skip
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), focal, torch.tensor([W / 2, H / 2]))
    return torch.cat([px, torch.ones_like(px[..., :1])], dim=-1).numpy()


TINY = fit_config("fast", camera_iters=2, stage_iters=(2,), pose_prior_weights=(4.78,), shape_prior_weights=(5.0,))


def test_fit_keypoints_uses_exif_and_records_source(anny_model, photos):
    kp = standing_keypoints(anny_model, EXIF_50)
    result = fit_keypoints(kp, "coco17", (W, H), body_model=anny_model, config=TINY, image_paths=[photos["f35_50"]])
    assert result.info["focal_source"] == ["exif"]
    np.testing.assert_allclose(result.focal_length, [EXIF_50], rtol=1e-6)
    np.testing.assert_allclose(result.principal_point, [[W / 2, H / 2]])
    user = fit_keypoints(kp, "coco17", (W, H), focal_length=650.0, body_model=anny_model, config=TINY,
                         image_paths=[photos["f35_50"]])  # fmt: skip
    assert user.info["focal_source"] == ["user"]
    np.testing.assert_allclose(user.focal_length, [650.0])


def test_fit_keypoints_rejects_bad_image_size(anny_model):
    kp = standing_keypoints(anny_model, 800.0)
    with pytest.raises(ValueError, match="image_size"):
        fit_keypoints(kp, "coco17", (W, 0), body_model=anny_model, config=TINY)
    with pytest.raises(ValueError, match="image_size"):
        fit_keypoints(kp, "coco17", (W, H, 3), body_model=anny_model, config=TINY)
