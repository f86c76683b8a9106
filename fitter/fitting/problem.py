"""`Problem`: the targets, weights and camera of one batched fit, shared by all its stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from fitter.body import BodyModel
from fitter.body.hands import hand_joint_frames, relaxed_hand_pose
from fitter.body.landmarks import LandmarkSkin
from fitter.geometry import axis_angle_to_matrix, perspective_project, visible_box
from fitter.keypoints import keypoint_names, keypoint_skin
from fitter.keypoints.model_keypoints import KeypointRegressor

__all__ = ["Problem", "FitTargets", "validate_keypoints", "TORSO"]

TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
PALM_POINTS = ("hand_wrist", "thumb_cmc", "index_finger_mcp", "middle_finger_mcp", "ring_finger_mcp", "pinky_mcp")
CROP_SIZE = 224.0  # residuals are measured in a person crop of this many pixels (SPIN's units)


def _hand_fields(model: BodyModel, names: list[str], like: Tensor) -> dict[str, Tensor | None]:
    """Problem's hand_mask / hand_sides / hand_frames / hand_mean: set when the model has finger joints and
    `names` include hands42 points, else None."""
    hand_names = set(keypoint_names("hands42"))
    mask = torch.tensor([n in hand_names for n in names], dtype=like.dtype, device=like.device)
    if not model.has_fingers or not bool(mask.any()):
        return {"hand_mask": None, "hand_sides": None, "hand_frames": None, "hand_mean": None}
    sides = torch.tensor([[n in hand_names and n.startswith(side) for n in names] for side in ("left_", "right_")],
                         dtype=like.dtype, device=like.device)  # fmt: skip
    frames = hand_joint_frames(model).to(like)
    return {"hand_mask": mask, "hand_sides": sides, "hand_frames": frames,
            "hand_mean": relaxed_hand_pose(model).to(like)}  # fmt: skip


def _face_fields(model: BodyModel, keypoint_set: str, regressor: KeypointRegressor, like: Tensor) -> dict:
    """Problem's face_mask / face_skin: set when the model has a jaw joint and expression blend
    shapes (SMPL-X) and the set has face51 points the model has (quality > 0), else None."""
    face_names = set(keypoint_names("face51"))
    mask = torch.tensor([n in face_names for n in regressor.names], dtype=like.dtype, device=like.device)
    if not model.has_face or not bool((mask * regressor.quality).any()):
        return {"face_mask": None, "face_skin": None}
    return {"face_mask": mask, "face_skin": keypoint_skin(model, keypoint_set, with_expression=True)[1]}


def validate_keypoints(keypoints, keypoint_set: str) -> np.ndarray:
    """(N,K,3) float32 pixels + confidence, checked against the set (one-line ValueErrors)."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim == 2:
        kp = kp[None]
    names = keypoint_names(keypoint_set)
    if kp.ndim != 3 or kp.shape[1:] != (len(names), 3):
        raise ValueError(
            f"keypoints must be (N, {len(names)}, 3) pixels + confidence for set {keypoint_set!r}, got {kp.shape}"
        )
    if not np.all(np.isfinite(kp)):
        raise ValueError("keypoints contain NaN or inf; give missing points confidence 0 (and any finite x, y)")
    if np.any(kp[..., 2] < 0):
        raise ValueError("keypoint confidences must be >= 0")
    return kp


@dataclass
class FitTargets:
    """Optional targets beside the 2D keypoints, for N people.

    landmarks3d: (N,K,4) 3D landmarks in the keypoint set (metres, any frame) + weight, pulled on
    after a similarity alignment (mediapipe's world landmarks); masks: per person an (H,W) bool
    full-image person mask or None (a final silhouette stage); part_masks: per person a (P,H,W)
    bool stack of body-part masks (P = 12 or 24 parts of fitter.body.parts) or None;
    ignore_masks: per person an (H,W) bool mask of what hides them (other people in front), or
    None: there the silhouette neither requires nor forbids the body; scenes: (N,) ints, people
    with the same number are in one photo: their bodies must not interpenetrate, and where one's
    mask shows them in front of another, they must be nearer (depth order).
    """

    landmarks3d: ArrayLike | None = None
    masks: Sequence[np.ndarray | None] | None = None
    part_masks: Sequence[np.ndarray | None] | None = None
    ignore_masks: Sequence[np.ndarray | None] | None = None
    scenes: ArrayLike | None = None


