"""Real-photo benchmark: fit every image of ../shared/eval from mediapipe detections and score it.

Prints, with and without the silhouette term:
* COCO (and OCHuman) PCK@0.1 x box size of the fitted model's reprojected COCO-17 points
  against the human labels (labelled points only), next to the detector's own PCK;
* silhouette IoU of the fitted mesh against the COCO / OCHuman instance masks;
* Human3.6M and MPI-INF-3DHP MPJPE and PA-MPJPE (mm) on the 14 joints common with LSP, using
  each dataset's intrinsics (H36M's lens distortion is ignored: up to ~3 px at the edges);
  MPJPE after aligning the hip midpoints, PA-MPJPE after a similarity Procrustes;
* seconds per image (detection + fit, model loaded).
Variants: keypoint-lifter start, keypoints only; + the person-mask silhouette term; + mediapipe's
3D world landmarks term; mediapipe IK start + the 3D term; and that + silhouette (the `fitter fit`
default). `--config smplify` gives SMPLify's upright start and annealed stages instead of the lifter.

    python benchmarks/real.py [--eval-dir ../shared/eval] [--config default] [--sets coco,h36m,...]

The photos are research-licensed: they are read from their folder, never copied.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fitter.body import load_body_model
from fitter.body.poses import mean_body_pose
from fitter.camera import resolve_camera
from fitter.detect import BlazePoseDetector
from fitter.detect.passes import unseen_outside
from fitter.fitting import FitTargets, fit_keypoints
from fitter.geometry import procrustes_align
from fitter.init import KEYPOINT_INITIALIZERS, StartInputs, make_initializer
from fitter.io.images import read_image
from fitter.keypoints import convert_keypoints, keypoint_regressor
from fitter.pipeline import project_keypoint_set
from fitter.render import render_mask

H36M_TO_LSP14 = [3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10]  # neck = thorax, head_top = head
MPI3DHP_TO_LSP14 = [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7, 1, 0]
DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


def lsp14_errors(pred_mm: np.ndarray, gt_mm: np.ndarray) -> tuple[float, float]:
    """(MPJPE, PA-MPJPE) in mm for (14,3) points; MPJPE after aligning the hip midpoints."""
    hips = lambda x: (x[2] + x[3]) / 2  # noqa: E731
    mpjpe = np.linalg.norm((pred_mm - hips(pred_mm)) - (gt_mm - hips(gt_mm)), axis=-1).mean()
    aligned = procrustes_align(
        torch.tensor(pred_mm[None], dtype=torch.float64), torch.tensor(gt_mm[None], dtype=torch.float64)
    )
    pa = np.linalg.norm(aligned[0].numpy() - gt_mm, axis=-1).mean()
    return float(mpjpe), float(pa)


def pck(points: np.ndarray, labels: np.ndarray, size: float, threshold: float = 0.1) -> tuple[int, int]:
    """(correct, labelled) for COCO-17 points (17,2) vs labels (17,3) [x, y, v]."""
    labelled = labels[:, 2] > 0
    dist = np.linalg.norm(points - labels[:, :2], axis=-1)
    return int((dist[labelled] <= threshold * size).sum()), int(labelled.sum())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _cases(eval_dir: Path, sets: list[str]):
    """Yield (set, image path, ground-truth dict)."""
    for name in sets:
        ann_path = eval_dir / name / "annotations.json"
        if not ann_path.exists():
            continue
        ann = json.loads(ann_path.read_text())
        for entry in ann["images"]:
            path = eval_dir / name / entry["file"]
            if name == "coco":
                t = entry["target"]
                yield name, path, {"keypoints": np.array(t["keypoints"], float).reshape(17, 3),
                                   "box": t["bbox_xywh"], "mask": eval_dir / name / entry["target_mask_file"]}  # fmt: skip
            elif name == "ochuman":
                for person in entry["persons"]:
                    yield name, path, {"keypoints": np.array(person["keypoints"], float).reshape(17, 3),
                                       "box": person["bbox_xywh"], "mask": eval_dir / name / person["mask_file"]}  # fmt: skip
            elif name in ("h36m", "mpi_inf_3dhp"):
                cam = entry["camera"]
                yield name, path, {"joints": np.array(entry["joints_3d_camera_mm"], float),
                                   "valid": np.array(entry.get("joints_3d_valid", [1] * 17), bool),
                                   "focal": float(np.mean(cam["f"])), "center": np.array(cam["c"], float),
                                   "mask": (eval_dir / name / entry["silhouette_mask_file"]) if entry.get("silhouette_mask_file") else None}  # fmt: skip


def run(args) -> None:
    console = Console(width=160)
    eval_dir = Path(args.eval_dir)
    if not eval_dir.is_dir():
        raise SystemExit(f"evaluation folder {eval_dir} not found (it lives in the project workspace's shared/eval)")
    model = load_body_model(args.body_model)
    coco_reg = keypoint_regressor(model, "coco17")
    lsp_reg = keypoint_regressor(model, "lsp14")
    cases = list(_cases(eval_dir, args.sets.split(",")))
    detections = {}
    det_time = {}
    with BlazePoseDetector() as detector:
        for _, path, _ in cases:
            if path not in detections:
                image = read_image(path)
                t = time.perf_counter()
                detections[path] = (image, detector.detect(image))
                det_time[path] = time.perf_counter() - t
    table = Table(title=f"real photos ({eval_dir}), body model {args.body_model}, config {args.config}")
    for col in ("terms", "set", "n", "detected", "PCK@0.1 fit", "PCK@0.1 detector", "mask IoU",
                "MPJPE mm", "PA-MPJPE mm", "s / image"):  # fmt: skip
        table.add_column(col, justify="right")
    variants = {"lifter": (False, False, "lifter"), "lifter+silhouette": (True, False, "lifter"),
                "lifter+3D+silhouette": (True, True, "lifter"),
                "mediapipe init+3D": (False, True, "mediapipe"), "mediapipe init+3D+silhouette": (True, True, "mediapipe")}  # fmt: skip
    only = set(args.variants.split(",")) if args.variants else set(variants)
    for variant, (use_sil, use_3d, init_name) in variants.items():
        if variant not in only:
            continue
        stats: dict[str, dict[str, list]] = {}
        initializer = make_initializer(init_name, model)
        for name, path, gt in cases:
            s = stats.setdefault(name, {k: [] for k in ("pck", "pck_det", "iou", "mpjpe", "pa", "time", "found")})
            image, det = detections[path]
            s["found"].append(det is not None)
            if det is None:
                continue
            h, w = image.shape[:2]
            keypoints = unseen_outside(det.keypoints[None], w, h)  # as `fitter fit` does
            t = time.perf_counter()
            kwargs = {}
            if "focal" in gt:
                kwargs = {"focal_length": gt["focal"], "principal_point": gt["center"]}
            targets = FitTargets(masks=[det.mask > 0.5] if (use_sil and det.mask is not None) else None)
            if use_3d:
                targets.landmarks3d = np.concatenate([det.world_landmarks, det.keypoints[:, 2:3]], axis=1)[None]
            start = initializer  # keypoint starts run inside fit_keypoints, with the fit's camera
            if init_name not in KEYPOINT_INITIALIZERS:  # image starts see the image-centred camera
                camera = resolve_camera((w, h), 1, kwargs.get("focal_length"))
                start = initializer(StartInputs.build(keypoints, "blazepose33", camera, model, mean_body_pose(),
                                                 images=[image], owners=[0], world_landmarks=det.world_landmarks[None]))  # fmt: skip
            res = fit_keypoints(keypoints, "blazepose33", (w, h), body_model=model, config=args.config,
                                start=start, targets=targets, **kwargs)  # fmt: skip
            s["time"].append(time.perf_counter() - t + det_time[path])
            if "keypoints" in gt:
                coco2d = project_keypoint_set(res, model, "coco17")[0]
                size = max(gt["box"][2], gt["box"][3])
                s["pck"].append(pck(coco2d, gt["keypoints"], size))
                det_coco = convert_keypoints(det.keypoints, "blazepose33", "coco17")[:, :2]
                s["pck_det"].append(pck(det_coco, gt["keypoints"], size))
            if gt.get("mask") is not None:
                target = np.asarray(read_image(gt["mask"]))[..., 0] > 127
                verts = torch.as_tensor(res.vertices())
                rendered = render_mask(verts, model.faces, torch.as_tensor(res.focal_length),
                                       torch.as_tensor(res.principal_point), (w, h))[0].numpy()  # fmt: skip
                s["iou"].append(iou(rendered, target))
            if "joints" in gt:
                out = model(
                    *(torch.as_tensor(getattr(res, k)) for k in ("betas", "body_pose", "global_orient", "transl"))
                )
                pred = lsp_reg.from_vertices(out.joints, out.vertices)[0].detach().numpy() * 1000
                order = H36M_TO_LSP14 if name == "h36m" else MPI3DHP_TO_LSP14
                gt14 = gt["joints"][order]
                if gt["valid"][order].all():
                    e = lsp14_errors(pred, gt14)
                    s["mpjpe"].append(e[0])
                    s["pa"].append(e[1])
        for name, s in stats.items():

            def pct(pairs):
                return f"{100 * sum(c for c, _ in pairs) / max(1, sum(n for _, n in pairs)):.1f}%" if pairs else "-"

            mean = lambda v, fmt="{:.1f}": fmt.format(np.mean(v)) if v else "-"  # noqa: E731
            table.add_row(variant, name, str(len(s["found"])), str(sum(s["found"])),
                          pct(s["pck"]), pct(s["pck_det"]), mean(s["iou"], "{:.3f}"), mean(s["mpjpe"]), mean(s["pa"]),
                          mean(s["time"], "{:.2f}"))  # fmt: skip
    console.print(table)
    del coco_reg


def match_people(fitted: np.ndarray, labels: list[np.ndarray], sizes: list[float]) -> list[int | None]:
    """For each labelled person (17,3), the index of the fitted person (COCO-17 (P,17,2) px) it is
    matched to (Hungarian on the mean labelled-point distance / person size, < 0.5), or None."""
    from scipy.optimize import linear_sum_assignment

    if len(fitted) == 0 or not labels:
        return [None] * len(labels)
    cost = np.zeros((len(labels), len(fitted)))
    for i, (lab, size) in enumerate(zip(labels, sizes)):
        seen = lab[:, 2] > 0
        cost[i] = np.linalg.norm(fitted[:, seen] - lab[None, seen, :2], axis=-1).mean(1) / size
    rows, cols = linear_sum_assignment(cost)
    out: list[int | None] = [None] * len(labels)
    for r, c in zip(rows, cols):
        if cost[r, c] < 0.5:
            out[r] = int(c)
    return out


def run_people(args, model) -> None:
    """Every person: the photo pipeline (detection of everyone, one batch per photo) on the COCO,
    OCHuman and 3DPW photos; labelled people matched to fitted ones by their keypoints."""
    import tempfile

    from fitter.pipeline import FitOptions, FitWorker, prepare_image

    eval_dir = Path(args.eval_dir)
    photos = []  # (set, path, labels [(17,3)], sizes, target index or None)
    for name in ("coco", "ochuman", "3dpw"):
        ann = json.loads((eval_dir / name / "annotations.json").read_text())
        for entry in ann["images"]:
            people = [entry["target"]] + [o for o in entry.get("others", []) if o.get("num_keypoints", 0) >= 10] \
                if name == "coco" else entry.get("persons", [])  # fmt: skip
            labels = [np.array(p["keypoints"], float).reshape(17, 3) for p in people if "keypoints" in p]
            sizes = [float(max(p["bbox_xywh"][2], p["bbox_xywh"][3])) for p in people if "keypoints" in p]
            photos.append((name, eval_dir / name / entry["file"], labels, sizes))
    table = Table(title="every person in the photo (detection + fit of everyone, config " + args.config + ")")
    for col in ("detection threshold", "COCO target PCK@0.1 (all 12)", "labelled people fitted", "OCHuman PCK@0.1",
                "people fitted per photo (3DPW: 2)", "s / photo"):  # fmt: skip
        table.add_column(col, justify="right")
    for threshold in [float(t) for t in args.detection_thresholds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            options = FitOptions(out_dir=Path(tmp), config=args.config, detection_confidence=threshold)
            worker = FitWorker(options, model=model)
            correct = {"coco": [0, 0], "ochuman": [0, 0]}
            matched, labelled, counts, seconds = 0, 0, {}, []
            for name, path, labels, sizes in photos:
                t = time.perf_counter()
                job = prepare_image(path, Path(tmp) / path.stem, options, worker.detector)
                result = None if job.error else worker.fit_jobs([job])[0]
                seconds.append(time.perf_counter() - t)
                fitted = np.zeros((0, 17, 2)) if result is None or isinstance(result, Exception) else \
                    project_keypoint_set(result, model, "coco17")  # fmt: skip
                counts[path.name] = len(fitted)
                if args.verbose_people:
                    print(
                        threshold,
                        path.name,
                        len(fitted),
                        [
                            None if m is None else pck(fitted[m], labels[k], sizes[k])
                            for k, m in enumerate(match_people(fitted, labels, sizes))
                        ],
                        job.skipped_people,
                    )
                for k, match in enumerate(match_people(fitted, labels, sizes)):
                    if name != "coco" or k == 0:  # COCO: the labelled target; OCHuman: every person
                        hit = (
                            (0, int((labels[k][:, 2] > 0).sum()))
                            if match is None
                            else pck(fitted[match], labels[k], sizes[k])
                        )
                        correct[name][0] += hit[0]
                        correct[name][1] += hit[1]
                    labelled += 1
                    matched += match is not None
            worker.close()
        pct = lambda c: f"{100 * c[0] / max(1, c[1]):.1f}%"  # noqa: E731
        threedpw = [v for k, v in counts.items() if k.startswith("courtyard")]
        table.add_row(f"{threshold:g}", pct(correct["coco"]), f"{matched}/{labelled}", pct(correct["ochuman"]),
                      f"{np.mean(list(counts.values())):.2f} ({threedpw[0] if threedpw else '-'})", f"{np.mean(seconds):.2f}")  # fmt: skip
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", default=str(DEFAULT_EVAL))
    parser.add_argument("--config", default="default")
    parser.add_argument("--body-model", default="anny")
    parser.add_argument("--sets", default="coco,ochuman,h36m,mpi_inf_3dhp")
    parser.add_argument("--variants", default="", help="comma-separated subset of the variant names")
    parser.add_argument(
        "--people",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score every person in the COCO / OCHuman / 3DPW photos (the photo pipeline)",
    )
    parser.add_argument(
        "--detection-thresholds", default="0.1", help="comma-separated detection thresholds for --people"
    )
    parser.add_argument("--verbose-people", action="store_true", help="print each photo of --people")
    args = parser.parse_args()
    if args.sets:
        run(args)
    if args.people:
        run_people(args, load_body_model(args.body_model))


if __name__ == "__main__":
    main()
