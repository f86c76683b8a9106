"""SMPLify-style batched fitting of a body model to 2D keypoints (`fit_keypoints`).

Procedure (per item, all items batched; items never interact, so a batch gives the same
result as fitting each item alone):

1. start: pose and orientation from the caller's initializer; else from the keypoint lifter
   (fitter.regressors.lifter: an MLP trained on synthetic bodies that maps the 2D keypoints to
   a pose, the orientation in the camera frame and betas — it picks the limb-depth and heading
   branch that 2D keypoints leave open); else (lifter off, or fewer than 6 COCO-17 points)
   the mean pose upright, facing the camera or away as the left/right shoulders say;
   camera: full-frame pinhole (fitter.camera); depth from similar triangles (3D torso length
   of the model vs 2D torso length of the keypoints);
2. flip test (frontal starts): where the shoulders are close in 2D (a side view), the item is
   also fitted turned by 180 / +-90 degrees about the vertical, and the best fit is kept;
   restarts (frontal starts): refit from a bent-legs pose, keep the lower loss;
3. stage 1: camera translation + global orientation on the torso points, with a depth
   regulariser (SPIN);
4. stages 2..: body pose + betas + global orientation + translation with per-stage prior
   weights (default: one stage at SMPLify's final weights, the pose anchored to the lifter's;
   preset "smplify": SMPLify's four annealed stages), Adam or L-BFGS;
5. NaN guard: an item that goes non-finite is refitted from its initialisation at a lower
   learning rate; if it fails again it is returned at its initialisation, status "failed".

Units: residuals are rescaled per item to a 224 px person crop (SPIN's units) before the
Geman-McClure cost, so the published sigma (100) and prior weights apply at any image size.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from fitter.body import BodyModel, load_body_model
from fitter.body.poses import bent_legs_pose, mean_body_pose
from fitter.camera import Camera, resolve_camera
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project, visible_box
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.objectives import depth_term, landmarks3d_term, reprojection_term
from fitter.result import FitResult

__all__ = ["FitConfig", "PRESETS", "fit_keypoints", "mean_body_pose"]


@dataclass
class FitConfig:
    """Settings of one fit. Prior weights are per stage and squared in the loss (SMPLify).

    The defaults are the "default" preset: start from the keypoint lifter, a camera stage, then
    one stage at SMPLify's final prior weights with the pose held near the lifter's (anchor).
    "smplify" is SMPLify's own procedure: frontal mean-pose start, four stages of annealed
    prior weights, restarts."""

    lifter: bool = True  # start from the keypoint lifter (fitter.regressors.lifter) when the caller gives no pose
    optimizer: str = "adam"  # "adam" or "lbfgs"
    lr: float = 0.02  # Adam step size (L-BFGS uses 1.0 with a strong-Wolfe line search)
    lr_final_fraction: float = 0.1  # Adam's step decays (cosine) to this fraction within each stage
    camera_iters: int = 10
    stage_iters: tuple[int, ...] = (50,)
    pose_prior_weights: tuple[float, ...] = (4.78,)  # SMPLify's final stage
    shape_prior_weights: tuple[float, ...] = (5.0,)  # SMPLify's final stage
    angle_prior_weight: float = 5.0  # SPIN uses 15.2 with its GMM; joint limits already stop hyperextension
    joint_limit_weight: float = 300.0
    pose_l2_scale: float = 0.1  # the weak L2 pose prior (no GMM) is this x the pose prior weight
    anchor_weight: float = 10.0  # x squared distance (rad^2) of the body pose to the lifter's, for items it started
    depth_weight: float = 100.0  # SPIN
    sigma: float = 100.0  # GMoF sigma, in 224 px crop units (SPIN)
    flip_test: bool = True
    flip_threshold: float = 0.25  # shoulder distance / 2D torso length below which we flip-test
    flip_yaws: tuple[float, ...] = (180.0, 90.0, -90.0)  # extra starting headings (degrees) tried then
    landmarks3d_weight: float = 2000.0  # weight of the 3D landmark term (metres^2), used when landmarks are given
    silhouette_iters: int = 40  # extra final stage when person masks are given
    silhouette_weight: float = 2e4  # x chamfer loss (squared distances / image diagonal^2)
    silhouette_resolution: int = 256  # masks are matched at this longest side, pixels
    silhouette_vertex_step: int = 3  # every k-th vertex takes part in the silhouette term
    part_silhouette_weight: float = 1.0  # per-part term, relative to the whole-body silhouette term
    restart_threshold: float = 0.0  # mean 2D error (224 px crop units) above which an item is refitted (0: always)
    restart_poses: tuple[str, ...] = ("bent_legs",)  # alternative starts for frontal-start items (see bent_legs_pose)
    nan_retry_lr_scale: float = 0.2
    seed: int = 0
    name: str = "custom"


PRESETS: dict[str, FitConfig] = {
    "fast": FitConfig(camera_iters=5, stage_iters=(30,), silhouette_iters=20, restart_poses=(), name="fast"),
    "default": FitConfig(name="default"),
    "accurate": FitConfig(camera_iters=30, stage_iters=(150,), lr=0.02, silhouette_iters=80, name="accurate"),
    # SMPLify (Bogo et al. 2016) as SPIN runs it: frontal start, four annealed stages
    "smplify": FitConfig(lifter=False, lr=0.05, camera_iters=30, stage_iters=(30, 30, 30, 150),
                         pose_prior_weights=(404.0, 404.0, 57.4, 4.78), shape_prior_weights=(100.0, 50.0, 10.0, 5.0),
                         name="smplify"),  # fmt: skip
}

TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def _resolve_config(config: str | FitConfig) -> FitConfig:
    if isinstance(config, FitConfig):
        return config
    try:
        return PRESETS[config]
    except KeyError:
        raise ValueError(f"unknown config {config!r}; use one of {', '.join(PRESETS)} or a FitConfig") from None


def _validate_keypoints(keypoints: np.ndarray, keypoint_set: str) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim == 2:
        kp = kp[None]
    names = keypoint_names(keypoint_set)
    if kp.ndim != 3 or kp.shape[1:] != (len(names), 3):
        raise ValueError(
            f"keypoints must be (N, {len(names)}, 3) pixels + confidence for set {keypoint_set!r}, got {kp.shape}"
        )
    if not np.all(np.isfinite(kp)):
        raise ValueError("keypoints contain NaN or inf; give missing points confidence 0 (and any finite x, y)")
    if np.any(kp[..., 2] < 0):
        raise ValueError("keypoint confidences must be >= 0")
    return kp


class _Problem:
    """Tensors shared by all stages of one batched fit."""

    def __init__(self, model: BodyModel, keypoint_set: str, kp: torch.Tensor, focal: torch.Tensor,
                 center: torch.Tensor, landmarks3d: torch.Tensor | None):  # fmt: skip
        self.model = model
        self.regressor, self.skin = _regressor_and_skin(model, keypoint_set)
        self.names = self.regressor.names
        self.keypoint_set = keypoint_set
        self.target = kp[..., :2]
        self.confidence = kp[..., 2]
        self.weights = kp[..., 2] * self.regressor.quality[None]
        self.focal = focal
        self.center = center
        torso = [self.names.index(n) for n in TORSO if n in self.names]
        self.torso_mask = torch.zeros(len(self.names), dtype=kp.dtype, device=kp.device)
        self.torso_mask[torso] = 1.0
        self.landmarks3d = landmarks3d
        # L2 anchor of the body pose (B,69) and its per-item weight (B,) (1 where the lifter started the item)
        self.pose_anchor: torch.Tensor | None = None
        self.anchored: torch.Tensor | None = None
        # normalise residuals to a 224 px crop of the person (SPIN units)
        lo, hi = visible_box(kp[..., :2], kp[..., 2] > 0)
        size = (hi - lo).amax(-1).clamp(min=10.0) * 1.2
        self.scale = 224.0 / size

    def points(self, betas, body_pose, global_orient, transl, orient_base=None):
        """SMPL joints (B,24,3), keypoints (B,K,3) in the camera frame, and their pixels (B,K,2)."""
        joints, pts3d = self.model.pose_landmarks(self.skin, betas, body_pose, global_orient, transl,
                                                  orient_base=orient_base)  # fmt: skip
        return joints, pts3d, perspective_project(pts3d, self.focal, self.center)


_SKIN_CACHE: "weakref.WeakKeyDictionary" = None  # type: ignore[assignment]


def _regressor_and_skin(model: BodyModel, keypoint_set: str):
    """The keypoint regressor and its pre-skinned form, cached per (model, set, device)."""
    import weakref

    global _SKIN_CACHE
    if _SKIN_CACHE is None:
        _SKIN_CACHE = weakref.WeakKeyDictionary()
    per_model = _SKIN_CACHE.setdefault(model, {})
    key = (keypoint_set, str(model.v_template.device), model.v_template.dtype)
    if key not in per_model:
        reg = keypoint_regressor(model, keypoint_set)
        per_model[key] = (reg, model.landmark_skin(reg.vertex_ids, reg.vertex_weights, reg.joint_weights))
    return per_model[key]


def _initial_translation(problem: _Problem, global_orient: torch.Tensor, body_pose: torch.Tensor,
                         betas: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Camera translation (B,3) from similar triangles on the torso (or the whole skeleton)."""
    zero = torch.zeros_like(global_orient)
    with torch.no_grad():
        _, pts3d, _ = problem.points(betas, body_pose, global_orient, zero)
    names = problem.names
    w, tgt = problem.weights, problem.target
    B = tgt.shape[0]
    lengths3d = torch.zeros(B, dtype=tgt.dtype, device=tgt.device)
    lengths2d = torch.zeros_like(lengths3d)
    # Shoulder-hip (vertical) pairs first: widths foreshorten when the body turns; widths only
    # for items without any vertical pair.
    for pairs in ((("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")),
                  (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"))):  # fmt: skip
        missing = lengths2d <= 1.0
        for a, b in pairs:
            if a in names and b in names:
                i, j = names.index(a), names.index(b)
                pw = ((w[:, i] > 0) & (w[:, j] > 0) & missing).to(tgt.dtype)
                lengths3d = lengths3d + pw * (pts3d[:, i] - pts3d[:, j])[:, :2].norm(dim=-1)
                lengths2d = lengths2d + pw * (tgt[:, i] - tgt[:, j]).norm(dim=-1)
    # Items without a torso pair: extent of all visible points vs the model's.
    def extent(x):
        lo, hi = visible_box(x, w > 0)
        return (hi - lo).amax(-1)

    ratio = torch.where(lengths2d > 1.0, lengths3d / lengths2d.clamp(min=1e-3),
                        extent(pts3d[..., :2]) / extent(tgt).clamp(min=1e-3))  # fmt: skip
    vis = (w > 0).to(tgt.dtype)
    depth = (problem.focal * ratio).clamp(0.5, 100.0)
    # Put the mean of the visible model points on the ray through the mean of their 2D points.
    mean2d = (vis[..., None] * tgt).sum(1) / vis.sum(1, keepdim=True).clamp(min=1)
    mean3d = (vis[..., None] * pts3d).sum(1) / vis.sum(1, keepdim=True).clamp(min=1)
    xy = (mean2d - problem.center) / problem.focal[:, None] * depth[:, None]
    return torch.cat([xy - mean3d[:, :2], (depth - mean3d[:, 2])[:, None]], dim=1)


def _facing_away(problem: _Problem) -> torch.Tensor:
    """(B,) bool: the person's left shoulder (or hip) is on the image's left, i.e. their back
    is to the camera."""
    names, w, tgt = problem.names, problem.weights, problem.target
    away = torch.zeros(len(tgt), dtype=torch.bool, device=tgt.device)
    decided = torch.zeros_like(away)
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        if a in names and b in names:
            i, j = names.index(a), names.index(b)
            ok = (w[:, i] > 0) & (w[:, j] > 0) & ~decided
            away = torch.where(ok, tgt[:, i, 0] < tgt[:, j, 0], away)
            decided = decided | ok
    return away


def _shoulders_close(problem: _Problem, threshold: float) -> torch.Tensor:
    """(B,) bool: shoulders closer in 2D than `threshold` x the 2D torso length (side views)."""
    names, w, tgt = problem.names, problem.weights, problem.target
    if not all(n in names for n in TORSO):
        return torch.zeros(len(tgt), dtype=torch.bool, device=tgt.device)
    ls, rs, lh, rh = (names.index(n) for n in TORSO)
    width = (tgt[:, ls] - tgt[:, rs]).norm(dim=-1)
    torso = ((tgt[:, ls] + tgt[:, rs]) / 2 - (tgt[:, lh] + tgt[:, rh]) / 2).norm(dim=-1)
    ok = (w[:, ls] > 0) & (w[:, rs] > 0)
    return ok & (width < threshold * torso.clamp(min=1.0))


class _Params(torch.nn.Module):
    """Optimised variables. The global orientation is a small rotation `orient_delta` (axis-angle,
    camera frame) applied on top of the starting orientation: R = R(delta) R_start, which keeps
    the optimiser away from axis-angle's wrap-around at |theta| = pi (upright bodies sit there)."""

    def __init__(self, betas, body_pose, global_orient, transl):
        super().__init__()
        self.betas = torch.nn.Parameter(betas.clone())
        self.body_pose = torch.nn.Parameter(body_pose.clone())
        self.orient_delta = torch.nn.Parameter(torch.zeros_like(global_orient))
        self.transl = torch.nn.Parameter(transl.clone())
        self.register_buffer("orient_start", axis_angle_to_matrix(global_orient.detach()))

    @property
    def global_orient(self) -> torch.Tensor:
        """(B,1,3,3) rotation matrices."""
        return (axis_angle_to_matrix(self.orient_delta) @ self.orient_start)[:, None]

    def global_orient_axis_angle(self) -> torch.Tensor:
        return matrix_to_axis_angle(self.global_orient[:, 0])


def _run_stage(params: _Params, free: list[str], loss_fn, iters: int, config: FitConfig, lr_scale: float):
    tensors = [getattr(params, n) for n in free]
    for name, p in params.named_parameters():
        p.requires_grad_(name in free)
    if iters <= 0:
        return
    if config.optimizer == "lbfgs":
        opt = torch.optim.LBFGS(tensors, lr=1.0 * lr_scale, max_iter=iters, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20)  # fmt: skip

        def closure():
            opt.zero_grad()
            loss = loss_fn().sum()
            loss.backward()
            return loss

        opt.step(closure)
        return
    if config.optimizer != "adam":
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {config.optimizer!r}")
    opt = torch.optim.Adam(tensors, lr=config.lr * lr_scale)
    for it in range(iters):
        # cosine decay to lr_final_fraction x lr within each stage: big steps first, then settle
        frac = config.lr_final_fraction + (1 - config.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * it / max(1, iters - 1)))
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_scale * frac
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.sum().backward()
        opt.step()


def _fit_batch(problem: _Problem, init: dict[str, torch.Tensor], prior_set, config: FitConfig,
               lr_scale: float = 1.0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:  # fmt: skip
    """All stages for one batch; returns final parameters and per-item loss terms."""
    params = _Params(init["betas"], init["body_pose"], init["global_orient"], init["transl"])
    init_transl = init["transl"].detach()
    has_3d = problem.landmarks3d is not None and config.landmarks3d_weight > 0
    state: dict[str, torch.Tensor] = {}

    def camera_loss():
        _, _, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                    orient_base=params.orient_start)  # fmt: skip
        w = problem.weights * problem.torso_mask
        w = torch.where(w.sum(1, keepdim=True) > 0, w, problem.weights)  # no torso: use everything
        data = reprojection_term(proj, problem.target, w, problem.scale, config.sigma)
        return data + config.depth_weight**2 * depth_term(params.transl, init_transl)

    _run_stage(params, ["orient_delta", "transl"], camera_loss, config.camera_iters, config, lr_scale)

    def body_loss(pose_w: float, shape_w: float):
        def loss():
            joints, pts3d, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                                 orient_base=params.orient_start)  # fmt: skip
            terms = {"reprojection": reprojection_term(proj, problem.target, problem.weights, problem.scale, config.sigma)}
            prior = prior_set(params.body_pose, params.betas)
            terms["angle"] = config.angle_prior_weight**2 * prior["angle"]
            terms["shape"] = shape_w**2 * prior["shape"]
            if "pose_gmm" in prior:
                terms["pose"] = pose_w**2 * prior["pose_gmm"]
            else:
                terms["joint_limits"] = config.joint_limit_weight**2 * prior["joint_limits"]
                terms["pose"] = (config.pose_l2_scale * pose_w) ** 2 * prior["pose_l2"]
            if problem.pose_anchor is not None and config.anchor_weight > 0:  # the lifter's pose, where it started the item
                offset = (params.body_pose - problem.pose_anchor).pow(2).sum(-1)
                terms["anchor"] = config.anchor_weight**2 * problem.anchored * offset
            if has_3d:
                terms["landmarks3d"] = config.landmarks3d_weight * landmarks3d_term(
                    pts3d, problem.landmarks3d, problem.landmarks3d_weights, scale=True)
            state["terms"] = terms
            return sum(terms.values())

        return loss

    for iters, pose_w, shape_w in zip(config.stage_iters, config.pose_prior_weights, config.shape_prior_weights):
        _run_stage(params, ["betas", "body_pose", "orient_delta", "transl"], body_loss(pose_w, shape_w),
                   iters, config, lr_scale)  # fmt: skip
    final = body_loss(config.pose_prior_weights[-1], config.shape_prior_weights[-1])
    sil = getattr(problem, "silhouette", None)
    if sil is not None and config.silhouette_iters > 0 and len(sil["items"]) > 0:
        from fitter.objectives.silhouette import silhouette_chamfer_loss

        items, vids = sil["items"], sil["vertex_ids"]
        if sil["parts"] is not None:  # hidden vertices must not be pulled into their part's visible mask
            from fitter.render import vertex_visibility

            rows = sil["parts"]["rows"]
            with torch.no_grad():
                out = problem.model(params.betas[items][rows], params.body_pose[items][rows],
                                    params.global_orient[items][rows], params.transl[items][rows])  # fmt: skip
                scale = sil["scale"][rows]  # at the working resolution, like the masks
                res = config.silhouette_resolution
                visible = vertex_visibility(out.vertices, problem.model.faces, problem.focal[items][rows] * scale,
                                            problem.center[items][rows] * scale[:, None], (res, res))  # fmt: skip
            sil["parts"]["visible"] = visible[:, vids.vertex_ids].to(problem.target.dtype)

        def silhouette_loss():
            keypoint_part = final()
            points = problem.model.forward_joints(params.betas[items], params.body_pose[items],
                                                  params.global_orient[items], params.transl[items], vids).points  # fmt: skip
            proj = perspective_project(points, problem.focal[items], problem.center[items]) * sil["scale"][:, None, None]
            target = sil["target"]
            term = silhouette_chamfer_loss(proj, target.dist_maps, target.boundary_points, target.boundary_valid)
            parts = sil["parts"]
            if parts is not None:
                from fitter.objectives.silhouette import part_silhouette_loss

                rows = parts["rows"]
                part_term = part_silhouette_loss(proj[rows], parts["labels"], parts["target"],
                                                 vertex_weights=parts.get("visible"))  # fmt: skip
                term = term.index_add(0, rows, config.part_silhouette_weight * part_term)
            full = torch.zeros_like(keypoint_part).index_add(0, items, config.silhouette_weight * term)
            state["terms"]["silhouette"] = full
            return keypoint_part + full

        _run_stage(params, ["betas", "body_pose", "orient_delta", "transl"], silhouette_loss,
                   config.silhouette_iters, config, lr_scale * 0.5)  # fmt: skip
        final_with_sil = silhouette_loss
    else:
        final_with_sil = final
    with torch.no_grad():
        total = final_with_sil()
    terms = {k: v.detach() for k, v in state["terms"].items()}
    terms["total"] = total.detach()
    out = {k: getattr(params, k).detach() for k in ("betas", "body_pose", "transl")}
    out["global_orient"] = params.global_orient_axis_angle().detach()
    return out, terms


