"""`FitWorker`: the one worker both backends use (the local loop and each Ray actor).

It holds the body model, the detector and the initializer (a regressor's network, loaded once)
for its lifetime, and turns a list of images into statuses: read and detect (in a background
thread, at most one batch ahead of the fitting), fit the people of a batch together, write the
outputs. A bad image fails alone; the others go on.
"""

from __future__ import annotations

import concurrent.futures as futures
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fitter.body import BodyModel, load_body_model
from fitter.camera import resolve_camera
from fitter.fitting import FitTargets, fit_keypoints, prior_mean_pose
from fitter.init import StartInputs, make_initializer, resolve_initializer_name
from fitter.pipeline.jobs import FitOptions, ImageJob, is_finished, prepare_image
from fitter.pipeline.outputs import write_outputs
from fitter.result import FitResult

__all__ = ["FitWorker", "Report"]

Report = Callable[[Path, str], None]  # (image path, "done" | "skipped" | "failed: <why>")


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (ValueError, FileNotFoundError)) else f"{type(exc).__name__}: {exc}"


class FitWorker:
    """Fits images with `options`; loads what it needs once (model, detector, initializer).

    model: an already loaded body model (else loaded from options.body_model / gender / device).
    """

    def __init__(self, options: FitOptions, model: BodyModel | None = None) -> None:
        from priors import default_prior_terms

        self.options = options
        self.model = model if model is not None else load_body_model(options.body_model, gender=options.gender,
                                                                     device=options.device)  # fmt: skip
        self.init_name = resolve_initializer_name(options.init)
        self.initializer = make_initializer(self.init_name, self.model, options.device, options.refine)
        gmm = str(options.gmm) if options.gmm else None
        self.mean_pose = prior_mean_pose(default_prior_terms(gmm))
        self.use_landmarks3d = options.landmarks3d if options.landmarks3d is not None else self.init_name == "mediapipe"
        self.detector = None
        if options.keypoints is None:
            from fitter.detect import BlazePoseDetector

            self.detector = BlazePoseDetector()

    def close(self) -> None:
        """Release the detector (not done at interpreter exit: closing mediapipe's graph while a
        process exits can deadlock it, mediapipe 0.10.21)."""
        if self.detector is not None:
            self.detector.close()
            self.detector = None

    def process(self, items: Sequence[tuple[Path, Path]], report: Report | None = None) -> list[str]:
        """Fit the images `items` = (path, output stem); returns each image's status in order and
        calls report(path, status) as each is known. Finished images (their .npz exists) are
        skipped unless options.overwrite."""
        report = report or (lambda path, status: None)
        statuses: dict[int, str] = {}

        def settle(k: int, path: Path, status: str) -> None:
            statuses[k] = status
            report(path, status)

        todo = []
        for k, (path, stem) in enumerate(items):
            if not self.options.overwrite and is_finished(stem):
                settle(k, path, "skipped")
            else:
                todo.append((k, path, stem))
        ahead = max(1, self.options.batch_size)
        with futures.ThreadPoolExecutor(max_workers=1) as pool:  # detection overlaps fitting
            queue: deque = deque()
            rest = iter(todo)

            def fill() -> None:
                while len(queue) < ahead and (nxt := next(rest, None)) is not None:
                    k, path, stem = nxt
                    queue.append((k, pool.submit(prepare_image, path, stem, self.options, self.detector)))

            fill()
            batch: list[tuple[int, ImageJob]] = []
            while queue:
                k, future = queue.popleft()
                job = future.result()
                fill()
                if job.error is not None:
                    settle(k, job.path, f"failed: {job.error}")
                else:
                    batch.append((k, job))
                people = sum(len(j.keypoints) for _, j in batch)
                if batch and (people >= self.options.batch_size or not queue):
                    for (k_job, job_done), status in zip(batch, self._finish([j for _, j in batch])):
                        settle(k_job, job_done.path, status)
                    batch = []
        return [statuses[k] for k in range(len(items))]

    def _finish(self, jobs: list[ImageJob]) -> list[str]:
        """Fit and write a batch of detected images; their statuses."""
        statuses = []
        for job, res in zip(jobs, self.fit_jobs(jobs)):
            try:
                if isinstance(res, Exception):
                    raise res
                write_outputs(job, res, self.model, self.options)
                bad = [s for s in res.status if s != "ok"]
                if bad:
                    raise ValueError(bad[0])
                statuses.append("done")
            except Exception as exc:
                statuses.append(f"failed: {_message(exc)}")
            job.image = None  # free memory
        return statuses

    def fit_jobs(self, jobs: list[ImageJob]) -> list[FitResult | Exception]:
        """Fit all people of `jobs` in batches grouped by keypoint set; one result (or the
        exception that failed its group) per job."""
        options = self.options
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
                sizes_arr = np.array(sizes, dtype=np.float32)
                camera = resolve_camera(sizes_arr, len(kps), options.focal, paths)  # one camera for start and fit
                world = [jobs[o].world_landmarks for o in owner]
                has_world = kset == "blazepose33" and all(w is not None for w in world)
                inputs = StartInputs.build(np.stack(kps), kset, camera, self.model, self.mean_pose, options.device,
                                           images=[jobs[i].image for i in idx], owners=[idx.index(o) for o in owner],
                                      world_landmarks=np.stack(world) if has_world else None, masks=masks)  # fmt: skip
                targets = FitTargets(masks=masks if options.silhouette else None,
                                     part_masks=part_masks if any(p is not None for p in part_masks) else None,
                                     landmarks3d=np.stack(lm3d) if self.use_landmarks3d and kset == "blazepose33" else None)  # fmt: skip
                res = fit_keypoints(np.stack(kps), kset, sizes_arr, camera=camera, start=self.initializer(inputs),
                                    body_model=self.model, config=options.config, device=options.device,
                                    gmm_path=str(options.gmm) if options.gmm else None, targets=targets)  # fmt: skip
            except Exception as exc:  # the whole group failed: every image in it reports it
                for i in idx:
                    results[i] = exc
                continue
            owner_arr = np.array(owner)
            for i in idx:
                results[i] = res.select(np.nonzero(owner_arr == i)[0])
        return results
