"""Initializers (fitter.init): mediapipe landmark IK, translation solve, regressor initializers, part split.

Synthetic people come from fitter.synthetic.sample_cases (anny bodies with known poses in known
cameras); "world landmarks" are the model's BlazePose-33 points in camera axes, hip-centred,
plus 2 cm of noise, as mediapipe reports them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fitter.body.poses import mean_body_pose
from fitter.camera import resolve_camera
from fitter.geometry import axis_angle_to_matrix, least_squares_translation, perspective_project
from fitter.init import (
    StartInputs,
    available_initializers,
    best_initializer,
    make_initializer,
    resolve_initializer_name,
    upright_start,
)
from fitter.keypoints import keypoint_names, keypoint_regressor
from fitter.keypoints.part_split import skeleton_mask, split_mask_by_skeleton
from fitter.refine import EFTConfig
from fitter.synthetic import joint_errors, sample_cases

IMAGE_SIZE = (1280, 960)


def initialize(name, images, keypoints, keypoint_set, image_sizes, focal, model, owners, world_landmarks=None,
               masks=None, **options) -> dict[str, np.ndarray]:  # fmt: skip
    """The start of initializer `name` for N people as numpy arrays (+ its diagnostics)."""
    kp = np.asarray(keypoints, np.float32)
    n = len(kp)
    camera = resolve_camera(
        np.broadcast_to(np.asarray(image_sizes, np.float32), (n, 2)), n, np.asarray(focal, np.float32)
    )
    inputs = StartInputs.build(kp, keypoint_set, camera, model, mean_body_pose(), images=images, owners=owners,
                          world_landmarks=world_landmarks, masks=masks)  # fmt: skip
    start = make_initializer(name, model, **options)(inputs)
    arrays = {k: getattr(start, k).numpy() for k in ("betas", "body_pose", "global_orient", "transl")}
    return {**arrays, **start.diagnostics}


def orientation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) angle in degrees of the rotation between axis-angle orientations a and b (N,3)."""
    ra = axis_angle_to_matrix(torch.as_tensor(np.asarray(a), dtype=torch.float32))
    rb = axis_angle_to_matrix(torch.as_tensor(np.asarray(b), dtype=torch.float32))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-1, dim2=-2).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).numpy()


def posed_joints(model, params: dict) -> np.ndarray:
    """(N,24,3) joints of the posed model without translation."""
    with torch.no_grad():
        args = [
            torch.as_tensor(np.asarray(params[k]), dtype=torch.float32) for k in ("betas", "body_pose", "global_orient")
        ]
        return model(*args).joints.numpy()


def world_landmarks(model, cases: dict, noise_m: float, seed: int = 0) -> np.ndarray:
    """(N,33,3) BlazePose-33 model points in camera axes, origin at the hip midpoint, + noise."""
    reg = keypoint_regressor(model, "blazepose33")
    names = keypoint_names("blazepose33")
    with torch.no_grad():
        args = [torch.as_tensor(cases[k]) for k in ("betas", "body_pose", "global_orient")]
        out = model(*args)
        pts = reg.from_vertices(out.joints, out.vertices)
    hips = (pts[:, names.index("left_hip")] + pts[:, names.index("right_hip")]) / 2
    gen = torch.Generator().manual_seed(seed)
    return (pts - hips[:, None] + noise_m * torch.randn(pts.shape, generator=gen)).numpy()


@pytest.fixture(scope="module")
def cases(anny_model):
    data = sample_cases(anny_model, 8, "blazepose33", seed=3, pose_scale=0.5, image_size=IMAGE_SIZE)
    quality = keypoint_regressor(anny_model, "blazepose33").quality.numpy()
    data["keypoints"][..., 2] = (quality > 0).astype(np.float32)  # points the model lacks are "not seen"
    return data


