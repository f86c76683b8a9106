"""Tests for fitter.io.images, fitter.io.keypoint_files and fitter.io.atomic (small synthetic files only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fitter.io.atomic import atomic_save_npz, atomic_save_png, atomic_write, atomic_write_json, atomic_write_text
from fitter.io.images import (
    ImageReadError,
    focal_px_from_exif,
    list_images,
    read_exif_focal_35mm,
    read_image,
)
from fitter.io.keypoint_files import (
    KeypointFile,
    find_keypoints_for_image,
    read_keypoints_file,
    write_keypoints_file,
)

# ---------------------------------------------------------------------------------- images


def _marked_rgb(width: int = 40, height: int = 20) -> np.ndarray:
    """A landscape RGB image with a red block in the top-left corner (to see rotations)."""
    image = np.full((height, width, 3), 30, np.uint8)
    image[:5, :8] = (255, 0, 0)
    return image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = _marked_rgb()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the viewer rotates the stored image 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)

    image = read_image(path)
    assert image.shape == (40, 20, 3) and image.dtype == np.uint8
    expected = np.rot90(stored, k=-1)  # clockwise: the top-left block ends up top-right
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 4
    assert image[2, -3, 0] > 200 and image[2, 2, 0] < 80


def test_grayscale_palette_rgba_and_16bit(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (6, 1))
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (6, 25, 3) and np.array_equal(image[..., 0], grey) and np.array_equal(image[..., 2], grey)

    palette = Image.fromarray(_marked_rgb()).convert("P")
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_image(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    rgba[2:, :, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert image.shape == (4, 4, 3)
    assert np.array_equal(image[0, 0], (10, 20, 30)) and np.array_equal(image[3, 3], (255, 255, 255))

    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5957).astype(np.uint16)  # up to 65527
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    image = read_image(tmp_path / "grey16.png")
    assert np.array_equal(image[..., 1], np.rint(grey16 / 65535.0 * 255).astype(np.uint8))

    import cv2  # writes true 16-bit RGB PNGs (stored BGR)

    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32768, 256
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    image = read_image(tmp_path / "rgb16.png")
    assert image.dtype == np.uint8 and np.all(np.abs(image[0, 0].astype(int) - (255, 128, 1)) <= 1)


def test_unreadable_files_raise_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(ImageReadError, match="notes.jpg") as error:
        read_image(tmp_path / "notes.jpg")
    assert "\n" not in str(error.value)

    good = tmp_path / "good.jpg"
    Image.fromarray(_marked_rgb(64, 64)).save(good)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:300])  # truncated JPEG
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    assert issubclass(ImageReadError, ValueError)


def test_exif_focal_length(tmp_path: Path) -> None:
    image = Image.fromarray(_marked_rgb(60, 40))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    image.save(tmp_path / "f35.jpg", exif=exif)
    assert read_exif_focal_35mm(tmp_path / "f35.jpg") == pytest.approx(28.0)
    assert focal_px_from_exif(tmp_path / "f35.jpg", 60, 40) == pytest.approx(28.0 / 36.0 * 60)

    # Focal length in mm + focal plane resolution: a 6 mm lens on a sensor 6 mm wide (600 px, 100 px/mm).
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x920A] = IFDRational(6, 1)
    sub[0xA20E] = IFDRational(100, 1)
    sub[0xA20F] = IFDRational(100, 1)
    sub[0xA210] = 4  # millimetres
    sub[0xA002] = 600
    sub[0xA003] = 400
    image.save(tmp_path / "plane.jpg", exif=exif)
    # focal px at 600 wide = 600; f35 = 600 / 600 * 36 = 36 mm, and back to 60 px at the saved 60 px width.
    assert read_exif_focal_35mm(tmp_path / "plane.jpg") == pytest.approx(36.0)
    assert focal_px_from_exif(tmp_path / "plane.jpg", 60, 40) == pytest.approx(60.0)

    image.save(tmp_path / "none.jpg")
    assert read_exif_focal_35mm(tmp_path / "none.jpg") is None
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x920A] = IFDRational(4, 1)  # mm only: no sensor size, no answer
    image.save(tmp_path / "mm_only.jpg", exif=exif)
    assert focal_px_from_exif(tmp_path / "mm_only.jpg", 60, 40) is None


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.txt", ".hidden.jpg", "sub/d.jpeg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = list_images(tmp_path)
    assert [p.name for p in found] == ["a.png", "b.JPG"]
    found = list_images([tmp_path, tmp_path / "a.png", tmp_path / "sub"], recursive=True)
    assert [p.name for p in found] == ["a.png", "b.JPG", "d.jpeg"]
    with pytest.raises(ValueError, match="c.txt"):
        list_images(tmp_path / "c.txt")
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")


# ---------------------------------------------------------------------------------- keypoint files


def test_openpose_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    body25 = np.concatenate([rng.uniform(0, 500, (2, 25, 2)), rng.uniform(0, 1, (2, 25, 1))], axis=2)
    content = {
        "version": 1.3,
        "people": [
            {"person_id": [-1], "pose_keypoints_2d": body25[0].ravel().tolist(), "face_keypoints_2d": []},
            {"person_id": [7], "pose_keypoints_2d": body25[1].ravel().tolist()},
        ],
    }
    path = tmp_path / "img_keypoints.json"
    path.write_text(json.dumps(content))
    result = read_keypoints_file(path)
    assert result.keypoint_set == "openpose25" and result.keypoints.shape == (2, 25, 3)
    assert result.keypoints.dtype == np.float32
    np.testing.assert_allclose(result.keypoints, body25, rtol=1e-6)
    assert result.person_ids.tolist() == [0, 7]

    coco18 = {"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 18}]}
    path.write_text(json.dumps(coco18))
    result = read_keypoints_file(path)
    assert result.keypoint_set == "coco18" and result.keypoints.shape == (1, 18, 3)
    assert result.keypoints[0, 3].tolist() == [1.0, 2.0, 0.5]

    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 20}]}))
    with pytest.raises(ValueError, match="60 values"):
        read_keypoints_file(path)


def _coco_annotation(ann_id: int, image_id: int, offset: float) -> dict:
    keypoints = []
    for k in range(17):
        keypoints += [offset + k, 2.0 * k, (0, 1, 2)[k % 3]]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "keypoints": keypoints}


def test_coco_json_dict_and_list(tmp_path: Path) -> None:
    crowd = {"id": 99, "image_id": 5, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 51}
    content = {
        "images": [{"id": 5, "file_name": "000000000005.jpg"}, {"id": 6, "file_name": "other.jpg"}],
        "annotations": [
            _coco_annotation(11, 5, 100.0),
            _coco_annotation(12, 6, 0.0),
            _coco_annotation(13, 5, 300.0),
            crowd,
        ],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="pass image="):
        read_keypoints_file(path)
    result = read_keypoints_file(path, image=Path("/photos/000000000005.jpg"))
    assert result.keypoint_set == "coco17" and result.keypoints.shape == (2, 17, 3)
    assert result.person_ids.tolist() == [11, 13] and result.image == "000000000005.jpg"
    assert result.keypoints[1, 4, 0] == pytest.approx(304.0)
    # v = 0 / 1 / 2 -> confidence 0 / 1 / 1
    assert result.keypoints[0, :3, 2].tolist() == [0.0, 1.0, 1.0]
    assert read_keypoints_file(path, image=6).person_ids.tolist() == [12]

    # A bare annotation list without "images": a COCO-style numeric file name selects the image id.
    path.write_text(json.dumps(content["annotations"]))
    assert read_keypoints_file(path, image="000000000005.jpg").person_ids.tolist() == [11, 13]
    with pytest.raises(ValueError, match="no image named"):
        read_keypoints_file(path, image="holiday.jpg")

    # A results file: the third value is a score.
    results = [{"image_id": 5, "category_id": 1, "keypoints": [10.0, 20.0, 0.75] * 17, "score": 0.9}]
    path.write_text(json.dumps(results))
    result = read_keypoints_file(path)
    assert result.keypoints.shape == (1, 17, 3) and np.allclose(result.keypoints[0, :, 2], 0.75)


def test_fitter_formats_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    keypoints = np.concatenate([rng.uniform(-5, 600, (3, 33, 2)), rng.uniform(0, 1, (3, 33, 1))], axis=2)
    original = KeypointFile(keypoints, "blazepose33", np.array([4, 5, 9]), image="photo.jpg")
    for name in ("kp.npz", "kp.json"):
        write_keypoints_file(tmp_path / name, original)
        loaded = read_keypoints_file(tmp_path / name)
        assert loaded.keypoint_set == "blazepose33" and loaded.image == "photo.jpg"
        assert loaded.keypoints.shape == (3, 33, 3) and loaded.keypoints.dtype == np.float32
        np.testing.assert_allclose(loaded.keypoints, keypoints.astype(np.float32))
        assert loaded.person_ids.tolist() == [4, 5, 9]
    with pytest.raises(ValueError, match="photo.jpg"):
        read_keypoints_file(tmp_path / "kp.json", image="another.jpg")

    content = {"keypoint_set": "coco17", "people": [{"keypoints": [[1, 2, 1]] * 17}]}
    (tmp_path / "own.json").write_text(json.dumps(content))
    loaded = read_keypoints_file(tmp_path / "own.json")
    assert loaded.keypoints.shape == (1, 17, 3) and loaded.person_ids.tolist() == [0] and loaded.image is None


def test_bad_keypoint_files(tmp_path: Path) -> None:
    def expect_error(content: object, match: str, name: str = "bad.json") -> None:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ValueError, match=match) as error:
            read_keypoints_file(path)
        assert "\n" not in str(error.value) and name in str(error.value)

    expect_error("{not json", "not valid JSON")
    expect_error({"something": 1}, "unknown keypoint JSON layout")
    expect_error(
        {"keypoint_set": "coco17", "people": [{"keypoints": [[1, 2, 1]] * 16}]}, "has 17 keypoints but the data has 16"
    )
    expect_error({"keypoint_set": "coco17", "people": [{"keypoints": [[1, float("nan"), 1]] * 17}]}, "NaN")
    expect_error({"people": [{"pose_keypoints_2d": [1.0, "a", 0.5] * 25}]}, "numbers only")
    expect_error({"keypoint_set": "coco17", "people": [{"keypoints": [[1, 2, 3]] * 17}]}, r"\[0, 1\]")
    expect_error("[]", "unsupported keypoint file type", name="x.txt")
    np.savez(tmp_path / "bad.npz", points=np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="lacks keypoints, keypoint_set"):
        read_keypoints_file(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        read_keypoints_file(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="has 33 keypoints"):
        write_keypoints_file(tmp_path / "w.npz", KeypointFile(np.zeros((1, 17, 3)), "blazepose33"))


def test_find_keypoints_for_image(tmp_path: Path) -> None:
    folder = tmp_path / "kps"
    folder.mkdir()
    image = tmp_path / "photos" / "run.jpg"
    assert find_keypoints_for_image(folder, image) is None
    (folder / "run.npz").write_bytes(b"")
    assert find_keypoints_for_image(folder, image) == folder / "run.npz"
    (folder / "run_keypoints.json").write_text("{}")
    assert find_keypoints_for_image(folder, image) == folder / "run_keypoints.json"
    (folder / "run.json").write_text("{}")
    assert find_keypoints_for_image(folder, image) == folder / "run.json"
    assert find_keypoints_for_image(folder / "run.npz", image) == folder / "run.npz"
    with pytest.raises(FileNotFoundError):
        find_keypoints_for_image(tmp_path / "missing", image)


# ---------------------------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"value": np.float32(1.5), "array": np.arange(3)})
    assert json.loads(target.read_text()) == {"value": 1.5, "array": [0, 1, 2]}
    before = target.read_bytes()

    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_write(target, "wb") as handle:
            handle.write(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["result.json"]  # temp file removed

    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "new.txt", "w") as handle:
            handle.write("x")
            raise RuntimeError("writer failed")
    assert not (tmp_path / "new.txt").exists()


def test_atomic_helpers(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "note.txt", "héllo\n")
    assert (tmp_path / "a" / "note.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (os.stat(tmp_path / "a" / "note.txt").st_mode & 0o777) == 0o644

    atomic_save_npz(tmp_path / "arrays.npz", pose=np.ones((2, 3)), name=np.array("x"))
    with np.load(tmp_path / "arrays.npz") as data:
        assert data["pose"].shape == (2, 3) and str(data["name"]) == "x"

    rgb = np.random.default_rng(2).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for image in (rgb, rgb[..., 0], np.concatenate([rgb, rgb[..., :1]], axis=2)):
        atomic_save_png(tmp_path / "img.png", image)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "img.png")), image)
    with pytest.raises(ValueError, match="uint8"):
        atomic_save_png(tmp_path / "img.png", rgb.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "arrays.npz", "img.png"]
