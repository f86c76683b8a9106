"""HMR (SPIN), CLIFF res50 and NBF regressors: official layouts, loading, preprocessing, conversions.

The official weights cannot be downloaded here: each loader test builds a module, writes its
weights in the official file layout (tests/regressor_ckpt.py), loads the file with
`load_regressor` into a freshly (differently) seeded module and compares outputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from regressor_ckpt import (
    assert_matches_manifest,
    layouts_dir,
    load_manifest,
    manifest_mismatches,
    write_official_checkpoint,
)

from fitter.geometry import axis_angle_to_matrix, perspective_project, rotation_about
from fitter.regressors import (
    NBF_PART_NAMES,
    SMPL_JOINT_TO_NBF_PART,
    CheckpointMismatchError,
    CropBox,
    box_from_keypoints,
    box_from_mask,
    box_from_xyxy,
    build_cliff_res50,
    build_hmr,
    build_nbf,
    cliff_bbox_info,
    crop_for_model,
    crop_image,
    find_checkpoint,
    list_checkpoints,
    load_regressor,
    load_smpl_mean_params,
    part_labels_to_one_hot,
    regressor_output_to_full_frame,
    save_nbf_checkpoint,
)
from fitter.regressors.checkpoints import extract_state_dict, load_state_dict_strict
from fitter.regressors.heads import global_to_local_rotations
from fitter.regressors.preprocess import crop_to_full_points, full_to_crop_points

SPIN_EXTRAS = ["optimizer", "epoch", "batch_idx", "batch_size", "dataset_perm", "total_step_count"]


def _manifest_or_none(name: str):
    return load_manifest(name, skip_if_absent=False) if (layouts_dir() / f"{name}.json").is_file() else None


def _randomise_weights(model: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm random affine weights and running stats (so buffers matter too) and the
    decoders visible weights. Keeps eval outputs O(1): the last BN of each residual block is damped,
    otherwise SPIN's random conv init compounds to ~1e6 through the 16 blocks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_((torch.rand(c, generator=gen) + 0.5) * (0.2 if name.endswith("bn3") else 1.0))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(seed)
            elif isinstance(m, torch.nn.Linear) and m.out_features <= 157:  # decpose/decshape/deccam, NBF fc
                m.weight.normal_(0.0, 0.05, generator=gen)


def _assert_same_weights(loaded: torch.nn.Module, saved: torch.nn.Module) -> None:
    loaded_state = loaded.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded_state[key].cpu(), value), key


def _outputs(model, *inputs):
    with torch.no_grad():
        out = model(*inputs)
    return {k: out[k].clone() for k in ("pred_rotmat", "pred_betas", "pred_cam")}


def _assert_outputs_equal(a, b, atol=1e-5):
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=f"{key} differs")


# --------------------------------------------------------------------------------------------
# layouts


@pytest.mark.parametrize("name,builder", [("spin_hmr", build_hmr), ("cliff_res50", build_cliff_res50)])
def test_state_dict_matches_official_manifest(name, builder):
    manifest = load_manifest(name)  # skips when the shared layouts are absent
    torch.manual_seed(0)
    state = builder().state_dict()
    assert_matches_manifest(state, manifest)  # names, order, shapes, dtypes
    assert len(state) == manifest["num_keys"] == 331
    # the checker itself notices a dropped key and a wrong shape
    broken = dict(state)
    broken.pop("fc2.bias")
    broken["deccam.bias"] = torch.zeros(4)
    problems = manifest_mismatches(broken, manifest)
    assert any("missing" in p and "fc2.bias" in p for p in problems)
    assert any(p.startswith("deccam.bias: shape [4]") for p in problems)


def test_write_official_checkpoint_generic_layout(tmp_path):
    """The shared test utility: prefixes, extra entries, manifest check (PARE-style 'model.' keys)."""
    module = torch.nn.Sequential(torch.nn.Linear(2, 3))
    manifest = {
        "checkpoint_wrapper": {"state_dict_key": "state_dict", "file_key_prefix": "",
                               "other_top_level_keys_possible": ["epoch"]},
        "keys": [["model.0.weight", [3, 2], "float32"], ["model.0.bias", [3], "float32"]],
    }  # fmt: skip
    saved = write_official_checkpoint(
        module, tmp_path / "x.ckpt", manifest, module_key_prefix="model.",
        extra_state_dict_entries={"smpl.betas": torch.zeros(1, 10)}, extra_top_level={"global_step": 7},
    )  # fmt: skip
    loaded = torch.load(tmp_path / "x.ckpt", weights_only=True)
    assert sorted(loaded) == ["epoch", "global_step", "state_dict"]
    assert list(loaded["state_dict"]) == ["model.0.weight", "model.0.bias", "smpl.betas"]
    assert list(saved) == list(loaded["state_dict"])
    torch.testing.assert_close(loaded["state_dict"]["model.0.weight"], module[0].weight)
    with pytest.raises(AssertionError, match="missing"):
        write_official_checkpoint(module, tmp_path / "y.ckpt", manifest)  # no prefix -> names differ


# --------------------------------------------------------------------------------------------
# loading official layouts


def test_hmr_spin_checkpoint_roundtrip(tmp_path):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(10)
    model = build_hmr()
    _randomise_weights(model, 11)
    model.eval()
    expected = _outputs(model, images)
    path = tmp_path / "model_checkpoint.pt"
    spin_extras = {
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0]}]},
        "epoch": 3,
        "batch_idx": 10,
        "batch_size": 64,
        "dataset_perm": torch.arange(5),
        "total_step_count": 99,
    }
    write_official_checkpoint(model, path, _manifest_or_none("spin_hmr"), state_dict_key="model",
                              file_key_prefix="", extra_top_level=spin_extras)  # fmt: skip

    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", *SPIN_EXTRAS}
    assert not any(k.startswith("module.") for k in raw["model"])

    torch.manual_seed(99)  # load into a differently initialised module: the weights must come from the file
    assert not torch.equal(build_hmr().fc1.weight, model.fc1.weight)
    torch.manual_seed(99)
    loaded = load_regressor("hmr", path)
    assert not loaded.training
    _assert_same_weights(loaded, model)
    got = _outputs(loaded, images)
    _assert_outputs_equal(got, expected)
    assert got["pred_rotmat"].shape == (2, 24, 3, 3) and got["pred_betas"].shape == (2, 10)
    eye = torch.eye(3).expand(2, 24, 3, 3)
    torch.testing.assert_close(got["pred_rotmat"] @ got["pred_rotmat"].transpose(-1, -2), eye, atol=1e-5, rtol=0)


def test_cliff_res50_checkpoint_roundtrip_with_module_prefix(tmp_path):
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(1, 3, 256, 192, generator=gen)
    bbox_info = torch.randn(1, 3, generator=gen)
    torch.manual_seed(20)
    model = build_cliff_res50()
    _randomise_weights(model, 21)
    model.eval()
    expected = _outputs(model, images, bbox_info)
    path = tmp_path / "res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt"
    write_official_checkpoint(model, path, _manifest_or_none("cliff_res50"), state_dict_key="model",
                              file_key_prefix="module.")  # fmt: skip
    raw = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in raw["model"])

    torch.manual_seed(77)
    loaded = load_regressor("cliff_res50", path)
    _assert_same_weights(loaded, model)
    _assert_outputs_equal(_outputs(loaded, images, bbox_info), expected)

    # the same weights without 'module.' are read to the identical state dict (load_regressor's first step)
    plain = {"model": {k[len("module.") :]: v for k, v in raw["model"].items()}}
    assert list(extract_state_dict(plain, "cliff_res50")) == list(model.state_dict())
    assert list(extract_state_dict(raw, "cliff_res50")) == list(model.state_dict())


def test_nbf_checkpoint_roundtrip(tmp_path):
    labels = torch.randint(0, 13, (2, 64, 64), generator=torch.Generator().manual_seed(3))
    part_maps = part_labels_to_one_hot(labels)
    torch.manual_seed(30)
    model = build_nbf()
    _randomise_weights(model, 31)
    model.eval()
    expected = _outputs(model, part_maps)
    path = save_nbf_checkpoint(model, tmp_path / "nbf_checkpoint.pt")
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == ["config", "model"] and raw["config"]["num_parts"] == 12

    torch.manual_seed(32)
    loaded = load_regressor("nbf", path)
    _assert_same_weights(loaded, model)
    _assert_outputs_equal(_outputs(loaded, part_maps), expected)
    with pytest.raises(ValueError, match=r"\(N, 12, H, W\)"):
        loaded(torch.zeros(1, 3, 64, 64))


def test_nbf_rotations_are_absolute_and_converted_to_parent_relative():
    torch.manual_seed(4)
    local = axis_angle_to_matrix(torch.randn(2, 24, 3) * 0.5)
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    chain = [local[:, 0]]
    for j in range(1, 24):
        chain.append(chain[parents[j]] @ local[:, j])
    torch.testing.assert_close(global_to_local_rotations(torch.stack(chain, 1)), local, atol=1e-5, rtol=0)
    # every SMPL joint belongs to one NBF part, and every one of the 12 parts gets a joint
    assert len(SMPL_JOINT_TO_NBF_PART) == 24 and sorted(set(SMPL_JOINT_TO_NBF_PART)) == list(range(len(NBF_PART_NAMES)))
    # untrained NBF starts every part upright facing the camera: root R_x(pi), all others identity
    out = build_nbf().eval()(torch.zeros(1, 12, 32, 32))
    torch.testing.assert_close(out["pred_global_rotmat"][0, 5], rotation_about("x", math.pi), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["pred_rotmat"][0, 1:], torch.eye(3).expand(23, 3, 3), atol=1e-5, rtol=0)


def test_strict_load_reports_missing_unexpected_and_shape_problems(tmp_path):
    torch.manual_seed(5)
    state = {k: v.clone() for k, v in build_cliff_res50().state_dict().items()}
    state.pop("deccam.bias")
    state.pop("encoder.layer4.2.bn3.running_var")
    state["encoder.fc.weight"] = torch.zeros(1000, 2048)
    state["fc1.weight"] = torch.zeros(1024, 2205)  # HMR's fc1: no bbox_info
    path = tmp_path / "res50-broken.pt"
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_regressor("cliff_res50", path)
    message = str(info.value)
    assert "\n" not in message and "res50-broken.pt" in message
    assert "2 missing keys" in message and "deccam.bias" in message and "encoder.layer4.2.bn3.running_var" in message
    assert "1 unexpected keys" in message and "encoder.fc.weight" in message
    assert "1 shape mismatches" in message and "fc1.weight file [1024, 2205] vs model [1024, 2208]" in message


def test_hmr_file_loaded_as_cliff_is_refused():
    torch.manual_seed(6)
    hmr_state = build_hmr().state_dict()
    cliff = build_cliff_res50()
    # 318 backbone keys are named 'conv1...' in SPIN but 'encoder.conv1...' in CLIFF; fc1 is 2205 vs 2208 wide
    with pytest.raises(CheckpointMismatchError, match=r"318 missing keys .*318 unexpected keys.*1 shape mismatches"):
        load_state_dict_strict(cliff, extract_state_dict({"model": hmr_state}, "cliff_res50"), "spin file")


def test_unofficial_wrapper_is_refused():
    with pytest.raises(ValueError, match="expected a dict with 'model'"):
        extract_state_dict({"weights": {"a": 1}}, "hmr", "x.pt")


def test_pare_dispatch_strips_lightning_prefix_and_ignores_smpl_buffers(tmp_path):
    pare = pytest.importorskip("fitter.regressors.pare", reason="PARE module (helper B) not present yet")
    torch.manual_seed(7)
    model = pare.build_pare()
    path = tmp_path / "pare_checkpoint.ckpt"
    write_official_checkpoint(
        model, path, _manifest_or_none("pare_hrnet_w32"), state_dict_key="state_dict", file_key_prefix="",
        module_key_prefix="model.",
        extra_state_dict_entries={"model.smpl.smpl.betas": torch.zeros(1, 10), "J_regressor": torch.zeros(17, 6890)},
        extra_top_level={"epoch": 1, "global_step": 10},
    )  # fmt: skip
    torch.manual_seed(8)
    loaded = load_regressor("pare", path).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded[key]), key


# --------------------------------------------------------------------------------------------
# finding checkpoints, errors


def test_missing_checkpoint_errors_name_file_folder_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        load_regressor("cliff_res50")
    message = str(info.value)
    assert "res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt" in message
    assert str(tmp_path / "data" / "checkpoints") in message and "drive.google.com" in message
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match=r"model_checkpoint\.pt.*visiondata\.cis\.upenn\.edu"):
        load_regressor("hmr")
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_regressor("hmr", tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="unknown regressor 'vibe'"):
        load_regressor("vibe", tmp_path / "nope.pt")


def test_find_and_list_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    folder = tmp_path / "data" / "checkpoints"
    folder.mkdir(parents=True)
    assert find_checkpoint("hmr") is None
    for name in ("model_checkpoint.pt", "res50-custom.pt", "hr48-PA53.7_MJE91.4_MVE110.0_agora_val.pt",
                 "hr48-PA43.0_MJE69.0_MVE81.2_3dpw.pt", "pare_checkpoint.ckpt", "smpl_mean_params.npz"):  # fmt: skip
        (folder / name).write_bytes(b"x")
    assert find_checkpoint("hmr") == folder / "model_checkpoint.pt"
    assert find_checkpoint("cliff_res50") == folder / "res50-custom.pt"  # fallback pattern
    assert find_checkpoint("cliff_hr48") == folder / "hr48-PA43.0_MJE69.0_MVE81.2_3dpw.pt"  # published name wins
    (folder / "pare_w_3dpw_checkpoint.ckpt").write_bytes(b"x")
    assert find_checkpoint("pare") == folder / "pare_w_3dpw_checkpoint.ckpt"
    listed = dict(list_checkpoints())
    assert listed["nbf"] is None and listed["smpl_mean_params"] == folder / "smpl_mean_params.npz"
    assert set(listed) == {"hmr", "cliff_res50", "cliff_hr48", "pare", "nbf", "smpl_mean_params"}


def test_smpl_mean_params_loader(tmp_path):
    pose = np.arange(144, dtype=np.float64) / 144
    np.savez(tmp_path / "smpl_mean_params.npz", pose=pose, shape=np.ones(10), cam=np.array([0.9, 0.0, 0.0]))
    params = load_smpl_mean_params(tmp_path / "smpl_mean_params.npz")
    assert params["pose"].dtype == np.float32 and params["pose"].shape == (144,)
    model = build_hmr(tmp_path / "smpl_mean_params.npz")
    torch.testing.assert_close(model.init_pose, torch.from_numpy(pose.astype(np.float32))[None])
    assert model.init_shape.shape == (1, 10) and model.init_cam.dtype == torch.float32
    np.savez(tmp_path / "bad.npz", pose=pose)
    with pytest.raises(ValueError, match=r"lacks keys \['shape', 'cam'\]"):
        load_smpl_mean_params(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="visiondata"):
        load_smpl_mean_params(tmp_path / "absent.npz")
    default = build_cliff_res50()
    assert torch.equal(default.init_cam, torch.tensor([[0.9, 0.0, 0.0]]))
    assert torch.equal(default.init_pose[0, :6], torch.tensor([1.0, 0, 0, 1, 0, 0]))


def test_wrong_input_sizes_raise_readable_errors():
    torch.manual_seed(8)
    model = build_hmr().eval()
    with torch.no_grad(), pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"bbox_info must be \(N, 3\)"):
        build_cliff_res50()(torch.zeros(1, 3, 256, 192), torch.zeros(1, 2))


# --------------------------------------------------------------------------------------------
# preprocessing (hand-computed numbers)


def test_boxes_follow_published_rules():
    # detector box 100 x 400 px centred at (150, 250)
    cliff = box_from_xyxy([100, 50, 200, 450], "cliff_res50")
    torch.testing.assert_close(cliff.center, torch.tensor([[150.0, 250.0]]))
    torch.testing.assert_close(cliff.scale, torch.tensor([2.2]))  # max(100*256/192, 400) / 200 * 1.1
    torch.testing.assert_close(box_from_xyxy([100, 50, 200, 450], "hmr").scale, torch.tensor([2.0]))  # max(w,h)/200
    # wide box: CLIFF's aspect rule takes w*256/192 = 400 > h = 200
    torch.testing.assert_close(box_from_xyxy([0, 0, 300, 200], "cliff_res50").scale, torch.tensor([2.2]))
    torch.testing.assert_close(box_from_xyxy([0, 0, 300, 200], "hmr").scale, torch.tensor([1.5]))
    # keypoints: the third is below the 0.2 confidence threshold and ignored
    kps = torch.tensor([[10.0, 20.0, 1.0], [110.0, 220.0, 0.9], [500.0, 500.0, 0.1], [30.0, 40.0, 1.0]])
    hmr = box_from_keypoints(kps, "hmr")
    torch.testing.assert_close(hmr.center, torch.tensor([[60.0, 120.0]]))
    torch.testing.assert_close(hmr.scale, torch.tensor([1.2]))  # 200 / 200 * 1.2
    torch.testing.assert_close(box_from_keypoints(kps, "hmr", center_mode="mean").center,
                               torch.tensor([[50.0, 280.0 / 3.0]]))  # fmt: skip
    # mask rows 10..29, cols 5..14 -> pixel extent [5, 15] x [10, 30]
    mask = np.zeros((50, 40), bool)
    mask[10:30, 5:15] = True
    box = box_from_mask(mask, "hmr")
    torch.testing.assert_close(box.center.double(), torch.tensor([[10.0, 20.0]], dtype=torch.float64))
    torch.testing.assert_close(box.scale.double(), torch.tensor([0.1], dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        box_from_mask(np.zeros((5, 5)), "hmr")
    with pytest.raises(ValueError, match="fewer than 2 keypoints"):
        box_from_keypoints(torch.tensor([[1.0, 2.0, 0.1], [3.0, 4.0, 0.9]]), "hmr")


def test_cliff_bbox_info_hand_computed():
    # 640 x 480 image: focal = sqrt(640^2 + 480^2) = 800; box centre (400, 300), scale 1.5 -> b = 300
    box = CropBox(torch.tensor([[400.0, 300.0]]), torch.tensor([1.5]))
    info = cliff_bbox_info(box, (640, 480))
    # [(400-320)/800*2.8, (300-240)/800*2.8, (300 - 0.24*800)/(0.06*800)] = [0.28, 0.21, 108/48]
    torch.testing.assert_close(info, torch.tensor([[0.28, 0.21, 2.25]]))
    # explicit focal 1000: [80/1000*2.8, 60/1000*2.8, (300-240)/60]
    torch.testing.assert_close(cliff_bbox_info(box, (640, 480), focal=1000.0), torch.tensor([[0.224, 0.168, 1.0]]))


def test_crop_to_full_frame_conversion_hand_computed():
    box = CropBox(torch.tensor([[400.0, 300.0]]), torch.tensor([1.5]))  # b = 300 px
    rotmat = torch.eye(3).repeat(1, 24, 1, 1)
    rotmat[0, 0] = rotation_about("x", math.pi / 2)
    rotmat[0, 1] = rotation_about("z", 0.3)
    out = {"pred_rotmat": rotmat, "pred_betas": torch.zeros(1, 10), "pred_cam": torch.tensor([[0.8, 0.1, -0.2]])}
    full = regressor_output_to_full_frame(out, box, (640, 480))
    # f = 800, b*s = 240: tz = 2*800/240 = 6.6667, tx = 0.1 + 2*80/240 = 0.76667, ty = -0.2 + 2*60/240 = 0.3
    torch.testing.assert_close(full["transl"], torch.tensor([[0.1 + 2 / 3, 0.3, 20.0 / 3.0]]))
    torch.testing.assert_close(full["focal_length"], torch.tensor([800.0]))
    torch.testing.assert_close(full["principal_point"], torch.tensor([[320.0, 240.0]]))
    torch.testing.assert_close(full["global_orient"], torch.tensor([[math.pi / 2, 0.0, 0.0]]))
    expected_pose = torch.zeros(1, 69)
    expected_pose[0, 2] = 0.3
    torch.testing.assert_close(full["body_pose"], expected_pose, atol=1e-6, rtol=0)
    # a point at the root depth projects where the weak-perspective crop camera puts it:
    # x = cx + s*(X + tx)*b/2 = 400 + 0.8*(0.25 + 0.1)*150 = 442, y = 300 + 0.8*(-0.5 - 0.2)*150 = 216
    point = torch.tensor([[[0.25, -0.5, 0.0]]]) + full["transl"][:, None]
    pixel = perspective_project(point, full["focal_length"], full["principal_point"])
    torch.testing.assert_close(pixel, torch.tensor([[[442.0, 216.0]]]))


def test_crop_geometry_and_normalisation():
    # image whose channels hold each pixel's own (x, y) index: linear sampling reproduces coordinates
    height, width = 400, 600
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)
    box = CropBox(torch.tensor([[300.25, 200.75]]), torch.tensor([2.24]))  # b = 448 -> k = 224/448 = 0.5
    crop = crop_image(image, box, (224, 224))[0]
    # crop pixel (i, j) centre (j+.5, i+.5) <- full point ((j+.5-112)/0.5 + 300.25, ...) -> index minus 0.5
    j, i = 50, 170
    assert crop[i, j, 0] == pytest.approx((j + 0.5 - 112) / 0.5 + 300.25 - 0.5, abs=1e-3)
    assert crop[i, j, 1] == pytest.approx((i + 0.5 - 112) / 0.5 + 200.75 - 0.5, abs=1e-3)
    points = torch.tensor([[[300.25, 200.75], [10.0, 390.0]]])
    in_crop = full_to_crop_points(points, box, (224, 224))
    torch.testing.assert_close(in_crop[0, 0], torch.tensor([112.0, 112.0]))
    torch.testing.assert_close(crop_to_full_points(in_crop, box, (224, 224)), points)
    # CLIFF crop is 256 x 192 (H x W) with the same uniform scale: width covers b * 192/256
    # (H 448 x W 336 box): its top-left corner (cx - 168, cy - 224) lands on the crop's corner (0, 0)
    cliff_points = full_to_crop_points(torch.tensor([[[300.25 - 168.0, 200.75 - 224.0]]]), box, (256, 192))
    torch.testing.assert_close(cliff_points, torch.zeros(1, 1, 2), atol=1e-4, rtol=0)
    # normalisation: ImageNet-mean colour -> 0; outside the image (zero padding) -> -mean/std
    mean_rgb = np.array([0.485, 0.456, 0.406]) * 255
    flat = np.broadcast_to(mean_rgb, (100, 100, 3)).astype(np.float32)
    x = crop_for_model(flat, CropBox([[50.0, 50.0]], [1.0]), "hmr")  # 200 px box over a 100 px image
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 112, 112], torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[0, :, 2, 2], torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]))
    assert crop_for_model(flat.astype(np.uint8), box_from_xyxy([10, 10, 90, 90], "cliff_res50"),
                          "cliff_res50").shape == (1, 3, 256, 192)  # fmt: skip


def test_part_labels_to_one_hot():
    one_hot = part_labels_to_one_hot(np.array([[0, 1], [12, 3]]))
    assert one_hot.shape == (1, 12, 2, 2)
    assert one_hot[0, :, 0, 0].sum() == 0  # background
    assert one_hot[0, 0, 0, 1] == 1 and one_hot[0, 11, 1, 0] == 1 and one_hot[0, 2, 1, 1] == 1
    assert one_hot.sum() == 3
    with pytest.raises(ValueError, match=r"0\.\.12"):
        part_labels_to_one_hot(np.array([[13]]))


def test_read_checkpoint_falls_back_to_full_unpickling_only_when_allowed(tmp_path):
    import argparse

    from fitter.regressors import read_checkpoint

    path = tmp_path / "lightning_like.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(2)}, "hyper_parameters": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ValueError, match="allow_unsafe_pickle=True"):
        read_checkpoint(path, allow_unsafe_pickle=False)
    with pytest.warns(UserWarning, match="unpickling it fully"):
        loaded = read_checkpoint(path)
    assert loaded["hyper_parameters"].lr == 1e-4 and torch.equal(loaded["state_dict"]["model.w"], torch.ones(2))
