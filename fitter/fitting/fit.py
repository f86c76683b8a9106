"""`fit_keypoints`: fit a body model to the 2D keypoints of N people, batched.

1. start: the caller's `Start` (fitter.init), else the config's keypoint start (the lifter);
2. flip test: items the start flags are also fitted turned by its flip headings;
3. stages (fitter.fitting.stages): camera, body, silhouette when masks are given;
4. NaN guard: items that went non-finite are refitted from their start with smaller steps; if
   they fail again they are returned at their start with status "failed";
5. restarts: restartable items are refitted from alternative poses; the lower loss wins;
6. the best flip per item; the result in the camera frame (x right, y down, z forward, metres);
7. quality checks (fitter.fitting.quality): a fit that cannot be trusted is marked failed.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from fitter.body import BodyModel, load_body_model
from fitter.body.poses import bent_legs_pose, mean_body_pose
from fitter.camera import Camera, resolve_camera
from fitter.fitting.config import FitConfig, resolve_config
from fitter.fitting.problem import FitTargets, Problem, validate_keypoints
from fitter.fitting.quality import untrusted_reasons
from fitter.fitting.silhouettes import prepare_silhouettes
from fitter.fitting.stages import fit_batch
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, similar_triangles_translation
from fitter.init import Initializer, Start, StartInputs, make_initializer
from fitter.result import FitResult

__all__ = ["fit_keypoints", "FitTargets", "prior_mean_pose"]

NAN_RETRY_LR_SCALE = 0.2  # an item that went non-finite is refitted with steps this much smaller
RESTART_POSES = {"bent_legs": bent_legs_pose}


def _start_parameters(problem: Problem, start: Start, yaw: Tensor) -> dict[str, Tensor]:
    """Starting parameters (B,...) of `start` with the orientation turned by `yaw` (B,) radians
    about the body's vertical, and the translation solved where the start has none."""
    model = problem.model
    B, dev, dt = len(problem), problem.target.device, problem.target.dtype
    betas = start.betas if start.betas is not None else torch.zeros(B, model.num_betas, dtype=dt, device=dev)
    betas = betas[:, : model.num_betas]
    betas = torch.nn.functional.pad(betas, (0, model.num_betas - betas.shape[1]))
    turn = torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], dim=1)
    global_orient = matrix_to_axis_angle(axis_angle_to_matrix(start.global_orient) @ axis_angle_to_matrix(turn))
    params = {"betas": betas, "body_pose": start.body_pose, "global_orient": global_orient}
    params["transl"] = start.transl if start.transl is not None else _translation(problem, params)
    if problem.fits_hands:  # fingers start relaxed (the curl prior's mean)
        params["hand_pose"] = problem.hand_mean.expand(B, -1).clone()
    if problem.fits_face:  # SMPL-X: closed jaw, neutral face
        params["jaw_pose"] = torch.zeros(B, 3, dtype=dt, device=dev)
        params["expression"] = torch.zeros(B, model.num_expression, dtype=dt, device=dev)
    return params


