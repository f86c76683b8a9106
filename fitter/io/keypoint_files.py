"""Reading 2D keypoint files (OpenPose JSON, COCO-format JSON, fitter's own npz/JSON) and writing fitter's own.

Every reader returns a `KeypointFile`: keypoints (N, K, 3) float32 with x, y in pixels of the
(upright) image and a confidence in [0, 1], for N people and a named keypoint set.

Formats read (chosen from the content, not the file name):
- OpenPose JSON: {"people": [{"pose_keypoints_2d": [x, y, c] * K, "person_id": ...}, ...]};
  K = 25 -> "openpose25" (BODY_25), K = 18 -> "coco18" (OpenPose COCO-18). Confidences are
  clipped to [0, 1]; person_id -1 / missing -> the person's index.
- COCO-format JSON: a list of annotations or a dict with "annotations" (and "images"); each
  annotation has "keypoints": [x, y, v] * 17 -> "coco17". Ground-truth visibility flags
  v in {0, 1, 2} become confidence 0 / 1 / 1 (a labelled joint counts whether or not it is
  occluded; v = 0 joints are unlabelled). When any third value is not one of 0, 1, 2 the file is
  a results file and the values are used as confidences (clipped to [0, 1]). Crowd annotations,
  non-person categories and annotations with no labelled keypoint are skipped.
- fitter npz: keypoints (N, K, 3), keypoint_set (string), optional person_ids (N,), optional image.
- fitter JSON: {"keypoint_set": ..., "image": optional, "people": [{"id": ..., "keypoints": [[x, y, c], ...]}]}.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fitter.io.atomic import atomic_save_npz, atomic_write_json

__all__ = [
    "KeypointFile",
    "KEYPOINT_SET_SIZES",
    "read_keypoints_file",
    "write_keypoints_file",
    "find_keypoints_for_image",
]

KEYPOINT_SET_SIZES: dict[str, int] = {
    "openpose25": 25,
    "coco18": 18,
    "coco17": 17,
    "blazepose33": 33,
}
"""Keypoint counts of the sets fitter knows; files naming another set are read without a count check."""

_OPENPOSE_SETS = {25: "openpose25", 18: "coco18"}


@dataclass
class KeypointFile:
    """2D keypoints of N people in one image.

    keypoints: (N, K, 3) float32, x and y in pixels (origin at the top-left image corner),
    confidence in [0, 1] (0 = missing). keypoint_set: name of the K-point layout ("openpose25",
    "coco18", "coco17", "blazepose33", ...). person_ids: (N,) int64. image: file name of the
    image the keypoints belong to, when the file says.
    """

    keypoints: np.ndarray
    keypoint_set: str
    person_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    image: str | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be (N, K, 3) [x, y, confidence], got shape {self.keypoints.shape}")
        num_people = self.keypoints.shape[0]
        if self.person_ids is None or (np.size(self.person_ids) == 0 and num_people > 0):
            self.person_ids = np.arange(num_people, dtype=np.int64)
        self.person_ids = np.asarray(self.person_ids, dtype=np.int64).reshape(-1)
        if self.person_ids.shape[0] != num_people:
            raise ValueError(f"person_ids has {self.person_ids.shape[0]} entries for {num_people} people")
        if not isinstance(self.keypoint_set, str) or not self.keypoint_set:
            raise ValueError("keypoint_set must be a non-empty string such as 'coco17' or 'openpose25'")


def read_keypoints_file(path: str | os.PathLike, image: str | os.PathLike | int | None = None) -> KeypointFile:
    """Read a keypoint file (OpenPose JSON, COCO-format JSON, fitter npz/JSON; see the module docstring).

    image: selects one image in files that hold several (COCO-format): a file name (only its
    name part is compared) or an integer COCO image id. Without "images" in the COCO file, a
    file name whose stem is all digits (COCO naming, e.g. 000000030752.jpg) is read as the id.
    For single-image formats it is checked against the image name stored in the file, if any.
    Raises FileNotFoundError for a missing file and a one-line ValueError for anything malformed.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"keypoint file not found: {file}")
    suffix = file.suffix.lower()
    if suffix == ".npz":
        result = _read_fitter_npz(file)
    elif suffix == ".json":
        try:
            content = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{file}: not valid JSON ({error}); fix or re-export the file") from None
        result = _read_json_content(content, file, image)
    else:
        raise ValueError(
            f"{file}: unsupported keypoint file type {file.suffix!r}; use .json (OpenPose, COCO, fitter) or .npz (fitter)"
        )
    _validate(result, file)
    if image is not None and not isinstance(image, int) and result.image is not None:
        if Path(result.image).name != Path(image).name:
            raise ValueError(
                f"{file}: holds keypoints for image {result.image!r}, not {Path(image).name!r}; pass the matching keypoint file"
            )
    return result


