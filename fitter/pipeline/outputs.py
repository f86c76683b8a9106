"""The files of a fitted image.

Per person whose fit is "ok": `<stem>.obj`, `<stem>.json` and `<stem>.npz` (last: the finished
marker); per person whose fit failed or cannot be trusted: `<stem>.failed.json` (the status, the
reason and the parameters, for a look) and no .npz, so a re-run fits the image again. One
`<stem>_overlay.png`, at most `overlay_size` px on its long side: every person's keypoints, the
meshes of the "ok" fits, a red box around each person whose fit failed (`_side.png` per "ok"
person on request). With several people, person stems are `<stem>_p<id>`, and the image also
gets `<stem>_scene.glb` (the "ok" people, camera frame) and `<stem>.json` (the people: box,
status, error, files; and who was skipped, why). Every file is written atomically.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from fitter.body import BodyModel
from fitter.keypoints import keypoint_names, keypoint_regressor, keypoint_skeleton
from fitter.pipeline.jobs import FAILED_SUFFIX, FitOptions, ImageJob, output_file
from fitter.result import FitResult

__all__ = ["write_outputs", "project_keypoint_set", "person_stem"]


def person_stem(job: ImageJob, k: int) -> Path:
    """The output stem of person k of the image (the image's own stem when it has one person)."""
    if len(job.person_ids) == 1:
        return job.stem
    return job.stem.parent / f"{job.stem.name}_p{job.person_ids[k]}"


def _downscaled(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    """The image scaled so its longest side is at most `longest` px (0: as is), and the scale."""
    scale = 1.0 if longest <= 0 else min(1.0, longest / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    import cv2

    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def write_outputs(job: ImageJob, result: FitResult, model: BodyModel, options: FitOptions) -> None:
    """Write the files of one image (all its people; see the module docstring)."""
    import trimesh

    from fitter.io.atomic import atomic_save_png, atomic_write, atomic_write_json
    from fitter.render.overlay import (
        MIN_DRAWN_CONFIDENCE,
        draw_box,
        draw_keypoints,
        render_overlay,
        render_side_view,
    )

    job.stem.parent.mkdir(parents=True, exist_ok=True)
    for p in range(len(result)):  # refitting (--overwrite): the old finished marker goes first, so a run
        with contextlib.suppress(FileNotFoundError):  # killed mid-write leaves no new files under an old .npz
            output_file(person_stem(job, p), ".npz").unlink()
    posed = result.pose(model, options.device)  # the full mesh, posed once for the mesh and the points
    vertices = posed.vertices.cpu().numpy()
    faces = model.faces.cpu().numpy()
    coco = project_keypoint_set(result, model, "coco17", options.device, posed=posed)
    picture, scale = _downscaled(job.image, options.overlay_size)
    trusted = [p for p in range(len(result)) if result.status[p] == "ok"]
    overlay = picture  # an untrusted fit is no picture of its person (it may swell over the photo): boxed, not drawn
    if trusted:
        overlay = render_overlay(picture, vertices[trusted], faces, float(result.focal_length[0]) * scale,
                                 result.principal_point[0] * scale)  # fmt: skip
    start = 0
    for part in result.keypoint_set.split("+"):  # each set of a composite one; hands' and face's points drawn smaller
        names = keypoint_names(part)
        left = [i for i, n in enumerate(names) if n.startswith("left")]
        right = [i for i, n in enumerate(names) if n.startswith("right")]
        small = max(1, round(2 * max(picture.shape[:2]) / 512)) if part in ("hands42", "face51") else None
        for p in range(len(result)):
            points = result.keypoints[p, start : start + len(names)]
            overlay = draw_keypoints(overlay, points[:, :2] * scale, points[:, 2], keypoint_skeleton(part), left, right,
                                     radius=small, thickness=None if small is None else max(1, small // 2))  # fmt: skip
        start += len(names)
    for p in sorted(set(range(len(result))) - set(trusted)):
        conf = result.keypoints[p, :, 2]
        drawn = conf >= MIN_DRAWN_CONFIDENCE
        seen = drawn if drawn.any() else conf > 0
        if seen.any():
            xy = result.keypoints[p, seen, :2] * scale
            overlay = draw_box(overlay, (*(xy.min(0) - 8), *(xy.max(0) + 8)))
    atomic_save_png(job.stem.parent / f"{job.stem.name}_overlay.png", overlay)
    for p in range(len(result)):
        stem = person_stem(job, p)
        one = result.select(p)
        one.extras["coco17_2d"] = coco[p]  # (17,2) px
        one.extras["person_id"] = np.array([job.person_ids[p]])
        one.info["image"] = str(job.path)
        failed = output_file(stem, FAILED_SUFFIX)
        if one.status[0] != "ok":
            for suffix in (".npz", ".json", ".obj"):  # a stale success must not stand beside the failure
                with contextlib.suppress(FileNotFoundError):
                    output_file(stem, suffix).unlink()
            atomic_write_json(failed, {"image": str(job.path), "person_id": job.person_ids[p], "status": one.status[0],
                                       "reprojection_error_px": float(one.reprojection_error_px[0]),
                                       **{k: getattr(one, k)[0].tolist() for k in ("betas", "body_pose", "global_orient", "transl")},
                                       "note": "not trusted, so not written as a result; a re-run fits this image again"})  # fmt: skip
            continue
        mesh = trimesh.Trimesh(vertices[p], faces, process=False)
        with atomic_write(output_file(stem, ".obj"), "w") as handle:
            handle.write(mesh.export(file_type="obj"))
        if options.side_view:
            h, w = picture.shape[:2]
            atomic_save_png(stem.parent / f"{stem.name}_side.png", render_side_view(vertices[p], faces, (w, h)))
        one.save(output_file(stem, ".npz"))  # last: marks the person finished
        with contextlib.suppress(FileNotFoundError):
            failed.unlink()
    if len(result) > 1:
        _write_scene(job, result, vertices, faces)


def _write_scene(job: ImageJob, result: FitResult, vertices: np.ndarray, faces: np.ndarray) -> None:
    """`<stem>_scene.glb` (every fitted person in the camera frame: x right, y down, z forward,
    metres) and `<stem>.json` listing the people: box, status, 2D error, files; and who was skipped."""
    import trimesh

    from fitter.io.atomic import atomic_write, atomic_write_json

    scene = trimesh.Scene()
    people = []
    for p in range(len(result)):
        stem = person_stem(job, p)
        ok = result.status[p] == "ok"
        if ok:
            scene.add_geometry(
                trimesh.Trimesh(vertices[p], faces, process=False), node_name=f"person_{job.person_ids[p]}"
            )
        people.append({"id": job.person_ids[p], "status": result.status[p],
                       "box_xyxy": None if job.boxes is None else [float(v) for v in job.boxes[p]],
                       "reprojection_error_px": float(result.reprojection_error_px[p]),
                       "depth_m": float(result.transl[p, 2]),
                       "files": stem.name + (".npz" if ok else FAILED_SUFFIX)})  # fmt: skip
    if len(scene.geometry):
        with atomic_write(job.stem.parent / f"{job.stem.name}_scene.glb", "wb") as handle:
            handle.write(scene.export(file_type="glb"))
    atomic_write_json(output_file(job.stem, ".json"), {"image": str(job.path), "people": people,
                                                       "skipped": list(job.skipped_people),
                                                       "frames": "camera frame: x right, y down, z forward, metres"})  # fmt: skip


def project_keypoint_set(result: FitResult, model: BodyModel, keypoint_set: str, device: str = "cpu",
                         posed=None) -> np.ndarray:  # fmt: skip
    """(N,K,2) pixels: the fitted model's points of `keypoint_set` (fingers, jaw and expression
    included where fitted) projected with the fit's camera; posed: `result.pose(model, device)`
    when the caller has it already."""
    from fitter.geometry import perspective_project

    reg = keypoint_regressor(model.to(device), keypoint_set)
    out = posed if posed is not None else result.pose(model, device)
    with torch.no_grad():
        pts = reg.from_vertices(out.joints, out.vertices)
        px = perspective_project(pts, torch.as_tensor(result.focal_length, device=device),
                                 torch.as_tensor(result.principal_point, device=device))  # fmt: skip
    return px.cpu().numpy()
