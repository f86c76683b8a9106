"""Finding and reading SMPL-family model files, without chumpy.

Model files are licensed downloads (https://smpl.is.tue.mpg.de, https://mano.is.tue.mpg.de,
https://smpl-x.is.tue.mpg.de); fitter never ships them. A user points at a file, or puts it
in one of the folder layouts people already have:

* smplx's `models/smpl/SMPL_NEUTRAL.pkl`, `models/smplh/SMPLH_MALE.pkl`, `models/smplx/SMPLX_NEUTRAL.npz`;
* SPIN / CLIFF's `data/smpl/SMPL_NEUTRAL.pkl` (and `data/SMPL_NEUTRAL.pkl`);
* the original download names, e.g. `basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`,
  `basicmodel_m_lbs_10_207_0_v1.1.0.pkl`, and AMASS's `smplh/neutral/model.npz`.

Searched folders, in order: an explicit `model_dir`, $FITTER_HOME/data/models,
$FITTER_HOME/data, and `models/`, `data/`, `body_models/` under the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fitter.io.pickle_compat import load_pickle
from fitter.paths import data_dir

__all__ = [
    "ModelNotFoundError",
    "MODEL_TYPES",
    "candidate_file_names",
    "search_folders",
    "find_model_file",
    "read_model_arrays",
    "detect_model_type",
    "convert_model_file",
    "list_model_files",
]

MODEL_TYPES = ("smpl", "smplh", "smplx")
REGISTER_URL = {
    "smpl": "https://smpl.is.tue.mpg.de",
    "smplh": "https://mano.is.tue.mpg.de",
    "smplx": "https://smpl-x.is.tue.mpg.de",
}
_GENDER_SHORT = {"neutral": "neutral", "male": "m", "female": "f"}


class ModelNotFoundError(FileNotFoundError):
    """A licensed body-model file is not where fitter looked (message is one line)."""


def candidate_file_names(model_type: str, gender: str) -> list[str]:
    """File names (relative paths) that hold `model_type` for `gender`, in preference order."""
    g = gender.upper()
    short = _GENDER_SHORT[gender]
    if model_type == "smpl":
        names = [f"SMPL_{g}.pkl", f"SMPL_{g}.npz"]
        for version in ("1.0.0", "1.1.0"):
            names += [
                f"basicModel_{short}_lbs_10_207_0_v{version}.pkl",
                f"basicmodel_{short}_lbs_10_207_0_v{version}.pkl",
            ]
        return names
    if model_type == "smplh":
        # MANO ships SMPLH_female.pkl / SMPLH_male.pkl (lower-case gender); AMASS uses <gender>/model.npz
        return [f"SMPLH_{g}.pkl", f"SMPLH_{gender}.pkl", f"SMPLH_{g}.npz", f"{gender}/model.npz"]
    if model_type == "smplx":
        return [f"SMPLX_{g}.npz", f"SMPLX_{g}.pkl"]
    raise ValueError(f"unknown body model type {model_type!r}; use one of {', '.join(MODEL_TYPES)} or 'anny'")


def search_folders(model_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for model files, in order (see module docstring)."""
    roots: list[Path] = []
    if model_dir is not None:
        roots.append(Path(model_dir))
    env = os.environ.get("SMPL_MODELS_DIR")
    if env:
        roots.append(Path(env))
    roots += [data_dir() / "models", data_dir(), Path.cwd() / "models", Path.cwd() / "data", Path.cwd() / "body_models"]
    return roots


def find_model_file(model_type: str, gender: str = "neutral", model_dir: str | Path | None = None) -> Path:
    """Locate the model file or raise ModelNotFoundError with a one-line message."""
    names = candidate_file_names(model_type, gender)
    roots = search_folders(model_dir)
    for root in roots:
        for sub in (model_type, ""):
            for name in names:
                path = root / sub / name
                if path.is_file():
                    return path
    looked = ", ".join(str(r) for r in roots)
    raise ModelNotFoundError(
        f"{model_type.upper()} {gender} model file ({' or '.join(names[:3])}) not found in {looked} "
        f"(each also with a '{model_type}/' subfolder); register and download it at {REGISTER_URL[model_type]}, "
        f"then put it in {data_dir() / 'models' / model_type} or pass its path"
    )


def read_model_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read a model file (.pkl, chumpy or not, or .npz) into plain numpy arrays.

    Sparse matrices (J_regressor) become dense; chumpy arrays become numpy; non-array entries
    (strings such as 'bs_type') are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"body model file {path} does not exist; check the path")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=True) as data:
            raw = {k: data[k] for k in data.files}
    elif path.suffix == ".pkl":
        raw = load_pickle(path)
        if not isinstance(raw, dict):
            raise ValueError(f"{path} is not an SMPL-family model pickle (it holds a {type(raw).__name__}, not a dict)")
    else:
        raise ValueError(f"{path}: body model files must be .pkl or .npz")
    arrays: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if hasattr(value, "toarray"):
            value = value.toarray()
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[key] = value
        elif isinstance(value, (list, tuple)):
            try:
                arr = np.asarray(value)
            except ValueError:
                continue
            if arr.dtype != object:
                arrays[key] = arr
    missing = [k for k in ("v_template", "shapedirs", "J_regressor", "weights", "f") if k not in arrays]
    if missing:
        raise ValueError(f"{path} is not an SMPL-family model file: missing {', '.join(missing)}")
    if "kintree_table" not in arrays:
        raise ValueError(f"{path} is not an SMPL-family model file: missing kintree_table")
    return arrays


def detect_model_type(arrays: dict[str, np.ndarray]) -> str:
    """'smplx', 'smplh' or 'smpl' (SMPL layout: SMPL itself and our built `anny`)."""
    joints = arrays["J_regressor"].shape[0]
    if joints == 55 or "lmk_faces_idx" in arrays:
        return "smplx"
    if joints == 52 or "hands_componentsl" in arrays:
        return "smplh"
    if joints == 24:
        return "smpl"
    raise ValueError(f"unsupported body model with {joints} joints (expected 24 SMPL, 52 SMPL-H or 55 SMPL-X)")


def convert_model_file(src: str | Path, dst: str | Path) -> Path:
    """Write a clean .npz (plain numpy, dense J_regressor) from any model file."""
    from fitter.io.atomic import atomic_save_npz

    dst = Path(dst)
    if dst.suffix != ".npz":
        raise ValueError(f"{dst}: the converted file must end in .npz")
    arrays = read_model_arrays(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(dst, **arrays)
    return dst


def list_model_files(model_dir: str | Path | None = None) -> list[tuple[str, str, Path]]:
    """Every SMPL-family model file found: (type, gender, path)."""
    found = []
    for model_type in MODEL_TYPES:
        for gender in ("neutral", "male", "female"):
            try:
                found.append((model_type, gender, find_model_file(model_type, gender, model_dir)))
            except ModelNotFoundError:
                pass
    return found
