"""One image's job: options, reading and detection, output names and the finished marker."""

from __future__ import annotations

import contextlib
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fitter.fitting import FitConfig
from fitter.keypoints import keypoint_names

__all__ = ["ImageJob", "FitOptions", "FolderSummary", "prepare_image", "read_part_masks", "output_stem", "output_stems",
           "is_finished", "output_file", "remove_stale_temporary_files", "check_options", "FAILED_SUFFIX",
           "hands_body_model", "HANDS_KEYPOINT_SET", "FACE_KEYPOINT_SET", "DETECT_PASSES", "TILE_GRID"]  # fmt: skip

DETECT_PASSES = ("refine", "hide", "tiles")  # PeopleDetector(refine=...), (hide_found=...), (tiles=TILE_GRID)
TILE_GRID = 2  # --detect-passes tiles: a 2 x 2 grid
HANDS_KEYPOINT_SET = "blazepose33+hands42"  # what a detected person is fitted with when hands are on
# ... and with a body model with a face (SMPL-X: jaw and expression fitted) when a face was found
# (face51 has no counterpart on other models)
FACE_KEYPOINT_SET = HANDS_KEYPOINT_SET + "+face51"
_NO_FINGERS = ("anny", "smpl")  # body model names without finger joints


@dataclass
class FitOptions:
    """Settings of a photo fit (the CLI flags)."""

    out_dir: Path = Path("fitter_out")
    body_model: str = "anny"
    gender: str = "neutral"
    init: str = "best"  # upright, lifter, mediapipe, hmr, cliff, pare, nbf, or best (regressor if found, else lifter)
    refine: str | None = None  # "eft": fine-tune the regressor per person before the optimizer
    focal: float | None = None
    keypoints: Path | None = None
    silhouette: bool = True
    parts: Path | None = None
    config: str | FitConfig = "default"
    device: str = "cpu"
    batch_size: int = 8
    overwrite: bool = False
    side_view: bool = False
    recursive: bool = False
    gmm: Path | None = None
    landmarks3d: bool | None = (
        None  # pull towards mediapipe's 3D world landmarks (detections only); None: with --init mediapipe
    )
    auto_parts: bool = False  # split the person mask into 12 parts by the 2D skeleton (no --parts given)
    threads: int = 1  # torch CPU threads for the fits
    max_people: int = 6  # people fitted per photo at most (detection), largest first
    min_person_height: float = 0.1  # people shorter than this fraction of the photo's height are skipped (detection)
    # mediapipe's person detection / presence threshold: 0.1 found all 16 labelled people of the eval
    # photos (0.5: 13) and scored best (benchmarks/real.py --detection-thresholds)
    detection_confidence: float = 0.1
    # PeopleDetector's passes after the first (DETECT_PASSES): "refine" re-detects each person on their
    # own crop (COCO target PCK 79 -> 93 % in benchmarks/real.py --people); "hide" and "tiles" look for
    # missed people (none were missed there) and cost 2-5 more landmarker calls
    detect_passes: tuple[str, ...] = ("refine",)
    overlay_size: int = 2048  # longest side (px) of the overlay / side-view pictures; 0: the photo's size
    # detect hands and face (mediapipe Holistic) and fit "blazepose33+hands42": None = when the body
    # model has finger joints; True needs such a model (the default anny becomes anny-hands); False: never
    hands: bool | None = None


@dataclass
class ImageJob:
    """One image, read and detected: keypoints (P,K,3) for P people in `keypoint_set`."""

    path: Path
    stem: Path  # output path without suffix
    image: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_set: str = ""
    person_ids: list[int] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)  # per person (H,W) bool mask (detection), or empty
    part_masks: list[np.ndarray | None] = field(default_factory=list)  # per person (P,H,W) bool part masks, or empty
    world_landmarks: np.ndarray | None = None  # (people,33,3) metres, mediapipe
    boxes: np.ndarray | None = None  # (people,4) x0, y0, x1, y1 px, detection
    hands_faces: list = field(default_factory=list)  # per person fitter.detect.HandsFace (hands on), or empty
    skipped_people: list[str] = field(default_factory=list)  # people not fitted, and why ("person 3: 1 keypoint")
    error: str | None = None


