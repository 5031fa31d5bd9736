"""Kinds of text (issue 26): the rules on hand-made boxes, a property of the
per-kind ratios, Cosmos-Curate's overlay rule, and each kind on videos drawn
here and judged by the real fast detector through ``kind_frames``."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from textsieve.detect.area import Detections, frame_text_ratio, polygons
from textsieve.judging import video_ratio
from textsieve.kind_frames import detect_kind_frames
from textsieve.kinds import (
    KINDS,
    CosmosRule,
    KindRules,
    classify_video,
    cosmos_overlay,
    transfer_kinds,
)

W, H = 640, 360


def quad(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A quad from shares of the W x H frame."""
    return [[x0 * W, y0 * H], [x1 * W, y0 * H], [x1 * W, y1 * H], [x0 * W, y1 * H]]


def frames(*per_frame: list) -> list[Detections]:
    return [Detections(free=list(boxes)) for boxes in per_frame]


def judge(dets: list[Detections], rules: KindRules = KindRules()):
    return classify_video(dets, (W, H), [float(i) for i in range(len(dets))], rules)


# ---- the rules on hand-made boxes ----

def test_a_corner_logo_in_every_frame_is_overlay_and_a_static_centre_box_is_scene():
    logo, sign = quad(0.8, 0.03, 0.97, 0.1), quad(0.4, 0.3, 0.55, 0.36)
    video = judge(frames(*[[logo, sign]] * 8))
    assert all(f.kinds == ["overlay", "scene"] for f in video.frames)
    assert video.ratios["overlay"] == pytest.approx(0.17 * 0.07)
    assert video.ratios["scene"] == pytest.approx(0.15 * 0.06)
    assert video.main_kind == "overlay"


def test_a_corner_box_seen_once_is_not_overlay():
    logo = quad(0.85, 0.03, 0.97, 0.08)
    video = judge(frames([logo], [], [], [], [], [], [], []))
    assert video.frames[0].kinds == ["scene"]


def test_changing_centred_bottom_lines_are_subtitles():
    lines = [quad(0.3, 0.82, 0.7, 0.9), quad(0.3, 0.82, 0.7, 0.9), quad(0.2, 0.82, 0.8, 0.9),
             quad(0.35, 0.82, 0.65, 0.9), quad(0.35, 0.82, 0.65, 0.9), None, quad(0.25, 0.82, 0.75, 0.9)]
    video = judge(frames(*[[b] if b else [] for b in lines], []))
    assert [k for f in video.frames for k in f.kinds] == ["subtitle"] * 6
    assert video.main_kind == "subtitle"


def test_top_band_lines_are_subtitles_too():
    video = judge(frames([quad(0.3, 0.05, 0.7, 0.12)], [quad(0.25, 0.05, 0.75, 0.12)], []))
    assert [k for f in video.frames for k in f.kinds] == ["subtitle", "subtitle"]


def test_a_centred_bottom_line_that_never_changes_is_an_overlay():
    banner = quad(0.3, 0.86, 0.7, 0.93)
    video = judge(frames(*[[banner]] * 6))
    assert {k for f in video.frames for k in f.kinds} == {"overlay"}


def test_lines_off_centre_touching_the_edge_or_out_of_the_band_are_not_subtitles():
    for line in (quad(0.1, 0.82, 0.5, 0.9),  # left of centre
                 quad(0.3, 0.9, 0.7, 1.0),  # touching the bottom edge: a watermark's place
                 quad(0.3, 0.4, 0.7, 0.48)):  # mid-frame
        video = judge(frames([line], [line], []))
        assert "subtitle" not in video.frames[0].kinds, line


def test_a_line_seen_in_one_frame_only_is_not_a_subtitle():
    # a number plate crossing the bottom centre once: the band does not stay
    video = judge(frames([], [quad(0.4, 0.8, 0.6, 0.9)], []))
    assert video.frames[1].kinds == ["scene"]


def test_rows_of_interior_text_make_a_screen_frame_whatever_else_it_holds():
    rows = [quad(0.1, 0.2 + 0.1 * i, 0.6, 0.26 + 0.1 * i) for i in range(5)]  # left-aligned: not subtitles
    logo = quad(0.88, 0.02, 0.98, 0.07)
    video = judge(frames(rows + [logo], rows + [logo], [logo]))
    assert video.frames[0].screen_frame and video.frames[0].kinds == ["screen"] * 6
    assert not video.frames[2].screen_frame and video.frames[2].kinds == ["overlay"]
    assert video.main_kind == "screen"


def test_one_interior_line_of_large_type_is_a_title_card():
    title = quad(0.2, 0.4, 0.8, 0.55)
    assert judge(frames([title], [title])).frames[0].kinds == ["screen"]
    assert judge(frames([title], [quad(0.3, 0.45, 0.9, 0.6)])).frames[0].kinds == ["scene"]  # moving: a sign
    assert judge(frames([title], [title]), KindRules(screen_title_height=0.2)).frames[0].kinds == ["scene"]
    big_logo = quad(0.75, 0.01, 0.98, 0.13)  # as tall as a title, but at the edge
    assert judge(frames([big_logo], [big_logo])).frames[0].kinds == ["overlay"]


