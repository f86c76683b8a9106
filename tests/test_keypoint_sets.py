"""Keypoint sets: where each body model puts detector points (anny and a 6,890-vertex SMPL-layout
file), the fast path, quality flags, and converting keypoint arrays between sets by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_files import body_like_smpl_arrays, write_model_npz
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from fitter.body import BodyModel, load_body_model
from fitter.keypoints import KEYPOINT_SETS, SKELETONS, convert_keypoints, keypoint_names, keypoint_regressor

SMPL_IDS = SMPLX_VERTEX_IDS["smplh"]
FACE_POINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]


@pytest.fixture(scope="module")
def smpl_file_model(tmp_path_factory: pytest.TempPathFactory) -> BodyModel:
    """A 6,890-vertex SMPL-layout model (see model_files.body_like_smpl_arrays), read from an npz."""
    folder = tmp_path_factory.mktemp("smpl")
    path = write_model_npz(body_like_smpl_arrays(), folder / "SMPL_NEUTRAL.npz", compressed=True)
    return load_body_model(path)


@pytest.fixture(params=["anny", "smpl_file"])
def body_model(request: pytest.FixtureRequest) -> BodyModel:
    return request.getfixturevalue("anny_model" if request.param == "anny" else "smpl_file_model")


def _posed_keypoints(model: BodyModel, keypoint_set: str, **pose) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Points of `keypoint_set` by name (B,3 each) via the fast path, and the full-mesh vertices."""
    regressor = keypoint_regressor(model, keypoint_set)
    with torch.no_grad():
        fast = model.forward_joints(**pose, vertex_ids=regressor.vertex_ids)
        points = regressor(fast.joints, fast.points)
        full = model(**pose)
    torch.testing.assert_close(points, regressor.from_vertices(full.joints, full.vertices), atol=1e-5, rtol=0)
    return dict(zip(regressor.names, points.unbind(1))), full


def test_face_points_on_head_and_ankles_at_feet(body_model: BodyModel) -> None:
    points, full = _posed_keypoints(body_model, "coco17")
    joints, vertices = full.joints[0], full.vertices[0]
    head, neck = joints[15], joints[12]
    for name in FACE_POINTS:
        point = points[name][0]
        assert float((point - head).norm()) < 0.15, name
        assert float(point[1]) > float(neck[1]), name  # rest pose: Y up
    floor = float(vertices[:, 1].min())
    for name in ("left_ankle", "right_ankle"):
        assert abs(float(points[name][0, 1]) - floor) < 0.10, name
    assert float(points["left_ankle"][0, 0]) > 0 > float(points["right_ankle"][0, 0])  # left is +X
    # Upright in the camera frame (global_orient = [pi,0,0], y down): the face is above the neck.
    cam, cam_full = _posed_keypoints(body_model, "coco17", global_orient=torch.tensor([[np.pi, 0.0, 0.0]]))
    assert all(float(cam[name][0, 1]) < float(cam_full.joints[0, 12, 1]) for name in FACE_POINTS)


def test_openpose_feet_points_at_floor(body_model: BodyModel) -> None:
    points, full = _posed_keypoints(body_model, "openpose25")
    floor = float(full.vertices[0, :, 1].min())
    for name in ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"):
        assert abs(float(points[name][0, 1]) - floor) < 0.06, name
    assert float(points["left_big_toe"][0, 2]) > float(points["left_heel"][0, 2]) + 0.1  # toes forward (+Z)


