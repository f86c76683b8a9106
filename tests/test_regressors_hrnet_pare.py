"""HRNet backbones (CLIFF-hr48 encoder, PARE's HRNet-W32), PARE and its part-map self-attention.

No official weights can be downloaded here: modules get seeded random weights (BatchNorm
statistics included, so eval-mode BN is not the identity), are written in the official file
layout (tests/regressor_ckpt.py), loaded back through fitter's loaders into freshly built
modules, and must reproduce the outputs computed before saving. Key names/shapes/order are
checked against /work/shared/checkpoint_layouts (skipped when that folder is absent).
Inputs are small (64x64: HRNet needs multiples of 32) to keep the file fast.
"""

from __future__ import annotations

import math

import pytest
import torch
from regressor_ckpt import assert_matches_manifest, layouts_dir, load_manifest, write_official_checkpoint
from torch import nn

from fitter.geometry import rot6d_to_matrix
from fitter.regressors import CheckpointMismatchError, build_cliff_hr48, load_regressor
from fitter.regressors.checkpoints import load_pare
from fitter.regressors.hrnet import HRNetW32Pose, HRNetW48Classification
from fitter.regressors.pare import PareHead, PartMapSelfAttention, build_pare

ATOL = 1e-5
ATTENTION_KEYS = [  # the module's own parameter first, then its children's (state_dict order)
    ("head.part_self_attention.head_gates", (4,)),
    ("head.part_self_attention.query.weight", (24, 24)),
    ("head.part_self_attention.key.weight", (24, 24)),
]


def _manifest(name: str) -> dict | None:
    """The layout manifest, or None when the shared folder is absent (checks then use the wrapper only)."""
    return load_manifest(name) if (layouts_dir() / f"{name}.json").is_file() else None


@torch.no_grad()
def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Seeded weights everywhere, BN stats away from (0, 1); small scale keeps activations O(1)."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            continue
        noise = torch.rand(tensor.shape, generator=generator)
        if name.endswith("running_var") or (name.endswith("weight") and tensor.ndim == 1):
            tensor.copy_(0.5 + noise)
        elif name.endswith(("running_mean", "bias")) or tensor.ndim <= 2:
            tensor.copy_(0.2 * (noise - 0.5))
        else:  # conv / locally connected weights: uniform with std ~ 1/sqrt(fan_in)
            fan_in = tensor[0].numel() if tensor.ndim == 4 else tensor.shape[2]
            tensor.copy_((noise - 0.5) * math.sqrt(12.0 / fan_in))
    return module.eval()


def _assert_outputs_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], keys) -> None:
    for key in keys:
        assert actual[key].shape == expected[key].shape, key
        torch.testing.assert_close(actual[key], expected[key], atol=ATOL, rtol=0, msg=key)


# ----------------------------------------------------------------------------- HRNet-W48 / CLIFF


@pytest.fixture(scope="module")
def cliff_hr48() -> nn.Module:
    """One CLIFF-hr48 (79M floats) for the whole module, seeded."""
    return _randomise(build_cliff_hr48(), seed=1)


def test_cliff_hr48_state_dict_equals_manifest(cliff_hr48):
    manifest = load_manifest("cliff_hr48")
    state = cliff_hr48.state_dict()
    assert_matches_manifest(state, manifest)
    encoder_keys = [(k[len("encoder.") :], tuple(s)) for k, s, _ in manifest["keys"] if k.startswith("encoder.")]
    assert [(k, tuple(v.shape)) for k, v in cliff_hr48.encoder.state_dict().items()] == encoder_keys
    assert isinstance(cliff_hr48.encoder, HRNetW48Classification)


