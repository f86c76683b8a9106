"""fitter.synthetic: the one sampler of synthetic bodies and cameras (benchmarks, trainers, tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitter.synthetic import sample_bodies, sample_cases


def test_in_view_cases_keep_every_keypoint_inside_the_image(anny_model):
    cases = sample_cases(anny_model, 6, "coco17", seed=0, image_size=(640, 480))
    assert cases["keypoints"].shape == (6, 17, 3) and cases["joints"].shape == (6, 24, 3)
    px = cases["keypoints"][..., :2]
    assert (px > 5).all() and (px[..., 0] < 635).all() and (px[..., 1] < 475).all()
    assert ((px[..., 1].max(1) - px[..., 1].min(1)) > 0.2 * 480).all()
    assert np.array_equal(cases["image_size"], [640, 480])
    again = sample_cases(anny_model, 6, "coco17", seed=0, image_size=(640, 480))
    assert all(np.array_equal(cases[k], again[k]) for k in cases)


def test_ranges_and_ray_camera(anny_model):
    bodies = sample_bodies(anny_model, 200, torch.Generator().manual_seed(1), pose_scale=(0.25, 1.0), max_yaw_deg=0.0,
                           max_tilt_deg=0.0, depth=(3.0, 4.0), image_size=None, centre_spread=0.5)  # fmt: skip
    assert bodies["betas"].abs().max() <= 2.5 and bodies["body_pose"].shape == (200, 69)
    assert torch.equal(bodies["focal"], torch.ones(200))
    depth = bodies["transl"][:, 2]
    assert depth.min() >= 3.0 and depth.max() <= 4.0
    # no yaw or tilt: the body faces the camera upright (a half turn about x)
    torch.testing.assert_close(bodies["root_rotation"], torch.diag(torch.tensor([1.0, -1.0, -1.0])).expand(200, 3, 3),
                               atol=1e-6, rtol=0)  # fmt: skip
    # the root within half the half field of view (36 mm frame at <= 85 mm: tan >= 18 / 85)
    assert (bodies["transl"][:, :2].abs() / depth[:, None]).max() <= 0.5 * 18 / 24 + 1e-6


def test_poses_from_an_array_all_or_a_fraction(anny_model):
    bank = np.full((3, 69), 0.1)
    every = sample_bodies(anny_model, 8, torch.Generator().manual_seed(2), poses=bank)
    assert torch.equal(every["body_pose"], torch.full((8, 69), 0.1))
    mixed = sample_bodies(
        anny_model, 64, torch.Generator().manual_seed(2), poses=torch.as_tensor(bank), pose_fraction=0.5
    )
    from_bank = (mixed["body_pose"] == torch.tensor(0.1)).all(1)
    assert 0 < int(from_bank.sum()) < 64
    with pytest.raises(ValueError, match="empty"):
        sample_bodies(anny_model, 2, torch.Generator(), poses=np.zeros((0, 69)))
