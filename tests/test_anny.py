"""The free default body model `anny`, built into SMPL layout (fixture `anny_model`, cached under
$FITTER_HOME): size, frame, symmetry, T-pose, skinning, shape space, gradients and build meta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from fitter.body import SMPL_JOINT_NAMES, BodyModel
from fitter.keypoints import keypoint_regressor

LEFT_RIGHT_JOINTS = [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)]
LEFT_ELBOW, LEFT_WRIST, LEFT_HAND, LEFT_SHOULDER = 18, 20, 22, 16


@pytest.fixture(scope="module")
def rest(anny_model: BodyModel):
    """Rest pose (T-pose) at mean shape: vertices (V,3), joints (24,3), metres, Y up."""
    with torch.no_grad():
        out = anny_model()
    return out.vertices[0], out.joints[0]


def _height(vertices: torch.Tensor) -> float:
    return float(vertices[:, 1].max() - vertices[:, 1].min())


def test_size_layout_and_faces(anny_model: BodyModel, rest) -> None:
    vertices, joints = rest
    assert anny_model.name == "anny" and anny_model.num_betas == 10
    assert anny_model.num_vertices == 13718 and anny_model.num_full_joints == 24
    assert anny_model.parents.tolist()[1:] == anny_model.smpl_parents.tolist()[1:]
    assert 1.5 < _height(vertices) < 1.9
    faces = anny_model.faces
    assert faces.shape[1] == 3 and faces.dtype == torch.long
    assert int(faces.min()) >= 0 and int(faces.max()) < anny_model.num_vertices
    assert bool(((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])).all())
    assert torch.unique(faces).numel() == anny_model.num_vertices  # every vertex is on the surface
    torch.testing.assert_close(anny_model.lbs_weights.sum(1), torch.ones(anny_model.num_vertices), atol=1e-5, rtol=0)


def test_y_up_facing_plus_z_left_is_plus_x(anny_model: BodyModel, rest) -> None:
    vertices, joints = rest
    coco = keypoint_regressor(anny_model, "coco17")
    points = coco.from_vertices(joints[None], vertices[None])[0]
    named = dict(zip(coco.names, points))
    assert named["nose"][2] > named["left_ear"][2] + 0.03 and named["nose"][2] > named["right_ear"][2] + 0.03
    assert joints[15, 1] > joints[12, 1] > joints[0, 1] > joints[4, 1] > joints[7, 1]  # head .. ankle, up = +Y
    assert named["left_shoulder"][0] > 0.1 and named["right_shoulder"][0] < -0.1
    assert joints[SMPL_JOINT_NAMES.index("left_wrist"), 0] > 0.5
    # Toes point forward (+Z) of the ankles.
    assert joints[10, 2] > joints[7, 2] + 0.05 and joints[11, 2] > joints[8, 2] + 0.05


def test_left_right_symmetric_within_1cm(rest) -> None:
    vertices, joints = rest
    v = vertices.numpy()
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    distance, _ = cKDTree(v).query(mirrored)
    assert distance.max() < 0.01, f"mirror of the mesh is {distance.max() * 100:.2f} cm from the mesh"
    for left, right in LEFT_RIGHT_JOINTS:
        flipped = joints[right] * torch.tensor([-1.0, 1.0, 1.0])
        assert float((joints[left] - flipped).norm()) < 0.01, (SMPL_JOINT_NAMES[left], SMPL_JOINT_NAMES[right])
    assert abs(float(joints[0, 0])) < 1e-3 and abs(float(joints[15, 0])) < 0.01  # midline joints on x = 0


def test_rest_pose_is_a_t_pose(rest) -> None:
    _, joints = rest
    for shoulder, elbow, wrist, hand in ((16, 18, 20, 22), (17, 19, 21, 23)):
        assert abs(float(joints[wrist, 1] - joints[shoulder, 1])) < 0.05
        assert abs(float(joints[elbow, 1] - joints[shoulder, 1])) < 0.05
        arm = joints[hand] - joints[shoulder]
        assert abs(float(arm[0])) > 0.5 and float(arm[1:].norm()) < 0.05  # straight along +-X


def test_bending_left_elbow_moves_only_forearm_and_hand(anny_model: BodyModel, rest) -> None:
    vertices, joints = rest
    pose = torch.zeros(1, 69)
    pose[0, 51:54] = torch.tensor([0.0, -1.2, 0.0])  # body_pose joint 17 = SMPL joint 18, left elbow
    with torch.no_grad():
        bent = anny_model(body_pose=pose)
    moved = (bent.vertices[0] - vertices).norm(dim=1)
    joint_moved = (bent.joints[0] - joints).norm(dim=1)
    assert float(joint_moved[LEFT_WRIST]) > 0.15 and float(joint_moved[LEFT_HAND]) > 0.2
    assert float(joint_moved[[j for j in range(24) if j not in (LEFT_WRIST, LEFT_HAND)]].max()) < 1e-6
    forearm_weight = anny_model.lbs_weights[:, [LEFT_ELBOW, LEFT_WRIST, LEFT_HAND]].sum(1)
    elbow_x = float(joints[LEFT_ELBOW, 0])
    x = vertices[:, 0]
    assert float(moved.max()) > 0.3
    over_1mm = moved > 1e-3
    assert bool((forearm_weight[over_1mm] > 0).all())
    # anny's (MakeHuman's) forearm skin weights reach up to 14 cm above the elbow with weights
    # below 5 %; those vertices move a few mm. Vertices that move more stay near the elbow.
    assert float(x[over_1mm].min()) > elbow_x - 0.15
    assert float(x[moved > 0.015].min()) > elbow_x - 0.05
    assert float(x[over_1mm].min()) > float(joints[LEFT_SHOULDER, 0])
    assert float(moved[forearm_weight == 0].max()) < 1e-6


def _waist_circumference(vertices: np.ndarray, faces: np.ndarray, height: float) -> float:
    """Length (m) of the longest closed loop where the horizontal plane y = height cuts the mesh."""
    section = trimesh.Trimesh(vertices, faces, process=False).section(
        plane_origin=[0.0, height, 0.0], plane_normal=[0.0, 1.0, 0.0]
    )
    assert section is not None
    return max(float(np.linalg.norm(np.diff(loop, axis=0), axis=1).sum()) for loop in section.discrete)


def test_beta0_is_height_and_beta1_is_girth(anny_model: BodyModel) -> None:
    values = torch.linspace(-2.0, 2.0, 5)
    faces = anny_model.faces.numpy()
    heights, girths, heights_b1 = [], [], []
    with torch.no_grad():
        for value in values:
            betas = torch.zeros(1, 10)
            betas[0, 0] = value
            heights.append(_height(anny_model(betas=betas).vertices[0]))
            betas = torch.zeros(1, 10)
            betas[0, 1] = value
            out = anny_model(betas=betas)
            waist = float(out.joints[0, 0, 1] + out.joints[0, 6, 1]) / 2  # between pelvis and spine2
            girths.append(_waist_circumference(out.vertices[0].numpy(), faces, waist))
            heights_b1.append(_height(out.vertices[0]))
    assert np.all(np.diff(heights) > 0.03), heights  # taller with beta 0
    assert heights[-1] - heights[0] > 0.2
    assert np.all(np.diff(girths) > 0.03), girths  # thicker waist with beta 1
    assert 0.6 < girths[2] < 1.1  # a plausible adult waist circumference at mean shape (m)


def test_gradients_reach_betas_and_pose(anny_model: BodyModel) -> None:
    betas = (0.3 * torch.randn(2, 10, generator=torch.Generator().manual_seed(0))).requires_grad_()
    body_pose = (0.2 * torch.randn(2, 69, generator=torch.Generator().manual_seed(1))).requires_grad_()
    global_orient = torch.tensor([[np.pi, 0.0, 0.0]] * 2, requires_grad=True)
    out = anny_model(betas=betas, body_pose=body_pose, global_orient=global_orient)
    ((out.vertices - torch.tensor([0.1, 0.2, 0.3])) ** 2).sum().backward()  # not rotation invariant
    for tensor in (betas, body_pose, global_orient):
        assert torch.isfinite(tensor.grad).all() and float(tensor.grad.abs().sum()) > 0
    body_pose.grad = betas.grad = None
    coco = keypoint_regressor(anny_model, "coco17")
    fast = anny_model.forward_joints(betas=betas, body_pose=body_pose, vertex_ids=coco.vertex_ids)
    ((coco(fast.joints, fast.points) - 0.1) ** 2).sum().backward()
    assert torch.isfinite(betas.grad).all() and float(betas.grad.abs().sum()) > 0
    assert torch.isfinite(body_pose.grad).all() and float(body_pose.grad.abs().sum()) > 0


def test_forward_joints_equals_forward_on_anny(anny_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(4)
    inputs = dict(
        betas=torch.randn(2, 10, generator=gen), body_pose=0.3 * torch.randn(2, 69, generator=gen),
        global_orient=torch.randn(2, 3, generator=gen), transl=torch.randn(2, 3, generator=gen),
    )  # fmt: skip
    ids = torch.tensor([0, 100, 5000, 13717])
    with torch.no_grad():
        full = anny_model(**inputs)
        fast = anny_model.forward_joints(**inputs, vertex_ids=ids)
    torch.testing.assert_close(fast.joints, full.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.points, full.vertices[:, ids], atol=1e-5, rtol=0)


def test_build_meta_joint_regressor_error(anny_model: BodyModel) -> None:
    from fitter.body.anny_model import anny_cache_path

    path = anny_cache_path("neutral")
    assert path.is_file()  # built by the anny_model fixture at the latest
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta_json"]))
        assert data["posedirs"].shape == (13718, 3, 207)
    assert meta["source"] == "anny" and meta["joint_names"] == SMPL_JOINT_NAMES
    assert meta["joint_regressor_heldout_error_mm_max"] < 5.0
    assert meta["joint_regressor_heldout_error_mm_mean"] < 2.0
    assert meta["shape_explained_variance"] > 0.95