@dataclass
class FolderSummary:
    """Images by outcome (input order); people_skipped: images where some people were not fitted, and why."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    people_skipped: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0


def output_stem(path: Path, roots: list[Path], out_dir: Path) -> Path:
    """out_dir/<path relative to the folder it was found in, without suffix> (see `output_stems`)."""
    for root in roots:
        if root.is_dir():
            try:
                return out_dir / path.resolve().relative_to(root.resolve()).with_suffix("")
            except ValueError:
                continue
    return out_dir / path.stem


def output_stems(paths: list[Path], roots: list[Path], out_dir: Path) -> list[Path]:
    """Unique output stems for `paths`: `output_stem`, except where two inputs would share one:
    then each of them keeps its extension in the name (photo.jpg + photo.png -> photo.jpg.*,
    photo.png.*), and files of the same name from different folders keep their path below the
    folders' common parent (a/img.jpg + b/img.jpg -> a/img.jpg.*, b/img.jpg.*)."""
    stems = [output_stem(path, roots, out_dir) for path in paths]
    for rule in (lambda i: stems[i].parent / paths[i].name, lambda i: _below_common_parent(paths, i, out_dir)):
        groups: dict[Path, list[int]] = {}
        for i, stem in enumerate(stems):
            groups.setdefault(stem, []).append(i)
        for clash in (ids for ids in groups.values() if len(ids) > 1):
            for i in clash:
                stems[i] = rule(i)
    return stems


def _below_common_parent(paths: list[Path], i: int, out_dir: Path) -> Path:
    same = [p.resolve() for p in paths if p.name == paths[i].name]
    common = Path(os.path.commonpath([p.parent for p in same]))
    return out_dir / paths[i].resolve().relative_to(common)


FAILED_SUFFIX = ".failed.json"


def hands_body_model(body_model: str, hands: bool | None) -> str:
    """The body model to load: with hands=True the default "anny" becomes "anny-hands"; a named
    model without finger joints ("smpl") is a one-line ValueError. (A model file is checked once loaded.)"""
    if not hands:
        return body_model
    if str(body_model).lower() == "anny":
        return "anny-hands"
    if str(body_model).lower() in _NO_FINGERS:
        raise ValueError(f"--hands needs a body model with finger joints (anny-hands, smplh, smplx or such a file), "
                         f"not {body_model}")  # fmt: skip
    return body_model


def check_options(options: FitOptions, images: list[Path], roots: list[Path] = ()) -> None:
    """Everything about the settings that can be checked before any image is read (images: the
    photos; roots: the folders given): a one-line ValueError (or FileNotFoundError) saying what is
    wrong and what to do."""
    import math

    out = Path(options.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if out.resolve() in {Path(root).resolve() for root in roots}:
        raise ValueError(
            f"--out {out} is the folder the photos are in; give another folder (e.g. {out / 'fitter_out'})"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".fitter-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {out} is not writable ({exc.strerror}); choose a folder you can write to") from None
    if options.focal is not None and not (math.isfinite(options.focal) and options.focal > 0):
        raise ValueError(f"--focal must be a positive number of pixels, got {options.focal}")
    if options.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.overlay_size < 0:
        raise ValueError(f"--overlay-size must be >= 0 (0: the photo's size), got {options.overlay_size}")
    if not 0 < options.detection_confidence < 1:
        raise ValueError(f"--detection-confidence must be in (0, 1), got {options.detection_confidence}")
    if options.max_people < 1:
        raise ValueError(f"--max-people must be >= 1, got {options.max_people}")
    unknown = [name for name in options.detect_passes if name not in DETECT_PASSES]
    if unknown:
        raise ValueError(
            f"--detect-passes: unknown pass {unknown[0]!r}; choose from {', '.join(DETECT_PASSES)} or none"
        )
    if not 0 <= options.min_person_height < 1:
        raise ValueError(
            f"min_person_height must be a fraction of the photo's height in [0, 1), got {options.min_person_height}"
        )
    if options.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {options.threads}")
    device = options.device
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, not {device!r}")
    for name in ("gmm", "parts", "keypoints"):
        path = getattr(options, name)
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"--{name} {path} does not exist")
    if options.keypoints is not None and Path(options.keypoints).is_file() and len(images) > 1:
        from fitter.io.keypoint_files import covers_several_images

        if not covers_several_images(Path(options.keypoints)):
            raise ValueError(f"--keypoints {options.keypoints} holds one photo's keypoints but {len(images)} photos were "
                             "given; pass a folder of per-photo keypoint files (<stem>.json) or one photo")  # fmt: skip
    hands_body_model(options.body_model, options.hands)
    if options.hands and options.keypoints is not None:
        raise ValueError("--hands detects hands with mediapipe, but --keypoints gives the keypoints: put hands42 points "
                         "in the file (set blazepose33+hands42) and drop --hands")  # fmt: skip
    if options.refine not in (None, "", "none"):
        from fitter.init import INITIALIZER_REGRESSORS, resolve_initializer_name

        if options.refine != "eft":
            raise ValueError(f"--refine must be none or eft, not {options.refine!r}")
        init = resolve_initializer_name(options.init)
        if init not in INITIALIZER_REGRESSORS:
            raise ValueError(f"--refine eft fine-tunes a regressor, but the start is {init!r}: use --init cliff, pare, hmr "
                             "or nbf (with its checkpoint), or drop --refine")  # fmt: skip


