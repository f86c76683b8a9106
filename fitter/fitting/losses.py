"""The terms of SMPLify's objective for a batch, each (B,) per item (items never interact).

Camera stage: reprojection of the torso points + a depth regulariser. Body stages:
reprojection (Geman-McClure, 224 px crop units), angle prior, shape prior, pose prior (GMM, or
joint limits + weak L2), the anchor to a trusted start's pose, 3D landmarks when given; with
fitted fingers also the finger joint limits and the weak curl prior (`hand_terms`); with the
face (SMPL-X) the jaw and expression priors (fitting.face).
Silhouette stage: the body terms + chamfer distance between the projected mesh and the person
mask (+ per-part masks, hidden vertices left out). People of one photo: no interpenetration
(body stages) and depth order (silhouette stage), fitter.fitting.scene.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fitter.fitting.config import FitConfig
from fitter.fitting.face import face_inputs, face_point_weights, face_terms
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem
from fitter.fitting.scene import depth_order_term, penetration_term
from fitter.fitting.silhouettes import SilhouetteTargets
from fitter.geometry import perspective_project
from fitter.objectives import depth_term, landmarks3d_term, reprojection_term
from fitter.objectives.silhouette import part_silhouette_loss, silhouette_chamfer_loss
from priors.finger_limits import finger_limit_penalty, hand_l2_prior

__all__ = ["camera_loss", "body_terms", "hand_point_weights", "hand_terms", "silhouette_terms"]


def camera_loss(problem: Problem, params: Params, start_transl: Tensor, config: FitConfig) -> Tensor:
    """(B,) torso reprojection (all points for items without a seen torso point) + depth regulariser."""
    _, _, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                orient_base=params.orient_start, hand_pose=params.hands)  # fmt: skip
    w = problem.weights * problem.torso_mask
    w = torch.where(w.sum(1, keepdim=True) > 0, w, problem.weights)
    data = reprojection_term(proj, problem.target, w, problem.scale, config.sigma)
    return data + config.depth_weight**2 * depth_term(params.transl, start_transl)


def body_terms(problem: Problem, params: Params, prior_set, config: FitConfig, pose_weight: float,
               shape_weight: float, pairs: Tensor | None = None, with_hands: bool = True,
               with_face: bool = True) -> dict[str, Tensor]:  # fmt: skip
    """Per-item (B,) terms of a body stage at the given pose / shape prior weights; pairs (P,2):
    items of one photo (`scene_pairs`) whose bodies must not interpenetrate; with_hands: add
    the finger priors (`hand_terms`) when the fit poses the fingers (the Adam stages leave
    them out: the hand pose is held there, they are constants); with_face: the face stage
    (fitting.face) when the fit poses the face: jaw and expression posed, face points weighted,
    face priors added; else the face points weigh 0."""
    joints, pts3d, proj = problem.points(params.betas, params.body_pose, params.orient_delta, params.transl,
                                    orient_base=params.orient_start, hand_pose=params.hands,
                                    **face_inputs(params, with_face))  # fmt: skip
    face_weighted = face_point_weights(problem, problem.weights, config, with_face)
    weights = hand_point_weights(problem, face_weighted, config.hand_keypoint_weight)
    terms = {"reprojection": reprojection_term(proj, problem.target, weights, problem.scale, config.sigma)}
    prior = prior_set(params.body_pose, params.betas)
    terms["angle"] = config.angle_prior_weight**2 * prior["angle"]
    terms["shape"] = shape_weight**2 * prior["shape"]
    if "joint_limits" in prior:  # with the GMM too (as bounds: zero inside the limits)
        terms["joint_limits"] = config.joint_limit_weight**2 * prior["joint_limits"]
    if "pose_gmm" in prior:
        terms["pose"] = (config.gmm_scale * pose_weight) ** 2 * prior["pose_gmm"]
    else:
        terms["pose"] = (config.pose_l2_scale * pose_weight) ** 2 * prior["pose_l2"]
    if problem.pose_anchor is not None and config.anchor_weight > 0:
        offset = (params.body_pose - problem.pose_anchor).pow(2)
        if params.hand_pose is not None:  # a seen hand's keypoints, not the start, set its wrist
            offset = offset * params.anchor_mask
        offset = offset.sum(-1)
        terms["anchor"] = config.anchor_weight**2 * problem.anchored * offset
    if problem.landmarks3d is not None and config.landmarks3d_weight > 0:
        terms["landmarks3d"] = config.landmarks3d_weight * landmarks3d_term(
            pts3d, problem.landmarks3d, problem.landmarks3d_weights, scale=True
        )
    if pairs is not None and config.penetration_weight > 0:
        terms["penetration"] = config.penetration_weight * penetration_term(joints, pairs)
    if params.hand_pose is not None and with_hands:
        terms.update(hand_terms(problem, params.hands, config))
    if params.jaw_pose is not None and with_face:
        terms.update(face_terms(params, config))
    return terms


def hand_point_weights(problem: Problem, weights: Tensor, factor: float) -> Tensor:
    """(B,K) the keypoint weights with the hands42 points x factor (config.hand_keypoint_weight
    in the body stages, hand_solve_keypoint_weight in the hand solve; unchanged without a hand
    fit or at 1)."""
    if problem.hand_mask is None or factor == 1.0:
        return weights
    return weights * (1.0 + (factor - 1.0) * problem.hand_mask)


def hand_terms(problem: Problem, hand_pose: Tensor, config: FitConfig) -> dict[str, Tensor]:
    """(B,) the finger priors of hand_pose (B,90): "finger_limits" (anatomical ranges,
    priors.finger_limits; rad^2 outside them) and "hand_prior" (L2 pull to the relaxed hand, rad^2),
    so fingers without keypoints stay relaxed."""
    return {
        "finger_limits": config.finger_limit_weight**2 * finger_limit_penalty(hand_pose, problem.hand_frames),
        "hand_prior": config.hand_prior_weight**2 * hand_l2_prior(hand_pose, problem.hand_mean),
    }


def silhouette_terms(problem: Problem, params: Params, sil: SilhouetteTargets, part_visibility: Tensor | None,
                     config: FitConfig, like: Tensor, pairs: Tensor | None = None) -> dict[str, Tensor]:  # fmt: skip
    """(B,) the weighted chamfer term "silhouette" (0 for items without a mask), and "depth_order"
    when `pairs` (P,2) of silhouette rows of one photo are given. part_visibility (R,S) in {0,1}:
    which silhouette vertices of the part items are visible (hidden ones are not pulled into
    their part's visible mask); like: a (B,) tensor of the output's dtype and device."""
    items, vids = sil.items, sil.vertex_ids
    hands = None if params.hand_pose is None else params.hands[items]
    points = problem.model.forward_joints(params.betas[items], params.body_pose[items], params.global_orient[items],
                                          params.transl[items], vids, hand_pose=hands).points  # fmt: skip
    proj = perspective_project(points, problem.focal[items], problem.center[items]) * sil.scale[:, None, None]
    target = sil.target
    term = silhouette_chamfer_loss(proj, target.dist_maps, target.boundary_points, target.boundary_valid)
    if sil.parts is not None:
        rows = sil.parts.rows
        part_term = part_silhouette_loss(proj[rows], sil.parts.labels, sil.parts.target, vertex_weights=part_visibility)
        term = term.index_add(0, rows, config.part_silhouette_weight * part_term)
    terms = {"silhouette": torch.zeros_like(like).index_add(0, items, config.silhouette_weight * term)}
    if pairs is not None and config.depth_order_weight > 0:
        depth = depth_order_term(points, proj, sil.masks, pairs)
        terms["depth_order"] = torch.zeros_like(like).index_add(0, items, config.depth_order_weight * depth)
    return terms
