"""`anny-hands`: the free model in SMPL-H layout (fixture built once per session, cached under
$FITTER_HOME): rest hands, finger articulation, left/right mirror, agreement with the 24-joint
`anny`, and the hands42 keypoints."""

from __future__ import annotations

import pytest
import torch

from fitter.body import BodyModel, load_body_model
from fitter.body.hands import FINGERS, HAND_JOINT_NAMES, curl_hand_pose, finger_joint_ids


@pytest.fixture(scope="session")
def hands_model() -> BodyModel:
    return load_body_model("anny-hands")


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(3)
    return {"betas": torch.randn(2, 10, generator=gen), "body_pose": 0.3 * torch.randn(2, 69, generator=gen)}


def _hand_vertices(model: BodyModel) -> torch.Tensor:
    """(V,) bool: vertices with any skinning weight on a finger joint."""
    return model.lbs_weights[:, model.hand_joint_ids].sum(1) > 0


def test_layout_matches_smplh(hands_model: BodyModel) -> None:
    from smplx.joint_names import JOINT_NAMES

    from fitter.body.anny_hands import joint_names

    assert hands_model.name == "anny-hands" and hands_model.num_full_joints == 52
    assert joint_names()[22:] == HAND_JOINT_NAMES == list(JOINT_NAMES[25:55])
    assert hands_model.hand_joint_ids.tolist() == list(range(22, 52))
    parents = hands_model.parents.tolist()
    for side, wrist in (("left", 20), ("right", 21)):
        for finger in FINGERS:
            a, b, c = finger_joint_ids(hands_model, side, finger)
            assert (parents[a], parents[b], parents[c]) == (wrist, a, b)
    torch.testing.assert_close(hands_model.lbs_weights.sum(1), torch.ones(hands_model.num_vertices), atol=1e-5, rtol=0)


def test_zero_hand_pose_is_the_rest_hand_and_matches_anny_away_from_hands(
    hands_model: BodyModel, anny_model: BodyModel, inputs
) -> None:
    with torch.no_grad():
        ours = hands_model(**inputs)
        zero = hands_model(**inputs, hand_pose=torch.zeros(2, 90))
        theirs = anny_model(**inputs)
    torch.testing.assert_close(zero.vertices, ours.vertices, atol=1e-6, rtol=0)
    body = ~_hand_vertices(hands_model)
    assert int(body.sum()) > 10000
    torch.testing.assert_close(ours.vertices[:, body], theirs.vertices[:, body], atol=1e-4, rtol=0)
    # The 22 body joints are the 24-joint model's (wrists / elbows re-regressed: within 2 mm).
    err = (ours.full_joints[:, :22] - theirs.joints[:, :22]).norm(dim=-1)
    assert float(err.max()) < 2e-3, err.max()
    assert float(err[:, :18].max()) < 1e-5


def test_rest_fingers_are_straight(hands_model: BodyModel) -> None:
    with torch.no_grad():
        J = hands_model().full_joints[0]
    for side in ("left", "right"):
        for finger in FINGERS:
            a, b, c = finger_joint_ids(hands_model, side, finger)
            first, second = J[b] - J[a], J[c] - J[b]
            cos = float(first @ second / (first.norm() * second.norm()))
            assert cos > 0.995, (side, finger, cos)  # < 6 degrees of bend at the middle joint
            if finger != "thumb":
                sign = 1.0 if side == "left" else -1.0
                assert float(first[0]) * sign > 0.9 * float(first.norm())  # along the arm (+-X)
                assert abs(float(first[1])) < 0.25 * float(first.norm())  # not drooping


def test_curling_one_joint_moves_only_that_finger(hands_model: BodyModel) -> None:
    weights = hands_model.lbs_weights
    with torch.no_grad():
        rest = hands_model().vertices[0]
        for side, finger, k in (("left", "index", 1), ("right", "thumb", 0), ("left", "pinky", 2)):
            ids = finger_joint_ids(hands_model, side, finger)
            hand_index = ids[k] - int(hands_model.hand_joint_ids[0])
            curled = hands_model(hand_pose=curl_hand_pose(hands_model, 1.0, [hand_index])).vertices[0]
            moved = (curled - rest).norm(dim=1)
            driven = weights[:, ids[k:]].sum(1) > 0  # that joint and the ones below it
            assert float(moved[driven].max()) > 0.01
            assert float(moved[~driven].max()) < 1e-6, (side, finger, k)


