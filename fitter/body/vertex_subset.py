"""Posing a fixed subset of a body model's vertices fast (silhouette terms use ~1/3 of them).

`VertexSubset` gathers once what LBS needs for those vertices (template, shape directions,
skinning weights, pose correctives when the model has any), so each optimisation step costs
a few dense matmuls instead of re-indexing the full model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from smplx.lbs import batch_rigid_transform
from torch import Tensor

from fitter.body.model import BodyModel

__all__ = ["VertexSubset", "pose_vertex_subset"]


@dataclass
class VertexSubset:
    """vertex_ids (P,); template (P,3); shapedirs (P*3,NB); weights (P,J); posedirs (207|.., P*3) or None."""

    vertex_ids: Tensor
    template: Tensor
    shapedirs: Tensor
    weights: Tensor
    posedirs: Tensor | None

    @classmethod
    def build(cls, model: BodyModel, vertex_ids: Tensor) -> "VertexSubset":
        ids = vertex_ids.to(model.v_template.device).long()
        posedirs = None
        if bool(model.posedirs.abs().max() > 0):
            posedirs = model.posedirs.view(model.posedirs.shape[0], -1, 3)[:, ids].reshape(model.posedirs.shape[0], -1)
        return cls(
            vertex_ids=ids, template=model.v_template[ids],
            shapedirs=model.shapedirs[ids].reshape(-1, model.num_betas), weights=model.lbs_weights[ids],
            posedirs=posedirs,
        )  # fmt: skip


def pose_vertex_subset(model: BodyModel, subset: VertexSubset, betas: Tensor, body_pose: Tensor,
                       global_orient: Tensor, transl: Tensor | None) -> Tensor:  # fmt: skip
    """(B,P,3) posed positions of the subset's vertices (metres), identical to
    model.forward(...).vertices[:, subset.vertex_ids]."""
    betas, rotmats, transl = model._inputs(betas, body_pose, global_orient, transl)
    B, J = rotmats.shape[:2]
    joints = model.J_template + (betas @ model.J_shapedirs.reshape(J * 3, -1).T).view(B, J, 3)
    _, A = batch_rigid_transform(rotmats, joints, model.parents, dtype=joints.dtype)
    v = subset.template + (betas @ subset.shapedirs.T).view(B, -1, 3)
    if subset.posedirs is not None:
        ident = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        v = v + ((rotmats[:, 1:] - ident).reshape(B, -1) @ subset.posedirs).view(B, -1, 3)
    T = torch.matmul(subset.weights, A.reshape(B, J, 16)).view(B, -1, 4, 4)
    posed = (T[..., :3, :3] * v[:, :, None, :]).sum(-1) + T[..., :3, 3]
    return posed if transl is None else posed + transl[:, None]