# ------------------------------------------------------------------------------------ mediapipe IK
def test_mediapipe_ik_beats_frontal_start(anny_model, cases):
    n = len(cases["betas"])
    landmarks = world_landmarks(anny_model, cases, noise_m=0.02)
    start = time.perf_counter()
    init = initialize("mediapipe", None, cases["keypoints"], "blazepose33", cases["image_size"], cases["focal"],
                      anny_model, None, world_landmarks=landmarks)  # fmt: skip
    seconds_per_person = (time.perf_counter() - start) / n
    frontal = {
        "betas": np.zeros((n, 10), np.float32),
        "body_pose": mean_body_pose().expand(n, 69).numpy(),
        "global_orient": np.tile(np.array([[math.pi, 0.0, 0.0]], np.float32), (n, 1)),
    }
    truth = posed_joints(anny_model, cases)
    _, pa_ik = joint_errors(posed_joints(anny_model, init), truth)
    _, pa_frontal = joint_errors(posed_joints(anny_model, frontal), truth)
    orient_ik = orientation_error_deg(init["global_orient"], cases["global_orient"])
    orient_frontal = orientation_error_deg(frontal["global_orient"], cases["global_orient"])
    print(f"IK: PA-MPJPE {pa_ik.mean():.1f} mm, orientation {orient_ik.mean():.1f} deg, {seconds_per_person:.3f} s/person; "
          f"frontal: {pa_frontal.mean():.1f} mm, {orient_frontal.mean():.1f} deg")  # fmt: skip
    assert pa_ik.mean() < 0.5 * pa_frontal.mean() and pa_ik.mean() < 60.0
    assert orient_ik.mean() < 0.5 * orient_frontal.mean() and orient_ik.mean() < 25.0
    assert np.all(np.isfinite(init["landmark_error_m"])) and np.all(init["landmark_error_m"] < 0.08)
    # translation from the 2D keypoints: depth within 15 % (betas are 0 in the init, not the truth's)
    depth_error = np.abs(init["transl"][:, 2] - cases["transl"][:, 2]) / cases["transl"][:, 2]
    assert np.median(depth_error) < 0.15
    assert seconds_per_person < 1.0  # ~0.1 s/person measured on an idle core; loose for shared machines


def test_mediapipe_ik_needs_landmarks_or_images(anny_model, cases):
    with pytest.raises(ValueError, match="world_landmarks"):
        initialize(
            "mediapipe", None, cases["keypoints"], "blazepose33", cases["image_size"], cases["focal"], anny_model, None
        )
    with pytest.raises(ValueError, match=r"\(N, 33, 3\)"):
        from fitter.init import ik_from_world_landmarks

        ik_from_world_landmarks(np.zeros((2, 17, 3)), anny_model)


def test_solve_translation_recovers_exact_translation():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(3, 20, 3, generator=gen) * 0.5
    transl = torch.tensor([[0.3, -0.2, 4.0], [-1.0, 0.5, 8.0], [0.0, 0.0, 2.5]])
    focal = torch.tensor([1000.0, 1500.0, 800.0])
    center = torch.tensor([[640.0, 480.0]]).expand(3, 2)
    pixels = perspective_project(points + transl[:, None], focal, center)
    weights = torch.ones(3, 20)
    weights[2, 2:] = 0.0  # two points are enough
    solved, ok = least_squares_translation(points, pixels, weights, focal, center)
    assert ok.all()
    torch.testing.assert_close(solved, transl, atol=1e-3, rtol=0)
    _, ok = least_squares_translation(points, pixels, torch.zeros(3, 20), focal, center)
    assert not ok.any()


def test_mediapipe_initializer_detects_landmarks_on_a_photo_crop(anny_model, eval_dir):
    """Keypoints from a file (COCO-17 ground truth), no world landmarks: BlazePose runs on a crop
    around the person; the start, projected with its translation, lands on the person."""
    import json

    from fitter.io.images import read_image

    ann = json.loads((eval_dir / "coco" / "annotations.json").read_text())
    item = next(i for i in ann["images"] if i["single_person"])
    image = read_image(eval_dir / "coco" / item["file"])
    kp = np.array(item["target"]["keypoints"], np.float32).reshape(1, 17, 3)
    kp[..., 2] = (kp[..., 2] > 0).astype(np.float32)
    size = (item["width"], item["height"])
    focal = np.array([math.hypot(*size)], np.float32)
    init = initialize("mediapipe", [image], kp, "coco17", size, focal, anny_model, [0])
    assert np.isfinite(init["landmark_error_m"]).all(), "mediapipe found nobody in the crop"
    reg = keypoint_regressor(anny_model, "coco17")
    with torch.no_grad():
        args = [torch.as_tensor(init[k]) for k in ("betas", "body_pose", "global_orient", "transl")]
        out = anny_model(*args)
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), torch.as_tensor(focal),
                                 torch.tensor([size[0] / 2, size[1] / 2])).numpy()  # fmt: skip
    seen = kp[0, :, 2] > 0
    error = np.linalg.norm(px[0, seen] - kp[0, seen, :2], axis=1).mean()
    height = float(item["target"]["bbox_xywh"][3])
    print(f"{item['file']}: start 2D error {error:.1f} px for a {height:.0f} px tall person")
    assert error < 0.15 * height


