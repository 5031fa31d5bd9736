"""The cascade: the fast detector decides what it can settle, CRAFT re-judges
the rest, so that every decision is CRAFT's. Routing and margins are pure
and tested exhaustively; the assembly's routing with known detections; and
the whole thing through the CLI on real videos against CRAFT alone."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textsieve.calibration import Calibration, VideoPair, calibrate, load_calibration, save_calibration
from textsieve.judging import FRAME_FILLING_BOX, Margins, conformal_quantile, fit_margins, route, wrong_side_scores
from textsieve.cli import main
from textsieve.config import OcrFilter
from textsieve.data.dataset import Row
from textsieve.detect.area import Detections
from textsieve.errors import ConfigError
from textsieve.runtime.flow import SampleAssembly
from textsieve.synthetic import TextBlock, VideoSpec, write_video
from textsieve.video.frames import SampledVideo, VideoInfo

from runs import in_process

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


# ---- the agreement gate: whose figure, and what a sample size can reach ----------------

def test_the_gate_judges_the_cascade_by_its_own_agreement_not_the_maps():
    """ppocr reads a logo as 0 where CRAFT finds 0.12: the map alone gets
    the logos wrong, the cascade routes them; the verdict for detector:
    cascade carries the cascade's figure, for ppocr the map's, both stated."""
    from textsieve.calibration import judge

    pairs = [VideoPair(f"blank{i}", [0.0] * 3, [0.0] * 3) for i in range(30)]
    pairs += [VideoPair(f"logo{i}", [0.0] * 3, [0.12] * 3) for i in range(3)]
    pairs += [VideoPair(f"slide{i}", [0.3] * 3, [0.32] * 3) for i in range(7)]
    cal = calibrate(pairs, "ppocr", None, "mean", {"ratio <= 0.05": (0.0, 0.05)}, {})
    cascade = judge(cal, "ratio <= 0.05", "cascade", 0.95)
    mapped = judge(cal, "ratio <= 0.05", "map", 0.95)
    assert cascade.cascade_agreement == cal.report["cascade_held_out"]["agreement"]["ratio <= 0.05"]
    assert cascade.map_agreement == cal.report["held_out"]["agreement"]["ratio <= 0.05"] == mapped.map_agreement
    assert cascade.map_agreement < 0.95 <= cascade.cascade_agreement  # the two figures differ here
    assert cascade.passed and cascade.agreement == cascade.cascade_agreement
    assert not mapped.passed and mapped.agreement == mapped.map_agreement
    assert cascade.reachable == pytest.approx(40 / 41) and cascade.videos_for_level == 199


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99, 0.995, 0.999])
def test_videos_for_level_is_the_fewest_whose_margins_reach_it(level):
    from textsieve.calibration import reachable_level, videos_for_level

    n = videos_for_level(level)
    assert conformal_quantile([0.0] * n, level)[1] == level == reachable_level(n, level)
    assert reachable_level(n - 1, level) == pytest.approx((n - 1) / n)
    assert (n - 1) / n < level
    assert videos_for_level(1.0) is None


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
    """Eight small clips with 0 to 3 lines of drawn text, two of each (CRAFT, on a CPU, takes
    ~0.3 s a frame: every clip costs two runs' worth of it)."""
    folder = tmp_path_factory.mktemp("cascade")
    rng = np.random.default_rng(3)
    words = ["Hello world", "Subtitle here", "BIG", "Caption 123", "Lorem ipsum", "Slide title"]
    rows = []
    for i in range(8):
        blocks = tuple(TextBlock(words[int(rng.integers(len(words)))], int(rng.integers(0, 60)), 10 + 40 * j,
                                 size=int(rng.integers(14, 30))) for j in range(i % 4))
        write_video(folder / f"c{i}.mp4", VideoSpec(width=200, height=150, frames=10, gop=5, fps=Fraction(10),
                                                   blocks=blocks))
        rows.append({"id": i, "videos": [f"c{i}.mp4"]})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def wide_margin_calibration(tmp_path_factory) -> Path:
    """An identity map whose margin (0.1 at max 0.05) sends every video with a
    ppocr ratio up to 0.15 to CRAFT: made by hand, as a calibration's margins
    are fitted (calibrate itself is tested on tiny_clips below, and in
    tests/detect/test_fast.py)."""
    return save_calibration(identity_calibration(0.1), tmp_path_factory.mktemp("widecal") / "cal.json")


def test_cascade_through_the_cli_gives_crafts_decisions(clips, wide_margin_calibration, tmp_path):
    base = ["--dataset", str(clips), "--max-area-ratio", "0.05", "--executor", "serial"]
    assert main(["run", *base, "--export", str(tmp_path / "craft")]) == 0
    assert main(["run", *base, "--export", str(tmp_path / "cascade"), "--detector", "cascade",
                 "--calibration", str(wide_margin_calibration)]) == 0
    craft = [json.loads(line)["status"] for line in (tmp_path / "craft" / "stats.jsonl").read_text().splitlines()]
    cascade = [json.loads(line) for line in (tmp_path / "cascade" / "stats.jsonl").read_text().splitlines()]
    assert [r["status"] for r in cascade] == craft
    assert all(v["decided_by"] in ("ppocr", "craft") for r in cascade for v in r["videos"])
    summary = json.loads((tmp_path / "cascade" / "summary.json").read_text())
    assert summary["ratios"]["cascade"]["videos"] == 8
    assert 0 <= summary["ratios"]["cascade"]["share_sent_to_craft"] <= 1


def test_cascade_without_a_calibration_is_refused(clips, tmp_path, capsys):
    assert main(["run", "--dataset", str(clips), "--export", str(tmp_path / "o"), "--detector", "cascade"]) == 2
    assert "cascade needs a calibration" in capsys.readouterr().err


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


# ---- a calibration a user can afford: refused, accepted, extended, invalidated -----------
# Through the command's own entry (main, in this process: the models it builds are kept
# between calls, where each subprocess paid ~6 s to import and build them again), on 8 tiny
# clips. One refused calibration of 4 samples is measured once; each test works on its own
# copy of that folder.

CAL_ARGS = ["--detector", "cascade", "--max-area-ratio", "0.05", "--executor", "serial"]


def calibrate_cli(dataset: Path, export: Path, *extra: str, args: tuple[str, ...] = tuple(CAL_ARGS)):
    return in_process(["calibrate", "--dataset", str(dataset), "--export", str(export), *args, *extra])


@pytest.fixture(scope="module")
def tiny_clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tinyclips")
    words = ["Hello world", "Subtitle here", "BIG", "Caption 123", "Lorem ipsum", "Slide title", "News 24"]
    rows = []
    for i in range(8):
        blocks = tuple(TextBlock(words[(i + j) % len(words)], 8 + 6 * j, 8 + 34 * j, size=14 + 4 * (i % 3))
                       for j in range(i % 4))
        write_video(folder / f"v{i}.mp4", VideoSpec(width=160, height=120, frames=6, gop=3, fps=Fraction(6),
                                                   blocks=blocks, seed=i))
        rows.append({"id": i, "videos": [f"v{i}.mp4"]})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def refused(tiny_clips, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A calibration of 4 samples refused at the gate (1.01: no agreement reaches it)."""
    export = tmp_path_factory.mktemp("refused") / "out"
    done = calibrate_cli(tiny_clips, export, "--samples", "4", "--min-agreement", "1.01")
    return export, done


def _copy(refused, tmp_path: Path) -> Path:
    export = tmp_path / "out"
    shutil.copytree(refused[0], export)
    return export


def _dataset_of(export: Path) -> Path:
    video = next(iter(_passes(export)["ppocr"]["videos"]))
    return Path(video).parent / "data.jsonl"


def _passes(export: Path) -> dict:
    return json.loads((export / "calibrate" / "passes.json").read_text())["passes"]


def test_a_refused_calibration_says_what_it_measured_and_how_to_go_on(refused):
    export, done = refused
    assert done.returncode == 2, done.stderr
    err = done.stderr
    report = json.loads((export / "calibrate" / "report.json").read_text())
    cascade = report["cascade_held_out"]["agreement"]["ratio <= 0.05"]
    mapped = report["held_out"]["agreement"]["ratio <= 0.05"]
    assert "calibration not saved: held out on 4 videos, at the recipe's range ratio <= 0.05" in err
    assert f"the cascade decides as CRAFT on {100 * cascade:.1f}% ({round(4 * cascade)} of 4)" in err
    assert f"the mapped ppocr ratios alone (no cascade) decide as CRAFT on {100 * mapped:.1f}%" in err
    assert f"detector: cascade is gated on the cascade's agreement, {100 * cascade:.1f}% < --min-agreement 1.01" in err
    # 4 scores hold at 4/5 at most
    assert "With 4 videos the margins can reach only 80.0% coverage (n/(n+1))" in err
    assert "99.5% takes at least 199 videos" in err
    assert "expected speed-up of the cascade over detector: craft at ratio <= 0.05 (measured): about" in err
    assert "run the same command with --force" in err
    assert "run the same command with --samples 8 (the 4 samples drawn so far stay in the draw; only the 4 new" in err
    assert "use detector: cascade" not in err  # the command already said so
    assert not (export / "calibration-ppocr.json").exists()
    # the table was printed before the refusal (with the share the cascade sends to CRAFT), and both passes are kept
    assert "cascade, held out" in done.stdout and "sent to CRAFT" in done.stdout
    passes = _passes(export)
    assert len(passes["ppocr"]["videos"]) == len(passes["craft"]["videos"]) == 4
    assert passes["ppocr"]["timing"]["videos"] == passes["craft"]["timing"]["videos"] == 4


def test_a_refused_calibration_is_accepted_without_detecting_again(refused, tmp_path):
    export = _copy(refused, tmp_path)
    kept = export / "calibrate" / "passes.json"
    before, mtime = kept.read_bytes(), kept.stat().st_mtime_ns
    runs = {name: (export / "calibrate" / name / "summary.json").stat().st_mtime_ns for name in ("ppocr", "craft")}
    done = calibrate_cli(_dataset_of(export), export, "--samples", "4", "--force")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ppocr pass: detecting 0 of the 4 drawn sample(s), 4 already measured" in out
    assert "craft pass: detecting 0 of the 4 drawn sample(s), 4 already measured" in out
    assert "Plan:" not in done.stderr  # no run was even planned
    assert kept.read_bytes() == before and kept.stat().st_mtime_ns == mtime
    assert runs == {name: (export / "calibrate" / name / "summary.json").stat().st_mtime_ns for name in runs}
    cal = load_calibration(str(export / "calibration-ppocr.json"))
    assert cal.fitted_on["videos"] == 4 and cal.margins is not None
    cal.check_applies(OcrFilter(detector="cascade", max_area_ratio=0.05))  # what a cascade run checks first
    # the very numbers the refusal reported: fitted on the same measurements
    refused_report = json.loads((refused[0] / "calibrate" / "report.json").read_text())
    assert cal.report["cascade_held_out"] == refused_report["cascade_held_out"]
    assert "expected speed-up of the cascade over detector: craft, measured" in out


def test_calibrate_refuses_to_save_below_the_agreement_gate(refused, tmp_path):
    """detector: ppocr is gated on its mapped ratios' agreement (the cascade, above, on the
    cascade's): below the gate nothing is saved. The kept passes serve it: nothing is detected."""
    export = _copy(refused, tmp_path)
    ppocr_args = ("--detector", "ppocr", "--max-area-ratio", "0.05", "--executor", "serial")
    done = calibrate_cli(_dataset_of(export), export, "--samples", "4", "--min-agreement", "1.01", args=ppocr_args)
    assert done.returncode == 2, done.stderr
    assert "calibration not saved" in done.stderr
    assert "detector: ppocr is gated on the mapped ppocr ratios' agreement" in done.stderr
    assert "ppocr pass: detecting 0 of the 4 drawn sample(s), 4 already measured" in done.stdout
    assert not (export / "calibration-ppocr.json").exists()


def test_a_calibration_is_extended_by_detecting_only_the_new_samples(refused, tmp_path):
    export = _copy(refused, tmp_path)
    earlier = _passes(export)
    done = calibrate_cli(_dataset_of(export), export, "--samples", "6", "--force")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # before detecting anything, the earlier 4 videos say what the cascade would buy
    first = out.index("ppocr pass: detecting 2 of the 6 drawn sample(s), 4 already measured")
    assert "expected speed-up of the cascade over detector: craft at ratio <= 0.05 (estimate)" in out[:first]
    assert "held out on the 4 videos calibrated earlier" in out[:first]
    assert "craft pass: detecting 2 of the 6 drawn sample(s), 4 already measured" in out
    assert "Plan:" in done.stderr  # each pass's run is planned (what an accepted calibration never does)
    passes = _passes(export)
    for name in ("ppocr", "craft"):
        assert len(passes[name]["videos"]) == 6
        # the first 4 of the draw are the same videos, kept as measured
        assert {v: passes[name]["videos"][v] for v in earlier[name]["videos"]} == earlier[name]["videos"]
        # each pass's run held only the 2 new samples
        run = [json.loads(line) for line in (export / "calibrate" / f"sample-{name}.jsonl").read_text().splitlines()]
        assert len(run) == 2 and not {r["videos"][0] for r in run} & set(earlier[name]["videos"])
        assert passes[name]["timing"]["videos"] == 6
    assert load_calibration(str(export / "calibration-ppocr.json")).fitted_on["videos"] == 6


def test_a_stopped_calibration_resumes_from_what_its_runs_measured(refused, tmp_path):
    """Killed after CRAFT's run, before its merge: the next start merges the
    run's stats instead of detecting again."""
    export = _copy(refused, tmp_path)
    path = export / "calibrate" / "passes.json"
    data = json.loads(path.read_text())
    data["passes"]["craft"]["videos"] = {}
    path.write_text(json.dumps(data))
    done = calibrate_cli(_dataset_of(export), export, "--samples", "4", "--force")
    assert done.returncode == 0, done.stderr
    assert "merged 4 video(s) that a stopped calibration had measured" in done.stdout
    assert "craft pass: detecting 0 of the 4 drawn sample(s)" in done.stdout
    assert _passes(export)["craft"]["videos"] == _passes(refused[0])["craft"]["videos"]


def test_changed_detector_settings_invalidate_the_kept_passes(refused, tmp_path):
    export = _copy(refused, tmp_path)
    before = (export / "calibrate" / "passes.json").read_bytes()
    done = calibrate_cli(_dataset_of(export), export, "--samples", "4", "--max-side", "96", "--force")
    assert done.returncode == 2
    assert "holds calibration passes measured with other detector settings (ppocr pass: max_side: None -> 96)" \
        in done.stderr
    assert "Pass --restart to discard them" in done.stderr
    done = calibrate_cli(_dataset_of(export), export, "--samples", "4", "--frame-sample-num", "2", "--force")
    assert done.returncode == 2
    assert "ppocr pass: frame_sample_num: 3 -> 2; craft pass: frame_sample_num: 3 -> 2" in done.stderr
    assert (export / "calibrate" / "passes.json").read_bytes() == before  # refused before touching anything
    # --restart measures again under the new settings
    done = calibrate_cli(_dataset_of(export), export, "--samples", "2", "--max-side", "96", "--force", "--restart")
    assert done.returncode == 0, done.stderr
    assert "ppocr pass: detecting 2 of the 2 drawn sample(s), 0 already measured" in done.stdout
    passes = _passes(export)
    assert passes["ppocr"]["settings"]["max_side"] == 96 and passes["craft"]["settings"]["max_side"] is None
    assert len(passes["ppocr"]["videos"]) == len(passes["craft"]["videos"]) == 2
