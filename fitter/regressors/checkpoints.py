"""Finding and loading regressor checkpoints (official SPIN / CLIFF / PARE files, fitter's NBF files).

Default folder: `fitter.paths.data_dir() / "checkpoints"` ($FITTER_HOME/data/checkpoints). The
official files keep their published names there:

| name        | file (published name)                                          | where it is published |
|-------------|----------------------------------------------------------------|-----------------------|
| hmr         | model_checkpoint.pt                                            | SPIN fetch_data.sh: http://visiondata.cis.upenn.edu/spin/model_checkpoint.pt |
| cliff_res50 | res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt (any res50*.pt)           | CLIFF README, Google Drive folder 1EmSZwaDULhT9m1VvH7YOpCXwBWgYrgwP |
| cliff_hr48  | hr48-PA43.0_MJE69.0_MVE81.2_3dpw.pt (any hr48*.pt)             | same Google Drive folder |
| pare        | pare_w_3dpw_checkpoint.ckpt or pare_checkpoint.ckpt            | PARE scripts/prepare_data.sh: gdown 1qIq0CBBj-O6wVc9nJXG-JDEtWPzRQ4KC (pare-github-data.zip, data/pare/checkpoints/) |
| nbf         | nbf_checkpoint.pt (any nbf*.pt)                                | none: train one (fitter's own format) |
| (mean)      | smpl_mean_params.npz                                           | SPIN data.tar.gz (http://visiondata.cis.upenn.edu/spin/data.tar.gz) |

How each file wraps its weights (see /work/shared/checkpoint_layouts/README.md):
- SPIN: {'model': state_dict, 'optimizer': ..., 'epoch', 'batch_idx', 'batch_size',
  'dataset_perm', 'total_step_count'}; keys without prefix.
- CLIFF: {'model': state_dict}; keys may carry DataParallel's 'module.' (stripped when any key has it).
- PARE (Lightning): {'state_dict': {'model.backbone.*', 'model.head.*', plus SMPL/trainer buffers}, ...};
  'model.' is stripped and entries that belong to no part of the network are ignored.
- NBF (fitter): {'model': state_dict, 'config': NBFRegressor.config} (write with `save_nbf_checkpoint`).
The network modules (`heads`, `pare`) never import this one; it builds them by name.
Weights are loaded strictly: any missing/unexpected key or shape mismatch raises
`CheckpointMismatchError` with counts and the first names.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fitter.paths import data_dir

if TYPE_CHECKING:  # the architectures are imported only when built
    from fitter.regressors.pare import PARERegressor

__all__ = [
    "REGRESSOR_NAMES",
    "MEAN_PARAMS_FILE_NAME",
    "OfficialCheckpoint",
    "OFFICIAL_CHECKPOINTS",
    "CheckpointMismatchError",
    "checkpoints_dir",
    "find_checkpoint",
    "find_mean_params",
    "list_checkpoints",
    "read_checkpoint",
    "extract_state_dict",
    "load_state_dict_strict",
    "load_regressor",
    "save_nbf_checkpoint",
    "pare_state_dict_from_checkpoint",
    "load_pare",
]

REGRESSOR_NAMES = ("hmr", "cliff_res50", "cliff_hr48", "pare", "nbf")
MEAN_PARAMS_FILE_NAME = "smpl_mean_params.npz"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """Where a regressor's weights come from: published file names (preferred first), fallback
    glob patterns, the top-level entry holding the state dict, and where the file is published."""

    name: str
    file_names: tuple[str, ...]
    patterns: tuple[str, ...]
    state_dict_key: str
    published_at: str


OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    "hmr": OfficialCheckpoint(
        "hmr", ("model_checkpoint.pt",), (), "model",
        "SPIN (nkolot/SPIN fetch_data.sh): http://visiondata.cis.upenn.edu/spin/model_checkpoint.pt",
    ),
    "cliff_res50": OfficialCheckpoint(
        "cliff_res50", ("res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt",), ("res50*.pt",), "model",
        "CLIFF README (huawei-noah/noah-research/CLIFF): Google Drive folder "
        "https://drive.google.com/drive/folders/1EmSZwaDULhT9m1VvH7YOpCXwBWgYrgwP",
    ),
    "cliff_hr48": OfficialCheckpoint(
        "cliff_hr48", ("hr48-PA43.0_MJE69.0_MVE81.2_3dpw.pt",), ("hr48*.pt",), "model",
        "CLIFF README (huawei-noah/noah-research/CLIFF): Google Drive folder "
        "https://drive.google.com/drive/folders/1EmSZwaDULhT9m1VvH7YOpCXwBWgYrgwP",
    ),
    "pare": OfficialCheckpoint(
        "pare", ("pare_w_3dpw_checkpoint.ckpt", "pare_checkpoint.ckpt"), ("pare*.ckpt",), "state_dict",
        "PARE (mkocabas/PARE scripts/prepare_data.sh): Google Drive file id 1qIq0CBBj-O6wVc9nJXG-JDEtWPzRQ4KC "
        "(pare-github-data.zip, data/pare/checkpoints/)",
    ),
    "nbf": OfficialCheckpoint(
        "nbf", ("nbf_checkpoint.pt",), ("nbf*.pt",), "model",
        "no official PyTorch weights exist (the TF1 release links are dead): train one and save it with "
        "fitter.regressors.save_nbf_checkpoint",
    ),
}  # fmt: skip


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the module (missing / unexpected keys, wrong shapes)."""