# ------------------------------------------------------------------------------------ names / lookup
def _write_checkpoint(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"placeholder: only its presence is looked at here")
    return path


def test_available_and_best_initializers(tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    folder = tmp_path / "data" / "checkpoints"
    assert available_initializers() == ["upright", "lifter", "mediapipe"]
    assert best_initializer() == "lifter"
    _write_checkpoint(folder, "nbf_anny.pt")
    assert available_initializers() == ["upright", "lifter", "mediapipe", "nbf"]
    assert best_initializer() == "lifter"  # a CPU-trained NBF is used only when asked for
    _write_checkpoint(folder, "model_checkpoint.pt")
    assert best_initializer() == "hmr"
    _write_checkpoint(folder, "res50-custom.pt")
    assert available_initializers() == ["upright", "lifter", "mediapipe", "cliff", "hmr", "nbf"]
    assert best_initializer() == "cliff"


def test_initialize_none_unknown_and_missing(tmp_path, monkeypatch, anny_model, cases):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    args = ([np.zeros((960, 1280, 3), np.uint8)], cases["keypoints"][:1], "blazepose33", cases["image_size"],
            cases["focal"][:1], anny_model, [0])  # fmt: skip
    assert make_initializer("none") is upright_start  # "none" is the upright start's old name
    with pytest.raises(ValueError, match="unknown initializer"):
        initialize("spin", *args)
    with pytest.raises(ValueError, match="eft"):
        initialize("mediapipe", *args, refine="eft", world_landmarks=np.zeros((1, 33, 3)))
    with pytest.raises(FileNotFoundError) as info:
        initialize("hmr", *args)
    message = str(info.value)
    assert "model_checkpoint.pt" in message and str(tmp_path) in message and "upenn" in message
    assert "\n" not in message
    with pytest.raises(FileNotFoundError, match="hr48.*res50"):
        initialize("cliff", *args)


# ------------------------------------------------------------------------------------ regressors
@pytest.mark.parametrize("name, regressor, file_name", [("hmr", "hmr", "model_checkpoint.pt"),
                                                      ("cliff", "cliff_res50", "res50-test.pt")])  # fmt: skip
def test_regressor_initializer_matches_manual_pipeline(
    tmp_path, monkeypatch, anny_model, cases, name, regressor, file_name
):
    """initialize(name) = box from keypoints -> crop (+ CLIFF's bbox_info with the image's focal)
    -> network -> full-frame camera with that focal; betas 0 on anny."""
    from fitter.regressors import (
        box_from_keypoints,
        build_cliff_res50,
        build_hmr,
        cliff_bbox_info,
        crop_for_model,
        regressor_output_to_full_frame,  # fmt: skip
    )

    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    torch.manual_seed(0)
    net = (build_hmr() if name == "hmr" else build_cliff_res50()).eval()
    folder = tmp_path / "data" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"model": net.state_dict()}, folder / file_name)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (960, 1280, 3), dtype=np.uint8)
    kp = cases["keypoints"][:2]
    focal = cases["focal"][:2]
    init = initialize(name, [image], kp, "blazepose33", cases["image_size"], focal, anny_model, [0, 0])
    assert set(init) >= {"betas", "body_pose", "global_orient", "transl"}
    assert init["betas"].shape == (2, 10) and init["body_pose"].shape == (2, 69) and init["transl"].shape == (2, 3)
    assert np.all(init["betas"] == 0)  # SMPL betas mean nothing on anny
    box = box_from_keypoints(torch.as_tensor(kp), regressor)
    crops = torch.cat([crop_for_model(image, type(box)(box.center[i : i + 1], box.scale[i : i + 1]), regressor)
                       for i in range(2)])  # fmt: skip
    size = torch.tensor(IMAGE_SIZE, dtype=torch.float32)
    with torch.no_grad():
        out = net(crops) if name == "hmr" else net(crops, cliff_bbox_info(box, size, torch.as_tensor(focal)).float())
        manual = regressor_output_to_full_frame(out, box, size, torch.as_tensor(focal))
    for key in ("body_pose", "global_orient", "transl"):
        np.testing.assert_allclose(init[key], manual[key].numpy(), atol=1e-4)


