"""Test utility: write a regressor checkpoint in the layout of an official released file.

The official weights cannot be downloaded here, so loader tests build a module, save its
weights the way the released file wraps them, and load that file back. The layout of each
released file is described by a manifest JSON in /work/shared/checkpoint_layouts/ (see its
README): `keys` = [name, shape, dtype] in state_dict order, and `checkpoint_wrapper` =
{state_dict_key, file_key_prefix, other_top_level_keys_possible, ...}.

Usage (from a test in tests/, which pytest puts on sys.path):

    from regressor_ckpt import layouts_dir, load_manifest, write_official_checkpoint
    manifest = load_manifest("cliff_res50")          # skips the test when the folder is absent
    written = write_official_checkpoint(model, tmp_path / "x.pt", manifest=manifest)

For PARE the manifest keys already carry "model." (the Lightning module's attribute), so pass
`module_key_prefix="model."`; `extra_state_dict_entries` adds non-network entries (trainer
buffers, SMPL buffers) inside the wrapped state dict, `extra_top_level` adds/overrides
top-level entries (epoch, optimizer_states, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "layouts_dir",
    "load_manifest",
    "manifest_mismatches",
    "assert_matches_manifest",
    "default_top_level_extras",
    "write_official_checkpoint",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32}


def layouts_dir() -> Path:
    """/work/shared/checkpoint_layouts, found relative to this file (tests/ -> repo -> parent)."""
    return Path(__file__).resolve().parents[2] / "shared" / "checkpoint_layouts"


def load_manifest(name: str | Path, skip_if_absent: bool = True) -> dict[str, Any]:
    """Read a manifest by name ("spin_hmr", "cliff_res50", "cliff_hr48", "pare_hrnet_w32") or path.

    When the file is absent and `skip_if_absent`, the calling test is skipped with a reason.
    """
    path = Path(name) if str(name).endswith(".json") else layouts_dir() / f"{name}.json"
    if not path.is_file():
        if skip_if_absent:
            import pytest

            pytest.skip(f"checkpoint layout manifest {path} is absent (shared project notes not mounted)")
        raise FileNotFoundError(f"checkpoint layout manifest not found: {path}")
    return json.loads(path.read_text())


def manifest_mismatches(
    state_dict: dict[str, torch.Tensor], manifest: dict[str, Any], module_key_prefix: str = ""
) -> list[str]:
    """Every difference between a state dict and a manifest's key list: names, order, shapes, dtypes.

    `module_key_prefix` is prepended to the state dict's names before comparing. Empty = match.
    """
    problems: list[str] = []
    expected = [(name, tuple(shape), dtype) for name, shape, dtype in manifest["keys"]]
    actual = [
        (module_key_prefix + k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state_dict.items()
    ]
    exp_names = [e[0] for e in expected]
    act_names = [a[0] for a in actual]
    missing = [n for n in exp_names if n not in set(act_names)]
    unexpected = [n for n in act_names if n not in set(exp_names)]
    if missing:
        problems.append(f"{len(missing)} manifest keys missing from the module, first: {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} module keys not in the manifest, first: {unexpected[:5]}")
    if not missing and not unexpected and exp_names != act_names:
        first = next(i for i, (a, b) in enumerate(zip(exp_names, act_names)) if a != b)
        problems.append(
            f"key order differs at index {first}: manifest {exp_names[first]!r}, module {act_names[first]!r}"
        )
    act_by_name = {a[0]: a for a in actual}
    for name, shape, dtype in expected:
        if name in act_by_name:
            _, a_shape, a_dtype = act_by_name[name]
            if a_shape != shape:
                problems.append(f"{name}: shape {list(a_shape)}, manifest {list(shape)}")
            if a_dtype != dtype:
                problems.append(f"{name}: dtype {a_dtype}, manifest {dtype}")
    return problems


def assert_matches_manifest(
    state_dict: dict[str, torch.Tensor], manifest: dict[str, Any], module_key_prefix: str = ""
) -> None:
    """Raise AssertionError listing (at most 20) differences between a state dict and a manifest."""
    problems = manifest_mismatches(state_dict, manifest, module_key_prefix)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(f"state dict does not match manifest ({len(problems)} problems):\n  {shown}")


def default_top_level_extras(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """Plausible values for the non-weight top-level entries an official file carries.

    SPIN's saver writes optimizer state, epoch, batch_idx, batch_size, dataset_perm and
    total_step_count beside 'model'; the values here only need to be of the right kind.
    """
    if manifest is None:
        return {}
    names = manifest.get("checkpoint_wrapper", {}).get("other_top_level_keys_possible", [])
    kinds: dict[str, Any] = {
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0, 1, 2]}]},
        "epoch": 3,
        "batch_idx": 1500,
        "batch_size": 64,
        "dataset_perm": torch.arange(8),
        "total_step_count": 1_000_000,
        "global_step": 1_000_000,
        "pytorch-lightning_version": "1.1.8",
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hyper_parameters": {},
    }
    return {name: kinds.get(name, 0) for name in names}


def write_official_checkpoint(
    module: nn.Module,
    path: str | Path,
    manifest: dict[str, Any] | None = None,
    *,
    state_dict_key: str | None = None,
    file_key_prefix: str | None = None,
    module_key_prefix: str = "",
    extra_top_level: dict[str, Any] | None = None,
    extra_state_dict_entries: dict[str, torch.Tensor] | None = None,
    check_manifest: bool = True,
) -> dict[str, torch.Tensor]:
    """torch.save `module`'s weights wrapped like the official file; return the saved state dict.

    Written: {state_dict_key: {file_key_prefix + module_key_prefix + name: tensor, ...,
    **extra_state_dict_entries}, **default_top_level_extras(manifest), **extra_top_level}.
    `state_dict_key` / `file_key_prefix` default to the manifest's `checkpoint_wrapper` values
    (pass them explicitly when no manifest is available). With `check_manifest` the module's
    state dict must equal the manifest's keys/shapes/dtypes/order, else AssertionError.
    """
    wrapper = (manifest or {}).get("checkpoint_wrapper", {})
    if state_dict_key is None:
        state_dict_key = wrapper.get("state_dict_key")
    if file_key_prefix is None:
        file_key_prefix = wrapper.get("file_key_prefix", "")
    if state_dict_key is None:
        raise ValueError("state_dict_key is unknown: pass a manifest or state_dict_key='model' (or 'state_dict')")
    module_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if manifest is not None and check_manifest:
        assert_matches_manifest(module_state, manifest, module_key_prefix)
    saved = {file_key_prefix + module_key_prefix + k: v for k, v in module_state.items()}
    if extra_state_dict_entries:
        saved.update(extra_state_dict_entries)
    payload: dict[str, Any] = {state_dict_key: saved}
    payload.update(default_top_level_extras(manifest))
    if extra_top_level:
        payload.update(extra_top_level)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return saved