@dataclass
class Problem:
    """B items to fit (one device, float32). Pixels: origin at the image's top-left corner.

    regressor / skin: the keypoint set on the model and its pre-skinned form; torso_mask (K,)
    1 on shoulders and hips (camera stage); target (B,K,2) px and confidence (B,K) of the keypoints; weights (B,K) = confidence x each
    keypoint's correspondence quality on the model; focal (B,) and center (B,2) px; scale (B,):
    pixels -> 224 px crop units; landmarks3d (B,K,3) metres (any frame) with landmarks3d_weights (B,K), or None; pose_anchor
    (B,69) with anchored (B,) in {0,1}: the body pose is held near pose_anchor where anchored;
    masks / part_masks / ignore_masks: per item a person mask (H,W) bool, body-part masks
    (P,H,W) bool and the mask of what hides the person, or None; scene (B,) long or None: items
    of one photo; person (B,) long: the original person of each item (flip-test copies share it).
    Hands (only when the model has finger joints and the set has hands42 points, else None):
    hand_mask (K,) 1 on the hands42 points; hand_sides (2,K) 1 on the left / right hand's
    points; hand_frames (30,3,3) the finger joints' limit frames
    (fitter.body.hands.hand_joint_frames); hand_mean (1,90) the relaxed hand (the curl
    prior's mean and the fit's start).
    Face (only when the model has a jaw joint and expression blend shapes, SMPL-X, and the set
    has face51 points, else None): face_mask (K,) 1 on the face51 points; face_skin the set
    pre-skinned with the expression blend shapes (BodyModel.pose_face_landmarks).
    """

    model: BodyModel
    keypoint_set: str
    regressor: KeypointRegressor
    skin: LandmarkSkin
    torso_mask: Tensor
    target: Tensor
    confidence: Tensor
    weights: Tensor
    focal: Tensor
    center: Tensor
    scale: Tensor
    landmarks3d: Tensor | None = None
    landmarks3d_weights: Tensor | None = None
    pose_anchor: Tensor | None = None
    anchored: Tensor | None = None
    masks: list = field(default_factory=list)
    part_masks: list = field(default_factory=list)
    ignore_masks: list = field(default_factory=list)
    scene: Tensor | None = None
    person: Tensor | None = None
    hand_mask: Tensor | None = None
    hand_sides: Tensor | None = None
    hand_frames: Tensor | None = None
    hand_mean: Tensor | None = None
    face_mask: Tensor | None = None
    face_skin: LandmarkSkin | None = None
    _held_hands: list = field(default_factory=list, init=False, repr=False, compare=False)

    PER_ITEM = ("target", "confidence", "weights", "focal", "center", "scale", "landmarks3d", "landmarks3d_weights",
                "pose_anchor", "anchored", "scene", "person")  # fmt: skip

    @classmethod
    def build(cls, model: BodyModel, keypoint_set: str, keypoints: Tensor, focal: Tensor, center: Tensor,
              targets: FitTargets | None = None) -> "Problem":  # fmt: skip
        """From keypoints (B,K,3) px + confidence, focal (B,), center (B,2) and the optional
        `targets` (the person mask defaults to the union of the parts)."""
        targets = targets or FitTargets()
        n = keypoints.shape[0]
        per_item = {}
        for name in ("masks", "part_masks", "ignore_masks"):
            given = getattr(targets, name)
            per_item[name] = list(given) if given is not None else [None] * n
            if len(per_item[name]) != n:
                raise ValueError(f"{name} must list one array (or None) per person: got {len(per_item[name])} for {n}")
        masks, part_masks = per_item["masks"], per_item["part_masks"]
        for i, pm in enumerate(part_masks):
            if pm is not None and masks[i] is None:
                masks[i] = np.asarray(pm, dtype=bool).any(0)
        scene = None
        if targets.scenes is not None:
            scene = torch.as_tensor(np.asarray(targets.scenes), dtype=torch.long, device=keypoints.device).reshape(-1)
            if scene.shape != (n,):
                raise ValueError(f"scenes must give one scene number per person: got {tuple(scene.shape)} for {n}")
        landmarks3d = None
        if targets.landmarks3d is not None:
            landmarks3d = torch.as_tensor(np.asarray(targets.landmarks3d, np.float32), device=keypoints.device)
        regressor, skin = keypoint_skin(model, keypoint_set)
        torso_mask = torch.zeros(len(regressor.names), dtype=keypoints.dtype, device=keypoints.device)
        torso_mask[[regressor.names.index(n) for n in TORSO if n in regressor.names]] = 1.0
        lo, hi = visible_box(keypoints[..., :2], keypoints[..., 2] > 0)
        size = (hi - lo).amax(-1).clamp(min=10.0) * 1.2
        lm3d = lm3d_weights = None
        if landmarks3d is not None:
            lm3d = landmarks3d[..., :3]
            lm3d_weights = landmarks3d[..., 3] * (regressor.quality > 0).to(keypoints.dtype)
        return cls(model=model, keypoint_set=keypoint_set, regressor=regressor, skin=skin, torso_mask=torso_mask,
                   target=keypoints[..., :2], confidence=keypoints[..., 2], weights=keypoints[..., 2] * regressor.quality[None],
                   focal=focal, center=center, scale=CROP_SIZE / size, landmarks3d=lm3d, landmarks3d_weights=lm3d_weights,
                   masks=masks, part_masks=part_masks, ignore_masks=per_item["ignore_masks"], scene=scene,
                   person=torch.arange(n, device=keypoints.device), **_hand_fields(model, regressor.names, keypoints),
                   **_face_fields(model, keypoint_set, regressor, keypoints))  # fmt: skip

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def names(self) -> list[str]:
        return self.regressor.names

    def index(self, ids: Tensor) -> "Problem":
        """The problem of items `ids` (M,) long (repeats allowed)."""
        picked = {k: None if getattr(self, k) is None else getattr(self, k)[ids] for k in self.PER_ITEM}
        host = ids.tolist()
        lists = {name: [getattr(self, name)[i] for i in host] for name in ("masks", "part_masks", "ignore_masks")}
        return replace(self, **picked, **lists)

    @property
    def fits_hands(self) -> bool:
        """Whether the fit poses the fingers (the model has them and the keypoints carry hands42)."""
        return self.hand_mask is not None

    def seen_hands(self) -> Tensor:
        """(B,2) bool: the left / right hand has a keypoint seen (confidence > 0)."""
        return (self.confidence[:, None, :] * self.hand_sides).sum(-1) > 0

    @property
    def fits_face(self) -> bool:
        """Whether the fit poses the jaw and expression (SMPL-X, keypoints with face51 points)."""
        return self.face_mask is not None

    def seen_face(self) -> Tensor:
        """(B,1) 1.0 for items with any face51 point seen (confidence > 0), else 0."""
        return ((self.confidence * self.face_mask).sum(1, keepdim=True) > 0).to(self.confidence.dtype)

    def points(self, betas: Tensor, body_pose: Tensor, global_orient: Tensor, transl: Tensor | None,
               orient_base: Tensor | None = None, hand_pose: Tensor | None = None,
               jaw_pose: Tensor | None = None, expression: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """SMPL joints (B,24,3) and keypoints (B,K,3) in the camera frame (metres), and the
        keypoints' pixels (B,K,2). orient_base: see BodyModel.pose_landmarks; hand_pose (B,90)
        or None (the model's rest hands); jaw_pose (B,3) and expression (B,E), both or neither,
        only when fits_face (BodyModel.pose_face_landmarks); None: rest jaw, neutral face."""
        if hand_pose is not None and not hand_pose.requires_grad:
            hand_pose = self._hand_rotations(hand_pose)
        if jaw_pose is not None:
            if self.face_skin is None:
                raise ValueError("jaw_pose given, but this fit has no face (needs SMPL-X and face51 keypoints)")
            joints, pts3d = self.model.pose_face_landmarks(self.face_skin, betas, body_pose, global_orient, transl,
                                                           jaw_pose, expression, orient_base, hand_pose)  # fmt: skip
            return joints, pts3d, perspective_project(pts3d, self.focal, self.center)
        joints, pts3d = self.model.pose_landmarks(
            self.skin, betas, body_pose, global_orient, transl, orient_base=orient_base, hand_pose=hand_pose
        )
        return joints, pts3d, perspective_project(pts3d, self.focal, self.center)

    def palms_only(self) -> "Problem":
        """The problem with the hands42 points cut to the palms' (wrist, thumb base, four
        knuckles: PALM_POINTS). While the fingers are held they place the hands as the 42 do,
        and the Adam stages pose 29 points instead of 59 (coco17)."""
        if self.hand_mask is None:
            return self
        rows = [k for k, n in enumerate(self.names) if self.hand_mask[k] == 0 or n.endswith(PALM_POINTS)]
        ids = torch.tensor(rows, device=self.target.device)
        reg = self.regressor
        regressor = KeypointRegressor(reg.keypoint_set, [reg.names[k] for k in rows], reg.joint_weights[ids],
                                      reg.vertex_ids, reg.vertex_weights[ids], reg.quality[ids])  # fmt: skip
        per_point = {k: getattr(self, k)[:, ids] for k in ("target", "confidence", "weights", "landmarks3d",
                                                          "landmarks3d_weights") if getattr(self, k) is not None}  # fmt: skip
        face = (
            {}
            if self.face_mask is None
            else {"face_mask": self.face_mask[ids], "face_skin": self.face_skin.subset(ids)}
        )
        return replace(self, regressor=regressor, skin=self.skin.subset(ids), torso_mask=self.torso_mask[ids],
                       hand_mask=self.hand_mask[ids], hand_sides=self.hand_sides[:, ids], **per_point, **face)  # fmt: skip

    def _hand_rotations(self, hand_pose: Tensor) -> Tensor:
        """(B,30,3,3) rotations of a held hand pose (B,90), remembered while it stays the same
        (the Adam stages pose the held hands ~60 times: the same matrices as the model's)."""
        held = self._held_hands
        if not held or held[0].shape != hand_pose.shape or not torch.equal(held[0], hand_pose):
            held[:] = [hand_pose.detach().clone(), axis_angle_to_matrix(hand_pose.reshape(-1, 30, 3))]
        return held[1]

    def tiny_extent(self) -> Tensor:
        """(B,) bool: the visible keypoints span less than 4 pixels."""
        lo, hi = visible_box(self.target, self.weights > 0)
        return (hi - lo).amax(-1) < 4.0