def lifter_start(problem: _Problem) -> dict[str, torch.Tensor] | None:
    """The keypoint lifter's guess for every item: global_orient (B,3) camera frame, body_pose
    (B,69), betas (B,num_betas) and `usable` (B,) bool (at least 6 of the COCO-17 points seen).
    None when the lifter's weights are missing."""
    from fitter.keypoints import convert_keypoints
    from fitter.regressors.lifter import LIFTER_SET, lifter_features, load_lifter

    try:
        lifter = load_lifter(device=problem.target.device)
    except FileNotFoundError:
        return None
    kp = torch.cat([problem.target, problem.confidence[..., None]], dim=-1)
    if problem.keypoint_set != LIFTER_SET:
        kp = torch.as_tensor(convert_keypoints(kp.cpu().numpy(), problem.keypoint_set, LIFTER_SET), device=kp.device)
    with torch.no_grad():
        out = lifter(lifter_features(kp, problem.focal, problem.center))
    betas = problem.target.new_zeros(problem.target.shape[0], problem.model.num_betas)
    if lifter.body_model == problem.model.name:  # betas of another model's shape space mean nothing here
        k = min(out["betas"].shape[1], betas.shape[1])
        betas[:, :k] = out["betas"][:, :k]
    return {
        "global_orient": matrix_to_axis_angle(out["global_orient"]),
        "body_pose": matrix_to_axis_angle(out["body_pose"]).reshape(-1, 69),
        "betas": betas,
        "usable": (kp[..., 2] > 0).sum(1) >= 6,
    }


