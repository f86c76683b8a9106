"""The files of a fitted image: `<stem>.npz` (last: the finished marker), `.json`, `.obj`,
`_overlay.png` (every person of the image in one picture) and, on request, `_side.png`; one set
per person (`<stem>_p<id>.*`) when the image has several. Every file is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fitter.body import BodyModel
from fitter.keypoints import SKELETONS, keypoint_names, keypoint_regressor
from fitter.pipeline.jobs import FitOptions, ImageJob, output_file
from fitter.result import FitResult

__all__ = ["write_outputs", "project_keypoint_set"]


def _person_stem(job: ImageJob, k: int) -> Path:
    if len(job.person_ids) == 1:
        return job.stem
    return job.stem.parent / f"{job.stem.name}_p{job.person_ids[k]}"


def write_outputs(job: ImageJob, result: FitResult, model: BodyModel, options: FitOptions) -> None:
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
        with atomic_write(output_file(stem, ".obj"), "w") as handle:
            handle.write(mesh.export(file_type="obj"))
        if p == 0:  # one overlay per image, with every person
            atomic_save_png(job.stem.parent / f"{job.stem.name}_overlay.png", overlay)
        if options.side_view:
            h, w = job.image.shape[:2]
            atomic_save_png(stem.parent / f"{stem.name}_side.png", render_side_view(vertices[p], faces, (w, h)))
        one.save(output_file(stem, ".npz"))  # last: marks the person finished


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