def test_left_and_right_hands_mirror_at_rest(hands_model: BodyModel) -> None:
    from scipy.spatial import cKDTree

    with torch.no_grad():
        out = hands_model()
    J = out.full_joints[0]
    flip = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(J[22:37], J[37:52] * flip, atol=5e-3, rtol=0)
    v = out.vertices[0]
    hand = _hand_vertices(hands_model)
    left, right = v[hand & (v[:, 0] > 0)], v[hand & (v[:, 0] < 0)]
    distance, _ = cKDTree(left.numpy()).query((right * flip).numpy())
    assert distance.max() < 0.005, distance.max()


def test_fist_closes_the_fingers(hands_model: BodyModel) -> None:
    from fitter.keypoints import keypoint_regressor

    reg = keypoint_regressor(hands_model, "hands42")
    with torch.no_grad():
        rest, fist = hands_model(), hands_model(hand_pose=curl_hand_pose(hands_model, 1.05))
    reach = {}
    for key, out in (("rest", rest), ("fist", fist)):
        pts = reg.from_vertices(out.joints, out.vertices)[0]
        reach[key] = torch.stack([(pts[12] - pts[0]).norm(), (pts[33] - pts[21]).norm()])  # wrist - middle tip
    assert bool(((reach["rest"] > 0.15) & (reach["rest"] < 0.23)).all()), reach
    assert bool((reach["fist"] < 0.6 * reach["rest"]).all()), reach


def test_hands42_points_on_the_rest_hand(hands_model: BodyModel) -> None:
    from fitter.keypoints import keypoint_names, keypoint_regressor
    from fitter.keypoints.model_keypoints import KNUCKLES_TOWARDS_WRIST, WRIST_TOWARDS_PALM

    names = keypoint_names("hands42")
    assert len(names) == 42 and names[0] == "left_hand_wrist" and names[20] == "left_pinky_tip"
    reg = keypoint_regressor(hands_model, "hands42")
    assert bool((reg.quality > 0).all())
    with torch.no_grad():
        out = hands_model()
    pts = reg.from_vertices(out.joints, out.vertices)[0]
    J = out.full_joints[0]
    v = out.vertices[0]
    for h, side in enumerate(("left", "right")):
        p = pts[21 * h : 21 * h + 21]
        sign = 1.0 if side == "left" else -1.0
        wrist, knuckle = J[20 + h], J[finger_joint_ids(hands_model, side, "middle")[0]]
        # MediaPipe's wrist sits at the base of the palm, its knuckles nearer the wrist (model_keypoints)
        torch.testing.assert_close(p[0], wrist + WRIST_TOWARDS_PALM * (knuckle - wrist), atol=1e-3, rtol=0)
        for f, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            chain = p[1 + 4 * f : 5 + 4 * f]  # mcp/cmc .. tip, MediaPipe order
            ids = finger_joint_ids(hands_model, side, finger)
            joints = J[ids].clone()
            if finger != "thumb":
                joints[0] = joints[0] + KNUCKLES_TOWARDS_WRIST * (wrist - joints[0])
            torch.testing.assert_close(chain[:3], joints, atol=1e-3, rtol=0)
            tip = chain[3]
            # The tip is the finger's end: beyond the distal joint along the finger, on the
            # surface, and the furthest hand vertex that way.
            direction = (chain[2] - chain[1]) / (chain[2] - chain[1]).norm()
            assert 0.01 < float((tip - chain[2]) @ direction) < 0.04, (side, finger)
            on_finger = hands_model.lbs_weights[:, ids[2]] > 0.5
            assert float(((v[on_finger] - chain[2]) @ direction).max()) <= float((tip - chain[2]) @ direction) + 1e-6
            if finger != "thumb":
                assert float(tip[0]) * sign > float(chain[2][0]) * sign
        # Fingertips ordered thumb (front, +Z) .. pinky (back) across the hand.
        tips_z = [float(p[4 * f + 4][2]) for f in range(5)]
        assert tips_z[0] > tips_z[1] > tips_z[2] > tips_z[3] > tips_z[4]


def test_hands42_finger_joints_follow_the_joints_in_a_fist(hands_model: BodyModel) -> None:
    from fitter.keypoints import keypoint_regressor

    reg = keypoint_regressor(hands_model, "hands42")
    mediapipe_to_mano = []  # hands42 index of each hand joint (hand-pose order)
    for h in (0, 1):
        for finger in FINGERS:
            f = ("thumb", "index", "middle", "ring", "pinky").index(finger)
            mediapipe_to_mano += [21 * h + 1 + 4 * f + k for k in range(3)]
    betas = torch.randn(1, 10, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = hands_model(betas=betas, hand_pose=curl_hand_pose(hands_model, 1.05))
    pts = reg.from_vertices(out.joints, out.vertices)[0, mediapipe_to_mano]
    err = (pts - out.full_joints[0, 22:]).norm(dim=-1)
    assert float(err.mean()) < 3e-3 and float(err.max()) < 1e-2, err
