"""Data-Juicer recipes as their users keep them: several ops around the OCR
filter, Data-Juicer's global keys, its export conventions, 10-bit video."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from runs import RECIPE

from textsieve.cli import main
from textsieve.errors import ConfigError
from textsieve.recipe import build_config
from textsieve.synthetic import TextBlock, VideoSpec, render_frame


def recipe(tmp_path: Path, dataset: Path, export: str, globals_: str = "", text: str = RECIPE) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text.format(dataset=dataset, export=tmp_path / export, globals=globals_))
    return path


def test_filters_around_the_ocr_op_run_it_first_and_hand_back_the_rest(small_dataset, tmp_path, capsys):
    path = recipe(tmp_path, small_dataset, "out/result.jsonl")
    assert main(["run", str(path), "--executor", "serial"]) == 0
    assert "rest.yaml" in capsys.readouterr().out
    rest = yaml.safe_load((tmp_path / "out" / "rest.yaml").read_text())
    assert [next(iter(op)) for op in rest["process"]] == ["video_duration_filter", "video_resolution_filter"]
    assert rest["dataset_path"] == str((tmp_path / "out" / "result.jsonl").resolve())
    assert rest["export_path"].endswith("result-rest.jsonl") and rest["project_name"] == "video-text-filter"
    # Data-Juicer's export conventions for a file export_path: the stats beside it, not in the samples
    kept = [json.loads(line) for line in (tmp_path / "out" / "result.jsonl").read_text().splitlines()]
    stats = [json.loads(line) for line in (tmp_path / "out" / "result_stats.jsonl").read_text().splitlines()]
    assert len(kept) == len(stats) == 3 and all("__dj__stats__" not in s for s in kept)
    assert all(len(s["__dj__stats__"]["video_ocr_area_ratio"]) >= 0 for s in stats)


def test_a_mapper_before_the_ocr_op_is_refused_with_the_prefix_recipe(small_dataset, tmp_path, capsys):
    text = RECIPE.replace("  - video_duration_filter:\n      min_duration: 0.5\n      max_duration: 100\n",
                          "  - video_resize_aspect_ratio_mapper:\n      min_ratio: 1\n")
    path = recipe(tmp_path, small_dataset, "out/result.jsonl", text=text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "recipe.yaml:7: video_resize_aspect_ratio_mapper comes before video_ocr_area_ratio_filter" in err
    prefix = yaml.safe_load((tmp_path / "recipe.prefix.yaml").read_text())
    assert [next(iter(op)) for op in prefix["process"]] == ["video_resize_aspect_ratio_mapper"]
    assert f"dj-process --config {tmp_path / 'recipe.prefix.yaml'}" in err
    assert not (tmp_path / "out").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_reading_a_recipe_writes_nothing(small_dataset, tmp_path):
    """Parsing writes no file: a good recipe, one refused for a mapper before
    the OCR op (whose prefix recipe only `textsieve run` writes), one with an
    unknown key. The recipe's folder is byte-identical afterwards, and
    `textsieve plan` on the refused one writes nothing either."""
    from textsieve.recipe import OpsBeforeFilter, prefix_recipe_path, read_recipe

    mapper = RECIPE.replace("  - video_duration_filter:\n      min_duration: 0.5\n      max_duration: 100\n",
                            "  - video_resize_aspect_ratio_mapper:\n      min_ratio: 1\n")
    texts = {"good": RECIPE, "mapper": mapper, "unknown": RECIPE.replace("np: 2", "np: 2\ncolour: blue")}
    for name, text in texts.items():
        folder = tmp_path / name
        folder.mkdir()
        path = recipe(folder, small_dataset, "out/result.jsonl", text=text)
        before = _snapshot(folder)
        if name == "good":
            assert read_recipe(path).op_index == 1 and build_config(path).recipe.others
        else:
            with pytest.raises(OpsBeforeFilter if name == "mapper" else ConfigError):
                build_config(path)
            assert main(["plan", str(path), "--simulate-gpus", "8GiB:8GiB"]) == 2
        assert _snapshot(folder) == before, name
    with pytest.raises(OpsBeforeFilter) as refused:
        read_recipe(tmp_path / "mapper" / "recipe.yaml")
    # the message says where `textsieve run` would write the ops before the filter
    assert str(prefix_recipe_path(tmp_path / "mapper" / "recipe.yaml")) in str(refused.value)
    assert "recipe.yaml:7: video_resize_aspect_ratio_mapper comes before" in str(refused.value)


def test_ray_parquet_and_shards_as_data_juicer_users_write_them(small_dataset, tmp_path):
    """executor_type: ray, export_path: out/result.parquet, export_shard_size
    (run end to end on a Ray cluster in tests/runtime/test_cluster.py)."""
    path = recipe(tmp_path, small_dataset, "out/result.parquet", "executor_type: ray\nexport_shard_size: 2000")
    config = build_config(path).config
    # the format follows export_path's suffix, as in Data-Juicer, unless export_type says otherwise
    assert config.executor == "ray" and config.sharded and config.export_type == "parquet"
    assert config.kept_shards == "result.parquet" and config.export_dir == tmp_path / "out"
    assert build_config(path, {"export_type": "jsonl"}).config.export_type == "jsonl"


def test_parquet_shards_on_one_machine_keep_every_field(small_dataset, tmp_path):
    """The local executor writes kept shards into the folder export_path
    names. A field only a later row has is kept (pyarrow's from_pylist takes
    the first row's fields), and a field of mixed types is kept as text: its
    strings as they are, its other values as their JSON text (data/parquet.py)."""
    rows = [json.loads(line) for line in small_dataset.read_text().splitlines()]
    rows[1]["id"] = "one"  # kept: 1, 4, 6; their ids "one", 4, 6 have no single Arrow type
    rows[4]["extra"] = {"note": "only this row has it"}
    for row in rows:
        row["videos"] = [str(small_dataset.parent / v) for v in row["videos"]]
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = recipe(tmp_path, dataset, "out/result.parquet", "export_shard_size: 100000")
    assert main(["run", str(path), "--executor", "local"]) == 0
    # shards hold samples in the order they finished (a sample without videos may overtake one with two)
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "result.parquet").to_pylist()}
    assert sorted(kept) == ["4", "6", "one"]  # the string as it was; the numbers as JSON text
    assert {k: r["extra"] for k, r in kept.items()} == {"one": None, "4": {"note": "only this row has it"}, "6": None}
    kept = list(kept.values())
    assert all(r["__dj__stats__"]["video_ocr_area_ratio"] is not None for r in kept)


def test_parquet_shards_read_as_one_dataset_whatever_each_shard_holds(small_dataset, tmp_path):
    """One sample a shard: a shard of a row without videos has `videos:
    list<null>`, ids are numbers in some shards and text in others, a struct
    gains a field in one shard. pyarrow reads a folder with its first file's
    schema, so the shards are given one schema when the run ends: the folder
    reads as one dataset, nothing lost."""
    rows = [json.loads(line) for line in small_dataset.read_text().splitlines()]
    for row in rows:
        row["videos"] = [str(small_dataset.parent / v) for v in row["videos"]]
    rows = [{"id": 100, "videos": [], "extra": None}] + rows
    rows[2]["id"] = "one"
    rows[5]["extra"] = {"a": 1}
    rows[7]["extra"] = {"a": 2, "b": "x"}
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = recipe(tmp_path, dataset, "out/result.parquet", "export_shard_size: 1")
    assert main(["run", str(path), "--executor", "local"]) == 0
    folder = tmp_path / "out" / "result.parquet"
    assert len(list(folder.glob("*.parquet"))) >= 3
    kept = pq.read_table(folder).to_pylist()
    # a mixed column: strings as they are, numbers as their JSON text
    expected = {str(r["id"]): r for r in rows if not r["videos"] or r["id"] in (1, "one", 4, 6)}
    assert {r["id"] for r in kept} == set(expected)
    by_id = {r["id"]: r for r in kept}
    assert by_id["100"]["videos"] == [] and by_id["100"]["__dj__stats__"]["video_ocr_area_ratio"] == []
    for key, row in expected.items():
        assert by_id[key]["extra"] == (None if row.get("extra") is None else {"a": None, "b": None} | row["extra"])
    counts = json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]
    assert pq.read_table(tmp_path / "out" / "stats").num_rows == counts["kept"] + counts["dropped"]


def test_a_parquet_export_path_is_written_as_parquet(small_dataset, tmp_path):
    path = recipe(tmp_path, small_dataset, "out/result.parquet", "keep_stats_in_res_ds: true")
    assert main(["run", str(path), "--executor", "serial"]) == 0
    table = pq.read_table(tmp_path / "out" / "result.parquet").to_pylist()
    assert [row["id"] for row in table] == [1, 4, 6] and all("__dj__stats__" in row for row in table)
    assert (tmp_path / "out" / "result_stats.jsonl").exists() and not (tmp_path / "out" / "result.kept.jsonl").exists()


def test_data_juicers_keys_mean_what_they_mean_there(small_dataset, tmp_path):
    text = RECIPE.replace("process:", "video_key: clips\ntext_key: caption\nprocess:").replace(
        "      frame_sample_num: 3", "      frame_sample_num: 3\n      reversed_range: true\n      mem_required: 3GB")
    config = build_config(recipe(tmp_path, small_dataset, "out", text=text)).config
    assert config.filter.video_key == "clips" and config.filter.reversed_range
    from textsieve.runtime.planning import plan_for

    plan = plan_for(config.model_copy(update={"simulate_gpus": "16GiB:16GiB"}))[1]
    assert plan.cost.gpu_bytes == 3_000_000_000 and "mem_required '3GB' from the recipe" in plan.cost.source


def test_reversed_range_keeps_what_the_range_drops(small_dataset, tmp_path):
    base = ["run", "--dataset", str(small_dataset), "--executor", "serial", "--max-area-ratio", "0.05"]
    assert main([*base, "--export", str(tmp_path / "a")]) == 0
    text = RECIPE.format(dataset=small_dataset, export=tmp_path / "b", globals="").replace(
        "      frame_sample_num: 3", "      frame_sample_num: 3\n      reversed_range: true")
    (tmp_path / "r.yaml").write_text(text)
    assert main(["run", str(tmp_path / "r.yaml"), "--executor", "serial"]) == 0
    status = lambda folder: {json.loads(l)["index"]: json.loads(l)["status"] for l in (folder / "stats.jsonl").read_text().splitlines()}
    a, b = status(tmp_path / "a"), status(tmp_path / "b")
    # a one-video sample's decision flips; a sample without videos is kept either way;
    # the pair holds a video on each side, so "any" keeps it both ways
    assert all(b[i] != a[i] for i in range(4)) and a[6] == b[6] == "kept" and a[4] == b[4] == "kept"


def test_a_key_that_cannot_be_honoured_is_refused_naming_its_line(small_dataset, tmp_path):
    text = RECIPE.replace("np: 2", "np: 2\nexecutor_type: spark")
    with pytest.raises(ConfigError, match="recipe.yaml:5: executor_type 'spark'"):
        build_config(recipe(tmp_path, small_dataset, "out", text=text))


# ---- 10-bit video ------------------------------------------------------------------

def test_ten_bit_video_gets_the_frames_data_juicer_computes_with_the_same_ffmpeg(tmp_path):
    """Data-Juicer converts with np.asarray(frame.to_image()); textsieve's
    frames equal that conversion bit for bit under the same PyAV. Across
    PyAV versions 10-bit conversion differs (FFmpeg's swscale changed): see
    docs/semantics.md for the measured difference and constraints-dj-parity.txt."""
    from textsieve.video.frames import sample_video

    spec = VideoSpec(width=320, height=240, frames=10, blocks=(TextBlock("Ten bit text", 20, 100, size=30),))
    path = tmp_path / "tenbit.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p10le"
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(render_frame(spec, i), format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
        dj = [np.asarray(frame.to_image()) for frame in container.decode(video=0)]
    sampled = sample_video(str(path), 3)
    picks = [round(t * 10) for t in sampled.times]
    for index, image in zip(picks, sampled.images):
        assert np.array_equal(image, dj[index])


def _dj_resolved(output: Path, path: str) -> Path:
    """A video path as Data-Juicer's loader resolves it when ``output`` is its
    dataset_path (format/formatter.py rel2abs: against the file's folder, or
    the folder itself)."""
    return Path(path) if os.path.isabs(path) else (output if output.is_dir() else output.parent) / path


@pytest.mark.parametrize("executor,sharded", [("serial", ""), ("local", "export_shard_size: 100000")])
def test_every_output_resolves_its_videos_from_where_it_lies(small_dataset, tmp_path, monkeypatch, executor, sharded):
    """The dataset's video paths are relative to its folder, the dataset is
    named relative to the working directory, and the outputs lie elsewhere:
    each written video path still names the file the run judged, by
    Data-Juicer's rule applied from the output's own folder, and the kept
    output read back as a dataset (the rest.yaml hand-off) judges every sample
    again with the same answers. URL-free paths the row gave as absolute stay
    byte for byte."""
    rows = [json.loads(line) for line in small_dataset.read_text().splitlines()]
    rows[2]["videos"] = [str(small_dataset.parent / "v2.mp4")]  # absolute already
    rows[3]["videos"] = ["./sub/../v3.mp4"]
    data = tmp_path / "in" / "data.jsonl"
    data.parent.mkdir()
    for name in ("v0.mp4", "v1.mp4", "v3.mp4", "zero.mp4", "notes.mp4"):
        (data.parent / name).symlink_to(small_dataset.parent / name)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    path = recipe(tmp_path, Path("in/data.jsonl"), "out/result.jsonl", sharded)
    assert main(["run", str(path), "--executor", executor]) == 0
    out = tmp_path / "out"
    kept_output = out / "result.jsonl"  # a file, or with export_shard_size the folder of kept shards
    written = {"kept": kept_output, "dropped": out / ("dropped" if sharded else "dropped.jsonl"),
               "errors": out / ("errors" if sharded else "errors.jsonl")}
    samples: dict[str, list[dict]] = {}
    for name, where in written.items():
        files = sorted(where.glob("*.jsonl")) if where.is_dir() else [where]
        samples[name] = [dict(json.loads(line), _file=f) for f in files for line in f.read_text().splitlines()]
    samples["errors"] = [dict(r["sample"], _file=r["_file"]) for r in samples["errors"]]
    assert {r["id"] for rs in samples.values() for r in rs} == set(range(9))
    for record in (r for rs in samples.values() for r in rs):
        for video in record["videos"]:
            resolved = _dj_resolved(record["_file"], video)
            if record["id"] == 2:
                assert video == rows[2]["videos"][0]
            else:
                assert resolved.is_absolute() and resolved.parent == data.parent, (record["id"], video)
            assert resolved.exists() or resolved.name == "nope.mp4"
    rest = yaml.safe_load((out / "rest.yaml").read_text())
    assert Path(rest["dataset_path"]) == kept_output.resolve() and Path(rest["export_path"]).is_absolute()
    monkeypatch.chdir(out)  # a hand-off is read from anywhere
    again = recipe(tmp_path, Path(rest["dataset_path"]), str(tmp_path / "again" / "result.jsonl"))
    assert main(["run", str(again), "--executor", "serial"]) == 0
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["counts"]["kept"] == len(samples["kept"]) and summary["counts"]["error"] == 0