def checkpoints_dir() -> Path:
    """The documented default folder for regressor checkpoints: $FITTER_HOME/data/checkpoints."""
    return data_dir() / "checkpoints"


def _check_name(name: str) -> str:
    key = name.strip().lower()
    if key not in OFFICIAL_CHECKPOINTS:
        raise ValueError(f"unknown regressor {name!r}: choose one of {', '.join(REGRESSOR_NAMES)}")
    return key


def find_checkpoint(name: str, search_dirs: list[Path] | None = None) -> Path | None:
    """The checkpoint file for `name` in the default folder (or `search_dirs`), or None.

    Exact published names win over the fallback patterns; among pattern matches the first in
    sorted order is taken.
    """
    info = OFFICIAL_CHECKPOINTS[_check_name(name)]
    folders = [checkpoints_dir()] if search_dirs is None else [Path(d) for d in search_dirs]
    for folder in folders:
        for file_name in info.file_names:
            if (folder / file_name).is_file():
                return folder / file_name
    for folder in folders:
        for pattern in info.patterns:
            matches = sorted(p for p in folder.glob(pattern) if p.is_file())
            if matches:
                return matches[0]
    return None


def find_mean_params(search_dirs: list[Path] | None = None) -> Path | None:
    """`smpl_mean_params.npz` in the checkpoints folder (or `search_dirs`), or None."""
    folders = [checkpoints_dir()] if search_dirs is None else [Path(d) for d in search_dirs]
    for folder in folders:
        if (folder / MEAN_PARAMS_FILE_NAME).is_file():
            return folder / MEAN_PARAMS_FILE_NAME
    return None


def list_checkpoints(search_dirs: list[Path] | None = None) -> list[tuple[str, Path | None]]:
    """Every known regressor name (and "smpl_mean_params") with its file, None when not present.

    For `fitter models list`; `OFFICIAL_CHECKPOINTS[name].published_at` says where to get a missing one.
    """
    rows: list[tuple[str, Path | None]] = [(name, find_checkpoint(name, search_dirs)) for name in REGRESSOR_NAMES]
    rows.append(("smpl_mean_params", find_mean_params(search_dirs)))
    return rows