def covers_several_images(path: str | os.PathLike) -> bool:
    """True for a keypoint file that can hold several images' keypoints (COCO-format JSON, whose
    entries name their image); False for the one-image formats (OpenPose, fitter npz/JSON)."""
    file = Path(path)
    if file.suffix.lower() != ".json":
        return False
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(content, list) or (isinstance(content, dict) and "annotations" in content)


def write_keypoints_file(path: str | os.PathLike, keypoints: KeypointFile) -> None:
    """Write `keypoints` in fitter's own format, .npz or .json by the path's suffix (atomic write)."""
    file = Path(path)
    _validate(keypoints, file)
    suffix = file.suffix.lower()
    if suffix == ".npz":
        arrays: dict[str, Any] = {
            "keypoints": keypoints.keypoints.astype(np.float32),
            "keypoint_set": np.array(keypoints.keypoint_set),
            "person_ids": keypoints.person_ids.astype(np.int64),
        }
        if keypoints.image is not None:
            arrays["image"] = np.array(keypoints.image)
        atomic_save_npz(file, **arrays)
    elif suffix == ".json":
        content: dict[str, Any] = {"keypoint_set": keypoints.keypoint_set}
        if keypoints.image is not None:
            content["image"] = keypoints.image
        content["people"] = [
            {"id": int(person_id), "keypoints": [[float(v) for v in row] for row in person]}
            for person_id, person in zip(keypoints.person_ids, keypoints.keypoints)
        ]
        atomic_write_json(file, content, indent=None)
    else:
        raise ValueError(f"{file}: keypoint files are written as .npz or .json; change the suffix")


def find_keypoints_for_image(keypoints_arg: str | os.PathLike, image_path: str | os.PathLike) -> Path | None:
    """The keypoint file for `image_path`: `keypoints_arg` itself when it is a file; in a folder,
    the first of `<stem>.json`, `<stem>_keypoints.json` (OpenPose naming), `<stem>.npz`; None when
    the folder has none of them. Raises FileNotFoundError when `keypoints_arg` does not exist.
    """
    location = Path(keypoints_arg)
    if location.is_file():
        return location
    if not location.is_dir():
        raise FileNotFoundError(f"keypoints path not found: {location}; give a keypoint file or a folder of them")
    stem = Path(image_path).stem
    for name in (f"{stem}.json", f"{stem}_keypoints.json", f"{stem}.npz"):
        candidate = location / name
        if candidate.is_file():
            return candidate
    return None


# --- readers -------------------------------------------------------------------------------


def _read_fitter_npz(file: Path) -> KeypointFile:
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable .npz ({error}); re-export it with write_keypoints_file") from None
    missing = [key for key in ("keypoints", "keypoint_set") if key not in arrays]
    if missing:
        raise ValueError(
            f"{file}: npz lacks {', '.join(missing)}; a fitter keypoint npz needs 'keypoints' (N, K, 3) and 'keypoint_set'"
        )
    keypoints = np.asarray(arrays["keypoints"], dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"{file}: 'keypoints' must be (N, K, 3) [x, y, confidence], got shape {keypoints.shape}")
    image = str(arrays["image"]) if "image" in arrays else None
    return KeypointFile(
        keypoints=keypoints,
        keypoint_set=str(arrays["keypoint_set"]),
        person_ids=arrays.get("person_ids"),
        image=image or None,
    )


