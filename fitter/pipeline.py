"""From photos to fitted bodies: detection (or keypoint files) -> batched fitting -> outputs.

This is the library behind `fitter fit`. Per image it writes, next to each other in the
output folder (one set per person, `<stem>_p<id>.*`, when a keypoint file lists several):

* `<stem>.npz`  - FitResult (parameters, camera, keypoints used, `coco17_2d` (17,2) px: the
  fitted model's COCO-17 points, losses, config, versions); load with FitResult.load;
* `<stem>.json` - the same in JSON;
* `<stem>.obj`  - the posed mesh in the camera frame (metres; trimesh);
* `<stem>_overlay.png` - the mesh and the keypoints drawn on the photo; optional `<stem>_side.png`.

Every file is written atomically and the .npz last, so an image whose .npz exists is finished:
a re-run skips it. A bad image fails alone; the others go on.
"""

from __future__ import annotations

import concurrent.futures as futures
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from fitter.body import BodyModel, load_body_model
from fitter.keypoints import SKELETONS, keypoint_names, keypoint_regressor
from fitter.optimize import FitConfig, fit_keypoints
from fitter.result import FitResult

__all__ = ["ImageJob", "FitOptions", "FolderSummary", "prepare_image", "fit_paths", "output_stem", "is_finished"]


@dataclass
class FitOptions:
    """Settings of a photo fit (the CLI flags)."""

    out_dir: Path = Path("fitter_out")
    body_model: str = "anny"
    gender: str = "neutral"
    init: str = "best"  # none, lifter, mediapipe, hmr, cliff, pare, nbf, or best (regressor if found, else lifter)
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
    landmarks3d: bool | None = None  # pull towards mediapipe's 3D world landmarks (detections only); None: with --init mediapipe
    auto_parts: bool = False  # split the person mask into 12 parts by the 2D skeleton (no --parts given)


@dataclass
class ImageJob:
    """One image, read and detected: keypoints (P,K,3) for P people in `keypoint_set`."""

    path: Path
    stem: Path  # output path without suffix
    image: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_set: str = ""
    person_ids: list[int] = field(default_factory=list)
    mask: np.ndarray | None = None  # (H,W) bool person mask (mediapipe), single person only
    part_masks: np.ndarray | None = None  # (P,H,W) bool body-part masks from --parts, single person only
    world_landmarks: np.ndarray | None = None  # (33,3) metres, mediapipe
    error: str | None = None


@dataclass
class FolderSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0


def output_stem(path: Path, roots: list[Path], out_dir: Path) -> Path:
    """out_dir/<path relative to the folder it was found in, without suffix>."""
    for root in roots:
        if root.is_dir():
            try:
                return out_dir / path.resolve().relative_to(root.resolve()).with_suffix("")
            except ValueError:
                continue
    return out_dir / path.stem


def is_finished(stem: Path) -> bool:
    """An image is finished when its .npz (written last) exists, per person or single."""
    return _file(stem, ".npz").exists() or any(stem.parent.glob(f"{stem.name}_p*.npz"))


def _file(stem: Path, suffix: str) -> Path:
    """stem + suffix (stems may contain dots, e.g. S1_Directions_1.54138969_000001)."""
    return stem.parent / (stem.name + suffix)


def prepare_image(path: Path, stem: Path, options: FitOptions, detector) -> ImageJob:
    """Read an image and get its keypoints (file or mediapipe); errors go into job.error."""
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
            kf = read_keypoints_file(kp_path, image=path.name if kp_path.is_file() and options.keypoints.is_file() else None)
            people = [i for i in range(len(kf.keypoints)) if (kf.keypoints[i, :, 2] > 0).sum() >= 2]
            if not people:
                raise ValueError(f"{kp_path.name} has no person with at least 2 keypoints")
            job.keypoints = kf.keypoints[people]
            job.keypoint_set = kf.keypoint_set
            job.person_ids = [int(kf.person_ids[i]) for i in people]
        else:
            det = detector.detect(job.image)
            if det is None:
                raise ValueError("no person detected (mediapipe BlazePose); try --keypoints with your own detections")
            job.keypoints = det.keypoints[None]
            job.keypoint_set = "blazepose33"
            job.person_ids = [0]
            job.mask = None if det.mask is None else det.mask > 0.5
            job.world_landmarks = det.world_landmarks
        if options.parts is not None:
            job.part_masks = read_part_masks(options.parts, path, job.image.shape[:2])
        elif options.auto_parts and job.mask is not None:
            from fitter.init.part_split import split_mask_by_skeleton

            labels = split_mask_by_skeleton(job.mask, job.keypoints[0], job.keypoint_set)
            job.part_masks = labels[None] == np.arange(1, 13)[:, None, None]
            if len(job.person_ids) != 1:
                raise ValueError("--parts needs one person per image (the label image has no person ids)")
    except Exception as exc:  # one bad image fails alone
        job.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, FileNotFoundError)) else str(exc)
        job.image = None
    return job


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
        raise ValueError(f"{label_path.name} is {labels.shape[1]}x{labels.shape[0]} but the photo is {shape[1]}x{shape[0]}")
    return mapping.part_masks(labels)


