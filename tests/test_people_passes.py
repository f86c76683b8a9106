"""PeopleDetector's extra passes: a person the first pass missed is found once the found ones are
painted over; a tile's landmarks and mask land on the right full-image pixels; all passes
together create no duplicates; each person's crop re-detection stays on their body; the geometry
helpers (tiles, crops, painting) and the --detect-passes option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fitter.body.poses import mean_body_pose
from fitter.detect.passes import (
    box_ios,
    crop_box,
    cut_by_tile,
    hide_people,
    landmark_box,
    mostly_painted,
    painted_region,
    tile_boxes,
)
from fitter.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from fitter.synthetic import render_people

FOCAL, SIZE = 1000.0, (800, 600)
HIPS = [23, 24]  # BlazePose left / right hip


@pytest.fixture(scope="module")
def scene(anny_model):
    """Two people apart (near at x -0.7 m, 4 m; far at x 0.8 m, 5.5 m): image and visible masks."""
    turn = torch.tensor([[0.0, math.radians(15), 0.0], [0.0, math.radians(-20), 0.0]])
    orient = matrix_to_axis_angle(
        axis_angle_to_matrix(torch.tensor([[math.pi, 0.0, 0.0]])) @ axis_angle_to_matrix(turn)
    )
    params = {"betas": torch.zeros(2, 10), "body_pose": mean_body_pose().expand(2, 69).clone(),
              "global_orient": orient, "transl": torch.tensor([[-0.7, 0.1, 4.0], [0.8, 0.0, 5.5]])}  # fmt: skip
    return render_people(anny_model, params, FOCAL, SIZE)


@pytest.fixture(scope="module")
def detector():
    from fitter.detect import PeopleDetector

    with PeopleDetector(min_detection_confidence=0.1, refine=False) as found:
        yield found


def _owner(det, visible: np.ndarray) -> int | None:
    """The body whose visible pixels (grown 4 px) hold the person's hip midpoint, else None."""
    x, y = (int(v) for v in det.keypoints[HIPS, :2].mean(0))
    owners = [k for k in range(len(visible)) if visible[k, max(0, y - 4) : y + 5, max(0, x - 4) : x + 5].any()]
    return owners[0] if len(owners) == 1 else None


def test_first_pass_finds_both(detector, scene):
    image, visible = scene
    assert sorted(_owner(d, visible) for d in detector.detect(image)) == [0, 1]


def test_second_pass_finds_the_person_the_first_pass_missed(scene, monkeypatch):
    from fitter.detect import PeopleDetector

    image, visible = scene
    for hide, expected in ((False, [0]), (True, [0, 1])):
        with PeopleDetector(min_detection_confidence=0.1, hide_found=hide, refine=False) as found:
            calls = []
            run = found._run

            def first_misses_far(img, tile=None, run=run, calls=calls):
                people = run(img, tile)
                calls.append(img)
                return [d for d in people if _owner(d, visible) == 0] if len(calls) == 1 else people

            monkeypatch.setattr(found, "_run", first_misses_far)
            people = found.detect(image)
        assert sorted(_owner(d, visible) for d in people) == expected
        assert len(calls) == 1 + hide
    hidden = calls[1]  # the second pass saw the near person painted with the image's mean colour
    near = visible[0]
    assert (hidden[near] == image.reshape(-1, 3).mean(0).round()).all()
    assert (hidden[visible[1]] == image[visible[1]]).all()


def test_tile_landmarks_and_mask_map_back_to_full_image_pixels(detector, scene):
    image, visible = scene
    full = {_owner(d, visible): d for d in detector._run(image)}
    rows, cols = np.nonzero(visible[1])
    tile = (int(cols.min()) - 60, int(rows.min()) - 40, int(cols.max()) + 50, int(rows.max()) + 30)
    in_tile = [d for d in detector._run(image, tile) if _owner(d, visible) == 1]
    assert len(in_tile) == 1 and in_tile[0].image_size == SIZE
    tall = float(rows.max() - rows.min())
    error = np.linalg.norm(in_tile[0].keypoints[:, :2] - full[1].keypoints[:, :2], axis=1)
    assert np.median(error) < 0.05 * tall, np.median(error)
    mask = in_tile[0].mask > 0.5
    assert mask.shape == visible[1].shape and not mask[:, : tile[0]].any() and not mask[: tile[1]].any()
    assert (mask & visible[1]).sum() / (mask | visible[1]).sum() > 0.6
    assert box_ios(landmark_box(in_tile[0].keypoints), in_tile[0].bbox_xyxy) > 0.8


def test_person_found_in_two_passes_is_kept_once(detector, scene, monkeypatch):
    from fitter.detect import PeopleDetector, people
    from fitter.detect.people import merge_people

    image, visible = scene
    rows, cols = np.nonzero(visible[1])
    tile = (int(cols.min()) - 60, int(rows.min()) - 40, int(cols.max()) + 50, int(rows.max()) + 30)
    full, in_tile = detector._run(image), detector._run(image, tile)
    assert [_owner(d, visible) for d in in_tile] == [1]
    assert sorted(_owner(d, visible) for d in merge_people(full, in_tile)) == [0, 1]
    monkeypatch.setattr(people, "paint", lambda img, region: img.copy())  # passes 2-6 see everyone again
    monkeypatch.setattr(people, "mostly_painted", lambda keypoints, painted: False)
    with PeopleDetector(min_detection_confidence=0.1, hide_found=True, tiles=2, refine=False) as found:
        assert sorted(_owner(d, visible) for d in found.detect(image)) == [0, 1]