def _initial_parameters(problem: _Problem, init: dict | None, prior_set, yaw: torch.Tensor,
                        guess: dict[str, torch.Tensor] | None = None) -> tuple[dict, torch.Tensor]:  # fmt: skip
    """Starting parameters (B,...) and (B,) bool: which items start from the lifter's `guess`
    (`lifter_start`, used where the caller gave no orientation)."""
    B = problem.target.shape[0]
    dev, dt = problem.target.device, problem.target.dtype
    if prior_set.gmm is not None:
        mean_pose = prior_set.gmm.mean_pose().to(dev, dt)
    else:
        mean_pose = mean_body_pose(dt).to(dev)
    init = dict(init or {})

    def get(name, default):
        value = init.get(name)
        if value is None:
            return default
        value = torch.as_tensor(np.asarray(value), dtype=dt, device=dev)
        return value.reshape(B, -1) if value.ndim > 1 or B == 1 else value.expand(B, -1)

    betas = get("betas", torch.zeros(B, problem.model.num_betas, dtype=dt, device=dev))[:, : problem.model.num_betas]
    betas = torch.nn.functional.pad(betas, (0, problem.model.num_betas - betas.shape[1]))
    body_pose = get("body_pose", mean_pose.expand(B, -1).clone())
    frontal = torch.tensor([math.pi, 0.0, 0.0], dtype=dt, device=dev).expand(B, 3)
    back = torch.tensor([0.0, 0.0, math.pi], dtype=dt, device=dev).expand(B, 3)  # R_x(pi) R_y(pi)
    lifted = torch.zeros(B, dtype=torch.bool, device=dev)
    if init.get("global_orient") is None:
        away = _facing_away(problem)
        global_orient = torch.where(away[:, None], back, frontal).clone()
        if guess is not None:
            lifted = guess["usable"]
            global_orient = torch.where(lifted[:, None], guess["global_orient"], global_orient)
            body_pose = torch.where(lifted[:, None], guess["body_pose"], body_pose)
            if init.get("betas") is None:
                betas = torch.where(lifted[:, None], guess["betas"], betas)
    else:
        global_orient = get("global_orient", frontal)
    # flip-test hypotheses: the orientation turned by `yaw` radians about the body's vertical axis
    turn = torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], dim=1)
    global_orient = matrix_to_axis_angle(axis_angle_to_matrix(global_orient) @ axis_angle_to_matrix(turn))
    transl = init.get("transl")
    if transl is None:
        transl = _initial_translation(problem, global_orient, body_pose, betas)
    else:
        transl = get("transl", None)
    return {"betas": betas, "body_pose": body_pose, "global_orient": global_orient, "transl": transl}, lifted


