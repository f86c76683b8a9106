"""Landmarks posed as fixed blends of skinned vertices: `LandmarkSkin` and `LandmarkPosing`,
the part of `BodyModel` (a mixin it inherits) that builds and poses them.

A landmark is a fixed blend of mesh vertices (a fingertip, one of SMPL-X's face landmarks, a
regressed keypoint), optionally plus a blend of the posed SMPL-24 joints. `landmark_skin` folds
the blend weights into per-joint offsets once; `pose_landmarks` / `pose_face_landmarks` then pose
K landmarks without skinning the mesh, with the fused Rodrigues + forward kinematics + skinning
op of `fitter.body.posing` (`_PosedPoints`). Pose-corrective blend shapes are left out (SMPL: a
few mm; anny has none). Frames and units as `fitter.body.model`: metres, in the frame
`global_orient` / `transl` define.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fitter.body.posing import _PosedPoints
from fitter.geometry import axis_angle_to_matrix

__all__ = ["LandmarkSkin", "LandmarkPosing"]


@dataclass
class LandmarkSkin:
    """Surface landmarks (blends of vertices, optionally plus SMPL joints) pre-skinned per joint.

    A landmark k = sum_p w_kp v_p is, after LBS, sum_j G_j [b_kj - a_kj J_j ; a_kj] with G_j the
    joint's world transform, a_kj = sum_p w_kp W_pj and b_kj = sum_p w_kp W_pj v_p(betas); a
    posed joint j blended with weight w is G_j [0 ; w]. Both are linear in betas, so the
    homogeneous offsets of the (landmark, joint) pairs that matter are precomputed here and
    posing K landmarks costs one 4x4-by-4 product per pair. Pose-corrective blend shapes are
    left out for landmarks (SMPL: a few mm; anny has none).
    pair_joint (P,) full-model joint of each pair; offset_template (4P,1) and
    offset_shapedirs (4P,num_betas) the offsets, rows ordered (pair, coordinate); gather (K,P)
    sums pairs into landmarks.
    """

    pair_joint: Tensor
    offset_template: Tensor
    offset_shapedirs: Tensor
    gather: Tensor

    def subset(self, rows: Tensor) -> "LandmarkSkin":
        """The landmarks `rows` (K',) alone, with the pairs they use."""
        gather = self.gather[rows]
        used = torch.nonzero(gather.abs().sum(0) > 0).flatten()
        coords = (4 * used[:, None] + torch.arange(4, device=used.device)).flatten()
        return LandmarkSkin(pair_joint=self.pair_joint[used], offset_template=self.offset_template[coords],
                            offset_shapedirs=self.offset_shapedirs[coords], gather=gather[:, used])  # fmt: skip


class LandmarkPosing:
    """`BodyModel`'s landmark methods (a mixin: `BodyModel` inherits them; call them on a model).

    They read the model's buffers (v_template, shapedirs, expr_dirs, J_regressor, J_template,
    J_shapedirs, lbs_weights, smpl_joint_ids), its fast-path constants (`_fast`,
    `_fast_expression`, `_smpl_is_full`) and its input helpers (`_batch_size`, `_betas`,
    `_local_rotations`); see `fitter.body.model.BodyModel`.
    """

    def landmark_skin(
        self, vertex_ids: Tensor, vertex_weights: Tensor, joint_weights: Tensor | None = None,
        with_expression: bool = False,
    ) -> LandmarkSkin:  # fmt: skip
        """Pre-skin K landmarks given as blends (K,P) of the vertices `vertex_ids` (P,), plus
        optionally blends (K,24) of the posed SMPL-24 joints (a KeypointRegressor's
        joint_weights): `pose_landmarks` then returns whole keypoints. with_expression (SMPL-X):
        the offsets also follow the expression blend shapes (columns NB..NB+E), for
        `pose_face_landmarks`."""
        dev, dt = self.v_template.device, self.v_template.dtype
        ids = vertex_ids.to(dev).long()
        w = vertex_weights.to(device=dev, dtype=dt)
        Wp = self.lbs_weights[ids]  # (P,J)
        vertex_dirs, joint_dirs = self.shapedirs, self.J_shapedirs
        if with_expression:
            if self.num_expression == 0:
                raise ValueError(f"with_expression, but body model {self.name!r} has no expression blend shapes")
            vertex_dirs = torch.cat([self.shapedirs, self.expr_dirs], -1)
            joint_dirs = torch.einsum("jv,vcb->jcb", self.J_regressor, vertex_dirs)
        a = torch.einsum("kp,pj->kj", w, Wp)
        b_template = torch.einsum("kp,pj,pc->kjc", w, Wp, self.v_template[ids])
        b_shapedirs = torch.einsum("kp,pj,pcb->kjcb", w, Wp, vertex_dirs[ids])
        # homogeneous offsets from each joint's rest position: [b - a J_j ; a]
        template = torch.cat([b_template - a[..., None] * self.J_template, a[..., None]], dim=-1)  # (K,J,4)
        shapedirs = b_shapedirs - a[..., None, None] * joint_dirs  # (K,J,3,NB[+E])
        shapedirs = torch.cat([shapedirs, torch.zeros_like(shapedirs[:, :, :1])], dim=2)  # (K,J,4,NB)
        used = a.abs() > 1e-7
        if joint_weights is not None:
            jw = joint_weights.to(device=dev, dtype=dt)
            if jw.shape != (a.shape[0], 24):
                raise ValueError(f"joint_weights must be (K,24) = ({a.shape[0]},24), got {tuple(jw.shape)}")
            full = torch.zeros_like(a)  # (K,J): SMPL joint s is full-model joint smpl_joint_ids[s]
            full.T.index_put_((self.smpl_joint_ids,), jw.T, accumulate=True)
            template[..., 3] += full
            used = used | (full != 0)
        k_idx, j_idx = torch.nonzero(used, as_tuple=True)
        num_pairs = len(k_idx)
        gather = torch.zeros(a.shape[0], num_pairs, device=dev, dtype=dt)
        gather[k_idx, torch.arange(num_pairs, device=dev)] = 1.0
        return LandmarkSkin(
            pair_joint=j_idx,
            offset_template=template[k_idx, j_idx].reshape(4 * num_pairs, 1),
            offset_shapedirs=shapedirs[k_idx, j_idx].reshape(4 * num_pairs, shapedirs.shape[-1]),
            gather=gather,
        )

    def pose_landmarks(
        self,
        skin: LandmarkSkin,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
        orient_base: Tensor | None = None,
        hand_pose: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Fastest path: SMPL-24 joints (B,24,3) and pre-skinned landmarks (B,K,3), metres.

        Inputs as for `forward`; orient_base (B,3,3), optional, with global_orient in axis-angle
        (B,3): the root rotation is then R(global_orient) @ orient_base (a residual rotation on
        top of a fixed start, composed inside the fused op instead of by the caller). The
        landmarks include SMPL-joint blends when the skin was built with joint_weights.
        hand_pose (B,90) or (B,30,3,3), models with finger joints only: as for `forward`
        (the fused op then takes the ready rotations; autograd reaches hand_pose through them).
        Rodrigues, forward kinematics and skinning run as one autograd node with a
        hand-written backward (PyTorch's per-op cost rules at small batches).
        """
        bsz = self._batch_size(betas, body_pose, global_orient, transl)
        betas = self._betas(betas, bsz)
        dev, dt = self.v_template.device, self.v_template.dtype
        if body_pose is None:
            body_pose = torch.zeros(bsz, 69, device=dev, dtype=dt)
        if global_orient is None:
            global_orient = torch.zeros(bsz, 3, device=dev, dtype=dt)
        vector_root = global_orient.ndim == 2 and global_orient.shape[1] == 3
        if orient_base is not None:
            if not vector_root or orient_base.shape != (bsz, 3, 3):
                raise ValueError(
                    f"orient_base must be (B,3,3) = ({bsz},3,3) with global_orient (B,3) axis-angle; got "
                    f"{tuple(orient_base.shape)} and {tuple(global_orient.shape)}"
                )
        if (
            hand_pose is None
            and self._smpl_is_full
            and body_pose.ndim == 2
            and (vector_root or global_orient.shape[-2:] == (3, 3))
        ):
            root = global_orient if vector_root else global_orient.reshape(bsz, 3, 3)
            return _PosedPoints.apply(body_pose, root, orient_base, None, betas, transl, self._fast, skin)
        if orient_base is not None:
            global_orient = (axis_angle_to_matrix(global_orient) @ orient_base)[:, None]
        rotations = self._local_rotations(body_pose, global_orient, bsz, hand_pose)
        return _PosedPoints.apply(None, None, None, rotations, betas, transl, self._fast, skin)

    def pose_face_landmarks(
        self,
        skin: LandmarkSkin,
        betas: Tensor,
        body_pose: Tensor,
        global_orient: Tensor,
        transl: Tensor | None,
        jaw_pose: Tensor,
        expression: Tensor,
        orient_base: Tensor | None = None,
        hand_pose: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`pose_landmarks` with SMPL-X's face: jaw_pose (B,3) axis-angle, the jaw joint's local
        rotation, and expression (B,<=E) coefficients (zero-padded), which move the landmarks and,
        through J_regressor, the joints (as smplx). skin: from `landmark_skin(...,
        with_expression=True)`. Returns SMPL-24 joints (B,24,3) and landmarks (B,K,3), metres;
        autograd reaches jaw_pose and expression. Pose-corrective blend shapes are left out, as
        in `pose_landmarks`."""
        if self._fast_expression is None or self.jaw_joint_id < 0:
            raise ValueError(f"body model {self.name!r} has no jaw joint and expression blend shapes (SMPL-X has)")
        num = self.num_betas + self.num_expression
        if skin.offset_shapedirs.shape[1] != num:
            raise ValueError(
                f"skin must be built with_expression ({num} shape columns, got {skin.offset_shapedirs.shape[1]})"
            )
        bsz = body_pose.shape[0]
        if expression.ndim != 2 or expression.shape[1] > self.num_expression:
            raise ValueError(f"expression must be (B,<={self.num_expression}), got {tuple(expression.shape)}")
        expression = torch.nn.functional.pad(expression, (0, self.num_expression - expression.shape[1]))
        if orient_base is not None:
            global_orient = (axis_angle_to_matrix(global_orient) @ orient_base)[:, None]
        rotations = self._local_rotations(body_pose, global_orient, bsz, hand_pose)
        jaw = axis_angle_to_matrix(jaw_pose.reshape(bsz, 3)).to(rotations.dtype).permute(1, 2, 0)[None]  # (1,3,3,B)
        rotations = torch.cat([rotations[: self.jaw_joint_id], jaw, rotations[self.jaw_joint_id + 1 :]])
        coefficients = torch.cat([self._betas(betas, bsz), expression.to(betas.dtype)], dim=1)
        return _PosedPoints.apply(None, None, None, rotations, coefficients, transl, self._fast_expression, skin)
