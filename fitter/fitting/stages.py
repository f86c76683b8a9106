"""The stage loop of a batched fit: camera stage, body stages, polish stage (optional),
silhouette stage (Adam).

Adam keeps every item's steps independent (its moments are per element), so a batch gives the
same result as fitting each item alone. (L-BFGS, tried before, couples the items through its
shared line search: 0.118 rad between batched and single fits; it was removed.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from fitter.fitting.config import FitConfig
from fitter.fitting.face import FACE_PARAMS
from fitter.fitting.hand_solve import solve_hands
from fitter.fitting.losses import body_terms, camera_loss, silhouette_terms
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem
from fitter.fitting.scene import scene_pairs
from fitter.fitting.silhouettes import SILHOUETTE_RESOLUTION, SilhouetteTargets

__all__ = ["fit_batch", "run_stage", "LR_FINAL_FRACTION"]

LR_FINAL_FRACTION = 0.1  # Adam's step decays (cosine) to this fraction of the stage's step size
SILHOUETTE_LR_SCALE = 0.5  # the silhouette stage takes smaller steps
BODY = ["betas", "body_pose", "orient_delta", "transl"]
PRIOR_TERMS = ("angle", "shape", "joint_limits", "pose", "anchor")  # what the polish stage weakens


def run_stage(params: Params, free: list[str], loss_fn: Callable[[], Tensor], iters: int, lr: float) -> None:
    """`iters` Adam steps on the parameters named in `free` (the others are frozen), minimising
    the sum over items of loss_fn() (B,); the step decays from lr to LR_FINAL_FRACTION x lr."""
    tensors = [getattr(params, n) for n in free]
    for name, p in params.named_parameters():
        p.requires_grad_(name in free)
    if iters <= 0:
        return
    opt = torch.optim.Adam(tensors, lr=lr)
    for it in range(iters):
        frac = LR_FINAL_FRACTION + (1 - LR_FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * it / max(1, iters - 1)))
        for group in opt.param_groups:
            group["lr"] = lr * frac
        opt.zero_grad(set_to_none=True)
        loss_fn().sum().backward()
        opt.step()


def _prior_scale(problem: Problem, params: Params, config: FitConfig) -> Tensor:
    """(B,) the polish stage's factor on the prior terms: (rms / polish_noise)^2 clamped to
    [polish_min_scale^2, 1], rms the root-mean-square distance (224 px crop units) of the seen
    keypoints to the fit so far. Keypoints the fit meets closer than detector noise would allow
    (exact ones: synthetic, projected motion capture) weaken the priors that held the fit off them."""
    with torch.no_grad():
        _, _, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                    orient_base=params.orient_start, hand_pose=params.hands)  # fmt: skip
        seen = (problem.weights > 0).to(proj.dtype)
        squared = (proj - problem.target).square().sum(-1) * problem.scale[:, None].square()
        rms = ((squared * seen).sum(1) / seen.sum(1).clamp(min=1)).sqrt()
        return (rms / config.polish_noise).clamp(min=config.polish_min_scale, max=1.0).square()


def _part_visibility(problem: Problem, params: Params, sil: SilhouetteTargets) -> Tensor | None:
    """(R,S) 1 where a silhouette vertex of a part item faces the camera unoccluded, else 0."""
    if sil.parts is None:
        return None
    from fitter.render import vertex_visibility

    items, rows = sil.items, sil.parts.rows
    with torch.no_grad():
        hands = None if params.hand_pose is None else params.hands[items][rows]
        out = problem.model(params.betas[items][rows], params.body_pose[items][rows],
                            params.global_orient[items][rows], params.transl[items][rows], hand_pose=hands)  # fmt: skip
        scale = sil.scale[rows]  # at the working resolution, like the masks
        res = SILHOUETTE_RESOLUTION
        visible = vertex_visibility(out.vertices, problem.model.faces, problem.focal[items][rows] * scale,
                                    problem.center[items][rows] * scale[:, None], (res, res))  # fmt: skip
    return visible[:, sil.vertex_ids.vertex_ids].to(problem.target.dtype)


def fit_batch(problem: Problem, start: dict[str, Tensor], prior_set, config: FitConfig, silhouettes: SilhouetteTargets | None,
              lr_scale: float = 1.0) -> tuple[dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
    """All stages for one batch from `start` (betas, body_pose, global_orient, transl, and
    hand_pose when the fit poses the fingers, jaw_pose and expression when it poses the face; (B,...));
    returns the final parameters and the per-item (B,) loss terms (with "total")."""
    hands_seen = problem.seen_hands() if problem.fits_hands else None
    params = Params(start["betas"], start["body_pose"], start["global_orient"], start["transl"], start.get("hand_pose"),
                    hands_seen, start.get("jaw_pose"), start.get("expression"),
                    problem.seen_face() if problem.fits_face else None)  # fmt: skip
    face_free = FACE_PARAMS if problem.fits_face else []  # fitted in the last body stage (fitting.face)
    lr = config.lr * lr_scale
    start_transl = start["transl"].detach()
    palms = problem.palms_only()  # the fingers are held in the Adam stages: their points add nothing
    run_stage(params, ["orient_delta", "transl"], lambda: camera_loss(palms, params, start_transl, config),
              config.camera_iters, lr)  # fmt: skip
    terms: dict[str, Tensor] = {}
    pairs = scene_pairs(problem.scene, problem.person)

    def body_loss(pose_weight: float, shape_weight: float, with_hands: bool = True,
                  with_face: bool = True, part: Problem = problem) -> Callable[[], Tensor]:  # fmt: skip
        def loss() -> Tensor:
            terms.clear()
            terms.update(body_terms(part, params, prior_set, config, pose_weight, shape_weight, pairs, with_hands,
                                    with_face))  # fmt: skip
            return sum(terms.values())

        return loss

    solve_hands(problem, params, config, config.hand_solve_iters, config.hand_start_curls)  # no-op without hands
    stages = list(zip(config.stage_iters, config.pose_prior_weights, config.shape_prior_weights))
    for i, (iters, pose_w, shape_w) in enumerate(stages):  # the face (SMPL-X) in the last one only (fitting.face)
        last = i == len(stages) - 1
        run_stage(params, BODY + face_free * last,
                  body_loss(pose_w, shape_w, with_hands=False, with_face=last, part=palms), iters, lr)  # fmt: skip
    final_weights = config.pose_prior_weights[-1], config.shape_prior_weights[-1]
    if config.polish_iters > 0:
        scale = _prior_scale(palms, params, config)
        plain = body_loss(*final_weights, with_hands=False, part=palms)

        def polish() -> Tensor:
            total = plain()
            return total - (1 - scale) * sum(terms[k] for k in PRIOR_TERMS if k in terms)

        run_stage(params, BODY, polish, config.polish_iters, lr)
    final = body_loss(*final_weights)
    if silhouettes is not None and config.silhouette_iters > 0:
        visibility = _part_visibility(problem, params, silhouettes)
        silhouette_pairs = scene_pairs(problem.scene, problem.person, silhouettes.items)

        def with_silhouette(keypoint_loss: Callable[[], Tensor]) -> Callable[[], Tensor]:
            def loss() -> Tensor:
                keypoint_part = keypoint_loss()
                extra = silhouette_terms(problem, params, silhouettes, visibility, config, keypoint_part,
                                         silhouette_pairs)  # fmt: skip
                terms.update(extra)
                return keypoint_part + sum(extra.values())

            return loss

        # the hand pose is held here: the finger priors, constants, join only the final evaluation
        run_stage(params, BODY + face_free, with_silhouette(body_loss(*final_weights, with_hands=False)),
                  config.silhouette_iters, lr * SILHOUETTE_LR_SCALE)  # fmt: skip
        final_with_silhouette = with_silhouette(final)
    else:
        final_with_silhouette = final
    # the fingers and arms meet the final body, after the silhouette stage: polished before it, the
    # silhouette stage (hand pose held) moved the arms away from the hands; on the tuning photos
    # (shared/eval mpii, 3dpw, ochuman, h36m, 3dhp: 14 hands) the hands' mean 2D error was 4.7 % of
    # the hand size that way, 3.1 % this way
    solve_hands(problem, params, config, config.hand_polish_iters)
    with torch.no_grad():
        total = final_with_silhouette()
    out_terms = {k: v.detach() for k, v in terms.items()}
    out_terms["total"] = total.detach()
    return params.values(), out_terms
