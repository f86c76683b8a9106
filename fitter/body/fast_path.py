"""The fast paths' constant tables, computed once from a `BodyModel`'s tensors.

The fast paths (`BodyModel.forward_joints`, `pose_landmarks`, `pose_face_landmarks`) pose the
skeleton with the engine in `fitter.body.posing`: transform stacks (J+1,4,4,B), J joints in the
model's kinematic order plus slot J, the identity. Besides the pose they need each joint's rest
offset from its parent as a linear function of the shape coefficients (and `transl`), and which
rotation each full-model joint takes from the SMPL-24 pose: the functions here compute these
from explicit tensors; `FastPathTables`, a mixin `BodyModel` inherits, registers them on the
model. Model frame, metres (rest-pose joint offsets, before `global_orient` / `transl`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from fitter.body.posing import _FastPathConstants, _tree_levels, pointer_jumping_ancestors

__all__ = ["FastPathTables", "relative_joint_offsets", "expression_joint_directions", "full_rotation_source"]


def _parent_ids_and_is_child(parents: list[int], device, dtype) -> tuple[Tensor, Tensor]:
    """parent_ids (J,) long, the root as its own parent (0); is_child (J,1), 0 for the root."""
    parent_ids = torch.tensor([max(p, 0) for p in parents], device=device)
    is_child = (torch.arange(len(parents), device=device) > 0).to(dtype)[:, None]
    return parent_ids, is_child


def relative_joint_offsets(J_template: Tensor, J_shapedirs: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Rest offset of each joint from its parent (the root's: from the origin), linear in
    [betas, transl], rows ordered (joint, coordinate); the identity slot J is all zero.

    J_template (J,3) and J_shapedirs (J,3,NB): rest joints as a linear function of betas
    (J_regressor applied to v_template / shapedirs); parents (J,) with -1 for the root.
    Returns rel_template ((J+1)*3, 1) and rel_directions ((J+1)*3, NB+3): columns NB..NB+3
    move the root by transl, hence every joint.
    """
    num_joints, num_betas = J_template.shape[0], J_shapedirs.shape[-1]
    dev, dt = J_template.device, J_template.dtype
    parent_ids, is_child = _parent_ids_and_is_child(parents, dev, dt)
    rel_template = J_template - is_child * J_template[parent_ids]  # (J,3)
    rel_shapedirs = J_shapedirs - is_child[..., None] * J_shapedirs[parent_ids]  # (J,3,NB)
    template = torch.zeros(num_joints + 1, 3, dtype=dt, device=dev)
    template[:num_joints] = rel_template
    directions = torch.zeros(num_joints + 1, 3, num_betas + 3, dtype=dt, device=dev)
    directions[:num_joints, :, :num_betas] = rel_shapedirs
    directions[0, :, num_betas:] = torch.eye(3, dtype=dt, device=dev)  # transl moves the root, hence all
    return template.reshape(-1, 1), directions.reshape(3 * (num_joints + 1), num_betas + 3)


def expression_joint_directions(
    rel_directions: Tensor, J_regressor: Tensor, expr_dirs: Tensor, parents: list[int]
) -> Tensor:
    """((J+1)*3, NB+E+3) `rel_directions` with the expression blend shapes' joint offsets
    (through J_regressor, as smplx) between the betas' and transl's columns; (0,0) without them.

    rel_directions ((J+1)*3, NB+3) from `relative_joint_offsets`; J_regressor (J,V); expr_dirs
    (V,3,E) (E = 0: no expression blend shapes); parents (J,).
    """
    num_joints, num_expression = J_regressor.shape[0], expr_dirs.shape[-1]
    num_betas = rel_directions.shape[-1] - 3
    if num_expression == 0:
        return rel_directions.new_zeros(0, 0)
    parent_ids, is_child = _parent_ids_and_is_child(parents, rel_directions.device, rel_directions.dtype)
    joint_dirs = torch.einsum("jv,vce->jce", J_regressor, expr_dirs)  # (J,3,E)
    rel = joint_dirs - is_child[..., None] * joint_dirs[parent_ids]
    directions = rel_directions.new_zeros(num_joints + 1, 3, num_betas + num_expression + 3)
    plain = rel_directions.view(num_joints + 1, 3, num_betas + 3)
    directions[..., :num_betas] = plain[..., :num_betas]
    directions[:num_joints, :, num_betas : num_betas + num_expression] = rel
    directions[..., num_betas + num_expression :] = plain[..., num_betas:]
    return directions.reshape(3 * (num_joints + 1), -1)