def is_finished(stem: Path) -> bool:
    """An image is finished when its .npz (written last, per person or single) exists and no
    person of it failed (`<stem>[_p<id>].failed.json`): failed images are fitted again."""
    if output_file(stem, FAILED_SUFFIX).exists() or _person_files(stem, FAILED_SUFFIX):
        return False
    return output_file(stem, ".npz").exists() or bool(_person_files(stem, ".npz"))


def _person_files(stem: Path, suffix: str) -> list[Path]:
    """The files `<stem>_p<id><suffix>` of a multi-person image: the stem taken literally (names
    may hold glob characters: `shoot [1]`), and only person ids after `_p` (`a_party.npz` is
    another image's, not a's)."""
    pattern = re.compile(re.escape(stem.name) + r"_p-?\d+" + re.escape(suffix))
    return [p for p in stem.parent.glob(glob.escape(stem.name) + "_p*" + suffix) if pattern.fullmatch(p.name)]


def remove_stale_temporary_files(out_dir: Path) -> int:
    """Delete the hidden `.<name>.*.tmp` files an interrupted run (kill -9) left under out_dir; their count."""
    count = 0
    if out_dir.is_dir():
        for tmp in out_dir.rglob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                count += 1
    return count


def output_file(stem: Path, suffix: str) -> Path:
    """stem + suffix (stems may contain dots, e.g. S1_Directions_1.54138969_000001)."""
    return stem.parent / (stem.name + suffix)


def prepare_image(path: Path, stem: Path, options: FitOptions, detector, hand_detector=None,
                  face: bool = False) -> ImageJob:  # fmt: skip
    """Read an image and get its keypoints (file or mediapipe; with a `HandFaceDetector`, hands
    and face too: set HANDS_KEYPOINT_SET, or FACE_KEYPOINT_SET with `face` (the body model fits
    the face) when a face was found); errors go into job.error."""
    from fitter.io.images import read_image

    job = ImageJob(path=path, stem=stem)
    try:
        job.image = read_image(path)
        if options.keypoints is not None:
            from fitter.io.keypoint_files import find_keypoints_for_image, read_keypoints_file

            kp_path = find_keypoints_for_image(options.keypoints, path)
            if kp_path is None:
                raise ValueError(f"no keypoint file for {path.name} in {options.keypoints} (expected {path.stem}.json, "
                                 f"{path.stem}_keypoints.json or {path.stem}.npz)")  # fmt: skip
            kf = read_keypoints_file(
                kp_path, image=path.name if kp_path.is_file() and options.keypoints.is_file() else None
            )
            expected = len(keypoint_names(kf.keypoint_set))
            if kf.keypoints.ndim != 3 or kf.keypoints.shape[1:] != (expected, 3):
                raise ValueError(f"{kp_path.name}: keypoints are {kf.keypoints.shape[1:]} per person but set "
                                 f"{kf.keypoint_set!r} has ({expected}, 3); fix the file")  # fmt: skip
            seen = (kf.keypoints[..., 2] > 0).sum(1)
            people = [i for i in range(len(kf.keypoints)) if seen[i] >= 2]
            job.skipped_people = [f"person {int(kf.person_ids[i])}: {int(seen[i])} keypoint(s)" for i in range(len(seen))
                                  if seen[i] < 2]  # fmt: skip
            if not people:
                raise ValueError(f"{kp_path.name} has no person with at least 2 keypoints")
            job.keypoints = kf.keypoints[people]
            job.keypoint_set = kf.keypoint_set
            job.person_ids = [int(kf.person_ids[i]) for i in people]
        else:
            _detect_people(job, detector, options, hand_detector, face)
        if options.parts is not None:
            if len(job.person_ids) != 1:
                raise ValueError("--parts needs one person per image (the label image has no person ids)")
            job.part_masks = [read_part_masks(options.parts, path, job.image.shape[:2])]
        elif options.auto_parts and job.masks:
            from fitter.keypoints.part_split import split_mask_by_skeleton

            job.part_masks = [None if mask is None else
                              split_mask_by_skeleton(mask, kp, job.keypoint_set)[None] == np.arange(1, 13)[:, None, None]
                              for mask, kp in zip(job.masks, job.keypoints)]  # fmt: skip
    except Exception as exc:  # one bad image fails alone
        job.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, FileNotFoundError)) else str(exc)
        job.image = None
    return job


MIN_SEEN_LANDMARKS = 6  # a detected person needs this many landmarks with visibility >= 0.5 to be fitted


