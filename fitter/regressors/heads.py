"""HMR (as trained in SPIN), CLIFF (res50 / hr48) and NBF regressors.

All three output SMPL parameters in the camera frame of their crop (OpenCV: x right, y down,
z forward): `pred_rotmat` (N, 24, 3, 3) = SMPL rotations, index 0 the global orientation and
1..23 each joint relative to its parent; `pred_betas` (N, 10); `pred_cam` (N, 3) = weak-
perspective [s, tx, ty] of the crop (convert with
`fitter.regressors.preprocess.regressor_output_to_full_frame`).

HMR / CLIFF follow the original modules exactly (names, state-dict order, forward): a backbone
gives xf (N, 2048); three iterative-error-feedback (IEF) steps each run
fc1 -> dropout -> fc2 -> dropout on [xf, (bbox_info,) pose6d (144), betas (10), cam (3)] and add
decpose / decshape / deccam to the running estimate, starting from the `init_pose` /
`init_shape` / `init_cam` buffers (SMPL mean parameters). There is no nonlinearity between fc1
and fc2 in the originals, and none here.

NBF (Omran et al. 2018) has no released PyTorch weights; its module and checkpoint format are
fitter's own (see `NBFRegressor`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fitter.body.model import SMPL_PARENTS
from fitter.geometry import matrix_to_rot6d, rot6d_to_matrix, rotation_about
from fitter.regressors.resnet import ResNet50Features, init_like_spin

__all__ = [
    "NUM_POSE_6D",
    "NUM_BETAS",
    "NUM_CAM",
    "DEFAULT_INIT_CAM",
    "NBF_PART_NAMES",
    "SMPL_JOINT_TO_NBF_PART",
    "load_smpl_mean_params",
    "default_mean_params",
    "HMRRegressor",
    "CLIFFRegressor",
    "NBFRegressor",
    "build_hmr",
    "build_cliff_res50",
    "build_cliff_hr48",
    "build_nbf",
    "global_to_local_rotations",
]

NUM_POSE_6D = 24 * 6
NUM_BETAS = 10
NUM_CAM = 3
DEFAULT_INIT_CAM = (0.9, 0.0, 0.0)

# NBF input: 12 body parts, one channel each (fitter's choice; the paper names 12 parts but
# not their boundaries). Background is all-zero. Parts follow SMPL's skinning joints:
NBF_PART_NAMES = [
    "head", "torso", "left_upper_arm", "right_upper_arm", "left_lower_arm_hand",
    "right_lower_arm_hand", "left_upper_leg", "right_upper_leg", "left_lower_leg",
    "right_lower_leg", "left_foot", "right_foot",
]  # fmt: skip
# SMPL joint index -> NBF part index (joint order in the module docstring of fitter.body.model).
SMPL_JOINT_TO_NBF_PART = [
    1, 6, 7, 1, 8, 9, 1, 10, 11, 1, 10, 11,  # pelvis hips spine1 knees spine2 ankles spine3 feet
    0, 1, 1, 0,                              # neck, collars, head
    2, 3, 4, 5, 4, 5, 4, 5,                  # shoulders, elbows, wrists, hands
]  # fmt: skip

MeanParams = dict[str, np.ndarray]


def load_smpl_mean_params(path: str | Path) -> MeanParams:
    """Read SPIN's `smpl_mean_params.npz`: pose (144,) 6D, shape (10,), cam (3,), as float32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"SMPL mean parameters not found: {path} (smpl_mean_params.npz ships in SPIN's data.tar.gz, "
            "http://visiondata.cis.upenn.edu/spin/data.tar.gz)"
        )
    with np.load(path) as data:
        missing = [k for k in ("pose", "shape", "cam") if k not in data.files]
        if missing:
            raise ValueError(f"{path} lacks keys {missing}: expected pose (144,), shape (10,), cam (3,)")
        params = {k: np.asarray(data[k], dtype=np.float32).reshape(-1) for k in ("pose", "shape", "cam")}
    for key, size in (("pose", NUM_POSE_6D), ("shape", NUM_BETAS), ("cam", NUM_CAM)):
        if params[key].size != size:
            raise ValueError(f"{path}: '{key}' has {params[key].size} values, expected {size}")
    return params


