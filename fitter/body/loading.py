"""`load_body_model`: the one entry point to every body model fitter speaks.

"anny" (default, free) is built from the `anny` package on first use (see anny_model.py);
"smpl", "smplh", "smplx" are looked up in the usual folders (see files.py); a path loads that
file. Files are read without chumpy and handed to smplx's own classes, whose buffers become
the explicit tensors of a `BodyModel`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from fitter.body.files import detect_model_type, find_model_file, read_model_arrays
from fitter.body.model import BodyModel
from fitter.paths import cache_dir

__all__ = ["load_body_model", "body_model_from_arrays"]

GENDERS = ("neutral", "male", "female")


def _smplx_module(model_type: str, arrays: dict[str, np.ndarray], path: Path, gender: str):
    import smplx
    from smplx.utils import Struct

    num_betas = int(min(10, arrays["shapedirs"].shape[-1]))
    if model_type == "smpl":
        return smplx.SMPL(str(path), data_struct=Struct(**arrays), num_betas=num_betas, gender=gender)
    if model_type == "smplh":
        return smplx.SMPLH(
            str(path), data_struct=Struct(**arrays), num_betas=num_betas, gender=gender,
            use_pca=False, flat_hand_mean=False,
        )  # fmt: skip
    # smplx.SMPLX only reads files (no data_struct) and pickle-loads .pkl: give it a clean npz.
    npz = path
    if path.suffix != ".npz":
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        npz = cache_dir("models", "converted") / f"{path.stem}_{digest}.npz"
        if not npz.exists():
            from fitter.io.atomic import atomic_save_npz

            atomic_save_npz(npz, **arrays)
    return smplx.SMPLX(
        str(npz), ext="npz", num_betas=num_betas, gender=gender, use_pca=False,
        flat_hand_mean=False, num_expression_coeffs=10,
    )  # fmt: skip


def _smpl_correspondence(model_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(smpl_joint_ids, body_to_full) for a model type; see BodyModel."""
    if model_type == "smpl":
        return torch.arange(24), torch.arange(24)
    from smplx.joint_names import JOINT_NAMES

    names = list(JOINT_NAMES)
    if model_type == "smplh":  # SMPL-H: 22 body joints then the hands (no jaw / eyes)
        names = names[:22] + names[25:55]
    hands = [names.index("left_middle1"), names.index("right_middle1")]
    smpl_joint_ids = torch.tensor(list(range(22)) + hands)
    body_to_full = torch.tensor(list(range(22)) + [-1, -1])
    return smpl_joint_ids, body_to_full


def body_model_from_arrays(
    arrays: dict[str, np.ndarray], path: Path, gender: str = "neutral", name: str | None = None
) -> BodyModel:
    """Build a BodyModel from SMPL-family arrays (as read by read_model_arrays)."""
    from fitter.geometry import axis_angle_to_matrix

    model_type = detect_model_type(arrays)
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints warnings about beta counts
        module = _smplx_module(model_type, arrays, Path(path), gender)
    smpl_joint_ids, body_to_full = _smpl_correspondence(model_type)
    hand_joint_ids = {"smplh": torch.arange(22, 52), "smplx": torch.arange(25, 55)}.get(model_type)
    rest = None
    if hasattr(module, "pose_mean"):
        rest = axis_angle_to_matrix(module.pose_mean.reshape(-1, 3).float())
    if name is None:
        meta = json.loads(str(arrays["meta_json"])) if "meta_json" in arrays else {}
        name = meta.get("source", model_type)
    face: dict = {}
    if model_type == "smplx":  # expression blend shapes, jaw joint, static face-landmark embedding
        from smplx.joint_names import JOINT_NAMES

        face = dict(expr_dirs=module.expr_dirs, jaw_joint_id=JOINT_NAMES.index("jaw"),
                    face_landmarks=(module.lmk_faces_idx, module.lmk_bary_coords))  # fmt: skip
    return BodyModel(
        name=name,
        v_template=module.v_template,
        shapedirs=module.shapedirs,
        posedirs=module.posedirs,
        J_regressor=module.J_regressor,
        lbs_weights=module.lbs_weights,
        parents=module.parents,
        faces=module.faces_tensor,
        gender=gender,
        smpl_joint_ids=smpl_joint_ids,
        body_to_full=body_to_full,
        rest_full_pose=rest,
        source=str(path),
        hand_joint_ids=hand_joint_ids,
        **face,
    )


def load_body_model(
    name_or_path: str | Path = "anny",
    gender: str = "neutral",
    device: str | torch.device = "cpu",
    model_dir: str | Path | None = None,
    progress=None,
) -> BodyModel:
    """Load a body model: "anny" (free default), "anny-hands" (anny with articulated fingers, SMPL-H
    layout), "smpl", "smplh", "smplx", or a file path.

    gender: "neutral", "male" or "female". Returns a BodyModel on `device` (float32).
    Raises ModelNotFoundError (one line: which file, where fitter looked, where to get it).
    """
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    key = str(name_or_path)
    if key.lower() == "anny":
        from fitter.body.anny_model import load_or_build_anny

        arrays, path = load_or_build_anny(gender, progress=progress)
        name = "anny"
    elif key.lower() == "anny-hands":
        from fitter.body.anny_hands import load_or_build_anny_hands

        arrays, path = load_or_build_anny_hands(gender, progress=progress)
        name = "anny-hands"
    elif key.lower() in ("smpl", "smplh", "smplx"):
        path = find_model_file(key.lower(), gender, model_dir)
        arrays = read_model_arrays(path)
        name = key.lower()
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise FileNotFoundError(
                f"body model {name_or_path!r} is neither a known name (anny, anny-hands, smpl, smplh, smplx) nor an existing file"
            )
        arrays = read_model_arrays(path)
        name = None
    model = body_model_from_arrays(arrays, path, gender=gender, name=name)
    if "coco_regressor" in arrays:  # anny's own COCO landmark regressor rides along
        model.register_buffer("coco_regressor", torch.as_tensor(arrays["coco_regressor"]).float())
        model.coco_regressor_labels = [str(x) for x in arrays["coco_regressor_labels"]]
    if "hand_joint_regressor" in arrays:  # anny-hands: finger joints from rigidly moving vertices
        model.register_buffer("hand_joint_regressor", torch.as_tensor(arrays["hand_joint_regressor"]).float())
    if "landmark_vertex_ids" in arrays:
        model.landmark_vertex_ids = {
            str(n): int(i) for n, i in zip(arrays["landmark_names"], arrays["landmark_vertex_ids"])
        }
    return model.to(device)