def test_craft_horizontal_boxes_come_first_as_in_the_saved_polygons():
    logo = [0.85 * W, 0.97 * W, 0.03 * H, 0.08 * H]  # xmin, xmax, ymin, ymax
    sign = quad(0.4, 0.3, 0.55, 0.36)
    dets = [Detections(horizontal=[logo], free=[sign]) for _ in range(5)]
    video = judge(dets)
    assert len(video.frames[0].kinds) == len(polygons(dets[0])) == 2
    assert video.frames[0].kinds == ["overlay", "scene"]


def test_no_boxes_is_kind_none_and_rejected_boxes_get_no_kind():
    blob = quad(0, 0, 1, 0.9)
    video = judge([Detections(rejected=[blob]) for _ in range(3)])
    assert video.main_kind == "none" and video.ratio == 0 and all(f.kinds == [] for f in video.frames)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="one time per frame"):
        classify_video(frames([], []), (W, H), [0.0])
    with pytest.raises(ValueError, match="positive"):
        classify_video(frames([]), (0, H), [0.0])
    with pytest.raises(ValueError):
        KindRules(edge_margin=0.7)
    with pytest.raises(ValueError):
        KindRules(no_such_key=1)


def test_dj_frames_take_the_kinds_found_on_the_kind_frames():
    # the kind frames (fast detector, 8 frames) see a persistent corner logo;
    # Data-Juicer's 3 frames, at another size, hold the same logo and a line
    logo = quad(0.85, 0.03, 0.97, 0.08)
    reference_dets = frames(*[[logo]] * 8)
    reference = classify_video(reference_dets, (W, H), [i * 0.5 for i in range(8)])
    scale = 3.0
    dj = [Detections(horizontal=[[0.86 * W * scale, 0.96 * W * scale, 0.035 * H * scale, 0.075 * H * scale]],
                     free=[[[x * scale, y * scale] for x, y in quad(0.4, 0.3, 0.55, 0.36)]]) for _ in range(3)]
    moved = transfer_kinds(dj, (W * 3, H * 3), [0.0, 1.75, 3.5], reference, reference_dets)
    assert [f.kinds for f in moved.frames] == [["overlay", "scene"]] * 3
    assert moved.ratio == pytest.approx(video_ratio([frame_text_ratio(d, W * 3, H * 3) for d in dj]))
    assert sum(moved.ratios.values()) == pytest.approx(moved.ratio)


# ---- a property: kinds partition the boxes; dj ratios add up ----

coord = st.floats(0, 1, allow_nan=False)


@st.composite
def box_sets(draw):
    def one():
        x0, x1 = sorted((draw(coord), draw(coord)))
        y0, y1 = sorted((draw(coord), draw(coord)))
        return x0, y0, x1, y1

    dets = []
    for _ in range(draw(st.integers(1, 6))):
        horizontal = [[x0 * W, x1 * W, y0 * H, y1 * H] for x0, y0, x1, y1 in
                      [one() for _ in range(draw(st.integers(0, 3)))]]
        free = [quad(*one()) for _ in range(draw(st.integers(0, 4)))]
        dets.append(Detections(horizontal=horizontal, free=free))
    return dets


@settings(max_examples=60, deadline=None)
@given(box_sets())
def test_kinds_partition_the_boxes_and_dj_ratios_add_up(dets):
    video = judge(dets)
    for det, frame in zip(dets, video.frames):
        assert len(frame.kinds) == len(polygons(det)) and set(frame.kinds) <= set(KINDS)
        assert frame.ratio == pytest.approx(frame_text_ratio(det, W, H), abs=1e-12)
        assert sum(frame.ratios.values()) == pytest.approx(frame.ratio, rel=1e-9, abs=1e-12)
    assert video.ratio == pytest.approx(video_ratio([frame_text_ratio(d, W, H) for d in dets]), abs=1e-12)
    assert video.counted_ratio(KINDS) == pytest.approx(video.ratio, rel=1e-9, abs=1e-12)
    assert video.main_kind == ("none" if video.ratio == 0 else max(KINDS, key=lambda k: video.ratios[k]))
    union = classify_video(dets, (W, H), [0.0] * len(dets), area_mode="union")
    assert sum(union.ratios.values()) >= union.ratio - 1e-12  # union: kinds may share pixels


# ---- the baseline ----

