"""Shards of the size asked for: each output's shards, but its last, within
SHARD_BAND of export_shard_size, counted as Data-Juicer counts it (Arrow
bytes, read here with pyarrow's own readers), none lost or doubled, the kept
folder one dataset, a finished run left as it is, and a compaction cut short
by a crash resumed without losing a row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from textsieve.cli import main
from textsieve.data import shards
from textsieve.data.shards import SHARD_BAND, read_manifest

from runs import PPOCR  # no video here is read (each is missing): the detector is beside the point

SHARD = 20_000


def dj_nbytes(path: Path) -> int:
    """A shard's size as Data-Juicer's exporter counts a dataset: Arrow bytes in memory."""
    table = pq.read_table(path) if path.suffix == ".parquet" else pajson.read_json(path)
    return table.nbytes


@pytest.fixture(scope="module")
def cheap_dataset(tmp_path_factory) -> Path:
    """3,000 rows: text of many lengths, no videos (kept), every 10th a missing video (an error)."""
    d = tmp_path_factory.mktemp("cheap")
    rows = [{"id": i, "text": "caption " * (i % 40), "videos": [f"gone{i}.mp4"] if i % 10 == 0 else []}
            for i in range(3000)]
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "data.jsonl"


def check_band(out: Path, fmt: str) -> dict[str, list[int]]:
    """Each output's shard sizes in manifest order; every one but the last in the band, and as many
    as Data-Juicer's rule gives for the output's size."""
    _, entries, complete = read_manifest(out)
    assert complete
    sizes = {}
    for name in ("kept", "errors", "stats"):
        files = [out / e.files[name] for e in entries if name in e.files]
        sizes[name] = [dj_nbytes(f) for f in files]
        assert all(SHARD_BAND[0] * SHARD <= s <= SHARD_BAND[1] * SHARD for s in sizes[name][:-1]), (name, sizes[name])
        total = sum(sizes[name])
        assert abs(len(files) - math.ceil(total / SHARD)) <= 1, (name, len(files), total)
        assert all(f.suffix == (".jsonl" if name == "errors" else f".{fmt}") for f in files)
    return sizes


@pytest.mark.parametrize("executor,fmt", [("serial", "parquet"), ("local", "jsonl")])
def test_shards_are_the_size_asked_for_and_hold_every_row_once(cheap_dataset, tmp_path, executor, fmt):
    out = tmp_path / "out"
    command = ["run", "--dataset", str(cheap_dataset), "--export", str(out), "--executor", executor, *PPOCR,
               "--export-shard-size", str(SHARD), "--export-type", fmt]
    assert main(command) == 0
    sizes = check_band(out, fmt)
    assert len(sizes["kept"]) > 3  # several shards: the band is tested, not one file
    # the kept folder reads as one dataset, every kept row once
    kept = pads.dataset(out / "kept", format="parquet" if fmt == "parquet" else "json").to_table()
    assert sorted(kept.column("id").to_pylist()) == [i for i in range(3000) if i % 10]
    errors = [json.loads(line) for f in sorted((out / "errors").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert sorted(e["index"] for e in errors) == list(range(0, 3000, 10))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"input": 3000, "kept": 2700, "dropped": 0, "error": 300, "adds_up": True}
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".textsieve.lock"}
    assert main(command) == 0  # finished: left as it is
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".textsieve.lock"} == files


def test_a_compaction_cut_short_resumes_with_every_row_once(cheap_dataset, tmp_path, monkeypatch):
    """A crash after the rewritten shards are written but before the manifest
    names them: the resumed run removes them, keeps the old ones, and compacts again."""
    out = tmp_path / "out"
    command = ["run", "--dataset", str(cheap_dataset), "--export", str(out), "--executor", "serial", *PPOCR,
               "--export-shard-size", str(SHARD)]
    real = shards.Manifest._write_all
    calls = {"n": 0}

    def crash_on_compaction(self):
        if any(f.rsplit("/", 1)[-1].startswith("part-c") for e in self.entries for f in e.files.values()):
            calls["n"] += 1
            raise OSError(28, "No space left on device")  # as a full disk would, mid-commit
        return real(self)

    monkeypatch.setattr(shards.Manifest, "_write_all", crash_on_compaction)
    assert main(command) == 4
    assert calls["n"] == 1 and not (out / "summary.json").exists()
    assert any(p.name.startswith("part-c") for p in out.rglob("*.jsonl"))  # written, never listed
    monkeypatch.setattr(shards.Manifest, "_write_all", real)
    assert main(command) == 0
    check_band(out, "jsonl")
    kept = [json.loads(line)["id"] for f in sorted((out / "kept").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert sorted(kept) == [i for i in range(3000) if i % 10]
    listed = {f for e in read_manifest(out)[1] for f in e.files.values()}
    assert {str(p.relative_to(out)) for d in ("kept", "errors", "stats", "dropped") for p in (out / d).glob("*")} == listed
