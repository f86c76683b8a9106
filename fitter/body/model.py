"""The body model: a small torch module with explicit SMPL-layout tensors.

Every body model fitter speaks (the free `anny` default, SMPL, SMPL-H, SMPL-X) is held in the
SMPL layout -- template, shape blend shapes, pose blend shapes, joint regressor, skinning
weights, kinematic tree -- and posed by `smplx.lbs.lbs`, the one skinning function. Frames:
model frame, metres, Y up, the body facing +Z; `global_orient` / `transl` place it in the
caller's frame (for fitting: the camera frame, x right, y down, z forward).

The public pose is always SMPL's: `global_orient` (B,3) and `body_pose` (B,69) = 23 joints in
axis-angle (radians), or rotation matrices (B,1,3,3) / (B,23,3,3). For models with more joints
(SMPL-H/X) SMPL's 21 body joints map onto theirs; the two SMPL hand joints (22, 23) have no
counterpart there and are ignored; hands, jaw and eyes stay at the model's rest/mean pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from smplx.lbs import batch_rigid_transform, lbs
from torch import Tensor, nn

from fitter.geometry import axis_angle_to_matrix

__all__ = ["BodyModel", "BodyOutput", "SMPL_JOINT_NAMES", "SMPL_PARENTS"]

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
    points (B,P,3) the requested vertices on the fast path (else None). Metres."""

    joints: Tensor
    vertices: Tensor | None = None
    points: Tensor | None = None


def _tree_levels(parents: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Group joints by depth in the kinematic tree (root first).

    Returns (levels, parent_slots, inverse): the joint ids of each level; for each level >= 1
    the positions of its joints' parents in the concatenation of the previous levels; and the
    permutation that puts the concatenated levels back into joint order.
    """
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[int(parents[j])] + 1
    levels = [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]
    order = [j for level in levels for j in level]
    position = {j: i for i, j in enumerate(order)}
    parent_slots = [torch.tensor([position[int(parents[j])] for j in level]) for level in levels[1:]]
    inverse = torch.argsort(torch.tensor(order))
    return [torch.tensor(level) for level in levels], parent_slots, inverse


def _mm3(a: Tensor, b: Tensor) -> Tensor:
    """Batched product of tiny matrices (...,n,m)@(...,m,p) by broadcasting: on CPU this is
    several times faster than torch.matmul, which makes one BLAS call per 3x3 matrix."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def rigid_transforms(rotmats: Tensor, joints: Tensor, parents: Tensor, tree) -> tuple[Tensor, Tensor, Tensor]:
    """Forward kinematics with one batched matmul per tree level (not per joint).

    rotmats (B,J,3,3) local rotations; joints (B,J,3) rest joints; tree = _tree_levels(parents).
    Returns posed joints (B,J,3) and the skinning transforms R (B,J,3,3), t (B,J,3) that map
    rest points to posed points (x' = R x + t), as smplx.lbs.batch_rigid_transform does.
    """
    levels, parent_slots, inverse = tree
    rel = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parents[1:]]], dim=1)
    world_R = rotmats[:, levels[0]]
    world_t = rel[:, levels[0]]
    for level, slots in zip(levels[1:], parent_slots):
        pR, pt = world_R[:, slots], world_t[:, slots]
        world_R = torch.cat([world_R, _mm3(pR, rotmats[:, level])], dim=1)
        world_t = torch.cat([world_t, (pR * rel[:, level, None, :]).sum(-1) + pt], dim=1)
    world_R, world_t = world_R[:, inverse], world_t[:, inverse]
    return world_t, world_R, world_t - (world_R * joints[:, :, None, :]).sum(-1)


@dataclass
class LandmarkSkin:
    """Surface landmarks (blends of vertices) pre-skinned per joint, for fast posing.

    A landmark k = sum_p w_kp v_p is, after LBS, sum_j R_j b_kj + a_kj t_j with
    a_kj = sum_p w_kp W_pj and b_kj = sum_p w_kp W_pj v_p(betas): both precomputed here for the
    (landmark, joint) pairs that matter, so posing K landmarks costs a few dozen 3x3 products
    instead of skinning their vertices. Pose-corrective blend shapes are left out for landmarks
    (SMPL: a few mm; anny has none). pair_joint (P,), template (P,3), shapedirs (P,3,NB),
    weights (P,), gather (K,P) sums pairs into landmarks.
    """

    pair_joint: Tensor
    template: Tensor
    shapedirs: Tensor
    weights: Tensor
    gather: Tensor