def read_checkpoint(path: str | Path, allow_unsafe_pickle: bool = True) -> Any:
    """torch.load a checkpoint onto the CPU, weights-only first.

    Files whose extras need full unpickling (e.g. a Lightning file's hyper-parameter objects) are
    re-read with weights_only=False when `allow_unsafe_pickle` (with a warning: only do this for
    files from a source you trust), else a ValueError says so.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not allow_unsafe_pickle:
            raise ValueError(
                f"{path} holds objects beyond tensors and cannot be read weights-only; pass "
                "allow_unsafe_pickle=True if you trust the file"
            ) from error
        warnings.warn(
            f"{path}: not loadable weights-only; unpickling it fully (trust this file only if you know its source)",
            stacklevel=2,
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def _strip_prefix_if_present(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIFF's rule: when any key starts with `prefix`, drop it from every key that has it."""
    if not any(k.startswith(prefix) for k in state_dict):
        return dict(state_dict)
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def extract_state_dict(checkpoint: Any, name: str, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The network weights of an official (or fitter NBF) checkpoint object, keys as the module names them.

    hmr/cliff/nbf: checkpoint['model'] (a bare state dict is accepted too), 'module.' stripped.
    pare: checkpoint['state_dict'], only 'model.*' entries, 'model.' stripped (non-network entries
    are dropped later by `load_regressor`).
    """
    info = OFFICIAL_CHECKPOINTS[_check_name(name)]
    if isinstance(checkpoint, dict) and info.state_dict_key in checkpoint:
        state_dict = checkpoint[info.state_dict_key]
    elif _is_state_dict(checkpoint):
        state_dict = checkpoint
    else:
        found = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{source} is not a {info.name} checkpoint: expected a dict with '{info.state_dict_key}' "
            f"(the official layout), found {found}"
        )
    if not isinstance(state_dict, dict):
        raise ValueError(f"{source}: '{info.state_dict_key}' is a {type(state_dict).__name__}, expected a state dict")
    state_dict = {k: v for k, v in state_dict.items() if torch.is_tensor(v)}
    if info.name == "pare":
        return {k[len("model.") :]: v for k, v in state_dict.items() if k.startswith("model.")}
    return _strip_prefix_if_present(state_dict, "module.")


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """module.load_state_dict(strict=True), raising one readable CheckpointMismatchError on any mismatch."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} file {list(v.shape)} vs model {list(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:4])})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatches (first: {'; '.join(wrong_shape[:3])})")
        raise CheckpointMismatchError(
            f"{source} does not fit {type(module).__name__} ({len(expected)} keys): {'; '.join(parts)}. "
            "Is it the right file for this regressor name?"
        )
    module.load_state_dict(state_dict, strict=True)


def _missing_checkpoint_error(name: str, path: Path | None) -> FileNotFoundError:
    info = OFFICIAL_CHECKPOINTS[name]
    if path is not None:
        return FileNotFoundError(
            f"{name} checkpoint not found: {path} "
            f"(expected file {info.file_names[0]}; published at: {info.published_at})"
        )
    return FileNotFoundError(
        f"no {name} checkpoint: looked for {' / '.join(info.file_names)} in {checkpoints_dir()} "
        f"(put it there or pass checkpoint_path); published at: {info.published_at}"
    )


def _build(name: str, config: dict | None) -> nn.Module:
    from fitter.regressors import heads

    if name == "hmr":
        return heads.build_hmr()
    if name == "cliff_res50":
        return heads.build_cliff_res50()
    if name == "cliff_hr48":
        return heads.build_cliff_hr48()
    if name == "nbf":
        return heads.build_nbf(config)
    from fitter.regressors.pare import build_pare

    return build_pare()