def test_smpl_file_points_are_exactly_smplx_vertices_and_joints(smpl_file_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(0)
    pose = dict(
        betas=torch.randn(2, 10, generator=gen), body_pose=0.4 * torch.randn(2, 69, generator=gen),
        global_orient=torch.randn(2, 3, generator=gen), transl=torch.randn(2, 3, generator=gen),
    )  # fmt: skip
    for keypoint_set, vertex_points, joint_points in (
        ("coco17", {"nose": "nose", "left_eye": "leye", "right_ear": "rear"}, {"left_ankle": 7, "right_wrist": 21}),
        (
            "openpose25",
            {"left_big_toe": "LBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel", "left_ear": "lear"},
            {"left_knee": 4, "right_shoulder": 17, "left_elbow": 18},
        ),
        (
            "blazepose33",
            {"left_pinky": "lpinky", "right_index": "rindex", "left_thumb": "lthumb", "left_eye_inner": "leye",
             "right_foot_index": "RBigToe", "left_heel": "LHeel"},
            {"right_hip": 2},
        ),
    ):  # fmt: skip
        points, full = _posed_keypoints(smpl_file_model, keypoint_set, **pose)
        for name, key in vertex_points.items():
            torch.testing.assert_close(points[name], full.vertices[:, SMPL_IDS[key]], atol=1e-5, rtol=0)
        for name, joint in joint_points.items():
            torch.testing.assert_close(points[name], full.joints[:, joint], atol=1e-5, rtol=0)
    points, full = _posed_keypoints(smpl_file_model, "openpose25", **pose)
    torch.testing.assert_close(points["neck"], (full.joints[:, 16] + full.joints[:, 17]) / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(points["mid_hip"], (full.joints[:, 1] + full.joints[:, 2]) / 2, atol=1e-5, rtol=0)
    points, full = _posed_keypoints(smpl_file_model, "smpl24", **pose)
    smpl24 = torch.stack([points[n] for n in keypoint_names("smpl24")], 1)
    torch.testing.assert_close(smpl24, full.joints, atol=1e-5, rtol=0)


def test_head_top_is_above_the_head(smpl_file_model: BodyModel, anny_model: BodyModel) -> None:
    for model in (smpl_file_model, anny_model):
        points, full = _posed_keypoints(model, "lsp14")
        head_top, head = points["head_top"][0], full.joints[0, 15]
        assert 0.02 < float(head_top[1] - head[1]) < 0.3
        assert float((head_top[[0, 2]] - head[[0, 2]]).norm()) < 0.2


def test_quality_flags(smpl_file_model: BodyModel, anny_model: BodyModel) -> None:
    for model in (smpl_file_model, anny_model):
        coco = keypoint_regressor(model, "coco17")
        quality = dict(zip(coco.names, coco.quality.tolist()))
        assert quality["left_hip"] < 1 and quality["right_hip"] < 1  # detector hips are not model hips
        for name in ("left_shoulder", "right_knee", "left_ankle", "nose"):
            assert quality[name] == 1.0, name
    blaze = keypoint_regressor(smpl_file_model, "blazepose33")
    quality = dict(zip(blaze.names, blaze.quality.tolist()))
    assert quality["mouth_left"] == 0.0 and quality["mouth_right"] == 0.0  # no counterpart on SMPL
    row = blaze.names.index("mouth_left")
    assert float(blaze.joint_weights[row].abs().sum() + blaze.vertex_weights[row].abs().sum()) == 0.0
    assert 0 < quality["left_pinky"] < 1 and 0 < quality["left_eye_inner"] < 1
    assert all(0.0 <= q <= 1.0 for q in blaze.quality.tolist())


def test_anny_fast_coco_points_reproduce_annys_own_regressor(anny_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(2)
    pose = dict(betas=torch.randn(2, 10, generator=gen), body_pose=0.3 * torch.randn(2, 69, generator=gen))
    points, full = _posed_keypoints(anny_model, "coco17", **pose)
    labels = anny_model.coco_regressor_labels
    exact = torch.einsum("kv,bvc->bkc", anny_model.coco_regressor, full.vertices)
    for name in keypoint_names("coco17"):
        assert float((points[name] - exact[:, labels.index(name)]).norm(dim=-1).max()) < 1e-3, name


# ----------------------------------------------------------------------- converting arrays


def _named_keypoints(keypoint_set: str, batch: int = 2) -> np.ndarray:
    """(batch, K, 3) with x = 10*k + batch index, y = 100 + k, confidence 0.1 + 0.8 k / K."""
    names = keypoint_names(keypoint_set)
    kp = np.zeros((batch, len(names), 3), dtype=np.float32)
    for k in range(len(names)):
        kp[:, k, 0] = 10 * k + np.arange(batch)
        kp[:, k, 1] = 100 + k
        kp[:, k, 2] = 0.1 + 0.8 * k / len(names)
    return kp


def test_convert_coco17_to_openpose25() -> None:
    coco = _named_keypoints("coco17")
    out = convert_keypoints(coco, "coco17", "openpose25")
    assert out.shape == (2, 25, 3)
    coco_names, op_names = keypoint_names("coco17"), keypoint_names("openpose25")
    for name in coco_names:
        np.testing.assert_array_equal(out[:, op_names.index(name)], coco[:, coco_names.index(name)])
    ls, rs = coco[:, coco_names.index("left_shoulder")], coco[:, coco_names.index("right_shoulder")]
    neck = out[:, op_names.index("neck")]
    np.testing.assert_allclose(neck[:, :2], (ls[:, :2] + rs[:, :2]) / 2)
    np.testing.assert_allclose(neck[:, 2], np.minimum(ls[:, 2], rs[:, 2]))
    lh, rh = coco[:, coco_names.index("left_hip")], coco[:, coco_names.index("right_hip")]
    np.testing.assert_allclose(out[:, op_names.index("mid_hip"), :2], (lh[:, :2] + rh[:, :2]) / 2)
    for name in ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"):
        assert np.all(out[:, op_names.index(name)] == 0), name  # missing: confidence 0


def test_convert_openpose25_and_blazepose33_to_coco17_and_back() -> None:
    coco_names = keypoint_names("coco17")
    for source in ("openpose25", "blazepose33"):
        kp = _named_keypoints(source)
        names = keypoint_names(source)
        coco = convert_keypoints(kp, source, "coco17")
        assert coco.shape == (2, 17, 3)
        for k, name in enumerate(coco_names):
            np.testing.assert_array_equal(coco[:, k], kp[:, names.index(name)])
    blaze = convert_keypoints(_named_keypoints("coco17"), "coco17", "blazepose33")
    blaze_names = keypoint_names("blazepose33")
    for name in ("mouth_left", "left_pinky", "left_heel", "left_eye_inner"):
        assert np.all(blaze[:, blaze_names.index(name), 2] == 0), name
    # BlazePose's foot index stands in for OpenPose's big toe (and back).
    bp = _named_keypoints("blazepose33")
    op = convert_keypoints(bp, "blazepose33", "openpose25")
    op_names = keypoint_names("openpose25")
    np.testing.assert_array_equal(op[:, op_names.index("left_big_toe")], bp[:, blaze_names.index("left_foot_index")])
    np.testing.assert_array_equal(op[:, op_names.index("right_heel")], bp[:, blaze_names.index("right_heel")])
    assert np.all(op[:, op_names.index("left_small_toe")] == 0)
    back = convert_keypoints(op, "openpose25", "blazepose33")
    foot_index = blaze_names.index("right_foot_index")
    np.testing.assert_array_equal(back[:, foot_index], bp[:, foot_index])


def test_convert_keeps_leading_dims_and_rejects_unknown_sets() -> None:
    kp = _named_keypoints("coco17", batch=6).reshape(2, 3, 17, 3)
    assert convert_keypoints(kp, "coco17", "openpose25").shape == (2, 3, 25, 3)
    single = convert_keypoints(kp[0, 0], "coco17", "coco17")
    np.testing.assert_array_equal(single, kp[0, 0])
    with pytest.raises(ValueError, match="unknown keypoint set"):
        convert_keypoints(kp, "coco17", "coco99")
    assert set(KEYPOINT_SETS) >= {"coco17", "openpose25", "blazepose33", "h36m17", "lsp14", "smpl24"}
    for name, points in KEYPOINT_SETS.items():
        assert len(points) == len(set(points)), name  # names are unique within a set


def test_composite_sets_join_points_and_skeletons() -> None:
    from fitter.keypoints import keypoint_skeleton

    names = keypoint_names("blazepose33+hands42")
    assert names == keypoint_names("blazepose33") + keypoint_names("hands42")
    edges = keypoint_skeleton("blazepose33+hands42")
    assert len(edges) == len(SKELETONS["blazepose33"]) + len(SKELETONS["hands42"])
    assert (33, 34) in edges  # the left hand's wrist -> thumb CMC, shifted past the body's points
    kp = _named_keypoints("coco17", batch=2)
    both = convert_keypoints(kp, "coco17", "coco17+hands42")
    np.testing.assert_array_equal(both[:, :17], kp)
    assert both.shape == (2, 17 + 42, 3) and np.all(both[:, 17 + 1 : 17 + 21] == 0)
    np.testing.assert_array_equal(both[:, 17], kp[:, 9])  # the hand's wrist stands in for the body's
    with pytest.raises(ValueError, match="twice"):
        keypoint_names("coco17+coco17")
    with pytest.raises(ValueError, match="unknown keypoint set 'hands99'"):
        keypoint_names("coco17+hands99")
