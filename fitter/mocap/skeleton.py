"""Source motion-capture skeletons (BVH conventions) read from the shared CMU npz files, and their
forward kinematics.

BVH conventions (both CMU files): Y up, the figure faces +Z, its left is +X. A joint's local
rotation is the product of its channel rotations in the order listed, for column vectors
(channel order "ZYX" with angles (z, y, x): R = Rz(z) Ry(y) Rx(x)). World transforms:
G_root = R_root, p_root = root_pos; G_j = G_parent R_j, p_j = p_parent + G_parent offset_j.
With all rotations zero every joint frame is world-aligned and the skeleton stands in its rest
configuration given by the offsets.

Files (see ../shared/mocap/README.md): `cmu_mb31_10fps.npz` (31-joint Hahne/CMU skeleton,
`euler_zyx_deg`, units of 1/0.45 inch = 0.056444 m) and `cmu_daz43_10fps.npz` (43-joint Daz
figure, `euler_deg` with per-joint `channel_order`, centimetres).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SKELETON_UNITS",
    "SourceMotion",
    "euler_to_matrix",
    "load_source",
    "source_forward_kinematics",
]

SKELETON_UNITS = {
    # skeleton kind -> metres per source unit
    "cmu_mb31": 0.0254 / 0.45,  # CMU ASF `:units length 0.45` (inches): 0.056444 m per unit
    "daz43": 0.01,  # Daz/Poser BVH export in centimetres (figure ~1.6 m; ~5.3x the CMU units)
}


@dataclass
class SourceMotion:
    """Frames of one source file on its own skeleton.

    kind: "cmu_mb31" or "daz43"; joint_names (J,), parents (J,) (-1 root), offsets (J,3) metres,
    end_sites {joint name: offset (3,) metres} for extra points (tips) the mapping may use;
    orders (J,) channel-order strings; euler_deg (F,J,3) in each joint's channel order;
    root_pos (F,3) metres; motion_names (M,), frame_motion (F,), frame_source_index (F,).
    """

    kind: str
    path: Path
    joint_names: list[str]
    parents: list[int]
    offsets: np.ndarray
    orders: list[str]
    euler_deg: np.ndarray
    root_pos: np.ndarray
    motion_names: np.ndarray
    motion_cmu_names: np.ndarray
    frame_motion: np.ndarray
    frame_source_index: np.ndarray
    end_sites: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.euler_deg.shape[0])

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    def subset(self, frames: np.ndarray) -> SourceMotion:
        """The same skeleton with only the given frame indices."""
        frames = np.asarray(frames)
        return SourceMotion(
            self.kind, self.path, self.joint_names, self.parents, self.offsets, self.orders,
            self.euler_deg[frames], self.root_pos[frames], self.motion_names, self.motion_cmu_names,
            self.frame_motion[frames], self.frame_source_index[frames], self.end_sites,
        )  # fmt: skip

    def rest(self) -> SourceMotion:
        """One frame with every rotation zero at the origin: the skeleton's rest configuration."""
        one = self.subset(np.zeros(1, dtype=int))
        one.euler_deg = np.zeros_like(one.euler_deg)
        one.root_pos = np.zeros_like(one.root_pos)
        return one


# Daz figure: the foot has no toe joint; its BVH end site (bvh_daz/*.bvh header, identical for every
# file of the release: the figure is fixed) marks the ball of the foot. Centimetres.
_DAZ_END_SITES_CM = {"lFoot": (1.1221, -3.69964, 12.103), "rFoot": (-1.1221, -3.69964, 12.103)}


def load_source(path: str | Path) -> SourceMotion:
    """Read `cmu_mb31_10fps.npz` or `cmu_daz43_10fps.npz` (kind told by its rotation key)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    joint_names = [str(n) for n in data["joint_names"]]
    if "euler_zyx_deg" in data:
        kind, euler = "cmu_mb31", data["euler_zyx_deg"]
        orders = ["ZYX"] * len(joint_names)
        end_sites = {}
    elif "euler_deg" in data and "channel_order" in data:
        kind, euler = "daz43", data["euler_deg"]
        orders = [str(o) for o in data["channel_order"]]
        end_sites = {k: np.asarray(v) * SKELETON_UNITS["daz43"] for k, v in _DAZ_END_SITES_CM.items()}
    else:
        raise ValueError(
            f"{path}: neither 'euler_zyx_deg' nor 'euler_deg' + 'channel_order' found; not a CMU mocap npz"
        )
    unit = SKELETON_UNITS[kind]
    names = data["names"]
    cmu_names = data.get("motion_cmu_name", names)
    return SourceMotion(
        kind=kind, path=path, joint_names=joint_names, parents=[int(p) for p in data["parents"]],
        offsets=data["offsets"].astype(np.float64) * unit, orders=orders, euler_deg=euler.astype(np.float64),
        root_pos=data["root_pos"].astype(np.float64) * unit, motion_names=np.asarray([str(n) for n in names]),
        motion_cmu_names=np.asarray([str(n) for n in cmu_names]), frame_motion=data["frame_motion"].astype(np.int64),
        frame_source_index=data["frame_source_index"].astype(np.int64), end_sites=end_sites,
    )  # fmt: skip


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """(...,) radians -> (...,3,3) rotation about the coordinate axis 'X', 'Y' or 'Z'."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    elif axis == "Z":
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    else:
        raise ValueError(f"unknown rotation axis {axis!r}")
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def euler_to_matrix(euler_deg: torch.Tensor, order: str) -> torch.Tensor:
    """(...,3) angles in degrees, listed in channel order (e.g. "ZXY": z, x, y) -> (...,3,3)
    R = R_order[0] R_order[1] R_order[2] (column vectors, BVH)."""
    radians = torch.deg2rad(euler_deg)
    result = _axis_rotation(order[0], radians[..., 0])
    for k in (1, 2):
        result = result @ _axis_rotation(order[k], radians[..., k])
    return result


def source_forward_kinematics(
    motion: SourceMotion, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rotations (F,J,3,3) and joint positions (F,J,3) (metres, source frame) of every frame."""
    euler = torch.as_tensor(motion.euler_deg, dtype=dtype)
    local = torch.empty(*euler.shape[:2], 3, 3, dtype=dtype)
    for order in set(motion.orders):
        ids = [j for j, o in enumerate(motion.orders) if o == order]
        local[:, ids] = euler_to_matrix(euler[:, ids], order)
    offsets = torch.as_tensor(motion.offsets, dtype=dtype)
    root = torch.as_tensor(motion.root_pos, dtype=dtype)
    rotations: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    for j, parent in enumerate(motion.parents):
        if parent < 0:
            rotations.append(local[:, j])
            positions.append(root + offsets[j])
        else:
            if parent >= j:
                raise ValueError(f"{motion.path}: joints must come after their parents (joint {j}, parent {parent})")
            rotations.append(rotations[parent] @ local[:, j])
            positions.append(positions[parent] + rotations[parent] @ offsets[j])
    return torch.stack(rotations, dim=1), torch.stack(positions, dim=1)


def end_site_positions(
    motion: SourceMotion, rotations: torch.Tensor, positions: torch.Tensor
) -> dict[str, torch.Tensor]:
    """{joint name: (F,3)} world positions of the end sites after that joint."""
    out = {}
    for name, offset in motion.end_sites.items():
        j = motion.index(name)
        out[name] = positions[:, j] + rotations[:, j] @ torch.as_tensor(offset, dtype=positions.dtype)
    return out
