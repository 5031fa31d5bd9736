"""The cascade: the fast detector decides what it can settle, CRAFT re-judges
the rest, so that every decision is CRAFT's. Routing and margins are pure
and tested exhaustively; the assembly's routing with known detections; and
the whole thing through the CLI on real videos against CRAFT alone."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textsieve.calibration import Calibration, VideoPair, calibrate, load_calibration, save_calibration
from textsieve.cascade import FRAME_FILLING_BOX, Margins, conformal_quantile, fit_margins, route, wrong_side_scores
from textsieve.cli import main
from textsieve.config import OcrFilter
from textsieve.data.dataset import Row
from textsieve.detect.area import Detections
from textsieve.errors import ConfigError
from textsieve.runtime.flow import SampleAssembly
from textsieve.synthetic import TextBlock, VideoSpec, write_video
from textsieve.video.frames import SampledVideo, VideoInfo

# ---- margins and routing, pure ------------------------------------------------------


def test_conformal_quantile_is_the_right_order_statistic():
    scores = list(range(1, 201))  # 1..200
    assert conformal_quantile(scores, 0.99) == (199.0, 0.99)  # ceil(201 * 0.99) = 199
    assert conformal_quantile(scores, 0.995) == (200.0, 0.995)
    # too few scores for the level: the largest, at the level n/(n+1) it holds at
    assert conformal_quantile([3.0, 1.0], 0.99) == (3.0, pytest.approx(2 / 3))
    assert conformal_quantile([], 0.9) == (0.0, 0.0)


def test_wrong_side_scores_measure_only_wrong_decisions():
    scores = wrong_side_scores([0.04, 0.06, 0.049, 0.2], [0.06, 0.06, 0.03, 0.01], 0.05)
    assert scores == pytest.approx([0.01, 0.0, 0.0, 0.15])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)), min_size=1, max_size=60),
       st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.2]))
def test_margins_send_every_wrong_calibration_video_to_craft(pairs, threshold):
    """With enough coverage for the sample, no calibration video that the
    fast ratio decides wrongly stays with the fast detector."""
    mapped, reference = zip(*pairs)
    level = len(pairs) / (len(pairs) + 1)  # the largest score: all of them covered
    margins, _ = fit_margins(mapped, reference, level, grid=(threshold,))
    for m, r in pairs:
        if (m <= threshold) != (r <= threshold):
            assert route(m, 0.0, False, 0.0, threshold, margins) is not None


def test_margins_between_grid_points_take_the_larger_neighbour():
    margins = Margins((0.01, 0.02, 0.05), (0.001, 0.004, 0.002), 0.99)
    assert margins.at(0.02) == 0.004
    assert margins.at(0.03) == 0.004 and margins.at(0.015) == 0.004
    assert margins.at(0.001) == 0.001 and margins.at(0.5) == 0.002


def test_route_names_its_reason():
    margins = Margins((0.05,), (0.01,), 0.99)
    assert route(0.2, 0.0, False, 0.0, 0.05, margins) is None
    assert route(0.045, 0.0, False, 0.0, 0.05, margins) == "within the margin of 0.05"
    assert route(0.0, FRAME_FILLING_BOX, False, 0.0, 0.05, margins) == "frame-filling box"
    assert route(0.2, 0.0, True, 0.0, 0.05, margins) == "outside the calibrated range"
    # min 0 and max 1 are no thresholds: nothing is near them
    assert route(0.0, 0.0, False, 0.0, 1.0, margins) is None


# ---- the assembly routes ------------------------------------------------------------

def sampled(path: str, frames: int = 2, size: tuple[int, int] = (100, 100)) -> SampledVideo:
    info = VideoInfo(path, size[0], size[1], Fraction(2), frames, Fraction(1, 10), "h264")
    images = [np.zeros((size[1], size[0], 3), np.uint8) for _ in range(frames)]
    return SampledVideo(info, images, [float(i) for i in range(frames)], frames, size)


def box(share: float) -> Detections:
    """A square box covering ``share`` of a 100 x 100 frame."""
    side = 100 * math.sqrt(share)
    return Detections(horizontal=[[0.0, side, 0.0, side]])


def identity_calibration(margin: float) -> Calibration:
    return Calibration("ppocr", None, (0.0, 1.0), (0.0, 1.0), margins=Margins((0.05,), (margin,), 0.99))


def run_assembly(fast: dict[str, float], craft: dict[str, float], fast_box: dict[str, float] | None = None):
    """Videos whose fast detector sees ``fast[path]`` and CRAFT ``craft[path]``;
    returns the outcomes and which frames each detector was asked for."""
    op = OcrFilter(detector="cascade", max_area_ratio=0.05, calibration="cal.json")
    assembly = SampleAssembly(op, "/", identity_calibration(0.01))
    asked: dict[str, list[str]] = {"ppocr": [], "craft": []}
    for index, path in enumerate(fast):
        for task in assembly.open(Row(index, {"videos": [path]})):
            assembly.decoded(task, sampled(path))
    while True:
        model, frames = assembly.take(lambda name: 8, flush=True)
        if not frames:
            break
        asked[model] += [f.key.path for f in frames]
        if model == "ppocr":
            results = [box((fast_box or {}).get(f.key.path, fast[f.key.path])) for f in frames]
        else:
            results = [box(craft[f.key.path]) for f in frames]
        assembly.detected(frames, results)
    return {o.sample["videos"][0]: o for o in assembly.outcomes()}, asked


def test_a_video_near_the_threshold_goes_to_craft_and_a_clear_one_does_not():
    outcomes, asked = run_assembly(fast={"/clear.mp4": 0.20, "/near.mp4": 0.045, "/none.mp4": 0.0},
                                   craft={"/clear.mp4": 0.19, "/near.mp4": 0.07, "/none.mp4": 0.0})
    assert set(asked["craft"]) == {"/near.mp4"}  # only its frames, both of them
    assert len(asked["craft"]) == 2
    near = outcomes["/near.mp4"]
    assert near.status == "dropped"  # CRAFT's decision: 0.07 > 0.05, where the fast one said keep
    video = near.videos[0]
    assert video.decided_by == "craft" and video.routed == "within the margin of 0.05"
    assert video.ratio == pytest.approx(0.07) and video.fast_ratio == pytest.approx(0.045)
    assert outcomes["/clear.mp4"].videos[0].decided_by == "ppocr"
    assert outcomes["/none.mp4"].status == "kept" and outcomes["/none.mp4"].videos[0].decided_by == "ppocr"


def test_a_frame_filling_box_always_goes_to_craft():
    _, asked = run_assembly(fast={"/scene.mp4": 0.0}, craft={"/scene.mp4": 0.0}, fast_box={"/scene.mp4": 0.97})
    assert set(asked["craft"]) == {"/scene.mp4"}


def test_released_frames_are_released_once_whatever_the_route():
    released: list[int] = []
    op = OcrFilter(detector="cascade", max_area_ratio=0.05, calibration="cal.json")
    assembly = SampleAssembly(op, "/", identity_calibration(0.01), release=lambda image: released.append(id(image)))
    for index, path in enumerate(["/a.mp4", "/b.mp4"]):
        for task in assembly.open(Row(index, {"videos": [path]})):
            assembly.decoded(task, sampled(path, frames=3))
    ratios = {"/a.mp4": 0.045, "/b.mp4": 0.3}
    while True:
        model, frames = assembly.take(lambda name: 2, flush=True)
        if not frames:
            break
        assembly.detected(frames, [box(ratios[f.key.path]) for f in frames])
    assert len(released) == 6 == len(set(released))


# ---- calibration files carry what they were fitted for ------------------------------

def pairs_on_a_line(n: int = 40) -> list[VideoPair]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        truth = rng.uniform(0, 0.3, 3)
        out.append(VideoPair(f"v{i}", list(truth * 0.8 + rng.normal(0, 0.004, 3).clip(0)), list(truth)))
    return out


@pytest.mark.parametrize("field,value", [("area_mode", "union"), ("aggregate", "max"), ("sampling", "keyframe"),
                                         ("frame_sample_num", 5), ("color_conversion", "tagged")])
def test_a_calibration_refuses_an_op_it_was_not_fitted_for(tmp_path, field, value):
    fitted_on = {"area_mode": "dj", "aggregate": "mean", "sampling": "uniform", "frame_sample_num": 3,
                 "color_conversion": "dj"}
    cal = calibrate(pairs_on_a_line(), "ppocr", None, "mean", {"r": (0.0, 0.05)}, fitted_on)
    loaded = load_calibration(str(save_calibration(cal, tmp_path / "cal.json")))
    loaded.check_applies(OcrFilter(detector="cascade"))
    with pytest.raises(ConfigError, match=f"fitted with {field}"):
        loaded.check_applies(OcrFilter(detector="ppocr", **{field: value}))


def test_a_calibration_without_margins_cannot_drive_a_cascade(tmp_path):
    old = Calibration("ppocr", None, (0.0, 1.0), (0.0, 1.0))
    with pytest.raises(ConfigError, match="routing margins"):
        old.check_applies(OcrFilter(detector="cascade"))
    old.check_applies(OcrFilter(detector="ppocr"))


# ---- through the CLI, against CRAFT alone ------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Twelve small clips with 0 to 3 lines of drawn text."""
    folder = tmp_path_factory.mktemp("cascade")
    rng = np.random.default_rng(3)
    words = ["Hello world", "Subtitle here", "BIG", "Caption 123", "Lorem ipsum", "Slide title"]
    rows = []
    for i in range(12):
        blocks = tuple(TextBlock(words[int(rng.integers(len(words)))], int(rng.integers(0, 60)), 10 + 40 * j,
                                 size=int(rng.integers(14, 30))) for j in range(i % 4))
        write_video(folder / f"c{i}.mp4", VideoSpec(width=200, height=150, frames=10, gop=5, fps=Fraction(10),
                                                   blocks=blocks))
        rows.append({"id": i, "videos": [f"c{i}.mp4"]})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cascade_through_the_cli_gives_crafts_decisions(clips, tmp_path, capsys):
    base = ["--dataset", str(clips), "--max-area-ratio", "0.05"]
    calibration = tmp_path / "cal.json"
    # 12 videos are too few for the default 0.99 gate at the held-out level: --force, as a user would here
    assert main(["calibrate", *base, "--export", str(tmp_path / "cal"), "--detector", "cascade", "--samples", "12",
                 "--out", str(calibration), "--force"]) == 0
    assert "sent to CRAFT" in capsys.readouterr().out
    assert main(["run", *base, "--export", str(tmp_path / "craft"), "--executor", "serial"]) == 0
    assert main(["run", *base, "--export", str(tmp_path / "cascade"), "--detector", "cascade",
                 "--calibration", str(calibration)]) == 0
    craft = [json.loads(line)["status"] for line in (tmp_path / "craft" / "stats.jsonl").read_text().splitlines()]
    cascade = [json.loads(line) for line in (tmp_path / "cascade" / "stats.jsonl").read_text().splitlines()]
    assert [r["status"] for r in cascade] == craft
    assert all(v["decided_by"] in ("ppocr", "craft") for r in cascade for v in r["videos"])
    summary = json.loads((tmp_path / "cascade" / "summary.json").read_text())
    assert summary["ratios"]["cascade"]["videos"] == 12
    assert 0 <= summary["ratios"]["cascade"]["share_sent_to_craft"] <= 1