def _read_json_content(content: Any, file: Path, image: str | os.PathLike | int | None) -> KeypointFile:
    if isinstance(content, dict) and "keypoint_set" in content:
        return _read_fitter_json(content, file)
    if isinstance(content, dict) and "people" in content:
        return _read_openpose(content, file)
    if isinstance(content, dict) and "annotations" in content:
        return _read_coco(content["annotations"], content.get("images"), file, image)
    if isinstance(content, list) and all(isinstance(item, dict) and "keypoints" in item for item in content):
        return _read_coco(content, None, file, image)
    raise ValueError(
        f"{file}: unknown keypoint JSON layout; expected OpenPose ('people' with 'pose_keypoints_2d'), "
        "COCO ('annotations' or a list of annotations with 'keypoints') or fitter ('keypoint_set' + 'people')"
    )


def _read_fitter_json(content: dict, file: Path) -> KeypointFile:
    keypoint_set = content["keypoint_set"]
    people = content.get("people")
    if not isinstance(keypoint_set, str) or not isinstance(people, list):
        raise ValueError(f"{file}: fitter keypoint JSON needs a string 'keypoint_set' and a list 'people'")
    rows, ids = [], []
    for index, person in enumerate(people):
        if not isinstance(person, dict) or "keypoints" not in person:
            raise ValueError(f"{file}: people[{index}] has no 'keypoints' list of [x, y, confidence]")
        values = (
            _as_float_array(person["keypoints"], file, f"people[{index}].keypoints")
            if person["keypoints"]
            else np.zeros((0, 3))
        )
        if values.ndim != 2 or values.shape[1] != 3:
            raise ValueError(
                f"{file}: people[{index}].keypoints must be a list of [x, y, confidence], got shape {values.shape}"
            )
        rows.append(values)
        person_id = person.get("id", index)
        if isinstance(person_id, bool) or not isinstance(person_id, int):
            raise ValueError(f"{file}: people[{index}].id must be an integer, got {person_id!r}")
        ids.append(person_id)
    num_keypoints = KEYPOINT_SET_SIZES.get(keypoint_set, rows[0].shape[0] if rows else 0)
    if any(row.shape[0] != rows[0].shape[0] for row in rows):
        raise ValueError(f"{file}: people have different keypoint counts; every person needs the same K")
    keypoints = np.stack(rows) if rows else np.zeros((0, num_keypoints, 3))
    image = content.get("image")
    return KeypointFile(
        keypoints=keypoints, keypoint_set=keypoint_set, person_ids=np.asarray(ids, dtype=np.int64), image=image
    )


def _read_openpose(content: dict, file: Path) -> KeypointFile:
    people = content["people"]
    if not isinstance(people, list):
        raise ValueError(f"{file}: OpenPose 'people' must be a list")
    rows, ids = [], []
    for index, person in enumerate(people):
        flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if flat is None:
            raise ValueError(
                f"{file}: people[{index}] has no 'pose_keypoints_2d'; OpenPose files need the body keypoints "
                "(run OpenPose with the body model enabled)"
            )
        values = _as_float_array(flat, file, f"people[{index}].pose_keypoints_2d").reshape(-1)
        if values.size % 3 != 0 or values.size // 3 not in _OPENPOSE_SETS:
            raise ValueError(
                f"{file}: people[{index}].pose_keypoints_2d has {values.size} values; expected 75 (BODY_25) "
                "or 54 (COCO-18) as [x, y, c] triples"
            )
        rows.append(values.reshape(-1, 3))
        ids.append(_openpose_person_id(person.get("person_id"), index))
    if any(row.shape[0] != rows[0].shape[0] for row in rows):
        raise ValueError(f"{file}: people mix BODY_25 and COCO-18 keypoints; use one OpenPose model per file")
    num_keypoints = rows[0].shape[0] if rows else 25
    keypoints = np.stack(rows) if rows else np.zeros((0, num_keypoints, 3))
    _check_finite(keypoints, file)
    keypoints[..., 2] = np.clip(keypoints[..., 2], 0.0, 1.0)
    return KeypointFile(
        keypoints=keypoints, keypoint_set=_OPENPOSE_SETS[num_keypoints], person_ids=np.asarray(ids, dtype=np.int64)
    )


def _openpose_person_id(value: Any, index: int) -> int:
    """OpenPose writes person_id as [-1] (unknown) or a number; unknown -> the list index."""
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return index
    return index if number < 0 else number