def default_mean_params() -> MeanParams:
    """Stand-in init values when no smpl_mean_params.npz is given: identity 6D, zero betas, cam [0.9, 0, 0].

    The official checkpoints carry the real init buffers, which overwrite these on load.
    """
    identity_6d = np.tile(np.array([1, 0, 0, 1, 0, 0], dtype=np.float32), 24)
    return {
        "pose": identity_6d,
        "shape": np.zeros(NUM_BETAS, np.float32),
        "cam": np.array(DEFAULT_INIT_CAM, np.float32),
    }


def _resolve_mean_params(mean_params: MeanParams | str | Path | None) -> MeanParams:
    if mean_params is None:
        return default_mean_params()
    if isinstance(mean_params, (str, Path)):
        return load_smpl_mean_params(mean_params)
    return {k: np.asarray(mean_params[k], dtype=np.float32).reshape(-1) for k in ("pose", "shape", "cam")}


def _register_init_buffers(module: nn.Module, mean_params: MeanParams) -> None:
    """init_pose (1,144), init_shape (1,10), init_cam (1,3) float32 buffers, as in SPIN/CLIFF."""
    module.register_buffer("init_pose", torch.from_numpy(mean_params["pose"].copy()).reshape(1, NUM_POSE_6D))
    module.register_buffer("init_shape", torch.from_numpy(mean_params["shape"].copy()).reshape(1, NUM_BETAS))
    module.register_buffer("init_cam", torch.from_numpy(mean_params["cam"].copy()).reshape(1, NUM_CAM))


def _add_ief_layers(module: nn.Module, in_features: int) -> None:
    """fc1, drop1, fc2, drop2, decpose, decshape, deccam with SPIN's initialisation of the decoders."""
    module.fc1 = nn.Linear(in_features, 1024)
    module.drop1 = nn.Dropout()
    module.fc2 = nn.Linear(1024, 1024)
    module.drop2 = nn.Dropout()
    module.decpose = nn.Linear(1024, NUM_POSE_6D)
    module.decshape = nn.Linear(1024, NUM_BETAS)
    module.deccam = nn.Linear(1024, NUM_CAM)
    for layer in (module.decpose, module.decshape, module.deccam):
        nn.init.xavier_uniform_(layer.weight, gain=0.01)


def _run_ief(module: nn.Module, features: Tensor, n_iter: int, conditioning: Tensor | None = None) -> dict[str, Tensor]:
    """The IEF loop shared by HMR and CLIFF; conditioning (CLIFF's bbox_info) goes right after xf."""
    batch = features.shape[0]
    pose = module.init_pose.expand(batch, -1)
    shape = module.init_shape.expand(batch, -1)
    cam = module.init_cam.expand(batch, -1)
    prefix = [features] if conditioning is None else [features, conditioning]
    for _ in range(n_iter):
        x = torch.cat([*prefix, pose, shape, cam], dim=1)
        x = module.drop2(module.fc2(module.drop1(module.fc1(x))))
        pose = module.decpose(x) + pose
        shape = module.decshape(x) + shape
        cam = module.deccam(x) + cam
    rotmat = rot6d_to_matrix(pose.reshape(batch, 24, 6))
    return {"pred_rotmat": rotmat, "pred_betas": shape, "pred_cam": cam, "pred_pose6d": pose}