def _to_rotmats(pose: Tensor, num_joints: int) -> Tensor:
    """Axis-angle (B, 3*num_joints) or matrices (B, num_joints, 3, 3) -> (B, num_joints, 3, 3)."""
    if pose.ndim >= 3 and pose.shape[-2:] == (3, 3):
        return pose.reshape(pose.shape[0], num_joints, 3, 3)
    return axis_angle_to_matrix(pose.reshape(pose.shape[0], num_joints, 3))


class BodyModel(nn.Module):
    """A linear-blend-skinned body model in SMPL layout.

    Buffers: v_template (V,3); shapedirs (V,3,num_betas); posedirs (P, V*3) with P = 9*(J-1);
    J_regressor (J,V); lbs_weights (V,J); parents (J,); faces (F,3) long; rest_full_pose
    (J,3,3) the rotations used for joints the SMPL pose does not drive (hand mean pose etc.);
    body_to_full (24,) which full-model joint each SMPL joint index drives (-1: none);
    smpl_joint_ids (24,) which full-model joint gives each SMPL-24 joint location.
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
        # Joint locations as a linear function of betas, for the fast path.
        self.register_buffer("J_template", J_regressor.float() @ v_template.float())
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcb->jcb", J_regressor.float(), shapedirs.float()))
        self._tree = _tree_levels(self.parents.cpu())

    # ------------------------------------------------------------------ properties
    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_full_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    @property
    def smpl_parents(self) -> Tensor:
        """(24,) SMPL kinematic tree (parent index, -1 for the root)."""
        return torch.tensor(SMPL_PARENTS, device=self.v_template.device)

    # ------------------------------------------------------------------ posing
    def _inputs(self, betas, body_pose, global_orient, transl, batch_size=None):
        dev, dt = self.v_template.device, self.v_template.dtype
        tensors = [t for t in (betas, body_pose, global_orient, transl) if t is not None]
        bsz = batch_size or (tensors[0].shape[0] if tensors else 1)
        if betas is None:
            betas = torch.zeros(bsz, self.num_betas, device=dev, dtype=dt)
        if betas.shape[-1] < self.num_betas:
            betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[-1]))
        betas = betas[:, : self.num_betas]
        if body_pose is None:
            body_pose = torch.zeros(bsz, 69, device=dev, dtype=dt)
        if global_orient is None:
            global_orient = torch.zeros(bsz, 3, device=dev, dtype=dt)
        rot_body = _to_rotmats(body_pose, 23)
        rot_root = _to_rotmats(global_orient, 1)
        smpl_rots = torch.cat([rot_root, rot_body], dim=1)  # (B,24,3,3)
        full = self.rest_full_pose.to(smpl_rots.dtype).expand(bsz, -1, -1, -1)
        valid = self.body_to_full >= 0
        if bool(valid.all()) and self.num_full_joints == 24:
            full = smpl_rots
        else:
            full = full.clone()
            full[:, self.body_to_full[valid]] = smpl_rots[:, valid]
        return betas, full, transl

    def forward(
        self,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> BodyOutput:
        """Pose the whole mesh. betas (B,<=num_betas); body_pose (B,69) axis-angle or
        (B,23,3,3); global_orient (B,3) or (B,1,3,3); transl (B,3) metres. Returns
        vertices (B,V,3) and SMPL-24 joints (B,24,3), metres, in the frame that
        global_orient/transl define."""
        betas, rotmats, transl = self._inputs(betas, body_pose, global_orient, transl)
        vertices, joints = lbs(
            betas, rotmats.reshape(rotmats.shape[0], -1, 9), self.v_template, self.shapedirs,
            self.posedirs, self.J_regressor, self.parents, self.lbs_weights, pose2rot=False,
        )  # fmt: skip
        joints = joints[:, self.smpl_joint_ids]
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints = joints + transl[:, None]
        return BodyOutput(joints=joints, vertices=vertices)

    def forward_joints(
        self,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
        vertex_ids: Tensor | None = None,
    ) -> BodyOutput:
        """Fast path: pose the SMPL-24 joints and only the vertices `vertex_ids` (P,).

        Same result as `forward(...)` restricted to those joints/vertices, at a fraction of
        the cost (no full-mesh skinning); used for keypoint-only fitting.
        """
        betas, rotmats, transl = self._inputs(betas, body_pose, global_orient, transl)
        bsz = rotmats.shape[0]
        J = self.J_template + torch.einsum("jcb,nb->njc", self.J_shapedirs, betas)
        posed_joints, A = batch_rigid_transform(rotmats, J, self.parents, dtype=J.dtype)
        joints = posed_joints[:, self.smpl_joint_ids]
        points = None
        if vertex_ids is not None and len(vertex_ids) > 0:
            ids = vertex_ids.to(self.v_template.device).long()
            v = self.v_template[ids] + torch.einsum("pcb,nb->npc", self.shapedirs[ids], betas)
            ident = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            pose_feature = (rotmats[:, 1:] - ident).reshape(bsz, -1)
            pd = self.posedirs.view(self.posedirs.shape[0], -1, 3)[:, ids].reshape(self.posedirs.shape[0], -1)
            v = v + (pose_feature @ pd).view(bsz, -1, 3)
            T = torch.einsum("pj,njab->npab", self.lbs_weights[ids], A)
            points = torch.einsum("npab,npb->npa", T[..., :3, :3], v) + T[..., :3, 3]
        if transl is not None:
            joints = joints + transl[:, None]
            if points is not None:
                points = points + transl[:, None]
        return BodyOutput(joints=joints, points=points)

    def landmark_skin(self, vertex_ids: Tensor, vertex_weights: Tensor) -> LandmarkSkin:
        """Pre-skin K landmarks given as blends (K,P) of the vertices `vertex_ids` (P,)."""
        ids = vertex_ids.to(self.v_template.device).long()
        w = vertex_weights.to(self.v_template)
        Wp = self.lbs_weights[ids]  # (P,J)
        a = torch.einsum("kp,pj->kj", w, Wp)
        template = torch.einsum("kp,pj,pc->kjc", w, Wp, self.v_template[ids])
        shapedirs = torch.einsum("kp,pj,pcb->kjcb", w, Wp, self.shapedirs[ids])
        k_idx, j_idx = torch.nonzero(a.abs() > 1e-7, as_tuple=True)
        gather = torch.zeros(a.shape[0], len(k_idx), device=a.device)
        gather[k_idx, torch.arange(len(k_idx), device=a.device)] = 1.0
        return LandmarkSkin(
            pair_joint=j_idx, template=template[k_idx, j_idx], shapedirs=shapedirs[k_idx, j_idx],
            weights=a[k_idx, j_idx], gather=gather,
        )  # fmt: skip

    def pose_landmarks(
        self,
        skin: LandmarkSkin,
        betas: Tensor | None = None,
        body_pose: Tensor | None = None,
        global_orient: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Fastest path: SMPL-24 joints (B,24,3) and pre-skinned landmarks (B,K,3), metres."""
        betas, rotmats, transl = self._inputs(betas, body_pose, global_orient, transl)
        nb = betas.shape[0]
        J = self.J_template + (betas @ self.J_shapedirs.reshape(-1, self.num_betas).T).view(nb, -1, 3)
        posed, R, t = rigid_transforms(rotmats, J, self.parents, self._tree)
        b = skin.template + (betas @ skin.shapedirs.reshape(-1, self.num_betas).T).view(nb, -1, 3)
        pairs = (R[:, skin.pair_joint] * b[..., None, :]).sum(-1) + skin.weights[:, None] * t[:, skin.pair_joint]
        landmarks = torch.matmul(skin.gather, pairs)
        joints = posed[:, self.smpl_joint_ids]
        if transl is not None:
            joints = joints + transl[:, None]
            landmarks = landmarks + transl[:, None]
        return joints, landmarks

    def extra_repr(self) -> str:
        return f"name={self.name!r}, gender={self.gender!r}, vertices={self.num_vertices}, num_betas={self.num_betas}"
