"""SMPL / SMPL-H / SMPL-X files: chumpy-free reading, equality with smplx, lookup, the models CLI,
and BodyModel's fast path. Every model file is a small random stand-in from tests/model_files.py."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_files import (
    MIDDLE1_JOINTS,
    random_model_arrays,
    smplx_reference,
    write_model_npz,
    write_model_pickle,
)
from typer.testing import CliRunner

from fitter.body import BodyModel, ModelNotFoundError, find_model_file, load_body_model, read_model_arrays
from fitter.cli.main import app
from fitter.geometry import axis_angle_to_matrix

NUM_VERTICES = 200


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FITTER_HOME and the working directory set to empty temporary folders; returns the cwd."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("FITTER_HOME", str(home))
    monkeypatch.delenv("SMPL_MODELS_DIR", raising=False)
    monkeypatch.chdir(cwd)
    return cwd


def _random_inputs(batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """betas (B,10), body_pose (B,69), global_orient (B,3), transl (B,3): random, moderate angles."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(batch, 10, generator=gen),
        "body_pose": 0.4 * torch.randn(batch, 69, generator=gen),
        "global_orient": 0.8 * torch.randn(batch, 3, generator=gen),
        "transl": torch.randn(batch, 3, generator=gen),
    }


def _reference_output(model_type: str, reference, inputs: dict[str, torch.Tensor]):
    """smplx forward with zero hand / face pose; SMPL-H/X get only the 21 body joints' pose."""
    batch = inputs["betas"].shape[0]
    kwargs = dict(betas=inputs["betas"], global_orient=inputs["global_orient"], transl=inputs["transl"])
    if model_type == "smpl":
        kwargs["body_pose"] = inputs["body_pose"]
    else:
        kwargs["body_pose"] = inputs["body_pose"][:, :63]
        kwargs["left_hand_pose"] = torch.zeros(batch, 45)
        kwargs["right_hand_pose"] = torch.zeros(batch, 45)
    if model_type == "smplx":
        kwargs.update(
            expression=torch.zeros(batch, 10), jaw_pose=torch.zeros(batch, 3),
            leye_pose=torch.zeros(batch, 3), reye_pose=torch.zeros(batch, 3),
        )  # fmt: skip
    with torch.no_grad():
        return reference(**kwargs)


def _assert_matches_smplx(model: BodyModel, model_type: str, reference) -> None:
    inputs = _random_inputs(3)
    with torch.no_grad():
        ours = model(**inputs)
    ref = _reference_output(model_type, reference, inputs)
    torch.testing.assert_close(ours.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints[:, :22], ref.joints[:, :22], atol=1e-5, rtol=0)
    if model_type == "smpl":
        torch.testing.assert_close(ours.joints, ref.joints[:, :24], atol=1e-5, rtol=0)
    else:  # fitter's SMPL hand joints 22 / 23 are the model's left / right middle1 joints
        left, right = MIDDLE1_JOINTS[model_type]
        torch.testing.assert_close(ours.joints[:, 22], ref.joints[:, left], atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.joints[:, 23], ref.joints[:, right], atol=1e-5, rtol=0)