def _detect_people(job: ImageJob, detector, options: FitOptions, hand_detector=None, face: bool = False) -> None:
    """Everyone the detector finds (largest first, at most options.max_people); people too small or
    with too few landmarks seen are skipped and named in job.skipped_people. With a hand_detector,
    each person's keypoints become HANDS_KEYPOINT_SET: BlazePose's 33 points, the face points
    replaced by the face mesh's where a face was found, then the 42 hand points (confidence 0 for
    a hand not found); with `face`, when anyone's face was found, also the 51 face points
    (FACE_KEYPOINT_SET; confidence 0 for a face not found)."""
    from fitter.detect.passes import unseen_outside

    height = job.image.shape[0]
    kept = []
    for k, det in enumerate(detector.detect(job.image)):
        tall = float(det.keypoints[:, 1].max() - det.keypoints[:, 1].min())
        seen = int((det.keypoints[:, 2] >= 0.5).sum())
        if tall < options.min_person_height * height:
            job.skipped_people.append(
                f"person {k}: {tall:.0f} px tall, under {options.min_person_height:.0%} of the photo"
            )
        elif seen < MIN_SEEN_LANDMARKS:
            job.skipped_people.append(f"person {k}: {seen} landmark(s) seen, under {MIN_SEEN_LANDMARKS}")
        elif len(kept) >= options.max_people:
            job.skipped_people.append(f"person {k}: over --max-people {options.max_people}")
        else:
            kept.append((k, det))
    if not kept:
        why = f" (skipped: {'; '.join(job.skipped_people)})" if job.skipped_people else ""
        raise ValueError(f"no person detected (mediapipe){why}; try --keypoints with your own detections")
    job.keypoints = unseen_outside(np.stack([det.keypoints for _, det in kept]), job.image.shape[1], height)
    job.keypoint_set = "blazepose33"
    if hand_detector is not None:
        job.hands_faces = hand_detector.detect(job.image, [d for _, d in kept])
        job.keypoints, job.keypoint_set = _with_hands_and_face(job.keypoints, job.hands_faces, face)
    job.person_ids = [k for k, _ in kept]
    job.masks = [None if det.mask is None else det.mask > 0.5 for _, det in kept]
    job.world_landmarks = np.stack([det.world_landmarks for _, det in kept])
    job.boxes = np.stack([det.bbox_xyxy for _, det in kept])


def _with_hands_and_face(body: np.ndarray, found: list, face51: bool = False) -> tuple[np.ndarray, str]:
    """(P,33,3) BlazePose keypoints + one `HandsFace` per person -> (P,75,3) HANDS_KEYPOINT_SET
    keypoints, or with face51 and any face found (P,126,3) FACE_KEYPOINT_SET ones (+ HandsFace.face51)."""
    from fitter.detect.hands import FACE_POINT_NAMES

    face_ids = [keypoint_names("blazepose33").index(name) for name in FACE_POINT_NAMES]
    body = body.copy()
    for k, person in enumerate(found):
        seen = person.face_points[:, 2] > 0
        body[k, np.array(face_ids)[seen]] = person.face_points[seen]
    points = np.concatenate([body, np.stack([person.hands for person in found])], axis=1)
    if face51 and any(person.face_mesh is not None for person in found):
        return np.concatenate([points, np.stack([person.face51 for person in found])], axis=1), FACE_KEYPOINT_SET
    return points, HANDS_KEYPOINT_SET


PART_MAPPING_FILE = "parts.json"


def read_part_masks(parts: Path, image_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(P,H,W) bool part masks for `image_path` from --parts.

    `parts` is a label PNG (for a single image) or a folder of `<stem>.png` / `<stem>_parts.png`
    label images; the label -> part mapping is `parts.json` in the same folder (format in
    fitter.body.parts: {"num_parts": 12|24, "labels": {"<pixel value>": "<part name>"}}).
    """
    from PIL import Image

    from fitter.body.parts import load_part_label_mapping

    if parts.is_dir():
        candidates = [parts / f"{image_path.stem}.png", parts / f"{image_path.stem}_parts.png"]
        label_path = next((c for c in candidates if c.exists()), None)
        if label_path is None:
            raise FileNotFoundError(f"no part label image for {image_path.name} in {parts} (expected {candidates[0].name} "
                                    f"or {candidates[1].name})")  # fmt: skip
    elif parts.is_file():
        label_path = parts
    else:
        raise FileNotFoundError(f"--parts {parts} does not exist")
    mapping_path = label_path.parent / PART_MAPPING_FILE
    if not mapping_path.exists():
        raise FileNotFoundError(f"part label mapping {mapping_path} not found: write {PART_MAPPING_FILE} next to the "
                                f"label images (see README: Part segmentations)")  # fmt: skip
    mapping = load_part_label_mapping(mapping_path)
    with Image.open(label_path) as img:
        if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ValueError(f"{label_path.name}: part label images must be single-channel (got mode {img.mode})")
        labels = np.array(img)
    if labels.shape != tuple(shape):
        raise ValueError(
            f"{label_path.name} is {labels.shape[1]}x{labels.shape[0]} but the photo is {shape[1]}x{shape[0]}"
        )
    return mapping.part_masks(labels)