def test_nbf_initializer_with_and_without_mask(tmp_path, anny_model, cases):
    """A (barely) trained NBF checkpoint: mask split into parts at its training resolution, betas kept (same body model)."""
    from fitter.training.nbf import NBFTrainConfig, train_nbf

    path = tmp_path / "nbf_test.pt"
    train_nbf(anny_model, NBFTrainConfig(steps=1, batch_size=2, resolution=32), out_path=path)
    size = (640, 480)  # half the cases' image size: keypoints and focal scaled by 0.5
    truth, kp = _rendered_parts(anny_model, cases, 0, size)
    masks = [truth > 0, None]
    image = np.zeros((size[1], size[0], 3), np.uint8)
    focal = np.full(2, cases["focal"][0] * 0.5, np.float32)
    init = initialize("nbf", [image], np.stack([kp, kp]), "blazepose33", size, focal, anny_model, [0, 0], masks=masks,
                      checkpoint_path=path)  # fmt: skip
    assert init["betas"].shape == (2, 10) and init["body_pose"].shape == (2, 69) and init["transl"].shape == (2, 3)
    assert all(np.all(np.isfinite(init[k])) for k in ("betas", "body_pose", "global_orient", "transl"))
    assert np.any(init["betas"] != 0)  # trained on anny: its betas are anny's and are kept
    assert not np.allclose(init["body_pose"][0], init["body_pose"][1])  # the mask changed the input
    refined = initialize("nbf", [image], np.stack([kp, kp]), "blazepose33", size, focal, anny_model, [0, 0], masks=masks,
                         checkpoint_path=path, refine="eft", eft_config=EFTConfig(max_iters=3))  # fmt: skip
    assert refined["eft_error_after_px"].shape == (2,) and np.all(np.isfinite(refined["eft_error_after_px"]))
    np.testing.assert_allclose(
        refined["eft_error_before_px"][0], _start_error_px(anny_model, init, kp, focal, size), rtol=1e-3
    )


def _start_error_px(model, init: dict, kp: np.ndarray, focal: np.ndarray, size) -> float:
    """Weighted RMS 2D error (px) of person 0's start against its BlazePose-33 keypoints (EFT's measure)."""
    reg = keypoint_regressor(model, "blazepose33")
    with torch.no_grad():
        out = model(*(torch.as_tensor(init[k][:1]) for k in ("betas", "body_pose", "global_orient", "transl")))
        px = perspective_project(reg.from_vertices(out.joints, out.vertices), torch.as_tensor(focal[:1]),
                                 torch.tensor([size[0] / 2, size[1] / 2])).numpy()[0]  # fmt: skip
    weights = kp[:, 2] * reg.quality.numpy()
    return float(np.sqrt((weights * ((px - kp[:, :2]) ** 2).sum(-1)).sum() / weights.sum()))


# ------------------------------------------------------------------------------------ part split
def _rendered_parts(model, cases, index: int, size=(256, 256)):
    from fitter.body.parts import part_labels
    from fitter.render import render_part_labels

    scale = size[0] / IMAGE_SIZE[0]
    params = [torch.as_tensor(cases[k][index : index + 1]) for k in ("betas", "body_pose", "global_orient", "transl")]
    with torch.no_grad():
        out = model(*params)
        labels = render_part_labels(out.vertices, model.faces, torch.as_tensor(cases["focal"][index : index + 1]) * scale,
                                    torch.tensor([size[0] / 2, size[1] / 2]), size, vertex_labels=part_labels(model, 12))  # fmt: skip
    kp = cases["keypoints"][index].copy()
    kp[:, :2] *= scale
    return (labels[0] + 1).numpy(), kp


