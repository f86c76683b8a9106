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
import torch

from fitter.body import BodyModel, load_body_model
from fitter.camera import resolve_camera
from fitter.fitting import FitTargets, fit_keypoints, prior_mean_pose
from fitter.fitting.quality import facing_conflicts
from fitter.init import StartInputs, make_initializer, resolve_initializer_name
from fitter.keypoints import keypoint_names
from fitter.pipeline.jobs import TILE_GRID, FitOptions, ImageJob, hands_body_model, is_finished, prepare_image
from fitter.pipeline.outputs import write_outputs
from fitter.result import FitResult

__all__ = ["FitWorker", "Report"]

Report = Callable[[Path, str], None]  # (image path, "done" | "skipped" | "failed: <why>")


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (ValueError, FileNotFoundError)) else f"{type(exc).__name__}: {exc}"


def _others(masks: list[np.ndarray | None], owner: list[int], k: int) -> np.ndarray | None:
    """The union of the masks of the other people of person k's photo (None if there are none)."""
    others = [m for j, m in enumerate(masks) if j != k and owner[j] == owner[k] and m is not None]
    return np.logical_or.reduce(others) if others else None


class FitWorker:
    """Fits images with `options`; loads what it needs once (model, detector, initializer).

    model: an already loaded body model (else loaded from options.body_model / gender / device).
    """

    def __init__(self, options: FitOptions, model: BodyModel | None = None) -> None:
        from priors import default_prior_terms

        self.options = options
        name = hands_body_model(options.body_model, options.hands)  # --hands: anny -> anny-hands
        self.model = model if model is not None else load_body_model(name, gender=options.gender, device=options.device)
        if options.hands and not self.model.has_fingers:
            raise ValueError(f"--hands needs a body model with finger joints (anny-hands, smplh, smplx), but "
                             f"{self.model.name or options.body_model} has none")  # fmt: skip
        self.hands = self.model.has_fingers if options.hands is None else options.hands
        self.face = self.hands and self.model.has_face  # SMPL-X: detected faces' points are fitted too
        self.init_name = resolve_initializer_name(options.init)
        self.initializer = make_initializer(self.init_name, self.model, options.device, options.refine)
        gmm = str(options.gmm) if options.gmm else None
        self.mean_pose = prior_mean_pose(default_prior_terms(gmm))
        self.use_landmarks3d = options.landmarks3d if options.landmarks3d is not None else self.init_name == "mediapipe"
        self.people_skipped: dict[Path, str] = {}  # images where some people were not fitted, and why
        self.detector = self.hand_detector = None
        if options.keypoints is None:
            from fitter.detect import HandFaceDetector, PeopleDetector

            passes = options.detect_passes
            self.detector = PeopleDetector(max_people=options.max_people + 2,  # a few more: some are skipped
                                           min_detection_confidence=options.detection_confidence,
                                           refine="refine" in passes, hide_found="hide" in passes,
                                           tiles=TILE_GRID if "tiles" in passes else 1)  # fmt: skip
            self.hand_detector = HandFaceDetector() if self.hands else None

    def close(self) -> None:
        """Release the detector (not done at interpreter exit: closing mediapipe's graph while a
        process exits can deadlock it, mediapipe 0.10.21)."""
        for detector in (self.detector, self.hand_detector):
            if detector is not None:
                detector.close()
        self.detector = self.hand_detector = None

    def process(self, items: Sequence[tuple[Path, Path]], report: Report | None = None,
                on_read: Callable[[Path], None] | None = None) -> list[str]:  # fmt: skip
        """Fit the images `items` = (path, output stem); returns each image's status in order and
        calls report(path, status) as each is known (and on_read(path) once it is read and
        detected). Finished images are skipped unless options.overwrite."""
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
                    detectors = (self.detector, self.hand_detector, self.face)
                    queue.append((k, pool.submit(prepare_image, path, stem, self.options, *detectors)))

            fill()
            batch: list[tuple[int, ImageJob]] = []
            while queue:
                k, future = queue.popleft()
                job = future.result()
                fill()
                if on_read is not None:
                    on_read(job.path)
                if job.skipped_people:
                    self.people_skipped[job.path] = "; ".join(job.skipped_people)
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
        """Fit and write a batch of detected images; their statuses ("done" only when every
        person's fit is ok; else "failed: " and the first failed person's reason)."""
        statuses = []
        for job, res in zip(jobs, self.fit_jobs(jobs)):
            try:
                if isinstance(res, Exception):
                    raise res
                write_outputs(job, res, self.model, self.options)
                bad = [(job.person_ids[k], s) for k, s in enumerate(res.status) if s != "ok"]
                if bad:
                    who = f"person {bad[0][0]}: " if len(job.person_ids) > 1 else ""
                    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                    raise ValueError(who + bad[0][1].removeprefix("failed: ") + more)
                statuses.append("done")
            except Exception as exc:
                statuses.append(f"failed: {_message(exc)}")
            job.image = None  # free memory
        return statuses

    def fit_jobs(self, jobs: list[ImageJob]) -> list[FitResult | Exception]:
        """Fit all people of `jobs` in batches grouped by keypoint set; one result (or the
        exception that failed it) per job. When a group fails, its images are fitted one by
        one, so a bad image fails alone."""
        by_set: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            by_set.setdefault(job.keypoint_set, []).append(i)
        results: list[FitResult | Exception] = [None] * len(jobs)  # type: ignore[list-item]
        for kset, idx in by_set.items():
            group = self._fit_group([jobs[i] for i in idx], kset)
            if isinstance(group, Exception) and len(idx) > 1:
                group = [self._fit_group([jobs[i]], kset) for i in idx]
                group = [r if isinstance(r, Exception) else r[0] for r in group]
            for k, i in enumerate(idx):
                results[i] = group if isinstance(group, Exception) else group[k]
        return results

    def _fit_group(self, jobs: list[ImageJob], kset: str) -> list[FitResult] | Exception:
        """All people of `jobs` (one keypoint set) in one batch with one camera per person: one
        result per job, or the exception that stopped it."""
        options = self.options
        people = [(i, p) for i, job in enumerate(jobs) for p in range(len(job.keypoints))]
        owner = [i for i, _ in people]
        kps = np.stack([jobs[i].keypoints[p] for i, p in people])
        masks = [jobs[i].masks[p] if jobs[i].masks else None for i, p in people]
        part_masks = [jobs[i].part_masks[p] if jobs[i].part_masks else None for i, p in people]
        world = [None if jobs[i].world_landmarks is None else jobs[i].world_landmarks[p] for i, p in people]
        has_world = kset.split("+")[0] == "blazepose33" and all(w is not None for w in world)  # body points first
        # people of one photo: hidden by the others' masks, depth-ordered, not interpenetrating
        ignore = [_others(masks, owner, k) for k in range(len(people))]
        scenes = np.array(owner) if any(len(job.keypoints) > 1 for job in jobs) else None
        try:
            sizes = np.array([jobs[i].image.shape[1::-1] for i in owner], dtype=np.float32)  # (W,H)
            camera = resolve_camera(sizes, len(kps), options.focal, [jobs[i].path for i in owner])  # for start and fit
            inputs = StartInputs.build(kps, kset, camera, self.model, self.mean_pose, options.device,
                                       images=[job.image for job in jobs], owners=owner,
                                       world_landmarks=np.stack(world) if has_world else None, masks=masks)  # fmt: skip
            landmarks3d = None
            if self.use_landmarks3d and has_world:  # mediapipe's 3D landmarks, weighted by its visibility
                landmarks3d = np.zeros(kps.shape[:2] + (4,), np.float32)  # points past BlazePose's 33: weight 0
                landmarks3d[:, :33] = np.concatenate([np.stack(world), kps[:, :33, 2:3]], axis=-1)
            targets = FitTargets(masks=masks if options.silhouette else None, landmarks3d=landmarks3d,
                                 part_masks=part_masks if any(p is not None for p in part_masks) else None,
                                 ignore_masks=ignore, scenes=scenes)  # fmt: skip
            res = fit_keypoints(kps, kset, sizes, camera=camera, start=self.initializer(inputs), body_model=self.model,
                                config=options.config, device=options.device, targets=targets, threads=options.threads,
                                gmm_path=str(options.gmm) if options.gmm else None)  # fmt: skip
        except Exception as exc:
            return exc
        if has_world:  # the fit against mediapipe's own 3D view of each person
            conflict = facing_conflicts(torch.as_tensor(res.global_orient), torch.as_tensor(np.stack(world)),
                                        list(keypoint_names(kset)))  # fmt: skip
            for k in np.nonzero(conflict.numpy())[0].tolist():
                if res.status[k] == "ok":
                    res.status[k] = ("failed: facing ambiguous: the fit faces the other way than mediapipe's 3D "
                                     "landmarks say (a back view with left and right swapped?)")  # fmt: skip
        owner_arr = np.array(owner)
        return [res.select(np.nonzero(owner_arr == i)[0]) for i in range(len(jobs))]