def test_all_passes_together_create_no_duplicates_and_stay_on_each_body(scene):
    from fitter.detect import PeopleDetector

    image, visible = scene
    with PeopleDetector(min_detection_confidence=0.1, hide_found=True, tiles=2, refine=True) as found:
        people = found.detect(image)
    on_bodies = [_owner(d, visible) for d in people]
    assert sorted(k for k in on_bodies if k is not None) == [0, 1], on_bodies
    assert all(np.isfinite(d.keypoints).all() and d.mask.shape == visible[0].shape for d in people)


def test_refined_landmarks_come_from_each_persons_crop(detector, scene, monkeypatch):
    from fitter.detect import PeopleDetector

    image, visible = scene
    with PeopleDetector(min_detection_confidence=0.1, refine=True) as found:
        tiles = []
        run = found._run
        monkeypatch.setattr(found, "_run", lambda img, tile=None: tiles.append(tile) or run(img, tile))
        people = found.detect(image)
    assert sorted(_owner(d, visible) for d in people) == [0, 1]
    assert tiles[0] is None and len(tiles) == 3
    for det, tile in zip(people, tiles[1:]):  # largest first both times
        x0, y0, x1, y1 = tile
        assert x0 <= det.keypoints[:, 0].min() and det.keypoints[:, 0].max() <= x1
        assert y0 <= det.keypoints[HIPS, 1].min() and det.keypoints[HIPS, 1].max() <= y1


def test_tiles_cover_the_image_with_the_overlap():
    tiles = tile_boxes(800, 600, 2, overlap=0.2)
    assert len(tiles) == 4 and tiles[0][:2] == (0, 0) and tiles[-1][2:] == (800, 600)
    width = tiles[0][2] - tiles[0][0]
    assert abs(width - 800 / 1.8) <= 1 and abs((tiles[0][2] - tiles[1][0]) - 0.2 * width) <= 1
    covered = np.zeros((600, 800), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all() and tile_boxes(800, 600, 1) == [(0, 0, 800, 600)]
    with pytest.raises(ValueError, match="grid >= 1"):
        tile_boxes(800, 600, 0)


def test_cut_by_tile_only_at_inner_edges():
    tile = (0, 0, 444, 333)  # the top-left tile of 800 x 600
    inside = np.array([[10.0, 5.0], [400.0, 300.0]])
    assert not cut_by_tile(inside, tile, 800, 600)
    assert cut_by_tile(inside + [50.0, 0.0], tile, 800, 600)  # past the right edge, inside the image
    assert not cut_by_tile(inside - [20.0, 10.0], tile, 800, 600)  # past the image's own edge


def test_crop_box_is_a_padded_square_clipped_to_the_image():
    assert crop_box(np.array([100.0, 100.0, 140.0, 200.0]), 800, 600) == (57, 87, 183, 213)
    assert crop_box(np.array([0.0, 500.0, 40.0, 600.0]), 800, 600) == (0, 487, 83, 600)


def test_hide_people_paints_grown_masks_with_the_mean_colour():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 200
    mask = np.zeros((100, 200), np.float32)
    mask[40:60, 20:30] = 0.9
    hidden = hide_people(image, [mask])
    painted = (hidden != image).any(-1)
    assert painted[40:60, 20:30].all() and painted[38, 25] and not painted[30, 25] and not painted[:, 100:].any()
    assert (hidden[50, 25] == 100).all() and (hide_people(image, []) == image).all()
    with pytest.raises(ValueError, match="person mask is"):
        hide_people(image, [mask[:50]])


def test_detect_passes_option_is_parsed_and_checked():
    from fitter.cli.fit import parse_detect_passes
    from fitter.pipeline import FitOptions, check_options

    assert parse_detect_passes("none") == () and parse_detect_passes("refine, tiles") == ("refine", "tiles")
    assert FitOptions().detect_passes == ("refine",)
    with pytest.raises(ValueError, match="unknown pass 'tile'"):
        check_options(FitOptions(detect_passes=("tile",)), [], [])


def test_people_seen_mostly_on_the_paint_are_ghosts():
    painted = painted_region([np.pad(np.ones((20, 20), np.float32), ((40, 40), (40, 140)))], 100, 200)
    on_paint = np.array([[50.0, 50.0, 0.9], [45.0, 55.0, 0.8], [150.0, 50.0, 0.9], [150.0, 60.0, 0.1]])
    assert mostly_painted(on_paint, painted)  # 2 of the 3 seen landmarks on the paint
    assert not mostly_painted(on_paint[[0, 2, 3]] + [[0, 0, 0], [0, 0, 0], [0, 0, 0.8]], painted)
    assert mostly_painted(np.array([[150.0, 50.0, 0.2]]), painted)  # nothing seen at all