class HMRRegressor(ResNet50Features):
    """HMR as trained in SPIN (`model_checkpoint.pt`): ResNet-50 trunk at the top level + IEF head.

    forward(images (N,3,224,224) ImageNet-normalised RGB crops) -> dict(pred_rotmat (N,24,3,3),
    pred_betas (N,10), pred_cam (N,3) [s, tx, ty] of the 224 crop, pred_pose6d (N,144)).
    State-dict names/order equal SPIN's HMR (checkpoint_layouts/spin_hmr.json).
    """

    input_size = (224, 224)
    needs_bbox_info = False

    def __init__(self, mean_params: MeanParams | str | Path | None = None):
        super().__init__(in_channels=3, pool="avg7")
        _add_ief_layers(self, 2048 + NUM_POSE_6D + NUM_BETAS + NUM_CAM)
        init_like_spin(self)
        _register_init_buffers(self, _resolve_mean_params(mean_params))

    def forward(self, images: Tensor, n_iter: int = 3) -> dict[str, Tensor]:  # type: ignore[override]
        return _run_ief(self, super().forward(images), n_iter)


class CLIFFRegressor(nn.Module):
    """CLIFF: `encoder` backbone (ResNet-50 or HRNet-W48) + IEF head conditioned on bbox_info.

    forward(images (N,3,256,192) ImageNet-normalised RGB crops, bbox_info (N,3) from
    `preprocess.cliff_bbox_info`) -> dict(pred_rotmat, pred_betas, pred_cam [s, tx, ty] of the
    crop, pred_pose6d). fc1 input order [xf, bbox_info, pose6d, betas, cam] as in the original.
    """

    input_size = (256, 192)
    needs_bbox_info = True

    def __init__(self, encoder: nn.Module, feature_dim: int = 2048, mean_params: MeanParams | str | Path | None = None):
        super().__init__()
        self.encoder = encoder
        _add_ief_layers(self, feature_dim + 3 + NUM_POSE_6D + NUM_BETAS + NUM_CAM)
        init_like_spin(self)
        _register_init_buffers(self, _resolve_mean_params(mean_params))

    def forward(self, images: Tensor, bbox_info: Tensor, n_iter: int = 3) -> dict[str, Tensor]:
        if bbox_info.ndim != 2 or bbox_info.shape != (images.shape[0], 3):
            raise ValueError(
                f"bbox_info must be (N, 3) = (N={images.shape[0]}), got {tuple(bbox_info.shape)}: "
                "compute it with fitter.regressors.preprocess.cliff_bbox_info"
            )
        features = self.encoder(images)
        return _run_ief(self, features, n_iter, conditioning=bbox_info.to(features.dtype))


def global_to_local_rotations(global_rotmat: Tensor, parents: list[int] | None = None) -> Tensor:
    """Per-part rotations in the camera frame (N,24,3,3) -> SMPL's parent-relative rotations (N,24,3,3).

    R_local[j] = R_global[parent(j)]^T R_global[j]; the root keeps its global rotation.
    """
    parents = SMPL_PARENTS if parents is None else parents
    local = [global_rotmat[:, 0]]
    for joint in range(1, global_rotmat.shape[1]):
        local.append(global_rotmat[:, parents[joint]].transpose(-1, -2) @ global_rotmat[:, joint])
    return torch.stack(local, dim=1)