def fit_keypoints(
    keypoints,
    keypoint_set: str,
    image_size,
    focal_length=None,
    body_model: str | BodyModel = "anny",
    init: dict | None = None,
    config: str | FitConfig = "default",
    device: str = "cpu",
    gender: str = "neutral",
    gmm_path: str | None = None,
    landmarks3d=None,
    image_paths=None,
    masks=None,
    principal_point=None,
    part_masks=None,
    camera: Camera | None = None,
) -> FitResult:
    """Fit a body model to 2D keypoints of N people.

    keypoints: (N,K,3) pixels (x right, y down, origin at the top-left image corner) +
    confidence in [0,1] (0 = missing); keypoint_set: "coco17", "blazepose33", "openpose25",
    "coco18", "h36m17", "lsp14" or "smpl24"; image_size: (W,H) or (N,2) pixels; focal_length:
    None (EXIF from `image_paths`, else the image diagonal), a number or (N,) pixels;
    init: optional dict of betas (N,10), body_pose (N,69), global_orient (N,3), transl (N,3)
    (camera frame) from an initializer; config: "fast" | "default" | "accurate" | FitConfig;
    landmarks3d: optional (N,K,4) 3D landmarks (metres, any frame) + weight in the same set,
    pulled on after a rigid alignment (mediapipe world landmarks); masks: optional list of N
    person masks ((H,W) bool, full image, or None) for a final silhouette stage;
    principal_point: None (image centre), (2,) or (N,2) pixels; part_masks: optional list of N
    (P,H,W) bool body-part masks (P = 12 or 24 parts of fitter.body.parts) or None, for
    per-part silhouette terms in that final stage; camera: an already resolved
    fitter.camera.Camera for the N items (then focal_length / principal_point / image_paths are
    not consulted), so a caller that needed the intrinsics first does not resolve them twice.

    Returns a FitResult whose parameters place the body in the camera frame (x right, y down,
    z forward, metres).
    """
    start = time.perf_counter()
    cfg = _resolve_config(config)
    torch.manual_seed(cfg.seed)
    kp_np = _validate_keypoints(keypoints, keypoint_set)
    N = kp_np.shape[0]
    empty = np.nonzero((kp_np[..., 2] > 0).sum(1) < 2)[0]
    if len(empty):
        raise ValueError(
            f"item(s) {empty.tolist()} have fewer than 2 keypoints with confidence > 0; nothing to fit (drop them or supply keypoints)"
        )
    model = body_model if isinstance(body_model, BodyModel) else load_body_model(body_model, gender=gender, device=device)
    model = model.to(device)
    if camera is None:
        camera = resolve_camera(image_size, N, focal_length, image_paths, principal_point)
    dt = torch.float32
    kp = torch.as_tensor(kp_np, dtype=dt, device=device)
    focal = torch.as_tensor(camera.focal_length, dtype=dt, device=device)
    center = torch.as_tensor(camera.principal_point, dtype=dt, device=device)
    lm3d = None
    if landmarks3d is not None:
        lm = torch.as_tensor(np.asarray(landmarks3d, dtype=np.float32), device=device)
        lm3d = lm[..., :3]
    from priors import default_prior_terms

    prior_set = default_prior_terms(gmm_path, l2_mean=mean_body_pose()).to(device)
    problem = _Problem(model, keypoint_set, kp, focal, center, lm3d)
    if lm3d is not None:
        problem.landmarks3d_weights = lm[..., 3] * (problem.regressor.quality > 0).to(dt)
    problem.masks = list(masks) if masks is not None else [None] * N
    if len(problem.masks) != N:
        raise ValueError(f"masks must list one mask (or None) per item: got {len(problem.masks)} for {N} items")
    problem.part_masks = list(part_masks) if part_masks is not None else [None] * N
    if len(problem.part_masks) != N:
        raise ValueError(f"part_masks must list one (P,H,W) array (or None) per item: got {len(problem.part_masks)}")
    for i, pm in enumerate(problem.part_masks):  # the person mask defaults to the union of the parts
        if pm is not None and problem.masks[i] is None:
            problem.masks[i] = np.asarray(pm, dtype=bool).any(0)

    # Start from the keypoint lifter where the caller gave no pose or orientation.
    guess = None
    if cfg.lifter and (init is None or (init.get("global_orient") is None and init.get("body_pose") is None)):
        guess = lifter_start(problem)
    # Flip test: duplicate ambiguous items with the turned orientation.
    no_flip = torch.zeros(N, dtype=torch.bool, device=device)
    ambiguous = _shoulders_close(problem, cfg.flip_threshold) if cfg.flip_test else no_flip
    if init is not None and init.get("global_orient") is not None:
        ambiguous = no_flip
    if guess is not None:  # the lifter gives the heading
        ambiguous = ambiguous & ~guess["usable"]
    amb = torch.nonzero(ambiguous).flatten()
    yaws = [math.radians(y) for y in cfg.flip_yaws]
    dup = amb.repeat(len(yaws))
    index = torch.cat([torch.arange(N, device=device), dup])
    yaw = torch.cat([torch.zeros(N, device=device)] + [torch.full((len(amb),), y, device=device) for y in yaws])
    sub = _subproblem(problem, index)
    _attach_silhouettes(sub, [problem.masks[i] for i in index.tolist()], cfg,
                        [problem.part_masks[i] for i in index.tolist()])  # fmt: skip
    sub_init = None if init is None else {k: _take(v, index.cpu().numpy(), N) for k, v in init.items()}
    sub_guess = None if guess is None else {k: v[index] for k, v in guess.items()}
    init_params, lifted = _initial_parameters(sub, sub_init, prior_set, yaw, sub_guess)
    sub.pose_anchor = init_params["body_pose"].clone()
    sub.anchored = lifted.to(dt)
    params, terms = _fit_batch(sub, init_params, prior_set, cfg)

    status = ["ok"] * len(index)
    tiny = _tiny_extent(sub)
    for i in torch.nonzero(tiny).flatten().tolist():
        status[i] = "failed: the keypoints span less than 4 px; nothing to fit"
    def refit_setup(ids: torch.Tensor) -> tuple[_Problem, dict]:
        """The sub-problem (with its silhouette targets) and starting values of items `ids`."""
        part = _subproblem(sub, ids)
        _attach_silhouettes(part, [problem.masks[int(index[i])] for i in ids.tolist()], cfg,
                            [problem.part_masks[int(index[i])] for i in ids.tolist()])  # fmt: skip
        return part, {k: v[ids] for k, v in init_params.items()}

    bad = _nonfinite(params, terms)
    if bad.any():  # NaN guard: refit the failed items from their start, more gently
        ids = torch.nonzero(bad).flatten()
        retry_problem, retry_init = refit_setup(ids)
        p2, t2 = _fit_batch(retry_problem, retry_init, prior_set, cfg, lr_scale=cfg.nan_retry_lr_scale)
        still = _nonfinite(p2, t2)
        for k in params:
            params[k][ids] = torch.where(still[:, None], retry_init[k], p2[k])
        for k in terms:
            terms[k][ids] = torch.where(still, torch.full_like(t2[k], float("inf")), t2[k])
        for i, s in zip(ids.tolist(), still.tolist()):
            status[i] = "failed: optimisation diverged (non-finite) twice" if s else "ok"
    # Restarts: items whose 2D fit stayed poor are refitted from alternative body poses (not
    # when an initializer gave the pose); the lower total loss wins.
    if init is None or init.get("body_pose") is None:
        for pose_name in cfg.restart_poses:
            crop_err = _mean_crop_error(sub, params)
            ids = torch.nonzero((crop_err > cfg.restart_threshold) & torch.isfinite(terms["total"]) & ~lifted).flatten()
            if len(ids) == 0:
                break
            alt_problem, alt_init = refit_setup(ids)
            alt_init["body_pose"] = {"bent_legs": bent_legs_pose}[pose_name](alt_init["body_pose"].dtype).to(device).expand(len(ids), -1).clone()
            alt_init["transl"] = _initial_translation(alt_problem, alt_init["global_orient"], alt_init["body_pose"], alt_init["betas"])
            p2, t2 = _fit_batch(alt_problem, alt_init, prior_set, cfg)
            better = torch.isfinite(t2["total"]) & (t2["total"] < terms["total"][ids])
            for k in params:
                params[k][ids] = torch.where(better[:, None], p2[k], params[k][ids])
            for k in terms:
                if k in t2:
                    terms[k][ids] = torch.where(better, t2[k], terms[k][ids])
    # keep the better of each flipped pair
    chosen = torch.arange(N, device=device)
    total = terms["total"]
    for k, i in enumerate(dup.tolist()):
        j = N + k
        if (status[j] == "ok" and status[i] != "ok") or (status[j] == status[i] and total[j] < total[i]):
            chosen[i] = j
    params = {k: v[chosen] for k, v in params.items()}
    terms = {k: v[chosen] for k, v in terms.items()}
    status = [status[int(c)] for c in chosen]
    with torch.no_grad():
        joints, pts3d, proj = problem.points(params["betas"], params["body_pose"], params["global_orient"], params["transl"])
    used = (problem.weights > 0).float()
    err = ((proj - problem.target).norm(dim=-1) * used).sum(1) / used.sum(1).clamp(min=1)
    elapsed = time.perf_counter() - start
    info = {
        "body_model": model.name if model.name in ("anny", "smpl", "smplh", "smplx") else model.source,
        "gender": model.gender,
        "prior": prior_set.describe(),
        "focal_source": camera.focal_source,
        "config": {**asdict(cfg), "stage_iters": list(cfg.stage_iters)},
        "flipped": [bool(c >= N) for c in chosen.tolist()],
        "start_yaw_deg": [float(math.degrees(yaw[c])) for c in chosen.tolist()],
        "flip_tested": ambiguous.tolist(),
        "started_from_lifter": [bool(lifted[c]) for c in chosen.tolist()],
        "seconds": elapsed,
        "versions": dict(_versions()),
    }
    np_ = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return FitResult(
        betas=np_(params["betas"]), body_pose=np_(params["body_pose"]), global_orient=np_(params["global_orient"]),
        transl=np_(params["transl"]), focal_length=camera.focal_length, principal_point=camera.principal_point,
        image_size=camera.image_size, joints=np_(joints), reprojection_error_px=np_(err), keypoints=kp_np,
        keypoints_2d_fit=np_(proj), keypoint_set=keypoint_set, status=status,
        losses={k: np_(v) for k, v in terms.items()}, info=info, body_model=model,
    )  # fmt: skip


