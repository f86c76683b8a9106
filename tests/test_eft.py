"""EFT (fitter.refine.eft_refine) on a seeded random HMR: it lowers the 2D error of a perturbed
target, stops at once on its own prediction, and leaves the network bit-identical.

The random network's BatchNorm statistics are first calibrated on random inputs (a few
forward passes in train mode), as a trained network's are; with default statistics (mean 0,
var 1) its activations grow through the 16 residual blocks and any step, even at lr 1e-7, is
too large. The published learning rate 5e-6 is used.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitter.geometry import perspective_project
from fitter.keypoints import keypoint_regressor
from fitter.refine import EFTConfig, eft_refine
from fitter.regressors import CropBox, build_cliff_res50, build_hmr, regressor_output_to_full_frame

IMAGE_SIZE = np.array([[640.0, 480.0], [640.0, 480.0]], np.float32)
FOCAL = np.array([800.0, 800.0], np.float32)


@pytest.fixture(scope="module")
def hmr_setup():
    torch.manual_seed(0)
    net = build_hmr()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, 3, 224, 224))
    net.eval()
    crops = torch.randn(2, 3, 224, 224)
    box = CropBox(torch.tensor([[320.0, 240.0], [300.0, 250.0]]), torch.tensor([2.0, 1.8]))
    with torch.no_grad():
        out = net(crops)
    full = regressor_output_to_full_frame(out, box, torch.as_tensor(IMAGE_SIZE), torch.as_tensor(FOCAL))
    return net, crops, box, full


def _keypoints(model, full: dict, body_pose: torch.Tensor) -> np.ndarray:
    """(N,17,3) COCO-17 pixels + confidence 1 of the model posed with zero betas."""
    reg = keypoint_regressor(model, "coco17")
    with torch.no_grad():
        out = model(torch.zeros(len(body_pose), 10), body_pose, full["global_orient"], full["transl"])
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), torch.as_tensor(FOCAL),
                                 torch.as_tensor(IMAGE_SIZE) / 2)  # fmt: skip
    return torch.cat([px, torch.ones_like(px[..., :1])], dim=-1).numpy()


def test_eft_lowers_2d_error_and_restores_weights(anny_model, hmr_setup):
    net, crops, box, full = hmr_setup
    pose = full["body_pose"].clone()
    pose[:, 15 * 3 + 2] -= 0.5  # arms moved: a target the network does not predict
    pose[:, 16 * 3 + 2] += 0.5
    pose[:, 3 * 3] += 0.4
    keypoints = _keypoints(anny_model, full, pose)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads_flags = [p.requires_grad for p in net.parameters()]
    result = eft_refine("hmr", net, crops, keypoints, "coco17", box, IMAGE_SIZE, FOCAL, anny_model,
                        config=EFTConfig(max_iters=5), use_betas=False)  # fmt: skip
    print("EFT 2D RMS error px:", result["error_before_px"], "->", result["error_after_px"])
    assert np.all(result["error_after_px"] < 0.9 * result["error_before_px"])
    assert np.all(result["iterations"] == 5)
    assert result["body_pose"].shape == (2, 69) and result["transl"].shape == (2, 3)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical
    assert not net.training and [p.requires_grad for p in net.parameters()] == grads_flags
    assert all(p.grad is None for p in net.parameters())


def test_eft_stops_at_once_on_its_own_prediction(anny_model, hmr_setup):
    """Target = the network's own prediction: no step is taken and the output equals the plain
    regressor conversion (same projection path as the initializer)."""
    net, crops, box, full = hmr_setup
    keypoints = _keypoints(anny_model, full, full["body_pose"])
    result = eft_refine("hmr", net, crops, keypoints, "coco17", box, IMAGE_SIZE, FOCAL, anny_model,
                        config=EFTConfig(max_iters=5), use_betas=False)  # fmt: skip
    assert np.all(result["iterations"] == 0)
    assert np.all(result["error_before_px"] < 0.05)
    for key in ("body_pose", "global_orient", "transl"):
        np.testing.assert_allclose(result[key], full[key].numpy(), atol=1e-4)


def test_eft_input_errors(anny_model):
    net = build_cliff_res50().eval()
    box = CropBox(torch.tensor([[320.0, 240.0]]), torch.tensor([2.0]))
    kp = np.zeros((1, 17, 3), np.float32)
    with pytest.raises(ValueError, match="bbox_info"):
        eft_refine(
            "cliff_res50", net, torch.zeros(1, 3, 256, 192), kp, "coco17", box, IMAGE_SIZE[:1], FOCAL[:1], anny_model
        )
    with pytest.raises(ValueError, match=r"\(1, 17, 3\)"):
        eft_refine(
            "hmr", net, torch.zeros(1, 3, 224, 224), kp[:, :10], "coco17", box, IMAGE_SIZE[:1], FOCAL[:1], anny_model
        )