def _read_coco(annotations: Any, images: Any, file: Path, image: str | os.PathLike | int | None) -> KeypointFile:
    if not isinstance(annotations, list):
        raise ValueError(f"{file}: COCO 'annotations' must be a list")
    id_to_name: dict[int, str] = {}
    if isinstance(images, list):
        for entry in images:
            if isinstance(entry, dict) and "id" in entry and "file_name" in entry:
                id_to_name[int(entry["id"])] = str(entry["file_name"])

    selected_id: int | None = None
    if image is not None:
        selected_id = _coco_image_id(image, id_to_name, file)
        annotations = [a for a in annotations if isinstance(a, dict) and a.get("image_id") == selected_id]
    else:
        image_ids = {a.get("image_id") for a in annotations if isinstance(a, dict)}
        if len(image_ids) > 1:
            raise ValueError(
                f"{file}: COCO file holds annotations for {len(image_ids)} images; pass image=<file name or image id>"
            )
        if image_ids:
            only = next(iter(image_ids))
            selected_id = int(only) if only is not None else None

    rows, ids = [], []
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or "keypoints" not in annotation:
            raise ValueError(f"{file}: COCO annotation {index} has no 'keypoints'")
        if annotation.get("iscrowd", 0) or annotation.get("category_id", 1) != 1:
            continue
        values = _as_float_array(annotation["keypoints"], file, f"annotation {index} keypoints").reshape(-1)
        if values.size != 17 * 3:
            raise ValueError(
                f"{file}: COCO annotation {index} has {values.size} keypoint values; expected 51 (17 x [x, y, v])"
            )
        values = values.reshape(17, 3)
        if not np.any(values[:, 2] > 0):
            continue
        rows.append(values)
        ids.append(int(annotation.get("id", index)))
    keypoints = np.stack(rows) if rows else np.zeros((0, 17, 3))
    _check_finite(keypoints, file)
    flags = keypoints[..., 2]
    if np.all(np.isin(flags, (0.0, 1.0, 2.0))):
        keypoints[..., 2] = (flags > 0).astype(np.float64)  # v: 0 unlabelled, 1 occluded, 2 visible
    else:
        keypoints[..., 2] = np.clip(flags, 0.0, 1.0)  # results file: third value is a score
    name = id_to_name.get(selected_id) if selected_id is not None else None
    return KeypointFile(
        keypoints=keypoints, keypoint_set="coco17", person_ids=np.asarray(ids, dtype=np.int64), image=name
    )


def _coco_image_id(image: str | os.PathLike | int, id_to_name: dict[int, str], file: Path) -> int:
    if isinstance(image, (int, np.integer)):
        return int(image)
    name = Path(image).name
    for image_id, file_name in id_to_name.items():
        if Path(file_name).name == name:
            return image_id
    stem = Path(name).stem
    if stem.isdigit():
        return int(stem)
    raise ValueError(f"{file}: no image named {name!r} in this COCO file; pass the image id instead (image=<int>)")


# --- checks --------------------------------------------------------------------------------


def _as_float_array(value: Any, file: Path, what: str) -> np.ndarray:
    """JSON numbers -> float64 array; anything else (strings, ragged lists) -> one-line ValueError."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{file}: {what} must hold numbers only, in a regular [x, y, c] layout") from None


def _check_finite(keypoints: np.ndarray, file: Path) -> None:
    if not np.all(np.isfinite(keypoints)):
        bad = np.argwhere(~np.isfinite(keypoints))[0]
        raise ValueError(
            f"{file}: keypoint value is NaN/inf (person {bad[0]}, keypoint {bad[1]}); write missing keypoints as 0, 0, 0"
        )


def _validate(result: KeypointFile, file: Path) -> None:
    keypoints = result.keypoints
    _check_finite(keypoints, file)
    expected = KEYPOINT_SET_SIZES.get(result.keypoint_set)
    if expected is not None and keypoints.shape[1] != expected:
        raise ValueError(
            f"{file}: keypoint set {result.keypoint_set!r} has {expected} keypoints but the data has {keypoints.shape[1]}; "
            "fix the keypoint_set name or the data"
        )
    confidence = keypoints[..., 2]
    if np.any((confidence < 0) | (confidence > 1)):
        raise ValueError(
            f"{file}: confidences must lie in [0, 1], found {confidence.min():.3g}..{confidence.max():.3g}; rescale them"
        )