def test_hrnet_w48_features_and_input_checks(cliff_hr48):
    encoder = cliff_hr48.encoder
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 64, 64))
        single = encoder(torch.randn(1, 3, 64, 64))
    assert features.shape == (2, 2048) and single.shape == (1, 2048)
    assert torch.isfinite(features).all()
    assert (features >= 0).all() and features.std() > 0  # pooled after the final ReLU
    with pytest.raises(ValueError, match="multiples of 32"):
        encoder(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(N,3,H,W\)"):
        encoder(torch.randn(1, 1, 64, 64))


def test_cliff_hr48_official_checkpoint_reproduces_outputs(cliff_hr48, tmp_path):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    bbox_info = torch.tensor([[0.1, -0.2, 0.5], [-0.3, 0.05, -1.0]])
    with torch.no_grad():
        expected = cliff_hr48(images, bbox_info)
    path = tmp_path / "hr48-PA43.0_MJE69.0_MVE81.2_3dpw.pt"
    saved = write_official_checkpoint(
        cliff_hr48, path, _manifest("cliff_hr48"), state_dict_key="model", file_key_prefix="module."
    )
    assert all(k.startswith("module.") for k in saved) and "module.encoder.final_layer.0.weight" in saved
    loaded = load_regressor("cliff_hr48", path)
    assert isinstance(loaded.encoder, HRNetW48Classification)
    with torch.no_grad():
        actual = loaded(images, bbox_info)
    _assert_outputs_close(actual, expected, ("pred_rotmat", "pred_betas", "pred_cam"))


# ----------------------------------------------------------------------------- HRNet-W32 / PARE


@pytest.fixture(scope="module")
def pare() -> nn.Module:
    return _randomise(build_pare(), seed=2)


@pytest.fixture(scope="module")
def pare_images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def pare_outputs(pare, pare_images) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return pare(pare_images)


def test_pare_state_dict_equals_manifest(pare):
    manifest = load_manifest("pare_hrnet_w32")
    assert_matches_manifest(pare.state_dict(), manifest, module_key_prefix="model.")
    assert isinstance(pare.backbone, HRNetW32Pose)


def test_pare_output_shapes(pare, pare_outputs):
    assert pare.backbone.out_channels == 480
    with torch.no_grad():
        assert pare.backbone(torch.zeros(1, 3, 224, 224)).shape == (1, 480, 56, 56)
    out = pare_outputs
    assert out["pred_rotmat"].shape == (2, 24, 3, 3)
    assert out["pred_betas"].shape == (2, 10) and out["pred_cam"].shape == (2, 3)
    assert out["pred_segm_mask"].shape == (2, 25, 16, 16)
    assert out["pred_pose6d"].shape == (2, 144)
    rot = out["pred_rotmat"]
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(2, 24), atol=1e-5, rtol=0)


