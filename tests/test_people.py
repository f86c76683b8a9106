"""Every person in the photo: two bodies rendered from the free model (apart, and with
overlapping boxes) are detected and fitted in one batch, each on its own body, the nearer one
nearer; a photo without people fails alone; --max-people is respected; re-runs skip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fitter.body.poses import mean_body_pose
from fitter.cli.main import app
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle, perspective_project
from fitter.result import FitResult
from fitter.synthetic import render_people

FOCAL, SIZE = 1000.0, (800, 600)
SCENES = {"apart": (-0.7, 0.8)}  # x (m) of the near (4 m) and far (5.5 m) person
OVERLAP = (-0.1, 0.2)  # the far person 42 % hidden behind the near one


def _people(x_near: float, x_far: float) -> dict:
    turn = torch.tensor([[0.0, math.radians(15), 0.0], [0.0, math.radians(-20), 0.0]])
    orient = matrix_to_axis_angle(
        axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]])) @ axis_angle_to_matrix(turn)
    )
    pose = mean_body_pose().expand(2, 69).clone()
    pose[1, 15 * 3 + 2] = -0.4  # the far one raises an arm
    return {"betas": torch.zeros(2, 10), "body_pose": pose, "global_orient": orient,
            "transl": torch.tensor([[x_near, 0.1, 4.0], [x_far, 0.0, 5.5]])}  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory, anny_model):
    folder = tmp_path_factory.mktemp("people")
    truth = {}
    for name, xs in SCENES.items():
        params = _people(*xs)
        image, visible = render_people(anny_model, params, FOCAL, SIZE)
        Image.fromarray(image).save(folder / f"{name}.png")
        truth[name] = (params, visible)
    Image.fromarray(np.full((SIZE[1], SIZE[0], 3), 200, np.uint8)).save(folder / "nobody.png")
    out = folder / "out"
    args = ["fit", str(folder), "--out", str(out), "--focal", str(FOCAL), "--config", "fast"]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    return folder, out, truth, first, second


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize("name", list(SCENES))
def test_each_person_fitted_on_their_body_nearer_one_nearer(photos, name):
    _, out, truth, first, _ = photos
    params, visible = truth[name]
    fits = [FitResult.load(out / f"{name}_p{k}.npz") for k in range(2)]
    assert all(f.status == ["ok"] for f in fits)
    centre = torch.tensor([SIZE[0] / 2, SIZE[1] / 2])
    for fit in fits:  # the fitted pelvis projects onto one body; the two fits onto different bodies
        pelvis = perspective_project(torch.as_tensor(fit.joints[:, :1]), torch.tensor([FOCAL]), centre)[0, 0]
        x, y = (int(v) for v in pelvis)
        owners = [k for k in range(2) if visible[k, y - 3 : y + 4, x - 3 : x + 4].any()]
        assert len(owners) == 1, (name, x, y, owners)
        fit.info["owner"] = owners[0]
    assert {f.info["owner"] for f in fits} == {0, 1}
    near, far = sorted(fits, key=lambda f: f.info["owner"])
    assert near.transl[0, 2] < far.transl[0, 2]
    listing = json.loads((out / f"{name}.json").read_text())
    assert [p["status"] for p in listing["people"]] == ["ok", "ok"]
    import trimesh

    assert len(trimesh.load(out / f"{name}_scene.glb").geometry) == 2
    with Image.open(out / f"{name}_overlay.png") as overlay:
        drawn = np.asarray(overlay).astype(int)
    photo = np.asarray(Image.open(out.parent / f"{name}.png")).astype(int)
    changed = np.abs(drawn - photo).sum(-1) > 30
    assert all(changed[visible[k]].mean() > 0.5 for k in range(2))  # both bodies drawn over


def test_overlapping_people_fitted_together_from_keypoints_and_masks(anny_model):
    """Half hidden behind the other (mediapipe mixes up people this close, so their true keypoints
    and visible masks are given): one batch, one camera, each fit on its body, depth order right."""
    from fitter.fitting import FitTargets, fit_config, fit_keypoints
    from fitter.keypoints import keypoint_regressor

    params = _people(*OVERLAP)
    _, visible = render_people(anny_model, params, FOCAL, SIZE)
    assert (
        0.2
        < 1
        - visible[1].sum() / render_people(anny_model, {k: v[1:] for k, v in params.items()}, FOCAL, SIZE)[1][0].sum()
    )
    reg = keypoint_regressor(anny_model, "coco17")
    with torch.no_grad():
        out = anny_model(*(params[k] for k in ("betas", "body_pose", "global_orient", "transl")))
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), torch.tensor([FOCAL, FOCAL]),
                                 torch.tensor([SIZE[0] / 2, SIZE[1] / 2]))  # fmt: skip
    kp = torch.cat([px, torch.ones_like(px[..., :1])], -1).numpy()
    masks = list(visible)
    targets = FitTargets(masks=masks, ignore_masks=[masks[1], masks[0]], scenes=[0, 0])
    for config in (fit_config("fast"), fit_config("fast", depth_order_weight=1e4)):
        fit = fit_keypoints(kp, "coco17", SIZE, FOCAL, body_model=anny_model, config=config, targets=targets)
        assert fit.status == ["ok", "ok"] and fit.transl[0, 2] < fit.transl[1, 2]
        np.testing.assert_allclose(fit.transl[:, 0], params["transl"][:, 0].numpy(), atol=0.15)
        assert "penetration" in fit.losses and ("depth_order" in fit.losses) == (config.depth_order_weight > 0)


def test_photo_without_people_fails_alone_and_reruns_skip(photos):
    _, out, _, first, second = photos
    assert first.exit_code == 1 and "1 fitted, 0 skipped (already done), 1 failed" in _text(first), _text(first)
    assert "nobody.png" in _text(first) and "no person detected" in _text(first)
    assert "0 fitted, 1 skipped (already done), 1 failed" in _text(second), _text(second)


def test_max_people_cap(photos):
    folder, _, _, _, _ = photos
    out = folder / "out_one"
    result = CliRunner().invoke(app, ["fit", str(folder / "apart.png"), "--out", str(out), "--focal", str(FOCAL),
                                      "--config", "fast", "--max-people", "1"])  # fmt: skip
    assert result.exit_code == 0, _text(result)
    assert (out / "apart.npz").exists() and not list(out.glob("apart_p*.npz"))
    assert "people not fitted in" in _text(result) and "over --max-people 1" in _text(result)
