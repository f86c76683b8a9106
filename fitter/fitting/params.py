"""`Params`: the optimised variables of a batched fit."""

from __future__ import annotations

import torch
from torch import Tensor

from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["Params", "WRISTS"]

WRISTS = slice(57, 63)  # body_pose values of SMPL joints 20, 21 (left / right wrist)
EXPRESSION_STEP = 10.0  # expression coefficients per unit of the optimised `expression` variable


class Params(torch.nn.Module):
    """betas (B,NB), body_pose (B,69) axis-angle, transl (B,3) metres, and the global orientation
    as a small rotation `orient_delta` (axis-angle, camera frame) applied on top of the start's:
    R = R(delta) R_start, which keeps the optimiser away from axis-angle's wrap-around at
    |theta| = pi (upright bodies sit there). When the fit poses the fingers: hand_pose (B,90)
    axis-angle (fitter.body.hands layout) and hands_seen (B,2) bool, the left / right hand has
    keypoints (default: both), with free_mask (B,90), True on the hand-pose values of seen hands
    (the only ones fitted: losses read `hands`), and anchor_mask (B,69), 0 on the wrists of seen
    hands (their keypoints, not the start, set them; 1 elsewhere); else hand_pose is None. When
    the fit poses the face (SMPL-X): jaw_pose (B,3) axis-angle and expression (B,E) /
    EXPRESSION_STEP, with face_free (B,1), 1 for items with face points seen (losses read `jaw`
    and `face_expression`: zero where 0); else None."""

    def __init__(self, betas: Tensor, body_pose: Tensor, global_orient: Tensor, transl: Tensor,
                 hand_pose: Tensor | None = None, hands_seen: Tensor | None = None,
                 jaw_pose: Tensor | None = None, expression: Tensor | None = None,
                 face_free: Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.betas = torch.nn.Parameter(betas.clone())
        self.body_pose = torch.nn.Parameter(body_pose.clone())
        self.orient_delta = torch.nn.Parameter(torch.zeros_like(global_orient))
        self.transl = torch.nn.Parameter(transl.clone())
        self.hand_pose = None if hand_pose is None else torch.nn.Parameter(hand_pose.clone())
        self.register_buffer("orient_start", axis_angle_to_matrix(global_orient.detach()))
        if hand_pose is not None:
            self.register_buffer("hand_start", hand_pose.detach().clone())
            seen = torch.ones(len(hand_pose), 2, dtype=torch.bool) if hands_seen is None else hands_seen.bool()
            self.register_buffer("hands_seen", seen.to(hand_pose.device))
            anchor_mask = torch.ones_like(body_pose)  # (masks made once: the losses run ~60 times a fit)
            anchor_mask[:, WRISTS] = 1.0 - self.hands_seen.repeat_interleave(3, dim=1).to(body_pose.dtype)
            self.register_buffer("anchor_mask", anchor_mask)
            self.register_buffer("free_mask", self.hands_seen.repeat_interleave(45, dim=1))
        self.jaw_pose = None if jaw_pose is None else torch.nn.Parameter(jaw_pose.clone())
        # stored / EXPRESSION_STEP: Adam moves a value by about lr per step, and expressions reach
        # a few units where angles reach tenths of a radian
        self.expression = None if expression is None else torch.nn.Parameter(expression / EXPRESSION_STEP)
        if jaw_pose is not None:
            self.register_buffer("face_free", torch.ones_like(jaw_pose[:, :1]) if face_free is None else face_free)

    @property
    def jaw(self) -> Tensor | None:
        """(B,3) the jaw pose in use (zero for items without face points), or None."""
        return None if self.jaw_pose is None else self.jaw_pose * self.face_free

    @property
    def face_expression(self) -> Tensor | None:
        """(B,E) the expression in use (zero for items without face points), or None."""
        return None if self.expression is None else self.expression * (EXPRESSION_STEP * self.face_free)

    @property
    def hands(self) -> Tensor | None:
        """(B,90) the hand pose in use: hand_pose on seen hands (free_mask), the start's elsewhere (a
        hand without keypoints keeps its start, whatever else would move it), or None."""
        if self.hand_pose is None:
            return None
        return torch.where(self.free_mask, self.hand_pose, self.hand_start)

    @property
    def global_orient(self) -> Tensor:
        """(B,1,3,3) rotation matrices."""
        return (axis_angle_to_matrix(self.orient_delta) @ self.orient_start)[:, None]

    def values(self) -> dict[str, Tensor]:
        """Detached betas, body_pose, transl, global_orient (B,3) axis-angle (and hand_pose, jaw_pose,
        expression when fitted)."""
        out = {"betas": self.betas.detach(), "body_pose": self.body_pose.detach(), "transl": self.transl.detach()}
        if self.hand_pose is not None:
            out["hand_pose"] = self.hands.detach()
        if self.jaw_pose is not None:
            out["jaw_pose"], out["expression"] = self.jaw.detach(), self.face_expression.detach()
        out["global_orient"] = matrix_to_axis_angle(self.global_orient[:, 0]).detach()
        return out