def test_pare_head_follows_the_part_attention_formula(pare):
    """Recompute the head from its weights with explicit einsums (background dropped, softmax over
    h*w, 128-ch features for pose, 64-ch features flattened channel-major for shape/cam)."""
    head = pare.head
    features = torch.randn(2, 480, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = head(features)
        segm = head.keypoint_final_layer(head.keypoint_deconv_layers(features))
        smpl128 = head.smpl_deconv_layers(features)
        smpl64 = head.smpl_final_layer(smpl128)
        attention = torch.softmax(segm[:, 1:].flatten(2), dim=-1)  # (N,24,hw)
        pooled128 = torch.einsum("njp,ncp->ncj", attention, smpl128.flatten(2))
        pooled64 = torch.einsum("njp,ncp->ncj", attention, smpl64.flatten(2))
        pose6d = torch.einsum("ncj,ocj->njo", pooled128, head.pose_mlp.weight[0, :, :, :, 0, 0])
        flat64 = pooled64.reshape(2, 64 * 24)
        betas = flat64 @ head.shape_mlp.weight.T + head.shape_mlp.bias
        cam = flat64 @ head.cam_mlp.weight.T + head.cam_mlp.bias
    torch.testing.assert_close(out["pred_segm_mask"], segm, atol=0, rtol=0)
    torch.testing.assert_close(out["pred_betas"], betas, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(out["pred_cam"], cam, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(out["pred_pose6d"], pose6d.reshape(2, 144), atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(out["pred_rotmat"], rot6d_to_matrix(pose6d), atol=ATOL, rtol=0)


def _lightning_extras() -> tuple[dict[str, torch.Tensor], dict]:
    """Non-network entries of a PARE Lightning file (README "PARE: also present, ignore"), small sizes."""
    in_state_dict = {
        "body_part_texture": torch.rand(1, 13776, 1, 1, 1, 3),
        "K": torch.eye(3)[None],
        "R": torch.eye(3)[None],
        "smpl_faces": torch.randint(0, 6890, (1, 13776, 3), dtype=torch.int32),
        "part_label_bins": torch.linspace(0, 1, 24),
        "J_regressor": torch.rand(17, 6890),
        "model.smpl.smpl.v_template": torch.rand(6890, 3),
        "model.smpl.smpl.shapedirs": torch.rand(6890, 3, 10),
        "model.smpl.smpl.J_regressor_extra": torch.rand(9, 6890),
        "model.smpl.smpl.faces_tensor": torch.zeros(13776, 3, dtype=torch.int64),
        "model.smpl.smpl.vertex_joint_selector.extra_joints_idxs": torch.arange(21),
        "model.smpl.smpl.betas": torch.zeros(1, 10),
        "smpl.betas": torch.zeros(64, 10),
        "smpl.global_orient": torch.zeros(64, 3),
        "smpl_native.v_template": torch.rand(6890, 3),
    }
    top_level = {
        "epoch": 14,
        "global_step": 123456,
        "pytorch-lightning_version": "1.1.8",
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 5e-5},
    }
    return in_state_dict, top_level


@pytest.fixture(scope="module")
def pare_checkpoint(pare, tmp_path_factory):
    in_state_dict, top_level = _lightning_extras()
    path = tmp_path_factory.mktemp("pare") / "pare_w_3dpw_checkpoint.ckpt"
    write_official_checkpoint(
        pare, path, _manifest("pare_hrnet_w32"), state_dict_key="state_dict", file_key_prefix="",
        module_key_prefix="model.", extra_state_dict_entries=in_state_dict, extra_top_level=top_level,
    )  # fmt: skip
    return path


def test_pare_lightning_checkpoint_reproduces_outputs(pare_checkpoint, pare_images, pare_outputs):
    payload = torch.load(pare_checkpoint, map_location="cpu", weights_only=True)
    assert "model.backbone.conv1.weight" in payload["state_dict"] and "smpl.betas" in payload["state_dict"]
    keys = ("pred_rotmat", "pred_betas", "pred_cam", "pred_pose6d", "pred_segm_mask")
    for loaded in (load_regressor("pare", pare_checkpoint), load_pare(pare_checkpoint)):
        assert not loaded.training and not loaded.uses_self_attention
        with torch.no_grad():
            _assert_outputs_close(loaded(pare_images), pare_outputs, keys)


def test_pare_loader_is_strict_on_network_keys(pare, tmp_path):
    path = tmp_path / "pare_missing_key.ckpt"
    weights = {f"model.{k}": v for k, v in pare.state_dict().items() if k != "head.pose_mlp.weight"}
    torch.save({"state_dict": weights, "epoch": 1}, path)
    with pytest.raises(CheckpointMismatchError, match="head.pose_mlp.weight"):
        load_pare(path)
    torch.save({"model": weights}, path)
    with pytest.raises(ValueError, match="state_dict"):
        load_pare(path)
    with pytest.raises(FileNotFoundError, match="PARE checkpoint not found"):
        load_pare(tmp_path / "absent.ckpt")


# ----------------------------------------------------------------------------- self-attention variant


def _gated(head: PareHead, gates: list[float]) -> PareHead:
    with torch.no_grad():
        head.part_self_attention.head_gates.copy_(torch.tensor(gates))
    return head


@pytest.fixture(scope="module")
def head_features() -> torch.Tensor:
    return torch.randn(2, 480, 8, 8, generator=torch.Generator().manual_seed(6))


def test_self_attention_variant_keys(pare):
    plain = list(pare.state_dict().items())
    attentive = build_pare(use_self_attention=True)
    state = list(attentive.state_dict().items())
    assert [(k, v.shape) for k, v in state[: len(plain)]] == [(k, v.shape) for k, v in plain]
    assert [(k, tuple(v.shape)) for k, v in state[len(plain) :]] == ATTENTION_KEYS
    assert attentive.uses_self_attention and not pare.uses_self_attention
    assert torch.equal(attentive.head.part_self_attention.head_gates, torch.zeros(4))  # starts as plain PARE


def test_self_attention_changes_outputs_only_through_the_part_maps(pare, head_features):
    attention = _randomise(PartMapSelfAttention(), seed=8)
    attentive_head = PareHead(self_attention=attention).eval()
    attentive_head.load_state_dict({**pare.head.state_dict(), **attention.state_dict(prefix="part_self_attention.")})
    with torch.no_grad():
        plain = pare.head(head_features)
        _gated(attentive_head, [0.0, 0.0, 0.0, 0.0])
        closed = attentive_head(head_features)
        _gated(attentive_head, [0.5, 0.25, 0.0, 0.25])
        opened = attentive_head(head_features)
    keys = ("pred_rotmat", "pred_betas", "pred_cam", "pred_segm_mask")
    for key in keys:  # zero gates: exactly plain PARE
        torch.testing.assert_close(closed[key], plain[key], atol=0, rtol=0)
    torch.testing.assert_close(opened["pred_segm_mask"], plain["pred_segm_mask"], atol=0, rtol=0)
    for key in ("pred_rotmat", "pred_betas", "pred_cam"):
        assert (opened[key] - plain[key]).abs().max() > 1e-4, key


def test_self_attention_matches_the_seed_formula():
    """1 head, gate 1: H~ = softmax(Q K^T / sqrt(D_k)) H with Q = H W_q, K = H W_k (seed 004);
    4 heads: H + sum_h g_h (A_h H - H)."""
    generator = torch.Generator().manual_seed(9)
    maps = torch.randn(2, 24, 6, 5, generator=generator)
    flat = maps.flatten(2).transpose(1, 2)  # (N, hw, J)
    single = _randomise(PartMapSelfAttention(num_heads=1, key_dim=6), 10)
    with torch.no_grad():
        single.head_gates.fill_(1.0)
        queries, keys = flat @ single.query.weight.T, flat @ single.key.weight.T
        attention = torch.softmax(queries @ keys.transpose(1, 2) / math.sqrt(6), dim=-1)
        expected = (attention @ flat).transpose(1, 2).reshape_as(maps)
        torch.testing.assert_close(single(maps), expected, atol=ATOL, rtol=0)
        multi = _randomise(PartMapSelfAttention(), 11)
        gates = torch.tensor([0.3, -0.2, 0.5, 0.1])
        multi.head_gates.copy_(gates)
        per_head = multi.attention_weights(maps)  # (N, 4, hw, hw)
        torch.testing.assert_close(per_head.sum(-1), torch.ones(2, 4, 30), atol=1e-6, rtol=0)
        corrected = (per_head @ flat[:, None]).transpose(-1, -2).reshape(2, 4, 24, 6, 5)
        expected = maps + (gates.reshape(1, 4, 1, 1, 1) * (corrected - maps[:, None])).sum(1)
        torch.testing.assert_close(multi(maps), expected, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"\(N, 24, h, w\)"):
        multi(torch.zeros(1, 25, 4, 4))


def test_self_attention_checkpoints(pare_checkpoint, pare_images, pare_outputs, tmp_path):
    keys = ("pred_rotmat", "pred_betas", "pred_cam", "pred_segm_mask")
    # A released (plain) PARE file into the variant: zero gates, PARE's outputs.
    from_plain = load_pare(pare_checkpoint, use_self_attention=True)
    assert from_plain.uses_self_attention
    with torch.no_grad():
        _assert_outputs_close(from_plain(pare_images), pare_outputs, keys)
    # A fine-tuned variant round-trips with its attention weights.
    _gated(from_plain.head, [0.4, 0.3, 0.2, 0.1])
    with torch.no_grad():
        from_plain.head.part_self_attention.query.weight.mul_(3.0)
        expected = from_plain(pare_images)
    path = tmp_path / "pare_self_attention.ckpt"
    write_official_checkpoint(
        from_plain, path, None, state_dict_key="state_dict", file_key_prefix="", module_key_prefix="model.",
        extra_top_level={"epoch": 2},
    )  # fmt: skip
    reloaded = load_pare(path, use_self_attention=True)
    with torch.no_grad():
        _assert_outputs_close(reloaded(pare_images), expected, keys)
    assert (expected["pred_betas"] - pare_outputs["pred_betas"]).abs().max() > 1e-4
    with pytest.raises(CheckpointMismatchError, match="use_self_attention=True"):
        load_pare(path)