def test_cascade_without_a_calibration_is_refused(clips, tmp_path, capsys):
    assert main(["run", "--dataset", str(clips), "--export", str(tmp_path / "o"), "--detector", "cascade"]) == 2
    assert "cascade needs a calibration" in capsys.readouterr().err


def test_calibrate_refuses_to_save_below_the_agreement_gate(clips, tmp_path, capsys):
    code = main(["calibrate", "--dataset", str(clips), "--export", str(tmp_path / "cal"), "--detector", "ppocr",
                 "--samples", "12", "--max-area-ratio", "0.05", "--min-agreement", "1.01"])
    assert code == 2
    assert "calibration not saved" in capsys.readouterr().err
    assert not (tmp_path / "cal" / "calibration-ppocr.json").exists()


def test_fast_ratios_past_the_fitted_range_are_counted_and_warned_about(clips, tmp_path, caplog):
    """A map fitted only on ratios up to 0.01 extends flat past them: the
    run says how many videos it met there, per video and in the summary."""
    calibration = save_calibration(Calibration("ppocr", None, (0.0, 0.01), (0.0, 0.02)), tmp_path / "narrow.json")
    assert main(["run", "--dataset", str(clips), "--export", str(tmp_path / "out"), "--executor", "serial",
                 "--detector", "ppocr", "--calibration", str(calibration)]) == 0
    videos = [v for line in (tmp_path / "out" / "stats.jsonl").read_text().splitlines()
              for v in json.loads(line)["videos"]]
    outside = [v for v in videos if v.get("outside_calibration")]
    assert outside and all(max(v["raw_frame_ratios"]) > 0.01 for v in outside)
    assert all(max(v["raw_frame_ratios"]) <= 0.01 for v in videos if not v.get("outside_calibration"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ratios"]["outside_calibration_videos"] == len(outside)
    assert f"{len(outside)} video(s) had fast ratios past the range the calibration was fitted on" in caplog.text


def test_calibrate_says_when_the_cascade_would_be_no_faster_than_craft(tmp_path, capsys):
    """A fast detector that misses text CRAFT finds (ppocr's 0 on a logo
    CRAFT boxes) among mostly text-free videos: held-out margins must send
    the videos near 0 to CRAFT, and the report says what that costs."""
    from textsieve.runtime.calibrate import print_report

    pairs = [VideoPair(f"blank{i}", [0.0] * 3, [0.0] * 3) for i in range(30)]
    pairs += [VideoPair(f"logo{i}", [0.0] * 3, [0.12] * 3) for i in range(3)]
    pairs += [VideoPair(f"slide{i}", [0.3] * 3, [0.32] * 3) for i in range(7)]
    cal = calibrate(pairs, "ppocr", None, "mean", {"ratio <= 0.05": (0.0, 0.05)}, {})
    print_report(cal, tmp_path / "cal.json")
    out = capsys.readouterr().out
    assert "the cascade would send most videos to CRAFT" in out and "about as slow as `detector: craft`" in out
    clear = calibrate(pairs[:30] + pairs[33:], "ppocr", None, "mean", {"ratio <= 0.05": (0.0, 0.05)}, {})
    print_report(clear, tmp_path / "cal.json")
    assert "would send most videos to CRAFT" not in capsys.readouterr().out