def test_split_mask_by_skeleton_matches_rendered_parts(anny_model, cases):
    accuracies, ious = [], []
    for index in range(4):
        truth, kp = _rendered_parts(anny_model, cases, index, (320, 240))
        person = truth > 0
        split = split_mask_by_skeleton(person, kp, "blazepose33")
        assert split.shape == truth.shape and split.dtype == np.int64
        assert np.all((split > 0) == person) and split.max() <= 12
        accuracies.append((split[person] == truth[person]).mean())
        drawn = skeleton_mask(kp, (320, 240), "blazepose33")
        ious.append((drawn & person).sum() / (drawn | person).sum())
    print(f"split accuracy {np.mean(accuracies):.3f}, skeleton-mask IoU {np.mean(ious):.2f}")
    assert np.mean(accuracies) > 0.7  # 0.81 measured
    assert np.mean(ious) > 0.5  # 0.72 measured
    # coco17 keypoints (no feet/hands) still give every body part a label
    from fitter.keypoints import convert_keypoints

    coco = convert_keypoints(kp, "blazepose33", "coco17")
    labels = split_mask_by_skeleton(None, coco, "coco17", image_size=(320, 240))
    assert set(np.unique(labels)) >= {0, 1, 3, 4, 9, 10}


def test_split_mask_errors():
    with pytest.raises(ValueError, match="image_size"):
        split_mask_by_skeleton(None, np.zeros((33, 3)), "blazepose33")
    with pytest.raises(ValueError, match=r"\(17, 3\)"):
        split_mask_by_skeleton(np.ones((8, 8), bool), np.zeros((33, 3)), "coco17")
    assert not split_mask_by_skeleton(np.ones((8, 8), bool), np.zeros((33, 3)), "blazepose33").any()  # nothing seen


def test_initializer_names_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    assert resolve_initializer_name("none") == "upright" and resolve_initializer_name(" Lifter ") == "lifter"
    assert resolve_initializer_name("best") == best_initializer() == "lifter"
    with pytest.raises(ValueError, match="unknown initializer"):
        resolve_initializer_name("spin")


# ------------------------------------------------------------------------------------ the Start
def test_start_from_arrays_and_index():
    from fitter.init import Start

    orient = np.array([[math.pi, 0, 0], [0, 0, math.pi]], np.float32)
    own_pose = Start.from_arrays(orient, body_pose=np.ones((2, 69)), transl=[[0, 0, 3], [0, 0, 4]])
    assert own_pose.restart.tolist() == [False, False] and own_pose.flip.tolist() == [False, False]
    assert own_pose.anchored.tolist() == [False, False] and own_pose.source == ["given", "given"]
    no_pose = Start.from_arrays(orient)  # the mean pose, and restarts from other poses allowed
    assert no_pose.restart.tolist() == [True, True] and no_pose.transl is None
    torch.testing.assert_close(no_pose.body_pose[1], mean_body_pose())
    no_pose.diagnostics["landmark_error_m"] = np.array([0.1, 0.2], np.float32)
    picked = no_pose.index(torch.tensor([1, 1, 0]))
    assert len(picked) == 3 and picked.diagnostics["landmark_error_m"].tolist() == pytest.approx([0.2, 0.2, 0.1])
    torch.testing.assert_close(picked.global_orient[0], torch.as_tensor(orient[1]))
    with pytest.raises(ValueError, match=r"body_pose \(N,69\)"):
        Start(body_pose=torch.zeros(2, 60), global_orient=torch.zeros(2, 3))


def test_regressor_initializer_loads_its_checkpoint_once(tmp_path, monkeypatch, anny_model, cases):
    """One initializer, many batches: the network is read from disk once (it was once per batch)."""
    import fitter.init.regressor_init as regressor_init
    from fitter.regressors import build_hmr

    monkeypatch.setenv("FITTER_HOME", str(tmp_path))
    folder = tmp_path / "data" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"model": build_hmr().eval().state_dict()}, folder / "model_checkpoint.pt")
    loads = []
    real_load = regressor_init.load_regressor
    monkeypatch.setattr(regressor_init, "load_regressor", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    initializer = make_initializer("hmr", anny_model)
    image = np.zeros((960, 1280, 3), np.uint8)
    camera = resolve_camera(np.array([IMAGE_SIZE], np.float32), 1, cases["focal"][:1])
    for i in range(3):
        inputs = StartInputs.build(cases["keypoints"][i : i + 1], "blazepose33", camera, anny_model, mean_body_pose(),
                                   images=[image], owners=[0])  # fmt: skip
        start = initializer(inputs)
        assert start.source == ["hmr"] and start.transl is not None and not start.restart.any()
    assert len(loads) == 1
