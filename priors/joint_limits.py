"""Anatomical joint-limit prior for SMPL body poses: zero inside published ranges of motion,
quadratic outside.

Frames. SMPL's local joint rotations are all expressed in frames parallel to the model frame
at rest (T-pose, Y up, body facing +Z, X to the body's LEFT; arms along +-X, palms down, legs
along -Y, feet along +Z). A positive angle about an axis is a right-handed rotation about the
positive axis. Examples worked out from these frames (and checked in tests/test_priors.py):
    knee flexion      = +x  (R_x(+a) moves the shank, along -Y, towards -Z: backwards)
    hip flexion       = -x  (the thigh moves forwards, +Z)
    left elbow flexion  = -y, right elbow flexion = +y  (R_y(-a) moves +X towards +Z: forwards)
    left arm raised (abduction past the T-pose) = +z, right = -z
    spine / neck flexion (bending forwards) = +x
Mirror rule: a reflection x -> -x maps a rotation vector (a_x, a_y, a_z) to (a_x, -a_y, -a_z),
so every right-side range is the left-side range with x kept and y, z negated (lower and upper
swapped). `JOINT_LIMITS` builds the right side that way.

Decomposition (swing-twist). Each joint has a bone axis k (x, y or z): the rest direction of
the segment it moves (hips/knees: y; ankles/feet: z; spine/neck/head: y; collars, shoulders,
elbows, wrists, hands: x). The local rotation R is split as R = R_swing @ R_twist, R_twist a
rotation about axis k by the twist angle, R_swing a rotation about an axis perpendicular to k
(the minimal rotation taking the bone from its rest direction to its posed direction). The
joint's three limit angles are (a_x, a_y, a_z): the swing rotation vector's two components
perpendicular to k, and the twist angle at position k. For rotations about a single axis these
equal the axis-angle components; unlike Euler angles the decomposition has no gimbal lock
inside the ranges (it is singular only for a 180-degree swing, which no range allows).
Ranges are boxes in these three angles; where a clinical motion is not along one axis (the
shoulder) the box is the bounding box of the clinical extreme positions, noted per range.
Clinical ranges that SMPL spreads over several joints (thoracolumbar spine over spine1-3,
cervical spine over neck and head, forearm rotation over elbow and wrist) are split evenly.

Penalty: sum over joints and the three angles of (max(0, lower - a) + max(0, a - upper))^2,
radians^2, per batch item.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from priors._pose import BODY_POSE_DIM, NUM_BODY_JOINTS, body_pose_axis_angle

__all__ = [
    "AngleRange",
    "JointLimit",
    "JOINT_LIMITS",
    "joint_limit_angles",
    "joint_limit_bounds",
    "joint_limit_penalty",
    "joint_limits_table",
    "sample_within_limits",
]

# --------------------------------------------------------------------------------- sources
AAOS_1965 = "AAOS (1965) Joint Motion: Method of Measuring and Recording, average adult ranges"
VA_THORACOLUMBAR = (
    "38 CFR 4.71a, General Rating Formula for the Spine, Note (2): normal thoracolumbar flexion 90, "
    "extension 30, lateral flexion 30, rotation 30 deg; split evenly over SMPL spine1/spine2/spine3"
)
VA_CERVICAL = (
    "38 CFR 4.71a, General Rating Formula for the Spine, Note (2): normal cervical flexion 45, "
    "extension 45, lateral flexion 45, rotation 80 deg; split evenly over SMPL neck/head"
)
KAPANDJI_KNEE_ROTATION = (
    "Kapandji, The Physiology of the Joints vol. 2: knee axial rotation at 90 deg flexion, medial 30, lateral 40 deg"
)
OKAZAKI_KNEE_LAXITY = "Okazaki et al. (2006) J Orthop Sci 11: stress radiographs of 50 normal knees in extension, varus 4.9, valgus 2.4 deg"
KAPANDJI_FOOT = "Kapandji, The Physiology of the Joints vol. 2: adduction-abduction of the foot about the vertical axis, total about 40 deg"
NEUMANN_STERNOCLAVICULAR = (
    "Neumann, Kinesiology of the Musculoskeletal System (2nd ed., 2010), sternoclavicular joint: "
    "elevation 45, depression 10, protraction and retraction 15-30, posterior rotation 20-35 deg"
)
KAPANDJI_SHOULDER_ADDUCTION = (
    "Kapandji, The Physiology of the Joints vol. 1: shoulder adduction combined with flexion 30-45 deg"
)
BEALS_CARRYING_ANGLE = (
    "Beals (1976) The normal carrying angle of the elbow, Clin Orthop Relat Res: about 10-15 deg in adults"
)
FOREARM_SPLIT = AAOS_1965 + ": forearm pronation 80, supination 80 deg; split evenly over SMPL elbow/wrist"
SLACK = "no clinical range exists for this model axis: loose slack chosen for the model (not a published value)"

# Shoulder: sagittal extension of 60 deg (AAOS) from the arm at the side is a swing of 90 deg
# about (0, sin 60, -cos 60): its y component is 90 sin(60) = 77.9 deg.
_SHOULDER_EXTENSION_SWING_Y = 90.0 * math.sin(math.radians(60.0))


@dataclass(frozen=True)
class AngleRange:
    """Allowed range of one limit angle, degrees; what negative/positive angles mean; source."""

    lower_deg: float
    upper_deg: float
    negative: str
    positive: str
    source: str

    def mirrored(self) -> "AngleRange":
        """The range for the other body side on a y or z angle (negate and swap)."""
        return AngleRange(0.0 - self.upper_deg, 0.0 - self.lower_deg, self.positive, self.negative, self.source)


@dataclass(frozen=True)
class JointLimit:
    """Limits of one SMPL joint: bone axis ('x'|'y'|'z', the twist axis) and ranges of the x, y, z angles."""

    name: str
    smpl_index: int
    bone_axis: str
    x: AngleRange
    y: AngleRange
    z: AngleRange

    @property
    def ranges(self) -> tuple[AngleRange, AngleRange, AngleRange]:
        return (self.x, self.y, self.z)

    def mirrored(self, name: str, smpl_index: int) -> "JointLimit":
        """The same joint on the other body side (mirror rule in the module docstring)."""
        return JointLimit(name, smpl_index, self.bone_axis, self.x, self.y.mirrored(), self.z.mirrored())


def _r(lower: float, upper: float, negative: str, positive: str, source: str) -> AngleRange:
    return AngleRange(float(lower), float(upper), negative, positive, source)


# ------------------------------------------------------------------ left-side and midline joints
_LEFT_HIP = JointLimit(
    "left_hip", 1, "y",
    x=_r(-120, 30, "flexion 120", "extension 30", AAOS_1965),
    y=_r(-45, 45, "internal rotation 45", "external rotation 45", AAOS_1965),
    z=_r(-30, 45, "adduction 30", "abduction 45", AAOS_1965),
)  # fmt: skip
_LEFT_KNEE = JointLimit(
    "left_knee", 4, "y",
    x=_r(0, 135, "hyperextension 0", "flexion 135", AAOS_1965),
    y=_r(-30, 40, "internal (medial) rotation 30", "external (lateral) rotation 40", KAPANDJI_KNEE_ROTATION),
    z=_r(-4.9, 2.4, "varus 4.9", "valgus 2.4", OKAZAKI_KNEE_LAXITY),
)  # fmt: skip
_LEFT_ANKLE = JointLimit(
    "left_ankle", 7, "z",
    x=_r(-20, 50, "dorsiflexion 20", "plantar flexion 50", AAOS_1965),
    y=_r(-20, 20, "adduction (toe-in) 20", "abduction (toe-out) 20", KAPANDJI_FOOT),
    z=_r(-35, 15, "inversion 35", "eversion 15", AAOS_1965),
)  # fmt: skip
_LEFT_FOOT = JointLimit(  # SMPL foot joint: the toes about the metatarsophalangeal joints
    "left_foot", 10, "z",
    x=_r(-70, 45, "toe extension 70", "toe flexion 45", AAOS_1965 + " (first metatarsophalangeal joint)"),
    y=_r(-15, 15, "slack", "slack", SLACK),
    z=_r(-15, 15, "slack", "slack", SLACK),
)  # fmt: skip
_LEFT_COLLAR = JointLimit(
    "left_collar", 13, "x",
    x=_r(-35, 10, "posterior rotation 35", "anterior rotation 10 (small; slack)", NEUMANN_STERNOCLAVICULAR),
    y=_r(-30, 30, "protraction 30", "retraction 30", NEUMANN_STERNOCLAVICULAR),
    z=_r(-10, 45, "depression 10", "elevation 45", NEUMANN_STERNOCLAVICULAR),
)  # fmt: skip
_LEFT_SHOULDER = JointLimit(
    "left_shoulder", 16, "x",
    # AAOS measures shoulder rotation with the arm abducted 90 deg: exactly SMPL's T-pose.
    x=_r(-90, 70, "external rotation 90", "internal rotation 70", AAOS_1965 + " (rotation in 90 deg abduction)"),
    y=_r(-135, _SHOULDER_EXTENSION_SWING_Y, "horizontal flexion 135",
         "extension 60 from the side (swing y 77.9; horizontal extension 45 lies inside)", AAOS_1965),
    z=_r(-135, 90, "arm at the side -90, plus adduction 45 across the body",
         "abduction 180 (arm overhead = +90)", AAOS_1965 + "; " + KAPANDJI_SHOULDER_ADDUCTION),
)  # fmt: skip
_LEFT_ELBOW = JointLimit(
    "left_elbow", 18, "x",
    x=_r(-40, 40, "supination 40 (half of 80)", "pronation 40 (half of 80)", FOREARM_SPLIT),
    y=_r(-150, 0, "flexion 150", "hyperextension 0", AAOS_1965),
    z=_r(-15, 15, "carrying-angle slack", "carrying-angle slack", BEALS_CARRYING_ANGLE),
)  # fmt: skip
_LEFT_WRIST = JointLimit(
    "left_wrist", 20, "x",
    x=_r(-40, 40, "supination 40 (half of 80)", "pronation 40 (half of 80)", FOREARM_SPLIT),
    y=_r(-20, 30, "radial deviation 20", "ulnar deviation 30", AAOS_1965),
    z=_r(-80, 70, "flexion (palmar) 80", "extension (dorsal) 70", AAOS_1965),
)  # fmt: skip
_LEFT_HAND = JointLimit(  # SMPL hand joint: the fingers about the metacarpophalangeal joints
    "left_hand", 22, "x",
    x=_r(-20, 20, "slack", "slack", SLACK),
    y=_r(-20, 20, "slack", "slack", SLACK),
    z=_r(-90, 45, "finger flexion 90", "finger extension 45", AAOS_1965 + " (metacarpophalangeal joints)"),
)  # fmt: skip


def _spine(name: str, index: int) -> JointLimit:
    return JointLimit(
        name, index, "y",
        x=_r(-10, 30, "extension 10 (30/3)", "flexion 30 (90/3)", VA_THORACOLUMBAR),
        y=_r(-10, 10, "rotation 10 (30/3)", "rotation 10 (30/3)", VA_THORACOLUMBAR),
        z=_r(-10, 10, "lateral flexion left 10 (30/3)", "lateral flexion right 10 (30/3)", VA_THORACOLUMBAR),
    )  # fmt: skip


def _cervical(name: str, index: int) -> JointLimit:
    return JointLimit(
        name, index, "y",
        x=_r(-22.5, 22.5, "extension 22.5 (45/2)", "flexion 22.5 (45/2)", VA_CERVICAL),
        y=_r(-40, 40, "rotation 40 (80/2)", "rotation 40 (80/2)", VA_CERVICAL),
        z=_r(-22.5, 22.5, "lateral flexion left 22.5 (45/2)", "lateral flexion right 22.5 (45/2)", VA_CERVICAL),
    )  # fmt: skip


def _build_table() -> dict[str, JointLimit]:
    limits = [
        _LEFT_HIP, _LEFT_HIP.mirrored("right_hip", 2), _spine("spine1", 3),
        _LEFT_KNEE, _LEFT_KNEE.mirrored("right_knee", 5), _spine("spine2", 6),
        _LEFT_ANKLE, _LEFT_ANKLE.mirrored("right_ankle", 8), _spine("spine3", 9),
        _LEFT_FOOT, _LEFT_FOOT.mirrored("right_foot", 11), _cervical("neck", 12),
        _LEFT_COLLAR, _LEFT_COLLAR.mirrored("right_collar", 14), _cervical("head", 15),
        _LEFT_SHOULDER, _LEFT_SHOULDER.mirrored("right_shoulder", 17),
        _LEFT_ELBOW, _LEFT_ELBOW.mirrored("right_elbow", 19),
        _LEFT_WRIST, _LEFT_WRIST.mirrored("right_wrist", 21),
        _LEFT_HAND, _LEFT_HAND.mirrored("right_hand", 23),
    ]  # fmt: skip
    assert [lim.smpl_index for lim in limits] == list(range(1, NUM_BODY_JOINTS + 1))
    return {lim.name: lim for lim in limits}


JOINT_LIMITS: dict[str, JointLimit] = _build_table()
"""SMPL joints 1..23 in order, name -> JointLimit (degrees). Print `joint_limits_table()` to read it."""

_AXES = "xyz"


def joint_limit_bounds(dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper), each (23,3) radians, rows = SMPL joints 1..23, columns = x, y, z angles."""
    lower = [[math.radians(r.lower_deg) for r in lim.ranges] for lim in JOINT_LIMITS.values()]
    upper = [[math.radians(r.upper_deg) for r in lim.ranges] for lim in JOINT_LIMITS.values()]
    return (torch.tensor(lower, dtype=dtype, device=device), torch.tensor(upper, dtype=dtype, device=device))