def _person_stem(job: ImageJob, k: int) -> Path:
    if len(job.person_ids) == 1:
        return job.stem
    return job.stem.parent / f"{job.stem.name}_p{job.person_ids[k]}"


def _write_outputs(job: ImageJob, result: FitResult, model: BodyModel, options: FitOptions) -> None:
    """Write the files of one image (all its people)."""
    import trimesh

    from fitter.io.atomic import atomic_save_png, atomic_write
    from fitter.render.overlay import draw_keypoints, render_overlay, render_side_view

    job.stem.parent.mkdir(parents=True, exist_ok=True)
    vertices = result.vertices(options.device)
    faces = model.faces.cpu().numpy()
    coco = project_keypoint_set(result, model, "coco17", options.device)
    names = keypoint_names(result.keypoint_set)
    left = [i for i, n in enumerate(names) if n.startswith("left")]
    right = [i for i, n in enumerate(names) if n.startswith("right")]
    # one overlay with everybody
    overlay = render_overlay(job.image, vertices, faces, float(result.focal_length[0]), result.principal_point[0])
    for p in range(len(result)):
        overlay = draw_keypoints(overlay, result.keypoints[p, :, :2], result.keypoints[p, :, 2],
                                 SKELETONS.get(result.keypoint_set, []), left, right)  # fmt: skip
    for p in range(len(result)):
        stem = _person_stem(job, p)
        one = result.select(p)
        one.extras["coco17_2d"] = coco[p]  # (17,2) px
        one.extras["person_id"] = np.array([job.person_ids[p]])
        one.info["image"] = str(job.path)
        mesh = trimesh.Trimesh(vertices[p], faces, process=False)
        with atomic_write(_file(stem, ".obj"), "w") as handle:
            handle.write(mesh.export(file_type="obj"))
        if p == 0:  # one overlay per image, with every person
            atomic_save_png(job.stem.parent / f"{job.stem.name}_overlay.png", overlay)
        if options.side_view:
            h, w = job.image.shape[:2]
            atomic_save_png(stem.parent / f"{stem.name}_side.png", render_side_view(vertices[p], faces, (w, h)))
        one.save(_file(stem, ".npz"))  # last: marks the person finished


def project_keypoint_set(result: FitResult, model: BodyModel, keypoint_set: str, device: str = "cpu") -> np.ndarray:
    """(N,K,2) pixels: the fitted model's points of `keypoint_set` projected with the fit's camera."""
    from fitter.geometry import perspective_project

    reg = keypoint_regressor(model.to(device), keypoint_set)
    args = [torch.as_tensor(getattr(result, k), device=device) for k in ("betas", "body_pose", "global_orient", "transl")]
    with torch.no_grad():
        out = model(*args)
        pts = reg.from_vertices(out.joints, out.vertices)
        px = perspective_project(pts, torch.as_tensor(result.focal_length, device=device),
                                 torch.as_tensor(result.principal_point, device=device))  # fmt: skip
    return px.cpu().numpy()


def resolve_init_name(name: str) -> str:
    """'best' -> `fitter.init.best_initializer()` (a regressor whose checkpoint is found, else the
    keypoint lifter); other names unchanged."""
    if name != "best":
        return name
    from fitter.init import best_initializer

    return best_initializer()