def _translation(problem: Problem, params: dict[str, Tensor]) -> Tensor:
    """Camera translation (B,3) by similar triangles on the torso (shoulder-hip pairs first)."""
    with torch.no_grad():
        zero = torch.zeros_like(params["global_orient"])
        _, pts3d, _ = problem.points(params["betas"], params["body_pose"], params["global_orient"], zero)
    names = problem.names
    groups = ((("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")),
              (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")))  # fmt: skip
    pairs = [[(names.index(a), names.index(b)) for a, b in group if a in names and b in names] for group in groups]
    return similar_triangles_translation(pts3d, problem.target, problem.weights, problem.focal, problem.center, pairs)


def _flip_copies(start: Start) -> tuple[Tensor, Tensor, Tensor]:
    """The flip test's batch: (index (M,) of the original item of every batch item, yaw (M,)
    radians each is turned by, dup (D,) the original items of the copies, which follow the N
    originals, grouped by heading)."""
    n, device = len(start), start.flip.device
    flagged = torch.nonzero(start.flip).flatten()
    yaws = [math.radians(y) for y in start.flip_yaws]
    dup = flagged.repeat(len(yaws))
    index = torch.cat([torch.arange(n, device=device), dup])
    yaw = torch.cat([torch.zeros(n, device=device)] + [torch.full((len(flagged),), y, device=device) for y in yaws])
    return index, yaw, dup


def _choose_flips(status: list[str], total: Tensor, dup: Tensor, n: int) -> Tensor:
    """(n,) the batch item kept for each original item: a flipped copy wins when it is ok and
    the original is not, or when both have the same status and its total loss is lower."""
    chosen = torch.arange(n, device=total.device)
    for k, i in enumerate(dup.tolist()):
        j = n + k
        if (status[j] == "ok" and status[i] != "ok") or (status[j] == status[i] and total[j] < total[i]):
            chosen[i] = j
    return chosen


def _nonfinite(params: dict[str, Tensor], terms: dict[str, Tensor]) -> Tensor:
    bad = ~torch.isfinite(terms["total"])
    for v in params.values():
        bad = bad | ~torch.isfinite(v).all(dim=-1)
    return bad


def _keep_better(params: dict, terms: dict, ids: Tensor, new_params: dict, new_terms: dict, better: Tensor) -> None:
    """Where `better` (M,), replace items `ids` (M,) of params / terms by the new ones (in place)."""
    for k in params:
        params[k][ids] = torch.where(better[:, None], new_params[k], params[k][ids])
    for k in terms:
        if k in new_terms:
            terms[k][ids] = torch.where(better, new_terms[k], terms[k][ids])


def prior_mean_pose(prior_set) -> Tensor:
    """(69,) the pose upright starts use: the GMM prior's mean, else fitter's mean pose."""
    return prior_set.gmm.mean_pose().float() if prior_set.gmm is not None else mean_body_pose()


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("fitter", "torch", "numpy", "smplx", "anny", "mediapipe"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def fit_keypoints(
    keypoints: ArrayLike,
    keypoint_set: str,
    image_size: ArrayLike | None = None,
    focal_length: float | ArrayLike | None = None,
    body_model: str | BodyModel = "anny",
    start: Start | Initializer | None = None,
    config: str | FitConfig = "default",
    targets: FitTargets | None = None,
    device: str = "cpu",
    gender: str = "neutral",
    gmm_path: str | Path | None = None,
    image_paths: Sequence[str | Path] | None = None,
    principal_point: ArrayLike | None = None,
    camera: Camera | None = None,
    threads: int | None = 1,
) -> FitResult:
    """Fit a body model to 2D keypoints of N people.

    keypoints: (N,K,3) pixels (x right, y down, origin at the top-left image corner) +
    confidence in [0,1] (0 = missing); keypoint_set: "coco17", "blazepose33", "openpose25",
    "coco18", "h36m17", "lsp14" or "smpl24"; image_size: (W,H) or (N,2) pixels; focal_length:
    None (EXIF from `image_paths`, else the image diagonal), a number or (N,) pixels;
    principal_point: None (image centre), (2,) or (N,2) pixels; camera: an already resolved
    fitter.camera.Camera for the N items (then focal_length / principal_point / image_paths are
    not consulted); start: a `fitter.init.Start` from an initializer, or an initializer to call
    on the keypoints (e.g. fitter.init.upright_start), default the config's (the lifter);
    config: "fast" | "default" | "accurate" | "smplify" | FitConfig; targets: optional 3D
    landmarks and person / part masks (FitTargets); gmm_path: a GMM pose prior file (default: the
    shipped CMU GMM; "none": joint limits + angle + shape + weak L2, no GMM); threads: torch CPU threads for this call (restored after;
    None: leave torch's setting) -- these fits are many small operations, and one thread is
    the fastest on most machines (torch's default of all cores was 30-40x slower on a busy 2-core one).

    Returns a FitResult whose parameters place the body in the camera frame (x right, y down,
    z forward, metres); status per person "ok" or "failed: <why>" (e.g. fewer than 2 keypoints).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit(keypoints, keypoint_set, image_size, focal_length, body_model, start, config, targets, device,
                    gender, gmm_path, image_paths, principal_point, camera)  # fmt: skip
    finally:
        torch.set_num_threads(previous)


def _fit(keypoints, keypoint_set, image_size, focal_length, body_model, start, config, targets, device, gender, gmm_path,
         image_paths, principal_point, camera) -> FitResult:  # fmt: skip
    t0 = time.perf_counter()
    cfg = resolve_config(config)
    targets = targets or FitTargets()
    kp_np = validate_keypoints(keypoints, keypoint_set)
    N = kp_np.shape[0]
    too_few = (kp_np[..., 2] > 0).sum(1) < 2  # fitted along (finite, meaningless), reported as failed
    model = (
        body_model if isinstance(body_model, BodyModel) else load_body_model(body_model, gender=gender, device=device)
    )
    model = model.to(device)
    if camera is None:
        camera = resolve_camera(image_size, N, focal_length, image_paths, principal_point)
    dt = torch.float32
    kp = torch.as_tensor(kp_np, dtype=dt, device=device)
    focal = torch.as_tensor(camera.focal_length, dtype=dt, device=device)
    center = torch.as_tensor(camera.principal_point, dtype=dt, device=device)
    from priors import default_prior_terms

    prior_set = default_prior_terms(gmm_path, l2_mean=mean_body_pose()).to(device)
    problem = Problem.build(model, keypoint_set, kp, focal, center, targets)

    if not isinstance(start, Start):
        initializer = start or make_initializer(cfg.start)
        start = initializer(StartInputs.build(kp_np, keypoint_set, camera, model, prior_mean_pose(prior_set), device))
    start = start.to(device)
    if len(start) != N:
        raise ValueError(f"the start has {len(start)} people but the keypoints have {N}")
    index, yaw, dup = _flip_copies(start)
    sub, sub_start = problem.index(index), start.index(index)
    init_params = _start_parameters(sub, sub_start, yaw)
    sub.pose_anchor, sub.anchored = init_params["body_pose"].clone(), sub_start.anchored.to(dt)

    def fit(ids: Tensor | None, lr_scale: float = 1.0, body_pose: Tensor | None = None):
        """Fit items `ids` of `sub` (all when None) from their start (or from `body_pose`)."""
        part = sub if ids is None else sub.index(ids)
        part_init = init_params if ids is None else {k: v[ids] for k, v in init_params.items()}
        if body_pose is not None:
            part_init = {**part_init, "body_pose": body_pose}
            part_init["transl"] = _translation(part, part_init)
        silhouettes = prepare_silhouettes(part) if cfg.silhouette_iters > 0 else None
        return (*fit_batch(part, part_init, prior_set, cfg, silhouettes, lr_scale), part_init)

    params, terms, _ = fit(None)
    status = ["ok"] * len(index)
    for i in torch.nonzero(sub.tiny_extent()).flatten().tolist():
        status[i] = "failed: the keypoints span less than 4 px; nothing to fit"
    bad = _nonfinite(params, terms)
    if bad.any():  # NaN guard: refit the failed items from their start, more gently
        ids = torch.nonzero(bad).flatten()
        p2, t2, retry_init = fit(ids, lr_scale=NAN_RETRY_LR_SCALE)
        still = _nonfinite(p2, t2)
        for k in params:
            params[k][ids] = torch.where(still[:, None], retry_init[k], p2[k])
        for k in terms:
            terms[k][ids] = torch.where(still, torch.full_like(t2[k], float("inf")), t2[k])
        for i, s in zip(ids.tolist(), still.tolist()):
            status[i] = "failed: optimisation diverged (non-finite) twice" if s else "ok"
    # restarts: restartable items are refitted from alternative body poses; the lower total loss wins
    for pose_name in cfg.restart_poses:
        ids = torch.nonzero(sub_start.restart & torch.isfinite(terms["total"])).flatten()
        if len(ids) == 0:
            break
        pose = RESTART_POSES[pose_name](dt).to(device).expand(len(ids), -1).clone()
        p2, t2, _ = fit(ids, body_pose=pose)
        _keep_better(params, terms, ids, p2, t2, torch.isfinite(t2["total"]) & (t2["total"] < terms["total"][ids]))
    chosen = _choose_flips(status, terms["total"], dup, N)
    params = {k: v[chosen] for k, v in params.items()}
    terms = {k: v[chosen] for k, v in terms.items()}
    status = [status[int(c)] for c in chosen]
    for i in np.nonzero(too_few)[0].tolist():
        status[i] = "failed: fewer than 2 keypoints with confidence > 0; nothing to fit"
    with torch.no_grad():
        joints, _, proj = problem.points(
            params["betas"],
            params["body_pose"],
            params["global_orient"],
            params["transl"],
            hand_pose=params.get("hand_pose"),
            jaw_pose=params.get("jaw_pose"),
            expression=params.get("expression"),
        )
    used = (problem.weights > 0).float()
    err = ((proj - problem.target).norm(dim=-1) * used).sum(1) / used.sum(1).clamp(min=1)
    size = torch.as_tensor(camera.image_size, dtype=dt, device=device)
    for i, reason in enumerate(untrusted_reasons(kp, problem.weights, err, size)):
        if reason is not None and status[i] == "ok":
            status[i] = f"failed: {reason}"
    picked = chosen.tolist()
    info = {
        "body_model": model.name if model.name in ("anny", "smpl", "smplh", "smplx") else model.source,
        "gender": model.gender,
        "prior": prior_set.describe(),
        "focal_source": camera.focal_source,
        "config": {**asdict(cfg), "stage_iters": list(cfg.stage_iters)},
        "start": [sub_start.source[c] for c in picked],
        "started_from_lifter": [sub_start.source[c] == "lifter" for c in picked],
        "flipped": [c >= N for c in picked],
        "start_yaw_deg": [float(math.degrees(yaw[c])) for c in picked],
        "flip_tested": start.flip.tolist(),
        **{k: np.asarray(v).tolist() for k, v in start.diagnostics.items()},
        "seconds": time.perf_counter() - t0,
        "versions": dict(_versions()),
    }

    def np_(t: Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    return FitResult(
        betas=np_(params["betas"]), body_pose=np_(params["body_pose"]), global_orient=np_(params["global_orient"]),
        transl=np_(params["transl"]), focal_length=camera.focal_length, principal_point=camera.principal_point,
        image_size=camera.image_size, joints=np_(joints), reprojection_error_px=np_(err), keypoints=kp_np,
        keypoints_2d_fit=np_(proj), keypoint_set=keypoint_set, status=status,
        losses={k: np_(v) for k, v in terms.items()}, info=info, body_model=model,
        hand_pose=np_(params["hand_pose"]) if "hand_pose" in params else None,
        jaw_pose=np_(params["jaw_pose"]) if "jaw_pose" in params else None,
        expression=np_(params["expression"]) if "expression" in params else None,
    )  # fmt: skip