def _drop_non_network_entries(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """PARE's Lightning file also stores SMPL/trainer buffers under 'model.'; keep the module's parts only."""
    roots = {k.split(".", 1)[0] for k in module.state_dict()}
    return {k: v for k, v in state_dict.items() if k.split(".", 1)[0] in roots}


def load_regressor(
    name: str,
    checkpoint_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    allow_unsafe_pickle: bool = True,
) -> nn.Module:
    """Build regressor `name` ("hmr", "cliff_res50", "cliff_hr48", "pare", "nbf"), load its weights
    strictly, move it to `device`, and return it in eval mode.

    checkpoint_path None: `find_checkpoint(name)` in $FITTER_HOME/data/checkpoints. Missing file ->
    FileNotFoundError naming the file, the folder and where it is published; weights that do not
    fit -> CheckpointMismatchError. The module's forward takes ImageNet-normalised crops (N,3,H,W)
    (+ bbox_info (N,3) for CLIFF; one-hot part maps for NBF) and returns a dict with pred_rotmat
    (N,24,3,3), pred_betas (N,10), pred_cam (N,3).
    """
    key = _check_name(name)
    if checkpoint_path is None:
        path = find_checkpoint(key)
        if path is None:
            raise _missing_checkpoint_error(key, None)
    else:
        path = Path(checkpoint_path).expanduser()
        if not path.is_file():
            raise _missing_checkpoint_error(key, path)
    checkpoint = read_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    state_dict = extract_state_dict(checkpoint, key, source=str(path))
    config = checkpoint.get("config") if key == "nbf" and isinstance(checkpoint, dict) else None
    module = _build(key, config)
    if key == "pare":
        state_dict = _drop_non_network_entries(module, state_dict)
    load_state_dict_strict(module, state_dict, source=str(path))
    return module.to(device).eval()


def save_nbf_checkpoint(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write fitter's NBF format {'model': state_dict, 'config': model.config, **extra}; returns the path."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError(f"{type(model).__name__} has no 'config' dict: pass an NBFRegressor")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"model": model.state_dict(), "config": dict(config)}
    payload.update(extra or {})
    torch.save(payload, path)
    return path


def pare_state_dict_from_checkpoint(checkpoint: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The network weights of a PARE Lightning checkpoint: `state_dict`'s `model.backbone.*` and
    `model.head.*` entries with `model.` removed. Trainer buffers (K, R, smpl_faces, ...), the SMPL
    models (`model.smpl.*`, `smpl.*`, `smpl_native.*`) and Lightning metadata are dropped.
    """
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        found = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{source} is not a PARE Lightning checkpoint: expected a dict with 'state_dict', found {found}"
        )
    prefixes = ("model.backbone.", "model.head.")
    weights = {k[len("model.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefixes)}
    if not weights:
        raise ValueError(f"{source}: 'state_dict' has no 'model.backbone.*' / 'model.head.*' entries (not a PARE file)")
    return weights


def load_pare(
    checkpoint_path: str | Path,
    use_self_attention: bool = False,
    device: str | torch.device = "cpu",
    allow_unsafe_pickle: bool = True,
    **build_kwargs: Any,
) -> PARERegressor:
    """Build PARE (optionally with part-map self-attention), load a Lightning checkpoint, eval mode.

    Backbone/head keys are loaded strictly (CheckpointMismatchError on any missing, unexpected or
    mis-shaped key). With `use_self_attention`, the file either holds all
    `head.part_self_attention.*` keys (a fine-tuned variant) or none (a released PARE file: the
    attention keeps its zero gates, so outputs equal PARE's); a partial set is an error.
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"PARE checkpoint not found: {path} (the released file is pare_w_3dpw_checkpoint.ckpt from "
            "PARE's scripts/prepare_data.sh)"
        )
    from fitter.regressors.pare import SELF_ATTENTION_KEY, build_pare

    weights = pare_state_dict_from_checkpoint(read_checkpoint(path, allow_unsafe_pickle), source=str(path))
    model = build_pare(use_self_attention=use_self_attention, **build_kwargs)
    attention_prefix = f"head.{SELF_ATTENTION_KEY}."
    if use_self_attention and not any(k.startswith(attention_prefix) for k in weights):
        # Released PARE weights: load into everything but the (zero-gated) attention.
        attention_state = {k: v for k, v in model.state_dict().items() if k.startswith(attention_prefix)}
        weights = {**weights, **attention_state}
    elif not use_self_attention and any(k.startswith(attention_prefix) for k in weights):
        raise CheckpointMismatchError(
            f"{path} holds part self-attention weights ({attention_prefix}*): load it with use_self_attention=True"
        )
    load_state_dict_strict(model, weights, source=str(path))
    return model.to(device).eval()
