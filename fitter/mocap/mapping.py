"""Which source joint stands for which SMPL joint, per source skeleton (explicit tables).

Each SMPL joint has two entries:
    position  the source point at the same place in the body (a joint name, or "end:<joint>"
              for the BVH end site after that joint); None where no source point is at the
              same anatomical place (the point is then neither matched nor counted in the error);
    rotation  the source joint whose world rotation orients the same body segment (the bone
              from this SMPL joint towards its children); None where the source has no data
              for it (the SMPL joint's local rotation is then held at rest).
Positions fix the limbs; rotations drive the torso and supply the twist about each limb bone
(upper arms, forearms, thighs, shins), which positions leave open.

Matched by position: hips, knees, ankles, feet (toe bases; Daz: the foot's end site, the ball
of the foot), shoulders, elbows, wrists (Daz also the hands: middle-finger base, as anny's
SMPL-layout hand joint). Not matched by position, because the skeletons place them elsewhere
(rest positions compared with anny's SMPL-layout joints, scaled):
- pelvis and spine: CMU's `Hips`/`LowerBack` sit 10 cm above and 5 cm behind the hip joints
  (SMPL's pelvis is on the line between the hips); its spine has 2 segments + 2 neck segments
  and puts `Neck` 7 cm *below* the shoulders; the Daz `hip` is 2.6 cm below the thighs and its
  `abdomen`/`chest` sit at other heights than spine1-3;
- neck and head: CMU's `Head` is 13 cm, the Daz `head` 12 cm above the shoulder line, anny's
  head joint 19 cm (a different point of the skull); matching them bends the neck in every pose.
These follow the source rotations instead (spine1-3 <- LowerBack/Spine/Spine1 or hip/abdomen/
chest, neck <- Neck1 / neck, head <- Head / head).
Held at rest (no data in the files): collars (CMU `LeftShoulder`/`RightShoulder` and Daz
`lCollar`/`rCollar` never rotate), hands (CMU finger joints are noise, Daz fingers never move),
Daz toes (no toe joint). CMU wrists take the forearm twist of `LeftHand`/`RightHand` (their
only channel).
"""

from __future__ import annotations

from typing import NamedTuple

from fitter.body.model import SMPL_JOINT_NAMES

__all__ = ["JOINT_MAPS", "JointMap", "joint_map"]


class JointMap(NamedTuple):
    smpl: str
    position: str | None
    rotation: str | None


def _sided(
    rows: list[tuple[str, str | None, str | None]], left: tuple[str, str], right: tuple[str, str]
) -> list[JointMap]:
    """Expand rows with '{s}' / '{S}' placeholders into left and right entries."""
    out = []
    for smpl, pos, rot in rows:
        if "{side}" not in smpl:
            out.append(JointMap(smpl, pos, rot))
            continue
        for side, (s, S) in (("left", left), ("right", right)):
            pos_side = None if pos is None else pos.format(s=s, S=S)
            rot_side = None if rot is None else rot.format(s=s, S=S)
            out.append(JointMap(smpl.format(side=side), pos_side, rot_side))
    return out


_CMU_MB31 = _sided(
    [
        ("pelvis", None, "Hips"),
        ("{side}_hip", "{S}UpLeg", "{S}UpLeg"),
        ("spine1", None, "LowerBack"),
        ("{side}_knee", "{S}Leg", "{S}Leg"),
        ("spine2", None, "Spine"),
        ("{side}_ankle", "{S}Foot", "{S}Foot"),
        ("spine3", None, "Spine1"),
        ("{side}_foot", "{S}ToeBase", "{S}ToeBase"),
        ("neck", None, "Neck1"),
        ("{side}_collar", None, None),
        ("head", None, "Head"),
        ("{side}_shoulder", "{S}Arm", "{S}Arm"),
        ("{side}_elbow", "{S}ForeArm", "{S}ForeArm"),
        ("{side}_wrist", "{S}Hand", "{S}Hand"),
        ("{side}_hand", None, None),
    ],
    left=("l", "Left"),
    right=("r", "Right"),
)

_DAZ43 = _sided(
    [
        ("pelvis", None, "hip"),
        ("{side}_hip", "{s}Thigh", "{s}Thigh"),
        ("spine1", None, "hip"),
        ("{side}_knee", "{s}Shin", "{s}Shin"),
        ("spine2", None, "abdomen"),
        ("{side}_ankle", "{s}Foot", "{s}Foot"),
        ("spine3", None, "chest"),
        ("{side}_foot", "end:{s}Foot", None),
        ("neck", None, "neck"),
        ("{side}_collar", None, None),
        ("head", None, "head"),
        ("{side}_shoulder", "{s}Shldr", "{s}Shldr"),
        ("{side}_elbow", "{s}ForeArm", "{s}ForeArm"),
        ("{side}_wrist", "{s}Hand", "{s}Hand"),
        ("{side}_hand", "{s}Mid1", None),
    ],
    left=("l", "Left"),
    right=("r", "Right"),
)

JOINT_MAPS: dict[str, list[JointMap]] = {"cmu_mb31": _CMU_MB31, "daz43": _DAZ43}


def joint_map(kind: str) -> list[JointMap]:
    """The table for a source skeleton kind, one row per SMPL joint in SMPL order."""
    rows = {row.smpl: row for row in JOINT_MAPS[kind]}
    missing = [name for name in SMPL_JOINT_NAMES if name not in rows]
    if missing:
        raise ValueError(f"joint map {kind!r} lacks SMPL joints {missing}")
    return [rows[name] for name in SMPL_JOINT_NAMES]
