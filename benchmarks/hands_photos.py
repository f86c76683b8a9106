"""Hands on real photos: Holistic's hands and faces on the demo and COCO photos of ../shared/eval,
and the fitted hands' 2D error where a hand was found.

Per photo: people kept (the pipeline's filters), hands and faces found (as the pipeline detects them:
the whole image for one person, crops for several), hands found on per-person crops, Holistic's time
on the whole image and on per-person crops, and, where a hand was found, a fit with hands (anny-hands,
`--config`, the pipeline's own worker: blazepose33+hands42, face points from the face mesh) and
each found hand's 2D error: the mean distance (px) over its 21 points between the detection and
the fitted model's hands42 points, also as % of the hand's size (diagonal of the box of the 21
detected points); the summary counts the fitted hands within 5 % (issue 14's bar).

    python benchmarks/hands_photos.py [--eval-dir ../shared/eval] [--config default] [--sets demo,coco]

The report photos are the demo and COCO ones (the default); the hand settings (the wrist and
knuckle placement, the order of the stages) were chosen on the others:
`--sets mpii,3dpw,ochuman,h36m,mpi_inf_3dhp`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from fitter.cli.common import quiet_third_party
from fitter.detect import HandFaceDetector
from fitter.io.images import list_images, read_image
from fitter.pipeline import FitOptions, FitWorker, prepare_image, project_keypoint_set

DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


def hand_errors(detected: np.ndarray, fitted: np.ndarray) -> list[tuple[str, float, float]]:
    """(side, mean px error, % of hand size) for each found hand of one person: detected (42,3)
    px + confidence, fitted (42,2) px."""
    rows = []
    for h, side in enumerate(("L", "R")):
        points = detected[21 * h : 21 * h + 21]
        if points[0, 2] <= 0:
            continue
        error = float(np.linalg.norm(points[:, :2] - fitted[21 * h : 21 * h + 21], axis=1).mean())
        size = float(np.linalg.norm(np.ptp(points[:, :2], axis=0)))
        rows.append((side, error, 100.0 * error / max(size, 1e-6)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--config", default="default")
    parser.add_argument("--sets", default="demo,coco", help="comma-separated folders of the eval dir")
    args = parser.parse_args()
    folders = [args.eval_dir / name / "images" for name in args.sets.split(",")]
    if not all(folder.is_dir() for folder in folders):
        raise SystemExit(f"evaluation photos not found under {args.eval_dir} (the project workspace's shared/eval)")
    photos = list_images(folders)
    out = Path(tempfile.mkdtemp(prefix="hands_photos_"))
    options = FitOptions(out_dir=out, hands=True, config=args.config, silhouette=True)
    table = Table(
        "photo",
        "people",
        "hands",
        "faces",
        "hands (crops)",
        "whole s",
        "crops s",
        "fit s",
        "fitted hand 2D error px (% of hand size)",
    )
    percents: list[float] = []  # every fitted hand's 2D error, % of its size
    totals = {"hands": 0, "faces": 0, "on_crops": 0, "whole": 0.0, "crops": 0.0, "fit": 0.0, "fits": 0}
    with quiet_third_party():
        worker = FitWorker(options)
        crops = HandFaceDetector()
        try:
            for photo in photos:
                job = prepare_image(photo, out / photo.stem, options, worker.detector, worker.hand_detector)
                if job.error is not None:
                    table.add_row(photo.name, "0", "-", "-", "-", "-", "-", "-", job.error[:40])
                    continue
                image = read_image(photo)
                everyone = worker.detector.detect(image)  # the people the pipeline kept, again
                people = [everyone[k] for k in job.person_ids]
                started = time.perf_counter()
                worker.hand_detector.detect(image, people, crops=False)
                whole = time.perf_counter() - started
                started = time.perf_counter()
                on_crops = sum(sum(found.hands_found) for found in crops.detect(image, people, crops=True))
                cropped = time.perf_counter() - started
                hands = sum(sum(found.hands_found) for found in job.hands_faces)
                faces = sum(found.face_mesh is not None for found in job.hands_faces)
                fit_s, cell = "-", ""
                if hands:
                    started = time.perf_counter()
                    (result,) = worker.fit_jobs([job])
                    fit = time.perf_counter() - started
                    fit_s, totals["fit"], totals["fits"] = f"{fit:.1f}", totals["fit"] + fit, totals["fits"] + 1
                    if isinstance(result, Exception):
                        cell = f"fit failed: {result}"[:40]
                    else:
                        fitted = project_keypoint_set(result, worker.model, "hands42")
                        errors = [(k, side, e, pct) for k in range(len(result))
                                  for side, e, pct in hand_errors(job.keypoints[k, 33:], fitted[k])]  # fmt: skip
                        percents += [pct for *_, pct in errors]
                        cell = "  ".join(f"p{k}{side} {e:.1f} ({pct:.1f} %)" for k, side, e, pct in errors)
                totals["hands"] += hands
                totals["faces"] += faces
                totals["on_crops"] += on_crops
                totals["whole"] += whole
                totals["crops"] += cropped
                table.add_row(photo.name[:28], str(len(job.person_ids)), str(hands), str(faces), str(on_crops), f"{whole:.2f}",
                              f"{cropped:.2f}", fit_s, cell)  # fmt: skip
        finally:
            crops.close()
            worker.close()
    console = Console(width=150)
    console.print(table)
    n = len(photos)
    console.print(f"{n} photos: {totals['hands']} hands, {totals['faces']} faces found ({totals['on_crops']} hands on "
                  f"per-person crops); Holistic "
                  f"{totals['whole'] / n:.2f} s per photo on the whole image, {totals['crops'] / n:.2f} s on "
                  f"per-person crops; fit with hands {totals['fit'] / max(1, totals['fits']):.1f} s per photo "
                  f"({args.config}, 1 thread)")  # fmt: skip
    if percents:
        within = sum(p <= 5.0 for p in percents)
        console.print(f"fitted hands' 2D error: mean {np.mean(percents):.1f} % of the hand size, median "
                      f"{np.median(percents):.1f} %, max {max(percents):.1f} %; {within} of {len(percents)} hands within 5 %")  # fmt: skip


if __name__ == "__main__":
    main()
