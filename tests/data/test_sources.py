"""Dataset paths in every form a user has them, cut into splits that count
and read the same rows, with the same indices, as one pass in order."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textsieve.data.dataset import read_rows, video_paths
from textsieve.data.sources import count, join, read, resolve, rows
from textsieve.errors import ConfigError

SAMPLES = [{"id": i, "videos": [f"v{i}.mp4"]} for i in range(7)]


def by_splits(path: str, split_bytes: int) -> list[tuple[int, object, str | None]]:
    """Count every split, then read each from its first index: the Ray way."""
    dataset = resolve(path, split_bytes)
    out, first = [], 0
    for split in dataset.splits:
        out += [(r.index, r.sample, r.error) for r in read(split, first)]
        first += count(split)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.builds(lambda i: json.dumps({"id": i, "t": "x" * (i % 17)}), st.integers(0, 999)),
                                st.just(""), st.just("   "), st.just("{not json"), st.just('"a string"')), max_size=40),
       split_bytes=st.integers(1, 200))
def test_splits_read_exactly_the_rows_of_one_pass(tmp_path, lines, split_bytes):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    sequential = [(r.index, r.sample, r.error) for r in rows(resolve(str(path), 1 << 30))]
    assert by_splits(str(path), split_bytes) == sequential
    assert [i for i, _, _ in sequential] == list(range(sum(1 for line in lines if line.strip())))


def test_every_format_gives_the_same_rows(tmp_path):
    text = "".join(json.dumps(s) + "\n" for s in SAMPLES)
    (tmp_path / "a.jsonl").write_text(text)
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(text)
    (tmp_path / "a.json").write_text(json.dumps(SAMPLES))
    shards = tmp_path / "parquet"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist(SAMPLES[:4]), shards / "part-0.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pylist(SAMPLES[4:]), shards / "part-1.parquet")
    hf = tmp_path / "hf"  # a HuggingFace dataset saved with save_to_disk: Arrow stream files
    hf.mkdir()
    (hf / "dataset_info.json").write_text("{}")
    table = pa.Table.from_pylist(SAMPLES)
    with pa.ipc.new_stream(hf / "data-00000-of-00001.arrow", table.schema) as writer:
        writer.write_table(table)
    expected = [(i, s) for i, s in enumerate(SAMPLES)]
    for path in ("a.jsonl", "a.jsonl.gz", "a.json", "parquet", "parquet/*.parquet", "hf"):
        got = [(r.index, r.sample) for r in read_rows(str(tmp_path / path))]
        assert got == expected, path
    assert len(resolve(str(shards)).splits) == 3  # two row groups, then a file


def test_a_folder_of_videos_is_one_sample_per_video(tmp_path):
    for name in ("b.mp4", "a.webm", "sub/c.mkv", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    got = [r.sample for r in read_rows(str(tmp_path))]
    assert got == [{"videos": [str(tmp_path / n)]} for n in ("a.webm", "b.mp4", "sub/c.mkv")]


def test_paths_that_name_nothing_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="matches no file"):
        resolve(str(tmp_path / "*.parquet"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="neither dataset files"):
        resolve(str(tmp_path))


def test_relative_video_paths_resolve_against_the_datasets_folder_or_url():
    assert join("/data/set", "clips/a.mp4") == "/data/set/clips/a.mp4"
    assert join("s3://bucket/set", "../clips/a.mp4") == "s3://bucket/clips/a.mp4"
    assert join("s3://bucket/set", "/abs/a.mp4") == "/abs/a.mp4"
    assert join("/data", "https://host/a.mp4") == "https://host/a.mp4"
    assert video_paths({"videos": ["a.mp4", "gs://b/c.mp4"]}, "videos", "s3://bucket/x") == ["s3://bucket/x/a.mp4",
                                                                                             "gs://b/c.mp4"]


def test_several_and_weighted_dataset_paths(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"src": "a", "i": i}) + "\n" for i in range(200)))
    b.write_text("".join(json.dumps({"src": "b", "i": i}) + "\n" for i in range(100)))
    both = list(read_rows(f"{a} {b}"))
    assert [r.index for r in both] == list(range(300)) and both[200].sample == {"src": "b", "i": 0}
    weighted = list(read_rows(f"0.5 {a} 1.0 {b}"))
    from_a = [r for r in weighted if r.sample["src"] == "a"]
    assert 70 <= len(from_a) <= 130 and sum(r.sample["src"] == "b" for r in weighted) == 100
    assert [r.index for r in from_a] == [r.sample["i"] for r in from_a]  # numbered over all rows
    assert weighted == list(read_rows(f"0.5 {a} 1.0 {b}"))  # the same draw every time
    from textsieve.data.dataset import count_rows

    assert count_rows(f"0.5 {a} 1.0 {b}") == len(weighted)
    assert by_splits(f"0.5 {a} 1.0 {b}", 512) == [(r.index, r.sample, r.error) for r in weighted]
    with pytest.raises(ConfigError, match="in \\(0, 1\\]"):
        resolve(f"1.5 {a}")
