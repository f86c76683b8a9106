"""Learned single-image regressors (HMR/SPIN, CLIFF res50/hr48, PARE, NBF) used to initialise fitting.

    from fitter.regressors import load_regressor, box_from_xyxy, crop_for_model, cliff_bbox_info
    model = load_regressor("cliff_res50")                 # $FITTER_HOME/data/checkpoints/res50-...pt
    box = box_from_xyxy([x0, y0, x1, y1], "cliff_res50")
    out = model(crop_for_model(rgb, box, "cliff_res50"), cliff_bbox_info(box, (W, H)))
    smpl = regressor_output_to_full_frame(out, box, (W, H))   # global_orient, body_pose, betas, transl

HRNet backbones live in `fitter.regressors.hrnet` and PARE in `fitter.regressors.pare`; both are
imported only when those regressors are built.
"""

from fitter.regressors.checkpoints import (
    MEAN_PARAMS_FILE_NAME,
    OFFICIAL_CHECKPOINTS,
    REGRESSOR_NAMES,
    CheckpointMismatchError,
    checkpoints_dir,
    find_checkpoint,
    find_mean_params,
    list_checkpoints,
    load_regressor,
    load_state_dict_strict,
    read_checkpoint,
    save_nbf_checkpoint,
)
from fitter.regressors.heads import (
    NBF_PART_NAMES,
    SMPL_JOINT_TO_NBF_PART,
    CLIFFRegressor,
    HMRRegressor,
    NBFRegressor,
    build_cliff_hr48,
    build_cliff_res50,
    build_hmr,
    build_nbf,
    load_smpl_mean_params,
)
from fitter.regressors.preprocess import (
    MODEL_INPUT_SIZE,
    CropBox,
    box_from_keypoints,
    box_from_mask,
    box_from_xyxy,
    cliff_bbox_info,
    crop_for_model,
    crop_image,
    normalize_crops,
    part_labels_to_one_hot,
    regressor_output_to_full_frame,
)

__all__ = [
    "REGRESSOR_NAMES",
    "MEAN_PARAMS_FILE_NAME",
    "OFFICIAL_CHECKPOINTS",
    "CheckpointMismatchError",
    "checkpoints_dir",
    "find_checkpoint",
    "find_mean_params",
    "list_checkpoints",
    "load_regressor",
    "load_state_dict_strict",
    "read_checkpoint",
    "save_nbf_checkpoint",
    "NBF_PART_NAMES",
    "SMPL_JOINT_TO_NBF_PART",
    "HMRRegressor",
    "CLIFFRegressor",
    "NBFRegressor",
    "build_hmr",
    "build_cliff_res50",
    "build_cliff_hr48",
    "build_nbf",
    "load_smpl_mean_params",
    "MODEL_INPUT_SIZE",
    "CropBox",
    "box_from_xyxy",
    "box_from_keypoints",
    "box_from_mask",
    "crop_image",
    "normalize_crops",
    "crop_for_model",
    "part_labels_to_one_hot",
    "cliff_bbox_info",
    "regressor_output_to_full_frame",
]
