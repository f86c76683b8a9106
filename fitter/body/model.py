"""The body model: a small torch module with explicit SMPL-layout tensors.

Every body model fitter speaks (the free `anny` default, SMPL, SMPL-H, SMPL-X) is held in the
SMPL layout -- template, shape blend shapes, pose blend shapes, joint regressor, skinning
weights, kinematic tree -- and posed by `smplx.lbs.lbs`, the one skinning function. Frames:
model frame, metres, Y up, the body facing +Z; `global_orient` / `transl` place it in the
caller's frame (for fitting: the camera frame, x right, y down, z forward).

The public pose is always SMPL's: `global_orient` (B,3) and `body_pose` (B,69) = 23 joints in
axis-angle (radians), or rotation matrices (B,1,3,3) / (B,23,3,3). For models with more joints
(SMPL-H/X) SMPL's 21 body joints map onto theirs; the two SMPL hand joints (22, 23) have no
counterpart there and are ignored; hands, jaw and eyes stay at the model's rest/mean pose unless
`forward` is given `hand_pose` (SMPL-H/X, anny-hands) or `jaw_pose` / `expression` (SMPL-X).

This module: the model's buffers, its inputs, the full `forward` (smplx's lbs) and the fast path
`forward_joints` (SMPL-24 joints and a few vertices, without skinning the mesh). The fast paths
pose with the hand-written engine in `fitter.body.posing` (forward kinematics and the fused
landmark op) on constant tables built by `fitter.body.fast_path`. `BodyModel` inherits two
mixins: `FastPathTables` (fitter.body.fast_path: builds those tables) and `LandmarkPosing`
(fitter.body.landmarks: `landmark_skin`, `pose_landmarks`, `pose_face_landmarks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from smplx.lbs import lbs
from torch import Tensor, nn

from fitter.body.fast_path import FastPathTables
from fitter.body.landmarks import LandmarkPosing
from fitter.body.posing import _smpl_positions, forward_kinematics
from fitter.geometry import axis_angle_to_matrix
from fitter.geometry.rotations import rotation_matrix_rows

__all__ = ["BodyModel", "BodyOutput", "VertexSubset", "SMPL_JOINT_NAMES", "SMPL_PARENTS"]

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@dataclass
class BodyOutput:
    """Posed body. joints (B,24,3) SMPL joints; vertices (B,V,3) or None on the fast path;
    points (B,P,3) the requested vertices on the fast path (else None); full_joints (B,J,3) all
    the model's joints (full forward only). Metres."""

    joints: Tensor
    vertices: Tensor | None = None
    points: Tensor | None = None
    full_joints: Tensor | None = None


@dataclass
class VertexSubset:
    """What LBS needs for a fixed subset of vertices, gathered once (BodyModel.vertex_subset), so
    posing them every optimisation step (forward_joints) costs a few dense matmuls instead of
    re-indexing the full model. vertex_ids (P,); template (P,3); shapedirs (P*3,NB); weights
    (P,J); posedirs (9(J-1), P*3) or None when the model has no pose correctives (anny)."""

    vertex_ids: Tensor
    template: Tensor
    shapedirs: Tensor
    weights: Tensor
    posedirs: Tensor | None

    def __len__(self) -> int:
        return int(self.vertex_ids.numel())


def _to_rotmats(pose: Tensor, num_joints: int) -> Tensor:
    """Axis-angle (B, 3*num_joints) or matrices (B, num_joints, 3, 3) -> (B, num_joints, 3, 3)."""
    if pose.ndim >= 3 and pose.shape[-2:] == (3, 3):
        return pose.reshape(pose.shape[0], num_joints, 3, 3)
    return axis_angle_to_matrix(pose.reshape(pose.shape[0], num_joints, 3))