def _take(value, index: np.ndarray, n: int):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim >= 1 and arr.shape[0] == n and n > 1:
        return arr[index]
    if arr.ndim >= 2 and arr.shape[0] == n:
        return arr[index]
    return arr


def _subproblem(problem: _Problem, index: torch.Tensor) -> _Problem:
    sub = object.__new__(_Problem)
    sub.__dict__.update(problem.__dict__)
    for name in ("target", "confidence", "weights", "focal", "center", "scale"):
        setattr(sub, name, getattr(problem, name)[index])
    if problem.pose_anchor is not None:
        sub.pose_anchor, sub.anchored = problem.pose_anchor[index], problem.anchored[index]
    if problem.landmarks3d is not None:
        sub.landmarks3d = problem.landmarks3d[index]
        sub.landmarks3d_weights = problem.landmarks3d_weights[index]
    return sub


def _to_working_resolution(mask: np.ndarray, res: int) -> tuple[np.ndarray, float]:
    """(H,W) bool -> (res,res) bool canvas (top-left aligned, scaled so the longest side is <= res)."""
    scale = min(1.0, res / max(mask.shape))
    if scale < 1.0:
        import cv2

        size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
    canvas = np.zeros((res, res), dtype=bool)
    canvas[: mask.shape[0], : mask.shape[1]] = mask[:res, :res]
    return canvas, scale