def test_cosmos_rule_needs_ten_frames_of_one_place_or_corner_text_often():
    logo = quad(0.4, 0.3, 0.55, 0.36)  # not in a corner
    assert cosmos_overlay(frames(*[[logo]] * 10), (W, H)).overlay
    nine = cosmos_overlay(frames(*[[logo]] * 9, []), (W, H))
    assert not nine.overlay and nine.longest_track == 9
    split = cosmos_overlay(frames(*[[logo]] * 5, [], *[[logo]] * 5), (W, H))  # a gap breaks the track
    assert not split.overlay and split.longest_track == 5
    corner = quad(0.01, 0.01, 0.08, 0.05)
    assert cosmos_overlay(frames([corner], *[[]] * 8), (W, H)).overlay  # 1/9 > 10%
    assert not cosmos_overlay(frames([corner], *[[]] * 9), (W, H)).overlay  # 1/10 is not more than 10%
    assert not cosmos_overlay(frames(*[[logo]] * 10), (W, H), CosmosRule(min_track_frames=11)).overlay


# ---- each kind drawn into a video, judged by the real fast detector ----

FONT = ImageFont.load_default(size=22)


def encode(path: Path, images: list[np.ndarray], fps: int = 10) -> Path:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def background(i: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A changing text-free picture: a sky-to-ground gradient and a moving ball."""
    w, h = size
    ramp = np.linspace(0, 1, h)[:, None, None]
    top, bottom = np.array([90, 140, 200]), np.array([60, 100, 50])
    image = Image.fromarray(((1 - ramp) * top + ramp * bottom).repeat(w, axis=1).astype(np.uint8))
    x = int((i * 7) % (w - 40))
    ImageDraw.Draw(image).ellipse((x, h // 2 - 20, x + 40, h // 2 + 20), fill=(200, 80, 60))
    return image


def text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], line: str, anchor: str = "la") -> None:
    draw.text(xy, line, font=FONT, fill=(255, 255, 255), anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0))


def overlay_video(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        image = background(i)
        text(ImageDraw.Draw(image), (312, 8), "NEWS24", anchor="ra")
        out.append(np.asarray(image))
    return out


SUBTITLES = ["Where were you", "I waited all night long", "Sorry", "It will not happen again"]


def subtitle_video(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        image = background(i)
        line = SUBTITLES[i * len(SUBTITLES) // n]
        if i < n - 4:  # the last line ends before the video does
            text(ImageDraw.Draw(image), (160, 200), line, anchor="ms")
        out.append(np.asarray(image))
    return out


def screen_video(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        image = Image.new("RGB", (320, 240), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        for row in range(6):
            draw.text((20, 30 + row * 32), f"Item {row + 1 + i // 10}: budget plan", font=FONT, fill=(20, 20, 20))
        out.append(np.asarray(image))
    return out


def scene_video(n: int) -> list[np.ndarray]:
    """A shop sign on a wall, filmed by a camera that pans and turns: the
    sign crosses the frame and its perspective changes."""
    wall = Image.new("RGB", (900, 300), (120, 110, 100))
    draw = ImageDraw.Draw(wall)
    for x in range(0, 900, 30):
        draw.line((x, 0, x, 300), fill=(100, 92, 84), width=2)
    draw.rectangle((380, 100, 620, 170), fill=(30, 40, 120))
    draw.text((500, 135), "BAKERY", font=ImageFont.load_default(size=40), fill=(255, 230, 120), anchor="mm")
    out = []
    for i in range(n):
        t = i / max(1, n - 1)
        pan = 520 * t  # the view slides across the wall
        tilt = 40 * math.sin(math.pi * t)  # and turns: the far side shrinks
        quad_src = (pan, 20 + tilt, pan, 280 - tilt, pan + 380, 300, pan + 380, 0)
        out.append(np.asarray(wall.transform((320, 240), Image.Transform.QUAD, quad_src, Image.Resampling.BILINEAR)))
    return out


def control_video(n: int) -> list[np.ndarray]:
    return [np.asarray(background(i)) for i in range(n)]


@pytest.fixture(scope="module")
def fast():
    from textsieve.detect.ppocr import PpOcrDetector

    return PpOcrDetector("cpu", threads=2)


@pytest.mark.parametrize("draw, expected", [
    (overlay_video, "overlay"), (subtitle_video, "subtitle"), (screen_video, "screen"),
    (scene_video, "scene"), (control_video, "none"),
], ids=["overlay", "subtitle", "screen", "scene", "control"])
def test_drawn_videos_get_their_kind_from_the_fast_detector(tmp_path, fast, draw, expected):
    path = encode(tmp_path / f"{expected}.mp4", draw(40))
    kf = detect_kind_frames(str(path), 12, fast, side=480)
    assert kf.frame_size == (480, 360) and len(kf.detections) == 12  # scaled up from 320x240
    video = classify_video(kf.detections, kf.frame_size, kf.times)
    assert video.main_kind == expected, (video.ratios, [f.kinds for f in video.frames])
    if expected != "none":
        # the kind holds most of the text, not merely the largest share
        assert video.ratios[expected] >= 0.8 * video.ratio