def _bone_axis_onehot(dtype: torch.dtype, device) -> torch.Tensor:
    """(23,3) one-hot of each joint's bone (twist) axis."""
    index = torch.tensor([_AXES.index(lim.bone_axis) for lim in JOINT_LIMITS.values()], device=device)
    return torch.nn.functional.one_hot(index, 3).to(dtype)


@functools.lru_cache(maxsize=None)
def _swing_twist_constants(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Constants of the swing-twist decomposition in "bone frames": per joint, the axis-angle
    components reordered cyclically (k+1, k+2, k) so the bone axis k comes last (a cyclic
    reorder is a rotation, so cross products keep their form).

    Returns (to_bone (69,) rows of the (69,B) transposed pose in order (component, joint),
    from_bone (69,) the inverse, lower and upper (3,23,1) bounds in that order, radians).
    """
    with torch.inference_mode(False), torch.no_grad():
        axes = [_AXES.index(lim.bone_axis) for lim in JOINT_LIMITS.values()]
        order = [[(k + 1) % 3, (k + 2) % 3, k] for k in axes]  # (23,3) source axis of each slot
        to_bone = [3 * j + order[j][c] for c in range(3) for j in range(NUM_BODY_JOINTS)]
        from_bone = [order[j].index(a) * NUM_BODY_JOINTS + j for j in range(NUM_BODY_JOINTS) for a in range(3)]
        lower, upper = joint_limit_bounds(dtype, device)  # (23,3) x, y, z
        gather = torch.tensor(order, device=device)
        lower = lower.gather(1, gather).T.unsqueeze(-1).contiguous()
        upper = upper.gather(1, gather).T.unsqueeze(-1).contiguous()
        return (torch.tensor(to_bone, device=device), torch.tensor(from_bone, device=device), lower, upper)


def _bone_frame_angles(pose: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Swing-twist limit angles in bone frames: pose (B,69) axis-angle -> (3,23,B) radians,
    rows = (first swing, second swing, twist) in the cyclic order of `_swing_twist_constants`,
    batch innermost; plus the intermediates `_penalty_vjp` needs.

    With the rotation as a unit quaternion (s u, c), s = sin(t/2)/t, c = cos(t/2), t = |u|
    (sign fixed so that c >= 0), the twist quaternion is (s u_k e_k, c)/n with
    n = sqrt(c^2 + s^2 u_k^2), and the swing quaternion (s (c u_p + s u_k J u_p)/n, n) with u_p
    the two perpendicular components and J u_p = (-u_2, u_1); its rotation vector is
    2 atan2(x, n)/x times its vector part, x = |s| |u_p| its length. Angles below
    sqrt(dtype eps) are clamped inside sin(x)/x-type ratios (error < eps, finite gradients).
    """
    to_bone, _, _, _ = _swing_twist_constants(pose.dtype, pose.device)
    eps = torch.finfo(pose.dtype).eps
    u = pose.T.index_select(0, to_bone).view(3, NUM_BODY_JOINTS, pose.shape[0])
    uu = u * u
    angle_sq = uu.sum(0)
    angle = angle_sq.clamp_min(eps).sqrt()  # (23,B)
    half = 0.5 * angle
    s = torch.sin(half) / angle
    c = torch.cos(half)
    y = s * u[2]  # quaternion component along the bone (before the c >= 0 sign fix)
    c2 = c * c
    norm_sq = torch.addcmul(c2, y, y).clamp_min(1e-12)
    norm = norm_sq.sqrt()
    half_twist = torch.atan2(y * c, c2)  # = atan2(sign(c) y, |c|)
    perp_sq = uu[0] + uu[1]
    swing_sq = s * s * perp_sq
    swing_sin = swing_sq.clamp_min(eps).sqrt()  # x = |swing quaternion vector|
    ratio = torch.atan2(swing_sin, norm) / (swing_sin * norm)  # F = atan2(x, n) / (x n)
    u_perp = u[:2]
    turned = torch.stack([-u_perp[1], u_perp[0]])  # J u_p
    w = torch.addcmul(c * u_perp, y, turned)
    half_swing = (s * ratio) * w
    angles = 2.0 * torch.cat([half_swing, half_twist.unsqueeze(0)], dim=0)
    cache = {"u": u, "angle": angle, "angle_sq": angle_sq, "s": s, "c": c, "y": y, "norm": norm, "norm_sq": norm_sq,
             "perp_sq": perp_sq, "swing_sq": swing_sq, "swing_sin": swing_sin, "ratio": ratio, "w": w}  # fmt: skip
    return angles, cache


def _penalty_vjp(cache: dict[str, torch.Tensor], grad_angles: torch.Tensor) -> torch.Tensor:
    """Gradient (B,69) w.r.t. the axis-angle pose from the gradient (3,23,B) w.r.t. the bone-frame
    angles, by the chain rule through the quantities of `_bone_frame_angles` written out:
    every term that divides by a small angle multiplies a factor of the same order."""
    u, angle, s, c, y = cache["u"], cache["angle"], cache["s"], cache["c"], cache["y"]
    norm, norm_sq, ratio, w, x = cache["norm"], cache["norm_sq"], cache["ratio"], cache["w"], cache["swing_sin"]
    eps = torch.finfo(u.dtype).eps
    g = 2.0 * grad_angles  # w.r.t. the half angles
    g_swing, g_twist = g[:2], g[2]
    gain = s * ratio
    g_gain = (g_swing * w).sum(0)
    g_w = g_swing * gain  # (2,23,B)
    u1, u2, u3 = u[0], u[1], u[2]
    # twist = atan2(y c, c^2): d = (c dy - y dc) / (c^2 + y^2)
    twist_scale = g_twist / norm_sq
    g_y = torch.addcmul(twist_scale * c, g_w[1], u1) - g_w[0] * u2
    g_c = torch.addcmul(-twist_scale * y, g_w[0], u1) + g_w[1] * u2
    # F = atan2(x, n)/(x n): dF/dx = (1/D - F)/x, dF/dn = -(1/D + F)/n, D = x^2 + n^2
    g_ratio = g_gain * s
    g_s = g_gain * ratio
    inv_d = 1.0 / (x * x + norm_sq)
    g_x = g_ratio * (inv_d - ratio) / x * (cache["swing_sq"] > eps)
    g_norm = -g_ratio * (inv_d + ratio) / norm
    g_c = torch.addcmul(g_c, g_norm, c / norm)
    g_y = torch.addcmul(g_y, g_norm, y / norm)
    # x = |s| |u_p|: dx = (s |u_p|^2 ds + s^2 u_p . du_p) / x
    g_x_over = g_x / x
    g_s = torch.addcmul(g_s, g_x_over, s * cache["perp_sq"])
    g_s = torch.addcmul(g_s, g_y, u3)
    # w = c u_p + y J u_p
    grad_u1 = torch.addcmul(c * g_w[0], y, g_w[1])
    grad_u2 = torch.addcmul(c * g_w[1], -y, g_w[0])
    perp_scale = g_x_over * s * s
    grad_u1 = torch.addcmul(grad_u1, perp_scale, u1)
    grad_u2 = torch.addcmul(grad_u2, perp_scale, u2)
    grad_u3 = g_y * s
    # s = sin(t/2)/t, c = cos(t/2): ds/dt = (c/2 - s)/t, dc/dt = -s t/2; dt/du = u/t
    radial = torch.addcmul(-0.5 * g_c * s, g_s, (0.5 * c - s) / (angle * angle))
    radial = radial * (cache["angle_sq"] > eps)
    grad_u = torch.stack([grad_u1, grad_u2, grad_u3]) + radial * u
    _, from_bone, _, _ = _swing_twist_constants(u.dtype, u.device)
    return grad_u.reshape(3 * NUM_BODY_JOINTS, -1).index_select(0, from_bone).T


class _JointLimitPenalty(torch.autograd.Function):
    """The penalty as one autograd node with the hand-written gradient above (about a third of
    the ops autograd would record; the prior runs at every fit iteration)."""

    @staticmethod
    def forward(ctx, pose: torch.Tensor, joint_weights: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        angles, cache = _bone_frame_angles(pose)  # (3,23,B)
        _, _, lower, upper = _swing_twist_constants(angles.dtype, angles.device)
        excess = angles - angles.clamp(lower, upper)
        if joint_weights is not None:
            excess_weighted = excess * joint_weights.to(excess)[:, None]
            ctx.cache, ctx.slope = cache, excess_weighted
            return (excess * excess_weighted).sum((0, 1))
        ctx.cache, ctx.slope = cache, excess
        return (excess * excess).sum((0, 1))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        # d/d angle of sum w (a - clamp(a))^2 = 2 w (a - clamp(a)) (zero inside the range)
        return _penalty_vjp(ctx.cache, 2.0 * ctx.slope * grad), None


def joint_limit_angles(body_pose: torch.Tensor) -> torch.Tensor:
    """Swing-twist limit angles. body_pose (B,69) axis-angle or (B,23,3,3) -> (B,23,3) radians.

    Per joint: the x, y, z angles of the module docstring (swing rotation-vector components
    perpendicular to the bone axis; the twist angle, in (-pi, pi], at the bone axis).
    """
    bone, _ = _bone_frame_angles(body_pose_axis_angle(body_pose))
    _, from_bone, _, _ = _swing_twist_constants(bone.dtype, bone.device)
    return bone.reshape(3 * NUM_BODY_JOINTS, -1).index_select(0, from_bone).T.reshape(-1, NUM_BODY_JOINTS, 3)


def joint_limit_penalty(body_pose: torch.Tensor, joint_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Soft joint-limit prior: body_pose (B,69) or (B,23,3,3) -> (B,), radians^2.

    Zero inside every range, sum of squared excess outside; joint_weights (23,) optional per-joint factors.
    """
    if joint_weights is not None and joint_weights.shape != (NUM_BODY_JOINTS,):
        raise ValueError(f"joint_weights must be (23,), got {tuple(joint_weights.shape)}")
    pose = body_pose_axis_angle(body_pose)
    if joint_weights is not None and joint_weights.requires_grad:  # rare: let autograd reach the weights
        angles, _ = _bone_frame_angles(pose)
        _, _, lower, upper = _swing_twist_constants(angles.dtype, angles.device)
        excess = angles - angles.clamp(lower, upper)
        return ((excess * excess).sum(0) * joint_weights.to(excess)[:, None]).sum(0)
    return _JointLimitPenalty.apply(pose, joint_weights)


def angles_to_body_pose(angles: torch.Tensor) -> torch.Tensor:
    """Inverse of `joint_limit_angles` for swings under 180 deg: (B,23,3) radians -> (B,69) axis-angle."""
    onehot = _bone_axis_onehot(angles.dtype, angles.device)
    swing = angles * (1.0 - onehot)
    twist = angles * onehot
    rot = axis_angle_to_matrix(swing) @ axis_angle_to_matrix(twist)
    return matrix_to_axis_angle(rot).reshape(angles.shape[0], BODY_POSE_DIM)


def sample_within_limits(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(n,69) axis-angle body poses with every joint's x, y, z limit angles drawn independently
    and uniformly inside its range (uniform in the limit angles, not in rotation space).
    Draws whose swing would reach 180 deg (possible only at shoulder box corners) are redrawn."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lower, upper = joint_limit_bounds(torch.float64)
    onehot = _bone_axis_onehot(torch.float64, None)
    angles = lower + (upper - lower) * torch.rand(n, NUM_BODY_JOINTS, 3, generator=generator, dtype=torch.float64)
    max_swing = math.pi - math.radians(5.0)
    for _ in range(1000):
        bad = (angles * (1.0 - onehot)).norm(dim=-1) > max_swing  # (n,23)
        if not bool(bad.any()):
            break
        redraw = lower + (upper - lower) * torch.rand(n, NUM_BODY_JOINTS, 3, generator=generator, dtype=torch.float64)
        angles = torch.where(bad[..., None], redraw, angles)
    else:  # pragma: no cover - would need a range table with no valid swing
        raise RuntimeError("could not draw swings below 180 deg inside the joint limits")
    return angles_to_body_pose(angles).to(dtype)


def joint_limits_table() -> str:
    """The limits as a plain-text table (degrees), one line per joint and angle, with sources."""
    lines = [f"{'joint':<15}{'idx':>4} {'ang':<6}{'lower':>8}{'upper':>8}  negative / positive  [source]"]
    for lim in JOINT_LIMITS.values():
        for axis, rng in zip(_AXES, lim.ranges):
            role = "twist" if axis == lim.bone_axis else "swing"
            lines.append(
                f"{lim.name:<15}{lim.smpl_index:>4} {axis}-{role:<4}{rng.lower_deg:>8.1f}{rng.upper_deg:>8.1f}"
                f"  {rng.negative} / {rng.positive}  [{rng.source}]"
            )
    return "\n".join(lines)
