"""NBF training on synthetic part maps (fitter.training.nbf) and the `train nbf` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fitter.regressors import find_checkpoint, load_regressor
from fitter.regressors.heads import global_to_local_rotations
from fitter.training.nbf import NBFTrainConfig, default_nbf_path, nbf_losses, sample_nbf_batch, train_nbf


@pytest.fixture(scope="module")
def batch(anny_model):
    return sample_nbf_batch(anny_model, 4, 32, torch.Generator().manual_seed(0))


def test_sample_batch_shapes_and_exact_targets(anny_model, batch):
    assert batch.part_maps.shape == (4, 12, 32, 32)
    assert set(torch.unique(batch.part_maps).tolist()) <= {0.0, 1.0}
    assert batch.part_maps.sum(1).max() == 1  # one part per pixel at most
    assert (batch.part_maps.sum((2, 3)) > 0).sum(1).min() >= 6  # most parts visible
    eye = torch.eye(3).expand(4, 24, 3, 3)
    torch.testing.assert_close(batch.global_rotmat @ batch.global_rotmat.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    # the crop box comes from the COCO-17 points (no hands): joints lie in it, hands a little outside at most
    assert batch.joints2d.abs().max() < 1.5 and (batch.joints2d.abs() < 1.0).float().mean() > 0.9
    torch.testing.assert_close(batch.joints3d[:, 0], torch.zeros(4, 3))
    # predicting the truth costs ~0: the targets and the loss agree (2D: weak vs full perspective)
    truth = {
        "pred_global_rotmat": batch.global_rotmat,
        "pred_rotmat": global_to_local_rotations(batch.global_rotmat),
        "pred_betas": batch.betas,
        "pred_cam": batch.crop_cam,
    }
    terms = nbf_losses(truth, batch, anny_model, NBFTrainConfig())
    assert terms["rotation"] < 1e-10 and terms["betas"] < 1e-10 and terms["joints3d"] < 1e-8
    assert terms["joints2d"] < 0.05


def test_split_inputs(anny_model):
    split = sample_nbf_batch(anny_model, 2, 32, torch.Generator().manual_seed(1), input_kind="split")
    assert split.part_maps.shape == (2, 12, 32, 32) and split.part_maps.sum() > 50
    with pytest.raises(ValueError, match="input_kind"):
        sample_nbf_batch(anny_model, 2, 32, torch.Generator(), input_kind="photo")


def test_training_lowers_loss_and_writes_loadable_checkpoint(anny_model, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    config = NBFTrainConfig(steps=6, batch_size=4, resolution=32, lr=1e-4)
    net, record = train_nbf(anny_model, config, out_path=None, fixed_batch=batch)
    history = record["loss_history"]
    print("fixed-batch loss:", [round(v, 3) for v in history])
    assert len(history) == 6 and np.mean(history[-2:]) < 0.8 * history[0]
    path = default_nbf_path("anny")
    assert record["path"] == str(path) and path.name == "nbf_anny.pt" and path.is_file()
    assert find_checkpoint("nbf") == path
    loaded = load_regressor("nbf", path)
    with torch.no_grad():
        ours, theirs = net(batch.part_maps), loaded(batch.part_maps)
    torch.testing.assert_close(ours["pred_rotmat"], theirs["pred_rotmat"])
    torch.testing.assert_close(ours["pred_cam"], theirs["pred_cam"])
    from fitter.init.regressor_init import nbf_checkpoint_info

    info = nbf_checkpoint_info(path)
    assert info["input_size"] == (32, 32) and info["body_model"] == "anny"


def test_train_config_errors(anny_model, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        train_nbf(anny_model, NBFTrainConfig(steps=1, resolution=16), out_path=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="input_kind"):
        train_nbf(anny_model, NBFTrainConfig(steps=1, input_kind="photo"), out_path=tmp_path / "x.pt")


def test_train_nbf_command(tmp_path):
    from fitter.cli.train import app

    out = tmp_path / "nbf_cli.pt"
    runner = CliRunner()
    result = runner.invoke(app, ["nbf", "--steps", "1", "--batch-size", "2", "--resolution", "32", "--out", str(out),
                                 "--threads", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output
    assert type(load_regressor("nbf", out)).__name__ == "NBFRegressor"
    bad = runner.invoke(app, ["nbf", "--input", "photo", "--out", str(tmp_path / "y.pt")])
    assert bad.exit_code == 1 and "--input must be one of" in bad.output