class NBFRegressor(nn.Module):
    """Neural Body Fitting regressor (fitter's implementation; no official weights exist).

    Input: one-hot part maps (N, 12, H, W) float in {0, 1}, one channel per `NBF_PART_NAMES`
    part (background all-zero), H = W = 224 by default (any size works: global pooling). One-hot
    rather than the paper's colour-coded RGB because nothing here is ImageNet-pretrained and it
    avoids a palette convention; `preprocess.part_labels_to_one_hot` builds it from a label map.
    Network: ResNet-50 (`encoder`, first conv takes 12 channels) -> global average pool ->
    one Linear `fc` (2048 -> 144 + 10 + 3), added to the `init_*` buffers. The 24 rotations are
    regressed as ABSOLUTE (camera-frame) part orientations in 6D (what a part map shows
    directly); init = every part upright facing the camera (R_x(pi)), betas 0, cam [0.9, 0, 0].
    forward -> dict(pred_rotmat (N,24,3,3) SMPL parent-relative, pred_global_rotmat (N,24,3,3)
    absolute, pred_betas (N,10), pred_cam (N,3) [s, tx, ty] of the crop, pred_pose6d (N,144)).
    Checkpoint format: {'model': state_dict, 'config': NBFRegressor.config} (see checkpoints.py).
    """

    input_size = (224, 224)
    needs_bbox_info = False

    def __init__(self, num_parts: int = len(NBF_PART_NAMES)):
        super().__init__()
        if num_parts < 1:
            raise ValueError(f"num_parts must be >= 1, got {num_parts}")
        self.num_parts = num_parts
        self.encoder = ResNet50Features(in_channels=num_parts, pool="global")
        self.fc = nn.Linear(self.encoder.out_channels, NUM_POSE_6D + NUM_BETAS + NUM_CAM)
        init_like_spin(self)
        nn.init.xavier_uniform_(self.fc.weight, gain=0.01)
        nn.init.zeros_(self.fc.bias)
        upright = matrix_to_rot6d(rotation_about("x", torch.pi)).reshape(1, 6).repeat(24, 1)
        _register_init_buffers(
            self,
            {
                "pose": upright.reshape(-1).numpy().astype(np.float32),
                "shape": np.zeros(NUM_BETAS, np.float32),
                "cam": np.array(DEFAULT_INIT_CAM, np.float32),
            },
        )

    @property
    def config(self) -> dict:
        """What `build_nbf` needs to rebuild this module; stored in the checkpoint."""
        return {
            "architecture": "nbf_resnet50",
            "num_parts": self.num_parts,
            "input": "one_hot_part_maps",
            "input_size": list(self.input_size),
            "rotations": "absolute_6d",
            "format_version": 1,
        }

    def forward(self, part_maps: Tensor) -> dict[str, Tensor]:
        if part_maps.ndim != 4 or part_maps.shape[1] != self.num_parts:
            raise ValueError(
                f"NBF expects one-hot part maps (N, {self.num_parts}, H, W), got {tuple(part_maps.shape)}: "
                "use fitter.regressors.preprocess.part_labels_to_one_hot"
            )
        batch = part_maps.shape[0]
        out = self.fc(self.encoder(part_maps))
        pose = out[:, :NUM_POSE_6D] + self.init_pose
        betas = out[:, NUM_POSE_6D : NUM_POSE_6D + NUM_BETAS] + self.init_shape
        cam = out[:, NUM_POSE_6D + NUM_BETAS :] + self.init_cam
        global_rotmat = rot6d_to_matrix(pose.reshape(batch, 24, 6))
        return {
            "pred_rotmat": global_to_local_rotations(global_rotmat),
            "pred_global_rotmat": global_rotmat,
            "pred_betas": betas,
            "pred_cam": cam,
            "pred_pose6d": pose,
        }


def build_hmr(mean_params: MeanParams | str | Path | None = None) -> HMRRegressor:
    """SPIN's HMR with untrained weights (load a checkpoint with `load_regressor`)."""
    return HMRRegressor(mean_params)


def build_cliff_res50(mean_params: MeanParams | str | Path | None = None) -> CLIFFRegressor:
    """CLIFF with the ResNet-50 backbone (AvgPool (8,6): 256x192 input), untrained."""
    return CLIFFRegressor(ResNet50Features(in_channels=3, pool="avg8x6"), 2048, mean_params)


def build_cliff_hr48(mean_params: MeanParams | str | Path | None = None) -> CLIFFRegressor:
    """CLIFF with the HRNet-W48 classification backbone (fitter.regressors.hrnet), untrained."""
    from fitter.regressors.hrnet import HRNetW48Classification

    return CLIFFRegressor(HRNetW48Classification(), 2048, mean_params)


def build_nbf(config: dict | None = None) -> NBFRegressor:
    """NBF from a checkpoint's 'config' (or the defaults), untrained."""
    config = config or {}
    if config.get("architecture", "nbf_resnet50") != "nbf_resnet50":
        raise ValueError(f"unknown NBF architecture {config.get('architecture')!r}: expected 'nbf_resnet50'")
    return NBFRegressor(num_parts=int(config.get("num_parts", len(NBF_PART_NAMES))))