def _assert_same_model(a: BodyModel, b: BodyModel) -> None:
    inputs = _random_inputs(2, seed=5)
    with torch.no_grad():
        out_a, out_b = a(**inputs), b(**inputs)
    torch.testing.assert_close(out_a.vertices, out_b.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(out_a.joints, out_b.joints, atol=1e-6, rtol=0)
    assert torch.equal(a.faces, b.faces)


# ----------------------------------------------------------------------- reading files


def test_chumpy_smpl_pickle_loads_without_chumpy_and_equals_smplx(tmp_path: Path) -> None:
    arrays = random_model_arrays("smpl", NUM_VERTICES, seed=0)
    path = write_model_pickle(arrays, tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    raw = path.read_bytes()
    assert b"chumpy.ch\nCh" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw  # the real references
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")

    model = load_body_model(path)
    assert "chumpy" not in sys.modules
    assert model.num_vertices == NUM_VERTICES and model.num_betas == 10 and model.num_full_joints == 24
    assert model.parents.tolist() == [-1] + arrays["kintree_table"][0, 1:].tolist()
    assert torch.equal(model.faces, torch.as_tensor(arrays["f"]))
    read = read_model_arrays(path)
    assert read["J_regressor"].shape == (24, NUM_VERTICES) and "bs_type" not in read
    np.testing.assert_allclose(read["shapedirs"], arrays["shapedirs"], atol=1e-7)
    _assert_matches_smplx(model, "smpl", smplx_reference("smpl", arrays, path, batch_size=3))

    npz_model = load_body_model(write_model_npz(arrays, tmp_path / "SMPL_NEUTRAL.npz"))
    _assert_same_model(model, npz_model)


def test_models_convert_cli_writes_an_equivalent_npz(tmp_path: Path) -> None:
    arrays = random_model_arrays("smpl", NUM_VERTICES, seed=3)
    src = write_model_pickle(arrays, tmp_path / "basicmodel_m_lbs_10_207_0_v1.1.0.pkl")
    dst = tmp_path / "out" / "SMPL_MALE.npz"
    result = CliRunner().invoke(app, ["models", "convert", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    with np.load(dst, allow_pickle=False) as data:  # plain arrays only: no pickled objects
        assert data["J_regressor"].shape == (24, NUM_VERTICES)
        assert {"v_template", "shapedirs", "posedirs", "weights", "kintree_table", "f"} <= set(data.files)
    _assert_same_model(load_body_model(src), load_body_model(dst))

    bad = CliRunner().invoke(app, ["models", "convert", str(src), str(tmp_path / "out.txt")])
    assert bad.exit_code != 0 and ".npz" in bad.output


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_smplh_file_equals_smplx_smplh(tmp_path: Path, fmt: str) -> None:
    arrays = random_model_arrays("smplh", NUM_VERTICES, seed=7)
    if fmt == "pkl":
        path = write_model_pickle(arrays, tmp_path / "SMPLH_NEUTRAL.pkl")
    else:
        path = write_model_npz(arrays, tmp_path / "SMPLH_NEUTRAL.npz")
    model = load_body_model(path)
    assert model.num_full_joints == 52 and model.posedirs.shape == (51 * 9, NUM_VERTICES * 3)
    # body_pose[:, 63:69] (SMPL's hand joints) is ignored: the reference only gets 63 values.
    _assert_matches_smplx(model, "smplh", smplx_reference("smplh", arrays, path, batch_size=3))


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_smplx_file_equals_smplx_smplx(tmp_path: Path, fmt: str, isolated_home: Path) -> None:
    arrays = random_model_arrays("smplx", NUM_VERTICES, seed=11)
    npz = write_model_npz(arrays, tmp_path / "SMPLX_NEUTRAL.npz")
    path = npz if fmt == "npz" else write_model_pickle(arrays, tmp_path / "SMPLX_NEUTRAL.pkl", chumpy=False)
    model = load_body_model(path)
    assert model.num_full_joints == 55 and model.num_betas == 10
    _assert_matches_smplx(model, "smplx", smplx_reference("smplx", arrays, npz, batch_size=3))


def test_unreadable_files_give_clear_errors(tmp_path: Path) -> None:
    import pickle

    not_a_model = tmp_path / "list.pkl"
    not_a_model.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="not a dict"):
        read_model_arrays(not_a_model)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="missing"):
        read_model_arrays(partial)
    with pytest.raises(FileNotFoundError, match="neither a known name"):
        load_body_model(tmp_path / "nothing_here.pkl")
    with pytest.raises(ValueError, match="gender"):
        load_body_model(partial, gender="other")


# ----------------------------------------------------------------------- finding files


def test_lookup_smplx_layout_in_cwd(isolated_home: Path) -> None:
    arrays = random_model_arrays("smpl", 60, seed=2)
    path = write_model_pickle(arrays, isolated_home / "models" / "smpl" / "SMPL_NEUTRAL.pkl")
    assert find_model_file("smpl").resolve() == path.resolve()
    assert load_body_model("smpl").num_vertices == 60


def test_lookup_spin_data_layout_with_model_dir(isolated_home: Path, tmp_path: Path) -> None:
    arrays = random_model_arrays("smpl", 60, seed=2)
    path = write_model_pickle(arrays, tmp_path / "spin" / "data" / "smpl" / "SMPL_NEUTRAL.pkl")
    with pytest.raises(ModelNotFoundError):
        find_model_file("smpl")
    assert find_model_file("smpl", model_dir=tmp_path / "spin" / "data") == path
    # Run from a SPIN / CLIFF checkout: its data/ folder under the working directory is searched.
    in_cwd = write_model_pickle(arrays, isolated_home / "data" / "smpl" / "SMPL_NEUTRAL.pkl")
    assert find_model_file("smpl").resolve() == in_cwd.resolve()


def test_lookup_original_download_name_under_fitter_home(isolated_home: Path) -> None:
    import os

    home = Path(os.environ["FITTER_HOME"])
    arrays = random_model_arrays("smpl", 60, seed=2)
    path = write_model_pickle(arrays, home / "data" / "models" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    assert find_model_file("smpl", "neutral") == path
    with pytest.raises(ModelNotFoundError):
        find_model_file("smpl", "female")


def test_lookup_original_mano_smplh_name(isolated_home: Path) -> None:
    # The MANO download (mano_v1_2/models/) names its SMPL-H files SMPLH_female.pkl / SMPLH_male.pkl.
    arrays = random_model_arrays("smplh", 60, seed=2)
    path = write_model_pickle(arrays, isolated_home / "models" / "smplh" / "SMPLH_female.pkl")
    assert find_model_file("smplh", "female").resolve() == path.resolve()


def test_missing_smpl_file_gives_one_line_error(isolated_home: Path) -> None:
    import os

    home = Path(os.environ["FITTER_HOME"])
    with pytest.raises(ModelNotFoundError) as info:
        load_body_model("smpl")
    message = str(info.value)
    assert "\n" not in message
    assert "SMPL_NEUTRAL.pkl" in message and "https://smpl.is.tue.mpg.de" in message
    assert str(home / "data") in message and str(isolated_home / "models") in message


def test_cli_models_info_smpl_missing_exits_nonzero(isolated_home: Path) -> None:
    result = CliRunner().invoke(app, ["models", "info", "smpl"])
    assert result.exit_code != 0
    assert not isinstance(result.exception, ModelNotFoundError)  # handled, not a traceback
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "SMPL_NEUTRAL.pkl" in lines[0] and "https://smpl.is.tue.mpg.de" in lines[0]


def test_cli_models_info_reads_a_model_file(tmp_path: Path) -> None:
    path = write_model_npz(random_model_arrays("smpl", 60, seed=4), tmp_path / "SMPL_NEUTRAL.npz")
    result = CliRunner().invoke(app, ["models", "info", str(path)])
    assert result.exit_code == 0, result.output
    assert "60 vertices" in result.output and "24 joints" in result.output


# ----------------------------------------------------------------------- BodyModel posing


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BodyModel]:
    """Small random SMPL / SMPL-H / SMPL-X models (with pose blend shapes), read from npz files."""
    folder = tmp_path_factory.mktemp("small_models")
    models = {}
    for kind in ("smpl", "smplh", "smplx"):
        arrays = random_model_arrays(kind, NUM_VERTICES, seed=13)
        models[kind] = load_body_model(write_model_npz(arrays, folder / f"{kind}.npz"))
    return models


@pytest.mark.parametrize("kind", ["smpl", "smplh", "smplx"])
def test_forward_joints_equals_forward(small_models: dict[str, BodyModel], kind: str) -> None:
    model = small_models[kind]
    inputs = _random_inputs(4, seed=21)
    vertex_ids = torch.tensor([0, 5, 17, 17, NUM_VERTICES - 1])
    with torch.no_grad():
        full = model(**inputs)
        fast = model.forward_joints(**inputs, vertex_ids=vertex_ids)
    assert fast.vertices is None and fast.points.shape == (4, 5, 3)
    torch.testing.assert_close(fast.joints, full.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.points, full.vertices[:, vertex_ids], atol=1e-5, rtol=0)
    joints_only = model.forward_joints(**inputs)
    assert joints_only.points is None
    torch.testing.assert_close(joints_only.joints, full.joints, atol=1e-5, rtol=0)


def test_batch_equals_single_and_rotation_matrices_equal_axis_angle(small_models: dict[str, BodyModel]) -> None:
    model = small_models["smpl"]
    inputs = _random_inputs(3, seed=8)
    with torch.no_grad():
        batch = model(**inputs)
        for i in range(3):
            single = model(**{k: v[i : i + 1] for k, v in inputs.items()})
            torch.testing.assert_close(single.vertices[0], batch.vertices[i], atol=1e-6, rtol=0)
            torch.testing.assert_close(single.joints[0], batch.joints[i], atol=1e-6, rtol=0)
        as_matrices = model(
            betas=inputs["betas"],
            body_pose=axis_angle_to_matrix(inputs["body_pose"].reshape(3, 23, 3)),
            global_orient=axis_angle_to_matrix(inputs["global_orient"]).reshape(3, 1, 3, 3),
            transl=inputs["transl"],
        )
    torch.testing.assert_close(as_matrices.vertices, batch.vertices, atol=1e-6, rtol=0)
    # Fewer betas than the model has are zero-padded.
    with torch.no_grad():
        padded = model(betas=torch.cat([inputs["betas"][:, :4], torch.zeros(3, 6)], dim=1))
        short = model(betas=inputs["betas"][:, :4])
    torch.testing.assert_close(short.vertices, padded.vertices, atol=0, rtol=0)


def test_default_forward_is_rest_pose(small_models: dict[str, BodyModel]) -> None:
    model = small_models["smpl"]
    with torch.no_grad():
        rest = model()
    torch.testing.assert_close(rest.vertices[0], model.v_template, atol=1e-6, rtol=0)
    torch.testing.assert_close(rest.joints[0], model.J_regressor @ model.v_template, atol=1e-6, rtol=0)
