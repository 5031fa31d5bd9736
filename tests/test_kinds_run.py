"""The kinds of text in a run, as a user sets them (docs/kinds.md): a recipe
with per-kind maxima runs through the CLI on every executor with the same
outputs, `decide` re-decides by the saved kinds, and `count_kinds` changes
what the main ratio counts. Videos of each kind are drawn at test time
(tests/test_kinds.py) and judged by the real fast detector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runs import outputs, summary
from test_kinds import control_video, encode, overlay_video, scene_video, subtitle_video
from textsieve.cli import main

KINDS_OF = {"overlay": overlay_video, "subtitle": subtitle_video, "scene": scene_video, "control": control_video}
# the usual curation choice: no subtitles, no watermarks, scene text allowed
OP = {"max_area_ratio": 0.5, "detector": "ppocr", "max_subtitle_ratio": 0, "max_overlay_ratio": 0.002,
      "kind_frames": 8}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kinds")
    rows = []
    for i, (name, draw) in enumerate(KINDS_OF.items()):
        encode(folder / f"{name}.mp4", draw(40))
        rows.append({"id": i, "videos": [f"{name}.mp4"]})
    rows.append({"id": len(rows), "videos": ["scene.mp4", "subtitle.mp4"]})  # any: the scene video keeps it
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "data.jsonl"


def recipe(folder: Path, dataset: Path, export: Path, **op) -> Path:
    path = folder / f"{export.name}.yaml"
    path.write_text(yaml.safe_dump({"dataset_path": str(dataset), "export_path": str(export),
                                    "process": [{"video_ocr_area_ratio_filter": {**OP, **op}}]}))
    return path


def videos(export: Path) -> dict[str, dict]:
    return {Path(v["video"]).stem: v for line in (export / "stats.jsonl").read_text().splitlines()
            for v in json.loads(line)["videos"]}


@pytest.fixture(scope="module")
def serial_run(dataset, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serial")
    assert main(["run", str(recipe(folder, dataset, folder / "out")), "--executor", "serial"]) == 0
    return folder / "out"


def test_each_kind_is_judged_and_the_maxima_drop_subtitles_and_overlays(serial_run):
    got = videos(serial_run)
    assert {name: v["main_kind"] for name, v in got.items()} == {
        "overlay": "overlay", "subtitle": "subtitle", "scene": "scene", "control": "none"}
    for v in got.values():
        assert set(v["kind_ratios"]) == {"overlay", "subtitle", "screen", "scene"}
        # Data-Juicer's formula is additive: the kinds share the video's ratio out
        assert sum(v["kind_ratios"].values()) == pytest.approx(v["ratio"], abs=1e-12)
        assert [len(kinds) for kinds in v["frame_kinds"]] == [len(boxes) for boxes in v["frame_boxes"]]
        assert len(v["kind_frame_times"]) == 8 and len(v["frame_times"]) == 3  # the ratio: Data-Juicer's frames
    status = {json.loads(line)["id"]: "kept" for line in (serial_run / "kept.jsonl").read_text().splitlines()}
    status |= {json.loads(line)["id"]: "dropped" for line in (serial_run / "dropped.jsonl").read_text().splitlines()}
    # every video is inside [0, 0.5]: only the kinds' maxima drop
    assert status == {0: "dropped", 1: "dropped", 2: "kept", 3: "kept", 4: "kept"}
    assert summary(serial_run)["counts"] == {"input": 5, "kept": 3, "dropped": 2, "error": 0, "adds_up": True}


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_every_executor_gives_the_serial_outputs(executor, request, dataset, serial_run, tmp_path):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    assert main(["run", str(recipe(tmp_path, dataset, tmp_path / "out")), "--executor", executor]) == 0
    assert outputs(tmp_path / "out") == outputs(serial_run)


def test_decide_re_decides_by_the_saved_kinds_as_a_fresh_run_would(dataset, serial_run, tmp_path):
    decided = tmp_path / "decided"
    subprocess.run(["cp", "-r", str(serial_run), str(decided)], check=True)
    done = subprocess.run([sys.executable, "-m", "textsieve.cli", "decide", "--export", str(decided),
                           "--max-subtitle-ratio", "1", "--max-overlay-ratio", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "5 kept, 0 dropped" in done.stdout
    assert main(["run", str(recipe(tmp_path, dataset, tmp_path / "fresh", max_subtitle_ratio=1,
                                   max_overlay_ratio=1)), "--executor", "serial"]) == 0
    assert outputs(decided) == outputs(tmp_path / "fresh")
    assert summary(decided)["redecided"][-1]["kind_limits"] == {"overlay": 1.0, "subtitle": 1.0}
    # and back: the same maxima give the run's own outputs again
    assert main(["decide", "--export", str(decided), "--max-subtitle-ratio", "0", "--max-overlay-ratio", "0.002"]) == 0
    assert outputs(decided) == outputs(serial_run)


def test_decide_refuses_kind_limits_for_a_run_that_judged_no_kinds(dataset, tmp_path, capsys):
    plain = {k: v for k, v in OP.items() if k in ("max_area_ratio", "detector")}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({"dataset_path": str(dataset), "export_path": str(tmp_path / "out"),
                                    "process": [{"video_ocr_area_ratio_filter": plain}]}))
    assert main(["run", str(path), "--executor", "serial"]) == 0
    before = outputs(tmp_path / "out")
    assert "kind_ratios" not in before["stats.jsonl"] and "entry_videos" not in before["stats.jsonl"]
    assert main(["decide", "--export", str(tmp_path / "out"), "--max-subtitle-ratio", "0"]) == 2
    assert "did not judge the kinds of text" in capsys.readouterr().err
    assert outputs(tmp_path / "out") == before


def test_count_kinds_makes_the_ratio_count_only_those_kinds(dataset, serial_run, tmp_path):
    # the scene video's sign alone counted; the maxima off, so that only the range decides
    export = tmp_path / "scene-only"
    assert main(["run", str(recipe(tmp_path, dataset, export, max_subtitle_ratio=None, max_overlay_ratio=None,
                                   count_kinds=["scene"], min_area_ratio=0.001)), "--executor", "serial"]) == 0
    got, before = videos(export), videos(serial_run)
    for name, v in got.items():
        assert v["all_text_ratio"] == before[name]["ratio"]  # Data-Juicer's, kept beside
        assert v["ratio"] == pytest.approx(v["kind_ratios"]["scene"], abs=1e-12)
    kept = {json.loads(line)["id"] for line in (export / "kept.jsonl").read_text().splitlines()}
    assert kept == {2, 4}  # the scene video, and the sample holding it


def test_kind_keys_with_pieces_are_refused_before_any_work(dataset, tmp_path, capsys):
    path = recipe(tmp_path, dataset, tmp_path / "out", segment_s=1.0)
    assert main(["run", str(path), "--executor", "serial"]) == 2
    assert "kinds of text" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("op, says", [
    ({"count_kinds": ["scene", "scene"]}, "names a kind twice"),
    ({"max_subtitle_ratio": None, "max_overlay_ratio": None, "kind_frames": None,
      "kind_rules": {"edge_margin": 0.1}}, "kind_rules is set but no kind key is"),
    ({"count_kinds": ["scene"], "calibration": "cal.json"}, "count_kinds with a calibration"),
], ids=["count-twice", "rules-alone", "count-calibrated"])
def test_kind_settings_that_cannot_mean_what_they_say_are_refused(dataset, tmp_path, capsys, op, says):
    assert main(["run", str(recipe(tmp_path, dataset, tmp_path / "out", **op)), "--executor", "serial"]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "out").exists()
