"""`Params`: the optimised variables of a batched fit."""

from __future__ import annotations

import torch
from torch import Tensor

from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["Params"]


class Params(torch.nn.Module):
    """betas (B,NB), body_pose (B,69) axis-angle, transl (B,3) metres, and the global orientation
    as a small rotation `orient_delta` (axis-angle, camera frame) applied on top of the start's:
    R = R(delta) R_start, which keeps the optimiser away from axis-angle's wrap-around at
    |theta| = pi (upright bodies sit there)."""

    def __init__(self, betas: Tensor, body_pose: Tensor, global_orient: Tensor, transl: Tensor) -> None:
        super().__init__()
        self.betas = torch.nn.Parameter(betas.clone())
        self.body_pose = torch.nn.Parameter(body_pose.clone())
        self.orient_delta = torch.nn.Parameter(torch.zeros_like(global_orient))
        self.transl = torch.nn.Parameter(transl.clone())
        self.register_buffer("orient_start", axis_angle_to_matrix(global_orient.detach()))

    @property
    def global_orient(self) -> Tensor:
        """(B,1,3,3) rotation matrices."""
        return (axis_angle_to_matrix(self.orient_delta) @ self.orient_start)[:, None]

    def values(self) -> dict[str, Tensor]:
        """Detached betas, body_pose, transl and global_orient (B,3) axis-angle."""
        out = {k: getattr(self, k).detach() for k in ("betas", "body_pose", "transl")}
        out["global_orient"] = matrix_to_axis_angle(self.global_orient[:, 0]).detach()
        return out
