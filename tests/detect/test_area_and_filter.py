"""Area formulas and decisions on hand-computed cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textsieve.detect.area import Detections, dj_text_area, frame_text_ratio, triangle_area, union_text_area
from textsieve.judging import keep_sample, video_ratio, with_stats


def test_rectangles_sum():
    assert dj_text_area([[10, 30, 5, 15], [0, 4, 0, 4]], []) == 20 * 10 + 16


def test_inverted_rectangles_are_skipped():
    assert dj_text_area([[30, 10, 5, 15], [10, 30, 15, 5], [0, 2, 0, 2]], []) == 4


def test_degenerate_rectangle_counts_zero():
    assert dj_text_area([[5, 5, 0, 10]], []) == 0


def test_axis_aligned_quad_equals_its_rectangle():
    quad = [[10, 10], [30, 10], [30, 20], [10, 20]]
    assert dj_text_area([], [quad]) == 200


def test_rotated_quad():
    # a square of side 10*sqrt(2) rotated by 45 degrees around (10, 10)
    quad = [[10, 0], [20, 10], [10, 20], [0, 10]]
    assert dj_text_area([], [quad]) == pytest.approx(200)


def test_quad_split_on_diagonal_p0_p2():
    # a non-convex "dart": the formula splits on p0-p2 and adds absolute
    # triangle areas, as Data-Juicer does (not the polygon's true area)
    quad = [[0, 0], [10, 5], [0, 10], [3, 5]]
    expected = triangle_area([0, 0], [10, 5], [0, 10]) + triangle_area([0, 10], [3, 5], [0, 0])
    assert dj_text_area([], [quad]) == pytest.approx(expected) == pytest.approx(50 + 15)


def test_overlaps_count_twice_and_boxes_past_the_edge_are_not_clipped():
    boxes = [[0, 20, 0, 10], [10, 30, 0, 10], [90, 130, 0, 10]]  # last one sticks out of a 100x100 frame
    det = Detections(horizontal=boxes)
    assert dj_text_area(boxes, []) == 200 + 200 + 400
    assert frame_text_ratio(det, 100, 100) == pytest.approx(0.08)
    # union: overlap once, clipped at x=100
    assert union_text_area(boxes, [], 100, 100) == 300 + 100
    assert frame_text_ratio(det, 100, 100, "union") == pytest.approx(0.04)


def test_dj_ratio_can_exceed_one_union_cannot():
    boxes = [[0, 100, 0, 100]] * 3
    det = Detections(horizontal=boxes)
    assert frame_text_ratio(det, 100, 100) == 3.0
    assert frame_text_ratio(det, 100, 100, "union") == 1.0


def test_union_of_quad_and_rect():
    quad = [[0, 0], [10, 0], [10, 10], [0, 10]]
    # PIL fills the outline inclusively: an axis-aligned 0..10 quad covers 11x11 pixels
    assert union_text_area([[0, 5, 0, 5]], [quad], 50, 50) == 121


def test_negative_coordinates_are_clipped_in_union():
    assert union_text_area([[-10, 10, -10, 10]], [], 100, 100) == 100


@given(
    st.lists(
        st.tuples(*[st.integers(min_value=-50, max_value=150)] * 4).map(lambda t: [t[0], t[0] + abs(t[1]) % 80, t[2], t[2] + abs(t[3]) % 80]),
        max_size=6,
    )
)
def test_union_is_at_most_frame_and_at_most_dj_for_rects(boxes):
    union = union_text_area(boxes, [], 100, 80)
    assert 0 <= union <= 100 * 80
    inside = [[max(0, a), min(100, b), max(0, c), min(80, d)] for a, b, c, d in boxes]
    assert union <= dj_text_area([b for b in inside if b[1] >= b[0] and b[3] >= b[2]], []) + 1e-9


def test_video_ratio_aggregates():
    assert video_ratio([0.1, 0.2, 0.6]) == pytest.approx(0.3)
    assert video_ratio([0.1, 0.2, 0.6], "max") == 0.6
    assert video_ratio([0.0] * 9 + [1.0], "p90") == pytest.approx(0.1)
    with pytest.raises(ValueError):
        video_ratio([])


@pytest.mark.parametrize(
    "ratios,mode,expected",
    [
        ([], "any", True),
        ([], "all", True),
        ([0.0], "any", True),  # inclusive at min
        ([0.1], "any", True),  # inclusive at max
        ([0.10000001], "any", False),
        ([0.05, 0.5], "any", True),
        ([0.05, 0.5], "all", False),
        ([0.05, 0.07], "all", True),
        ([math.nan], "any", False),
    ],
)
def test_keep_sample(ratios, mode, expected):
    assert keep_sample(ratios, 0.0, 0.1, mode) is expected


def test_with_stats_keeps_sample_and_existing_stats():
    sample = {"videos": ["a.mp4"], "__dj__stats__": {"other": 1}}
    out = with_stats(sample, [0.25])
    assert out["__dj__stats__"] == {"other": 1, "video_ocr_area_ratio": [0.25]}
    assert sample["__dj__stats__"] == {"other": 1}