class BodyModel(LandmarkPosing, FastPathTables, nn.Module):
    """A linear-blend-skinned body model in SMPL layout.

    Buffers: v_template (V,3); shapedirs (V,3,num_betas); posedirs (P, V*3) with P = 9*(J-1);
    J_regressor (J,V); lbs_weights (V,J); parents (J,); faces (F,3) long; rest_full_pose
    (J,3,3) the rotations used for joints the SMPL pose does not drive (hand mean pose etc.);
    body_to_full (24,) which full-model joint each SMPL joint index drives (-1: none);
    smpl_joint_ids (24,) which full-model joint gives each SMPL-24 joint location.
    SMPL-X only (empty / -1 for other models): expr_dirs (V,3,E) expression blend shapes (metres
    per coefficient); jaw_joint_id the full-model jaw joint (22); lmk_faces_idx (L,) long and
    lmk_bary_coords (L,3) the static face-landmark embedding (iBUG-68 points 18-68: the face
    `lmk_faces_idx[k]` of `faces`, blended with barycentric weights), as in the model file.
    """

    def __init__(
        self,
        name: str,
        v_template: Tensor,
        shapedirs: Tensor,
        posedirs: Tensor,
        J_regressor: Tensor,
        lbs_weights: Tensor,
        parents: Tensor,
        faces: Tensor,
        gender: str = "neutral",
        smpl_joint_ids: Tensor | None = None,
        body_to_full: Tensor | None = None,
        rest_full_pose: Tensor | None = None,
        source: str = "",
        hand_joint_ids: Tensor | None = None,
        expr_dirs: Tensor | None = None,
        jaw_joint_id: int = -1,
        face_landmarks: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.gender = gender
        self.source = source
        # Optional surface landmarks (name -> vertex id) and a COCO landmark regressor (23, V)
        # that some models bring (the built `anny` does); keypoint sets use them when present.
        self.landmark_vertex_ids: dict[str, int] = {}
        self.coco_regressor_labels: list[str] = []
        self.register_buffer("coco_regressor", None)
        num_joints = J_regressor.shape[0]
        self.register_buffer("v_template", v_template.float())
        self.register_buffer("shapedirs", shapedirs.float())
        self.register_buffer("posedirs", posedirs.float())
        self.register_buffer("J_regressor", J_regressor.float())
        self.register_buffer("lbs_weights", lbs_weights.float())
        self.register_buffer("parents", parents.long())
        self.register_buffer("faces", faces.long())
        if smpl_joint_ids is None:
            smpl_joint_ids = torch.arange(24)
        if body_to_full is None:
            body_to_full = torch.arange(24)
        if rest_full_pose is None:
            rest_full_pose = torch.eye(3).expand(num_joints, 3, 3).clone()
        self.register_buffer("smpl_joint_ids", smpl_joint_ids.long())
        self.register_buffer("body_to_full", body_to_full.long())
        self.register_buffer("rest_full_pose", rest_full_pose.float())
        # Finger joints (30,) (left 15 then right 15, MANO order) that `hand_pose` drives; empty
        # for models without fingers.
        if hand_joint_ids is None:
            hand_joint_ids = torch.zeros(0, dtype=torch.long)
        self.register_buffer("hand_joint_ids", hand_joint_ids.long())
        if expr_dirs is None:
            expr_dirs = torch.zeros(v_template.shape[0], 3, 0)
        self.register_buffer("expr_dirs", expr_dirs.float())
        self.jaw_joint_id = int(jaw_joint_id)
        lmk_faces_idx, lmk_bary_coords = face_landmarks or (torch.zeros(0), torch.zeros(0, 3))
        self.register_buffer("lmk_faces_idx", lmk_faces_idx.long())
        self.register_buffer("lmk_bary_coords", lmk_bary_coords.float())
        # Joint locations as a linear function of betas, for the fast path.
        self.register_buffer("J_template", J_regressor.float() @ v_template.float())
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcb->jcb", J_regressor.float(), shapedirs.float()))
        self._build_fast_path_constants()

    def _apply(self, fn, *args, **kwargs):
        """Module moves/casts (.to, .cuda, .double, ...) also refresh the fast-path references."""
        module = super()._apply(fn, *args, **kwargs)
        self._refresh_fast_path()
        return module

    # ------------------------------------------------------------------ properties
    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_expression(self) -> int:
        """Number of expression coefficients (SMPL-X: 10 as loaded; other models: 0)."""
        return int(self.expr_dirs.shape[-1])

    @property
    def has_fingers(self) -> bool:
        """Whether the model has the 2 x 15 finger joints `hand_pose` poses (SMPL-H/X, anny-hands)."""
        return self.hand_joint_ids.numel() == 30

    @property
    def has_face(self) -> bool:
        """Whether the model has a jaw joint and expression blend shapes (SMPL-X)."""
        return self.jaw_joint_id >= 0 and self.num_expression > 0

    @property
    def num_full_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    @property
    def smpl_parents(self) -> Tensor:
        """(24,) SMPL kinematic tree (parent index, -1 for the root)."""
        return torch.tensor(SMPL_PARENTS, device=self.v_template.device)

    # ------------------------------------------------------------------ posing
    def _batch_size(self, *tensors: Tensor | None) -> int:
        for t in tensors:
            if t is not None:
                return int(t.shape[0])
        return 1

    def _betas(self, betas: Tensor | None, bsz: int) -> Tensor:
        """betas (B,<=num_betas) zero-padded (or cut) to (B,num_betas); None -> zeros."""
        if betas is None:
            return torch.zeros(bsz, self.num_betas, device=self.v_template.device, dtype=self.v_template.dtype)
        if betas.shape[-1] < self.num_betas:
            return torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[-1]))
        if betas.shape[-1] > self.num_betas:
            return betas[:, : self.num_betas]
        return betas

    def _smpl_rotations(self, body_pose: Tensor | None, global_orient: Tensor | None, bsz: int) -> Tensor:
        """SMPL-24 local rotations (B,24,3,3) from axis-angle or matrix inputs (None -> identity)."""
        dev, dt = self.v_template.device, self.v_template.dtype
        if body_pose is None:
            body_pose = torch.zeros(bsz, 69, device=dev, dtype=dt)
        if global_orient is None:
            global_orient = torch.zeros(bsz, 3, device=dev, dtype=dt)
        return torch.cat([_to_rotmats(global_orient, 1), _to_rotmats(body_pose, 23)], dim=1)

    def _inputs(self, betas, body_pose, global_orient, transl, batch_size=None, hand_pose=None, jaw_pose=None):
        """(betas (B,num_betas), full-model local rotations (B,J,3,3), transl) for `forward`."""
        if jaw_pose is not None and self.jaw_joint_id < 0:
            raise ValueError(f"jaw_pose given, but body model {self.name!r} has no jaw joint (only SMPL-X has one)")
        bsz = batch_size or self._batch_size(betas, body_pose, global_orient, transl, hand_pose, jaw_pose)
        betas = self._betas(betas, bsz)
        smpl_rots = self._smpl_rotations(body_pose, global_orient, bsz)
        if self._smpl_is_full and hand_pose is None:
            return betas, smpl_rots, transl
        rest = self.rest_full_pose.to(smpl_rots.dtype).expand(bsz, -1, -1, -1)
        full = torch.cat([smpl_rots, rest], dim=1)[:, self.full_rotation_source[:-1]]
        if hand_pose is not None:
            if not self.has_fingers:
                raise ValueError(f"hand_pose given, but body model {self.name!r} has no finger joints")
            full = full.index_copy(1, self.hand_joint_ids, _to_rotmats(hand_pose, 30).to(full.dtype))
        if jaw_pose is not None:
            jaw = torch.tensor([self.jaw_joint_id], device=full.device)
            full = full.index_copy(1, jaw, _to_rotmats(jaw_pose, 1).to(full.dtype))
        return betas, full, transl

    def _shape_components(self, betas: Tensor, expression: Tensor | None) -> tuple[Tensor, Tensor]:
        """(coefficients (B,NB[+E]), blend shapes (V,3,NB[+E])): betas, plus the expression
        (B,<=E), zero-padded, and expr_dirs when one is given (as smplx.SMPLX concatenates them)."""
        if expression is None:
            return betas, self.shapedirs
        num = self.num_expression
        if num == 0:
            raise ValueError(
                f"expression given, but body model {self.name!r} has no expression blend shapes (SMPL-X has)"
            )
        if expression.ndim != 2 or expression.shape[-1] > num:
            raise ValueError(
                f"expression must be (B,<={num}) coefficients for {self.name!r}, got {tuple(expression.shape)}"
            )
        expression = torch.nn.functional.pad(expression.to(betas.dtype), (0, num - expression.shape[-1]))
        coefficients = torch.cat([betas, expression.expand(betas.shape[0], -1)], -1)
        return coefficients, torch.cat([self.shapedirs, self.expr_dirs], -1)

    def _local_rotations(self, body_pose: Tensor | None, global_orient: Tensor | None, bsz: int,
                         hand_pose: Tensor | None = None) -> Tensor:  # fmt: skip
        """Full-model local rotations plus the identity slot, joint first, batch innermost:
        (J+1,3,3,B) (possibly a strided view); hand_pose (B,90) or (B,30,3,3) replaces the
        finger joints' rest rotations."""
        rotations = self._smpl_local_rotations(body_pose, global_orient, bsz)
        if hand_pose is None:
            return rotations
        if not self.has_fingers:
            raise ValueError(f"hand_pose given, but body model {self.name!r} has no finger joints")
        hands = _to_rotmats(hand_pose, 30).to(rotations.dtype).permute(1, 2, 3, 0)  # (30,3,3,B)
        return rotations.index_copy(0, self.hand_joint_ids, hands)

    def _smpl_local_rotations(self, body_pose: Tensor | None, global_orient: Tensor | None, bsz: int) -> Tensor:
        """`_local_rotations` without hands: the model's rest rotations where SMPL's pose has none."""
        dev, dt = self.v_template.device, self.v_template.dtype
        if body_pose is None:
            body_pose = torch.zeros(bsz, 69, device=dev, dtype=dt)
        if global_orient is None:
            global_orient = torch.zeros(bsz, 3, device=dev, dtype=dt)
        root_is_vector = global_orient.ndim == 2 and global_orient.shape[-1] == 3
        if body_pose.ndim == 2:  # axis-angle: one Rodrigues call, components first
            parts = ([global_orient] if root_is_vector else []) + [body_pose]
            if self._smpl_is_full:  # a zero rotation vector makes the identity slot exactly
                parts.append(self.zero_rotation.to(body_pose.dtype).expand(bsz, 3))
            vectors = torch.cat(parts, dim=1)
            slots = vectors.shape[1] // 3
            rows = rotation_matrix_rows(vectors.view(bsz, slots, 3).permute(2, 1, 0).reshape(3, slots * bsz))
            rotations = rows.view(3, 3, slots, bsz).permute(2, 0, 1, 3)
            if not root_is_vector:
                root = global_orient.reshape(bsz, 3, 3).permute(1, 2, 0).unsqueeze(0)
                rotations = torch.cat([root, rotations], dim=0)
            if self._smpl_is_full:
                return rotations
        else:
            rotations = self._smpl_rotations(body_pose, global_orient, bsz).permute(1, 2, 3, 0)
        rest = self.rest_rotations.to(rotations.dtype).expand(-1, -1, -1, bsz)
        return torch.cat([rotations[:24], rest], dim=0)[self.full_rotation_source]

    def _world_transforms(self, betas: Tensor, rotations: Tensor, transl: Tensor | None) -> Tensor:
        """World transforms (J+1,4,4,B) of all joints (slot J: identity), translation included."""
        bsz, slots = betas.shape[0], rotations.shape[0]
        if transl is None:
            offsets = torch.addmm(self.rel_template, self.rel_directions[:, : self.num_betas], betas.T)
        else:
            offsets = torch.addmm(self.rel_template, self.rel_directions, torch.cat([betas, transl], dim=1).T)
        top = torch.cat([rotations, offsets.view(slots, 3, 1, bsz)], dim=2)
        local = torch.cat([top, self.homogeneous_row.expand(slots, 1, 4, bsz)], dim=1)
        return forward_kinematics(local, self.fk_ancestors)

    def forward(
        self,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
        hand_pose: Tensor | None = None,
        jaw_pose: Tensor | None = None,
        expression: Tensor | None = None,
    ) -> BodyOutput:
        """Pose the whole mesh. betas (B,<=num_betas); body_pose (B,69) axis-angle or
        (B,23,3,3); global_orient (B,3) or (B,1,3,3); transl (B,3) metres; hand_pose (B,90)
        axis-angle or (B,30,3,3), only for models with finger joints (SMPL-H/X, anny-hands):
        left then right hand, MANO order, relative to the flat hand (see fitter.body.hands);
        None: the model's rest hands. jaw_pose (B,3) axis-angle or (B,1,3,3), the jaw joint's
        local rotation, and expression (B,<=E) coefficients: SMPL-X only (see smplx.SMPLX); None:
        rest jaw, neutral face. Returns vertices (B,V,3), SMPL-24 joints (B,24,3) and all the
        model's joints `full_joints` (B,J,3), metres, in the frame that global_orient/transl define."""
        betas, rotmats, transl = self._inputs(
            betas, body_pose, global_orient, transl, hand_pose=hand_pose, jaw_pose=jaw_pose,
            batch_size=self._batch_size(betas, body_pose, global_orient, transl, hand_pose, jaw_pose, expression),
        )  # fmt: skip
        coefficients, shapedirs = self._shape_components(betas, expression)
        vertices, joints = lbs(
            coefficients, rotmats.reshape(rotmats.shape[0], -1, 9), self.v_template, shapedirs,
            self.posedirs, self.J_regressor, self.parents, self.lbs_weights, pose2rot=False,
        )  # fmt: skip
        full_joints = joints
        joints = joints[:, self.smpl_joint_ids]
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints = joints + transl[:, None]
            full_joints = full_joints + transl[:, None]
        return BodyOutput(joints=joints, vertices=vertices, full_joints=full_joints)

    def forward_joints(
        self,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
        vertex_ids: "Tensor | VertexSubset | None" = None,
        hand_pose: Tensor | None = None,
    ) -> BodyOutput:
        """Fast path: pose the SMPL-24 joints and only the vertices `vertex_ids` (P,) (or a
        prepared `vertex_subset(ids)`, when the same vertices are posed repeatedly).

        Same result as `forward(...)` restricted to those joints/vertices, at a fraction of
        the cost (no full-mesh skinning); used for keypoint-only fitting. hand_pose: as for
        `forward`; rest jaw, neutral expression.
        """
        bsz = self._batch_size(betas, body_pose, global_orient, transl, hand_pose)
        betas = self._betas(betas, bsz)
        rotations = self._local_rotations(body_pose, global_orient, bsz, hand_pose)
        world = self._world_transforms(betas, rotations, transl)
        joints = _smpl_positions(world, self._fast)
        points = None
        if vertex_ids is not None and len(vertex_ids) > 0:
            subset = vertex_ids if isinstance(vertex_ids, VertexSubset) else self.vertex_subset(vertex_ids)
            num_joints = self.num_full_joints
            v = subset.template + (betas @ subset.shapedirs.T).view(bsz, -1, 3)
            if subset.posedirs is not None:
                rotmats = rotations[:num_joints].permute(3, 0, 1, 2)  # (B,J,3,3)
                ident = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
                v = v + ((rotmats[:, 1:] - ident).reshape(bsz, -1) @ subset.posedirs).view(bsz, -1, 3)
            # Skinning transforms G_j [I, -J_j]: rest points to posed points (transl included).
            rest_joints = self.J_template + torch.einsum("jcb,nb->njc", self.J_shapedirs, betas)  # (B,J,3)
            world_R = world[:num_joints, :3, :3].permute(3, 0, 1, 2)  # (B,J,3,3)
            world_t = world[:num_joints, :3, 3].permute(2, 0, 1)  # (B,J,3)
            skin_t = world_t - (world_R * rest_joints[:, :, None, :]).sum(-1)
            R = torch.matmul(subset.weights, world_R.reshape(bsz, num_joints, 9)).view(bsz, -1, 3, 3)
            points = (R * v[:, :, None, :]).sum(-1) + torch.matmul(subset.weights, skin_t)
        return BodyOutput(joints=joints, points=points)

    def vertex_subset(self, vertex_ids: Tensor) -> VertexSubset:
        """Gather once what forward_joints needs to pose the vertices `vertex_ids` (P,)."""
        ids = vertex_ids.to(self.v_template.device).long()
        posedirs = None
        if bool(self.posedirs.abs().max() > 0):
            P9 = self.posedirs.shape[0]
            posedirs = self.posedirs.view(P9, -1, 3)[:, ids].reshape(P9, -1)
        return VertexSubset(vertex_ids=ids, template=self.v_template[ids],
                            shapedirs=self.shapedirs[ids].reshape(-1, self.num_betas),
                            weights=self.lbs_weights[ids], posedirs=posedirs)  # fmt: skip

    def extra_repr(self) -> str:
        return f"name={self.name!r}, gender={self.gender!r}, vertices={self.num_vertices}, num_betas={self.num_betas}"
