"""Body models: the SMPL-layout `BodyModel`, loaders for SMPL / SMPL-H / SMPL-X files and the
free default `anny`."""

from fitter.body.files import ModelNotFoundError, convert_model_file, find_model_file, read_model_arrays
from fitter.body.loading import body_model_from_arrays, load_body_model
from fitter.body.model import SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModel, BodyOutput

__all__ = [
    "BodyModel",
    "BodyOutput",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "ModelNotFoundError",
    "load_body_model",
    "body_model_from_arrays",
    "find_model_file",
    "read_model_arrays",
    "convert_model_file",
]
