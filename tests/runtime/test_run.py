"""End to end through the CLI: real videos, the real detector, every outcome accounted for.

Every run here goes through the CLI's own entry in this process with ``--executor serial``:
what is tested is what a run decides and records, which does not depend on the executor
(tests/runtime/test_conformance.py shows every executor gives the same outputs), and a
local run would start a detector replica process (~6 s, far more under load) per run."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textsieve.cli import main
from textsieve.synthetic import TextBlock, VideoSpec, drawn_text_ratio, write_audio_only, write_video

SMALL = dict(width=320, height=240, frames=10, gop=5, fps=Fraction(10))
TEXT_CASES = {
    "none": (),
    "small_caption": (TextBlock("@channel", 200, 12, size=18),),
    "one_subtitle": (TextBlock("The quick brown fox", 30, 190, size=24),),
    "big_title": (TextBlock("BIG TITLE", 20, 90, size=48),),
    "two_subtitles": (TextBlock("The quick brown fox", 30, 160, size=24), TextBlock("jumps over the dog", 36, 195, size=24)),
    "slide": tuple(TextBlock(f"Slide line {r + 1}: text", 10, 12 + r * 30, size=20) for r in range(6)),
    "dense_slide": tuple(TextBlock(f"Dense row {r + 1} words here", 5, 4 + r * 29, size=24) for r in range(8)),
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def text_videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("textvids")
    for name, blocks in TEXT_CASES.items():
        write_video(folder / f"{name}.mp4", VideoSpec(**SMALL, blocks=blocks))
    return folder


def test_measured_ratio_tracks_drawn_text(text_videos, tmp_path):
    names = list(TEXT_CASES)
    dataset = write_jsonl(text_videos / "acc.jsonl", [{"id": n, "videos": [f"{n}.mp4"]} for n in names])
    # one frame a video: the text stands still (CRAFT takes ~0.6 s a frame on a CPU)
    assert main(["run", "--dataset", str(dataset), "--export", str(tmp_path / "out"), "--device", "cpu",
                 "--executor", "serial", "--frame-sample-num", "1"]) == 0
    stats = {r["index"]: r for r in read_jsonl(tmp_path / "out" / "stats.jsonl")}
    measured = {n: stats[i]["video_ocr_area_ratio"][0] for i, n in enumerate(names)}
    drawn = {n: drawn_text_ratio(VideoSpec(**SMALL, blocks=TEXT_CASES[n])) for n in names}
    assert measured["none"] == 0.0
    for n in names[1:]:
        # CRAFT's line boxes are taller than the glyphs' ink and EasyOCR adds a
        # margin of 0.1 x box height on every side: 1.3-1.65x the ink area here.
        assert 1.0 <= measured[n] / drawn[n] <= 1.8, (n, drawn[n], measured[n])
    by_drawn = sorted(names, key=drawn.get)
    assert by_drawn == sorted(names, key=measured.get)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> tuple[Path, dict[int, str | None]]:
    """A dataset mixing good samples with every kind of bad input; returns
    it and the expected outcome per row index (an error kind, or None)."""
    d = tmp_path_factory.mktemp("bad")
    write_video(d / "good.mp4", VideoSpec(**SMALL, blocks=(TextBlock("Hello there", 20, 100, size=30),)))
    write_video(d / "blank.mp4", VideoSpec(**SMALL))
    write_video(d / "no_stream_duration.mkv", VideoSpec(**SMALL, container="mkv"))
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video at all\n" * 50)
    write_audio_only(d / "audio.mp4")
    for name, faststart in (("moov_end", False), ("moov_start", True)):
        full = write_video(d / f"{name}_full.mp4", VideoSpec(**{**SMALL, "frames": 40}, faststart=faststart))
        data = full.read_bytes()
        (d / f"trunc_{name}.mp4").write_bytes(data[: len(data) // 2])
    # an elementary H.264 stream: no container duration, no timestamps
    with av.open(str(d / "good.mp4")) as src, av.open(str(d / "raw.mp4"), "w", format="h264") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    rows: list = [
        {"videos": ["good.mp4"]},
        {"videos": ["missing.mp4"]},
        {"videos": ["zero.mp4"]},
        {"videos": ["trunc_moov_end.mp4"]},
        {"videos": ["trunc_moov_start.mp4"]},
        {"videos": ["text.mp4"]},
        {"videos": ["audio.mp4"]},
        {"videos": ["raw.mp4"]},
        {"videos": "good.mp4"},
        "{this is not json",
        {"videos": ["blank.mp4", "good.mp4", "good.mp4"]},
        {"videos": []},
        {"text": "no videos field"},
        {"videos": ["no_stream_duration.mkv"]},
        {"videos": ["good.mp4", "missing.mp4"]},
        [1, 2, 3],
    ]
    expected = {
        0: None, 1: "missing_file", 2: "empty_file", 3: "unreadable", 4: "decode_error|truncated",
        5: "unreadable", 6: "no_video_stream", 7: "bad_timestamps", 8: "bad_sample", 9: "bad_sample",
        10: None, 11: None, 12: None, 13: None, 14: "missing_file", 15: "bad_sample",
    }
    return write_jsonl(d / "data.jsonl", rows), expected


def test_bad_inputs_are_recorded_and_the_run_goes_on(bad_inputs, tmp_path):
    dataset, expected = bad_inputs
    out = tmp_path / "out"
    assert main(["run", "--dataset", str(dataset), "--export", str(out), "--max-area-ratio", "0.01",
                 "--executor", "serial"]) == 0
    errors = {r["index"]: r for r in read_jsonl(out / "errors.jsonl")}
    kept = read_jsonl(out / "kept.jsonl")
    dropped = read_jsonl(out / "dropped.jsonl")
    for index, kind in expected.items():
        if kind is None:
            assert index not in errors, errors.get(index)
        else:
            assert errors[index]["kind"] in kind.split("|"), (index, errors[index])
            assert errors[index]["message"]
    assert errors[1]["video"].endswith("missing.mp4") and "no such file" in errors[1]["message"]
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["input"] == len(expected) == counts["kept"] + counts["dropped"] + counts["error"]
    assert counts["adds_up"] is True
    assert counts["error"] == sum(k is not None for k in expected.values())
    assert len(kept) + len(dropped) + len(errors) == len(expected)
    # the good video has text (> 0.01): dropped; blank + good is kept under "any"
    # with ratios in the sample's order and the repeated path computed once
    stats = {r["index"]: r for r in read_jsonl(out / "stats.jsonl")}
    assert stats[0]["status"] == "dropped"
    assert stats[10]["status"] == "kept"
    r10 = stats[10]["video_ocr_area_ratio"]
    assert r10[0] == 0.0 and r10[1] == r10[2] > 0.01 and len(stats[10]["videos"]) == 2
    assert stats[11]["video_ocr_area_ratio"] == [] and stats[11]["status"] == "kept"
    assert stats[13]["status"] == "kept"  # Matroska: duration from the container
    assert len(stats[13]["videos"][0]["frame_ratios"]) == 3
    # outputs write relative video paths absolute, resolved against the dataset's folder
    folder = str(dataset.parent.resolve())
    kept_row = next(r for r in kept if r.get("videos") == [f"{folder}/{n}" for n in ("blank.mp4", "good.mp4", "good.mp4")])
    assert kept_row["__dj__stats__"]["video_ocr_area_ratio"] == r10
    assert not list(out.glob("*.part"))


def test_strict_exits_non_zero_on_errors(bad_inputs, tmp_path):
    dataset, _ = bad_inputs
    small = write_jsonl(tmp_path / "small.jsonl", [{"videos": [str(dataset.parent / "zero.mp4")]}])
    assert main(["run", "--dataset", str(small), "--export", str(tmp_path / "o"), "--strict",
                 "--executor", "serial"]) == 1
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["counts"]["error"] == 1


def test_limits_refuse_absurd_resolution_and_duration(bad_inputs, tmp_path):
    dataset, _ = bad_inputs
    small = write_jsonl(tmp_path / "s.jsonl", [{"videos": [str(dataset.parent / "good.mp4")]}])
    base = ["run", "--dataset", str(small), "--executor", "serial"]
    assert main([*base, "--export", str(tmp_path / "a"), "--max-video-pixels", "1000"]) == 0
    assert main([*base, "--export", str(tmp_path / "b"), "--max-video-duration-s", "0.5"]) == 0
    assert read_jsonl(tmp_path / "a" / "errors.jsonl")[0]["kind"] == "bad_resolution"
    assert read_jsonl(tmp_path / "b" / "errors.jsonl")[0]["kind"] == "too_long"


def test_recipe_parquet_and_file_export_path_give_the_same_answers(text_videos, tmp_path):
    rows = [{"id": n, "videos": [f"{n}.mp4"]} for n in ("none", "one_subtitle", "slide")]
    jsonl = write_jsonl(text_videos / "three.jsonl", rows)
    parquet = text_videos / "three.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""project_name: compat-check
dataset_path: {parquet}
export_path: {tmp_path / 'dj' / 'result.jsonl'}
np: 1
process:
  - video_ocr_area_ratio_filter:
      min_area_ratio: 0.0
      max_area_ratio: 0.1
      frame_sample_num: 3
      any_or_all: any
"""
    )
    # ppocr (a flag after the recipe wins, as for the executor): what is compared is how the two ways of
    # asking read and write, not the detector
    assert main(["run", str(recipe), "--executor", "serial", "--detector", "ppocr"]) == 0
    assert main(["run", "--dataset", str(jsonl), "--export", str(tmp_path / "flags"), "--max-area-ratio", "0.1",
                 "--executor", "serial", "--detector", "ppocr"]) == 0
    from_recipe = read_jsonl(tmp_path / "dj" / "result.jsonl")
    from_flags = read_jsonl(tmp_path / "flags" / "kept.jsonl")
    # as Data-Juicer writes a file export_path: the stats in result_stats.jsonl, not in the samples
    stats = [row.pop("__dj__stats__") for row in from_flags]
    assert from_recipe == from_flags
    assert [r["__dj__stats__"] for r in read_jsonl(tmp_path / "dj" / "result_stats.jsonl")] == stats
    assert [r["id"] for r in from_recipe] == ["none", "one_subtitle"]
    assert (tmp_path / "dj" / "dropped.jsonl").exists() and (tmp_path / "dj" / "summary.json").exists()


def test_union_area_mode_is_opt_in(text_videos, tmp_path):
    dataset = write_jsonl(text_videos / "slide.jsonl", [{"videos": ["dense_slide.mp4"]}])
    # CRAFT's boxes, which overlap on a dense slide; one frame (the slide stands still)
    base = ["run", "--dataset", str(dataset), "--executor", "serial", "--frame-sample-num", "1"]
    assert main([*base, "--export", str(tmp_path / "dj")]) == 0
    assert main([*base, "--export", str(tmp_path / "u"), "--area-mode", "union"]) == 0
    dj = read_jsonl(tmp_path / "dj" / "stats.jsonl")[0]["video_ocr_area_ratio"][0]
    union = read_jsonl(tmp_path / "u" / "stats.jsonl")[0]["video_ocr_area_ratio"][0]
    assert 0 < union <= dj and union <= 1.0


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "adds up: True" in out and "subtitles" in out
    summary = json.loads((tmp_path / "demo" / "output" / "summary.json").read_text())
    assert summary["counts"] == {"input": 8, "kept": 3, "dropped": 2, "error": 3, "adds_up": True}