def _attach_silhouettes(problem: _Problem, masks: list, config: FitConfig, part_masks: list | None = None) -> None:
    """Silhouette targets (and per-part targets) for the items that have masks, at a working resolution."""
    from fitter.objectives.silhouette import prepare_part_silhouette_target, prepare_silhouette_target

    items = [i for i, m in enumerate(masks) if m is not None and np.asarray(m).any()]
    problem.silhouette = None
    if not items or config.silhouette_iters <= 0:
        return
    res = config.silhouette_resolution
    small, scales = [], []
    for i in items:
        canvas, scale = _to_working_resolution(np.asarray(masks[i], dtype=bool), res)
        small.append(canvas)
        scales.append(scale)
    device = problem.target.device
    target = prepare_silhouette_target(np.stack(small), max_boundary_points=256, device=device)
    step = max(1, config.silhouette_vertex_step)
    subset_ids = torch.arange(0, problem.model.num_vertices, step, device=device)
    problem.silhouette = {
        "items": torch.tensor(items, device=device),
        "target": target,
        "scale": torch.tensor(scales, dtype=problem.target.dtype, device=device),
        "vertex_ids": problem.model.vertex_subset(subset_ids),
        "parts": None,
    }
    part_masks = part_masks or [None] * len(masks)
    part_items = [k for k, i in enumerate(items) if part_masks[i] is not None]
    if part_items:
        from fitter.body.parts import part_labels

        counts = {np.asarray(part_masks[items[k]]).shape[0] for k in part_items}
        if len(counts) != 1 or counts.pop() not in (12, 24):
            raise ValueError("part_masks must all have 12 or all have 24 parts (fitter.body.parts)")
        num_parts = np.asarray(part_masks[items[part_items[0]]]).shape[0]
        stacked = np.stack([np.stack([_to_working_resolution(np.asarray(p, bool), res)[0] for p in part_masks[items[k]]])
                            for k in part_items])  # fmt: skip
        problem.silhouette["parts"] = {
            "rows": torch.tensor(part_items, device=device),  # rows of the silhouette items
            "target": prepare_part_silhouette_target(stacked, max_boundary_points_per_part=64, device=device),
            "labels": part_labels(problem.model, num_parts).to(device)[subset_ids],
        }


def _mean_crop_error(problem: _Problem, params: dict) -> torch.Tensor:
    """(B,) mean 2D error over the used points, in 224 px crop units."""
    with torch.no_grad():
        _, _, proj = problem.points(params["betas"], params["body_pose"], params["global_orient"], params["transl"])
    used = (problem.weights > 0).to(proj.dtype)
    err = (proj - problem.target).norm(dim=-1) * problem.scale[:, None]
    return (err * used).sum(1) / used.sum(1).clamp(min=1)


def _tiny_extent(problem: _Problem) -> torch.Tensor:
    """(B,) bool: the visible keypoints span less than 4 pixels."""
    lo, hi = visible_box(problem.target, problem.weights > 0)
    return (hi - lo).amax(-1) < 4.0


def _nonfinite(params: dict, terms: dict) -> torch.Tensor:
    bad = ~torch.isfinite(terms["total"])
    for v in params.values():
        bad = bad | ~torch.isfinite(v).all(dim=-1)
    return bad


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


def fit_config(name_or_config: str | FitConfig, **overrides) -> FitConfig:
    """A preset (or given config) with fields overridden, e.g. fit_config("fast", optimizer="lbfgs")."""
    return replace(_resolve_config(name_or_config), **overrides)
