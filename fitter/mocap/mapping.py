"""Which source joint stands for which SMPL joint, per source skeleton (explicit tables).

Each SMPL joint has two entries:
    position  the source point that marks the same place in the body (a joint name, or
              "end:<joint>" for the BVH end site after that joint); None where no source point
              corresponds (the point is then not matched, and not counted in the error);
    rotation  the source joint whose world rotation orients the same body segment (the bone
              from this SMPL joint towards its children); None where the source has no data
              for it (the SMPL joint's local rotation is then held near rest).
Positions fix every swing; the rotations supply the twist about a bone (upper arms, forearms,
thighs, shins, spine, head), which joint positions leave open.

Notes on the choices (rest positions compared with anny's SMPL-layout joints):
- CMU 31: `Hips`/`LowerBack` sit 10 cm above and 5 cm behind the hip joints, where SMPL's
  spine1 is (the SMPL pelvis sits on the line between the hips), so they mark spine1, and the
  pelvis is matched through the hips. `LHipJoint`/`RHipJoint` and `LeftShoulder`/`RightShoulder`
  (collars) never rotate: SMPL's collars stay at rest. `Neck` sits on `Spine1`; `Neck1` (upper
  neck) marks SMPL's neck. The hand joints only rotate about the forearm (`LeftHand`, a twist);
  the finger joints are noisy and SMPL's hands stay at rest.
- Daz 43 (the CMU motion retargeted onto one Poser figure): `hip` is 2.6 cm below the thighs,
  unmatched; `abdomen` and `chest` mark SMPL's spine2 and spine3; collars, buttocks, eyes and
  the first finger joints never rotate. The foot has no toe joint: its end site (ball of the
  foot) marks SMPL's foot joint, whose own rotation (the toes) stays at rest. The middle-finger
  base `lMid1`/`rMid1` marks SMPL's hand joint (fingers never move).
"""

from __future__ import annotations

from typing import NamedTuple

from fitter.body.model import SMPL_JOINT_NAMES

__all__ = ["JointMap", "JOINT_MAPS", "joint_map"]


class JointMap(NamedTuple):
    smpl: str
    position: str | None
    rotation: str | None


def _sided(rows: list[tuple[str, str | None, str | None]], left: tuple[str, str], right: tuple[str, str]) -> list[JointMap]:
    """Expand rows with '{s}' / '{S}' placeholders into left and right entries."""
    out = []
    for smpl, pos, rot in rows:
        if "{side}" not in smpl:
            out.append(JointMap(smpl, pos, rot))
            continue
        for side, (s, S) in (("left", left), ("right", right)):
            fill = lambda text: None if text is None else text.format(s=s, S=S)  # noqa: E731
            out.append(JointMap(smpl.format(side=side), fill(pos), fill(rot)))
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
