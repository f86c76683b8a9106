"""SMPL-X's face in a fit (SMPLify-X): jaw pose and expression, their priors and the face points' weight.

Used when `Problem.fits_face` (a model with a jaw joint and expression blend shapes, keypoints
with face51 points). The face points reach jaw_pose (B,3) and expression (B,E) through
`BodyModel.pose_face_landmarks`, in the same Geman-McClure data term as the body points; the
head's orientation follows from the same points (they sit on the head). As in SMPLify-X the
face enters in the last body stage only (fitting.stages): before it, the face points weigh 0
and the jaw and expression are held at zero.
"""

from __future__ import annotations

from torch import Tensor

from fitter.fitting.config import FitConfig
from fitter.fitting.params import Params
from fitter.fitting.problem import Problem

__all__ = ["FACE_PARAMS", "face_inputs", "face_point_weights", "face_terms"]

FACE_PARAMS = ["jaw_pose", "expression"]  # Params' face variables (fitted in the face stage)


def face_inputs(params: Params, with_face: bool) -> dict[str, Tensor]:
    """Problem.points' jaw_pose / expression keywords: the fitted ones in the face stage, else none
    (rest jaw, neutral face: the values the face is held at before that stage)."""
    if not with_face or params.jaw_pose is None:
        return {}
    return {"jaw_pose": params.jaw, "expression": params.face_expression}


def face_point_weights(problem: Problem, weights: Tensor, config: FitConfig, with_face: bool) -> Tensor:
    """(B,K) the keypoint weights with the face51 points x config.face_keypoint_weight in the face
    stage and x 0 before it (SMPLify-X's face_joints_weights); unchanged without a face fit."""
    if problem.face_mask is None:
        return weights
    factor = config.face_keypoint_weight if with_face else 0.0
    return weights * (1.0 + (factor - 1.0) * problem.face_mask)


def face_terms(params: Params, config: FitConfig) -> dict[str, Tensor]:
    """(B,) SMPLify-X's face priors: "jaw_prior" sum((jaw_pose * w)^2) with w per axis
    (config.jaw_prior_weights; rad), "expression_prior" w^2 sum(expression^2)."""
    jaw = params.jaw * params.jaw.new_tensor(config.jaw_prior_weights)
    return {
        "jaw_prior": jaw.pow(2).sum(-1),
        "expression_prior": config.expression_prior_weight**2 * params.face_expression.pow(2).sum(-1),
    }