def full_rotation_source(rest_full_pose: Tensor, body_to_full: Tensor) -> tuple[Tensor, Tensor]:
    """Local rotations of the full model from the SMPL ones: an index into [SMPL 24 | rest pose
    of the full model | identity].

    rest_full_pose (J,3,3) the rotations of joints the SMPL pose does not drive; body_to_full
    (24,) the full-model joint each SMPL joint drives (-1: none). Returns rest_rotations
    (J+1,3,3,1), the rest pose plus the identity, and source (J+1,) long: the local rotation of
    full-model joint j (slot J: the identity) is entry source[j] of [SMPL 24 | rest_rotations].
    """
    num_joints = rest_full_pose.shape[0]
    dev, dt = rest_full_pose.device, rest_full_pose.dtype
    source = list(range(24, 24 + num_joints)) + [24 + num_joints]
    for smpl_joint, full_joint in enumerate(body_to_full.tolist()):
        if full_joint >= 0:
            source[full_joint] = smpl_joint
    rest = torch.cat([rest_full_pose, torch.eye(3, dtype=dt, device=dev)[None]])
    return rest.unsqueeze(-1), torch.tensor(source, device=dev)


class FastPathTables:
    """`BodyModel`'s fast-path constants (a mixin: `BodyModel` inherits it, calls
    `_build_fast_path_constants` at the end of its __init__ and `_refresh_fast_path` after every
    move or cast). They are derived from the model's buffers (J_template, J_shapedirs,
    J_regressor, expr_dirs, parents, rest_full_pose, body_to_full, smpl_joint_ids; see
    `fitter.body.model.BodyModel`) and registered as non-persistent buffers: fk_ancestors
    (R,J+1) long; rel_template ((J+1)*3,1), rel_directions ((J+1)*3,NB+3) and
    rel_directions_expression ((J+1)*3,NB+E+3) or (0,0) (`relative_joint_offsets`,
    `expression_joint_directions`); homogeneous_row (1,1,4,1); zero_rotation (1,3);
    rest_rotations (J+1,3,3,1) and full_rotation_source (J+1,) long (`full_rotation_source`).
    """

    def _build_fast_path_constants(self) -> None:
        """Constant tensors of the fast paths, derived from the model's buffers (non-persistent
        buffers, so .to(device/dtype) moves them; they are not part of the state dict)."""
        dev, dt = self.J_template.device, self.J_template.dtype
        parents = self.parents.tolist()
        self.register_buffer("fk_ancestors", pointer_jumping_ancestors(parents).to(dev), persistent=False)
        rel_template, rel_directions = relative_joint_offsets(self.J_template, self.J_shapedirs, parents)
        self.register_buffer("rel_template", rel_template, persistent=False)  # ((J+1)*3,1)
        self.register_buffer("rel_directions", rel_directions, persistent=False)  # ((J+1)*3,NB+3)
        expression = expression_joint_directions(rel_directions, self.J_regressor, self.expr_dirs, parents)
        self.register_buffer("rel_directions_expression", expression, persistent=False)  # ((J+1)*3,NB+E+3)
        homogeneous_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dt, device=dev).reshape(1, 1, 4, 1)
        self.register_buffer("homogeneous_row", homogeneous_row, persistent=False)
        self.register_buffer("zero_rotation", torch.zeros(1, 3, dtype=dt, device=dev), persistent=False)
        rest_rotations, source = full_rotation_source(self.rest_full_pose, self.body_to_full)
        self.register_buffer("rest_rotations", rest_rotations, persistent=False)  # (J+1,3,3,1)
        self.register_buffer("full_rotation_source", source, persistent=False)  # (J+1,)
        self._smpl_is_full = self.num_full_joints == 24 and self.body_to_full.tolist() == list(range(24))
        self._smpl_joints_are_first = self.smpl_joint_ids.tolist() == list(range(24))
        self._levels_cpu = _tree_levels(parents)
        self._refresh_fast_path()

    def _refresh_fast_path(self) -> None:
        """`_fast` / `_fast_expression`: plain references to the fast-path buffers (posing's
        `_FastPathConstants`), rebuilt after every move or cast (`_apply`)."""
        dev = self.v_template.device
        self._fast = _FastPathConstants(
            rel_template=self.rel_template, rel_directions=self.rel_directions,
            rel_directions_betas=self.rel_directions[:, : self.num_betas], homogeneous_row=self.homogeneous_row,
            zero_rotation=self.zero_rotation, ancestors=tuple(self.fk_ancestors.unbind(0)),
            levels=tuple((ids.to(dev), parent_ids.to(dev)) for ids, parent_ids in self._levels_cpu),
            smpl_joint_ids=None if self._smpl_joints_are_first else self.smpl_joint_ids,
            num_betas=self.num_betas, num_slots=self.num_full_joints + 1,
        )  # fmt: skip
        self._fast_expression = None
        if self.num_expression > 0:  # the same with the expression blend shapes after the betas
            num = self.num_betas + self.num_expression
            self._fast_expression = replace(
                self._fast, rel_directions=self.rel_directions_expression,
                rel_directions_betas=self.rel_directions_expression[:, :num], num_betas=num,
            )  # fmt: skip