def _fit_jobs(jobs: list[ImageJob], model: BodyModel, options: FitOptions) -> list[FitResult | Exception]:
    """Fit all people of `jobs` in batches grouped by keypoint set; one result per job."""
    results: list[FitResult | Exception] = [None] * len(jobs)  # type: ignore[list-item]
    by_set: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        by_set.setdefault(job.keypoint_set, []).append(i)
    for kset, idx in by_set.items():
        kps, sizes, paths, owner, masks, part_masks, lm3d = [], [], [], [], [], [], []
        for i in idx:
            h, w = jobs[i].image.shape[:2]
            for p in range(len(jobs[i].keypoints)):
                kps.append(jobs[i].keypoints[p])
                sizes.append((w, h))
                paths.append(jobs[i].path)
                owner.append(i)
                masks.append(jobs[i].mask)
                part_masks.append(jobs[i].part_masks)
                wl = jobs[i].world_landmarks
                lm3d.append(np.concatenate([wl, jobs[i].keypoints[p, :, 2:3]], axis=1) if wl is not None
                            else np.zeros((jobs[i].keypoints.shape[1], 4), np.float32))  # fmt: skip
        try:
            from fitter.camera import resolve_camera
            from fitter.init import fit_config_for_init, initialize

            sizes_arr = np.array(sizes, dtype=np.float32)
            camera = resolve_camera(sizes_arr, len(kps), options.focal, paths)  # one focal for init and fit
            images = [jobs[i].image for i in idx]
            local_owner = [idx.index(o) for o in owner]
            world = [jobs[o].world_landmarks for o in owner]
            init_name = resolve_init_name(options.init)
            use_3d = options.landmarks3d if options.landmarks3d is not None else init_name == "mediapipe"
            init = initialize(init_name, images, np.stack(kps), kset, sizes_arr,
                              camera.focal_length, model, local_owner,
                              world_landmarks=np.stack(world) if kset == "blazepose33" and all(w is not None for w in world) else None,
                              masks=masks, device=options.device, refine=options.refine)  # fmt: skip
            res = fit_keypoints(np.stack(kps), kset, sizes_arr, camera=camera, init=init, body_model=model,
                                config=fit_config_for_init(init_name, options.config), device=options.device,
                                gmm_path=str(options.gmm) if options.gmm else None,
                                masks=masks if options.silhouette else None,
                                part_masks=part_masks if any(p is not None for p in part_masks) else None,
                                landmarks3d=np.stack(lm3d) if use_3d and kset == "blazepose33" else None)  # fmt: skip
        except Exception as exc:  # the whole group failed: every image in it reports it
            for i in idx:
                results[i] = exc
            continue
        owner_arr = np.array(owner)
        for i in idx:
            results[i] = res.select(np.nonzero(owner_arr == i)[0])
    return results


def fit_paths(
    paths: Iterable[Path],
    options: FitOptions,
    roots: list[Path] | None = None,
    on_image: Callable[[Path, str], None] | None = None,
    model: BodyModel | None = None,
) -> FolderSummary:
    """Fit every image in `paths`, writing outputs under options.out_dir.

    Detection runs in a background thread while the main thread fits the previous batch.
    `on_image(path, status)` is called once per image ("done", "skipped", "failed: ...").
    """
    start = time.perf_counter()
    paths = list(paths)
    roots = roots or []
    summary = FolderSummary()
    report = on_image or (lambda path, status: None)
    todo = []
    for path in paths:
        stem = output_stem(path, roots, options.out_dir)
        if not options.overwrite and is_finished(stem):
            summary.skipped.append(path)
            report(path, "skipped")
        else:
            todo.append((path, stem))
    if not todo:
        summary.seconds = time.perf_counter() - start
        return summary
    if model is None:
        model = load_body_model(options.body_model, gender=options.gender, device=options.device)
    detector = None
    if options.keypoints is None:
        from fitter.detect import BlazePoseDetector

        detector = BlazePoseDetector()
    try:
        with futures.ThreadPoolExecutor(max_workers=1) as pool:  # detection overlaps fitting
            pending = [pool.submit(prepare_image, path, stem, options, detector) for path, stem in todo]
            batch: list[ImageJob] = []
            for k, fut in enumerate(pending):
                job = fut.result()
                if job.error is not None:
                    summary.failed[job.path] = job.error
                    report(job.path, f"failed: {job.error}")
                else:
                    batch.append(job)
                people = sum(len(j.keypoints) for j in batch)
                if batch and (people >= options.batch_size or k == len(pending) - 1):
                    _finish_batch(batch, model, options, summary, report)
                    batch = []
    finally:
        if detector is not None:
            detector.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _finish_batch(batch: list[ImageJob], model: BodyModel, options: FitOptions, summary: FolderSummary, report) -> None:
    results = _fit_jobs(batch, model, options)
    for job, res in zip(batch, results):
        try:
            if isinstance(res, Exception):
                raise res
            _write_outputs(job, res, model, options)
            bad = [s for s in res.status if s != "ok"]
            if bad:
                raise ValueError(bad[0])
            summary.done.append(job.path)
            report(job.path, "done")
        except Exception as exc:
            message = str(exc) if isinstance(exc, (ValueError, FileNotFoundError)) else f"{type(exc).__name__}: {exc}"
            summary.failed[job.path] = message
            report(job.path, f"failed: {message}")
        job.image = None  # free memory
