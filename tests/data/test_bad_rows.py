"""No row can stop a run for good (issue #22): a row's own defect (its
encoding, its depth, its types) is that row's ``bad_sample`` record, in
every output format; a value keeps its input type wherever the format can
hold it; every output is strict JSON; every input row ends in exactly one
of kept, dropped or errors. Through the CLI's own entry, as a user runs it
(in this process: the model libraries load once)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runs import in_process

from textsieve.synthetic import VideoSpec, write_video

# export flags -> how the outputs lie in the folder
FORMATS = {
    "jsonl": [],
    "parquet-file": [],  # --export <dir>/result.parquet
    "shards-jsonl": ["--export-shard-size", "1"],
    "shards-parquet": ["--export-shard-size", "1", "--export-type", "parquet"],
}


def textsieve(dataset: Path, export: Path, fmt: str = "jsonl", *extra: str) -> subprocess.CompletedProcess:
    """``textsieve run`` through the CLI's own entry, serial, on the CPU, with the fast detector
    (what is tested is the rows, not what finds the text). A row's defect must never show as a
    traceback: the run ends with exit 0."""
    target = export / "result.parquet" if fmt == "parquet-file" else export
    done = in_process(["run", "--dataset", str(dataset), "--export", str(target), "--executor", "serial",
                       "--device", "cpu", "--detector", "ppocr", *FORMATS[fmt], *extra])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def no_constants(name: str):
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def strict(line: bytes | str):
    """Parse as a strict reader does: UTF-8, no NaN/Infinity, no lone surrogate."""
    text = line.decode("utf-8") if isinstance(line, bytes) else line  # strict: raises on a bad byte
    value = json.loads(text, parse_constant=no_constants)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate it decoded to
    return value


def strict_jsonl(path: Path) -> list:
    return [strict(line) for line in path.read_bytes().split(b"\n") if line.strip()]


def outputs(export: Path, fmt: str) -> dict[str, list]:
    """kept, dropped and errors records of a finished run, each file parsed
    strictly; summary.json, the journal or manifest parsed strictly too."""
    out: dict[str, list] = {}
    for name in ("kept", "dropped", "errors", "stats"):
        if fmt.startswith("shards"):
            folder = export / name
            files = sorted(folder.glob("*")) if folder.is_dir() else []
            out[name] = [r for f in files for r in (pq.read_table(f).to_pylist() if f.suffix == ".parquet"
                                                    else strict_jsonl(f))]
        elif fmt == "parquet-file" and name == "kept":
            out[name] = pq.read_table(export / "result.parquet").to_pylist()
        else:
            out[name] = strict_jsonl(export / f"{name}.jsonl")
    strict((export / "summary.json").read_text(encoding="utf-8"))
    for book in ("journal.jsonl", "manifest.jsonl"):
        if (export / book).exists():
            strict_jsonl(export / book)
    if fmt == "parquet-file":
        strict_jsonl(export / "result_stats.jsonl")
    return out


def adds_up(export: Path, out: dict[str, list], rows: int) -> None:
    counts = json.loads((export / "summary.json").read_text())["counts"]
    assert counts["adds_up"] is True and counts["input"] == rows
    assert len(out["kept"]) + len(out["dropped"]) + len(out["errors"]) == rows
    assert (counts["kept"], counts["dropped"], counts["error"]) == (len(out["kept"]), len(out["dropped"]),
                                                                   len(out["errors"]))


def write_lines(path: Path, lines: list[bytes | str]) -> Path:
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return path


def bad(out: dict[str, list]) -> dict[int, dict]:
    return {r["index"]: r for r in out["errors"] if r["kind"] == "bad_sample"}


GOOD = '{"id": 0, "text": "fine", "videos": []}'


def test_a_lone_surrogate_in_a_text_a_key_or_a_video_path_is_that_rows_error(tmp_path):
    """Escaped, a lone surrogate is valid JSON and Python reads it; it has no
    UTF-8 form, so writing the row stopped the run (UnicodeEncodeError) at
    that row, on every resume again."""
    dataset = write_lines(tmp_path / "d.jsonl", [GOOD, r'{"id": 1, "text": "a\ud800b"}',
                                                 r'{"id": 2, "videos": ["clip\udfff.mp4"]}', r'{"\udc00": 3}', GOOD])
    textsieve(dataset, tmp_path / "out")
    out = outputs(tmp_path / "out", "jsonl")
    errors = bad(out)
    assert set(errors) == {1, 2, 3}
    assert "row 1" in errors[1]["message"] and "'text'" in errors[1]["message"] and "surrogate" in errors[1]["message"]
    assert "'videos'" in errors[2]["message"]
    # the record holds the line as it was, so nothing of the input is lost
    assert errors[1]["sample"] == r'{"id": 1, "text": "a\ud800b"}'
    assert [r["text"] for r in out["kept"]] == ["fine", "fine"]
    adds_up(tmp_path / "out", out, 5)


def test_a_byte_that_is_not_utf8_is_that_rows_error(tmp_path):
    """json.loads raised UnicodeDecodeError (not a JSONDecodeError) out of
    the reader, and the run stopped."""
    dataset = write_lines(tmp_path / "d.jsonl", [GOOD, b'{"id": 1, "text": "caf\xe9"}', GOOD])
    textsieve(dataset, tmp_path / "out")
    out = outputs(tmp_path / "out", "jsonl")
    errors = bad(out)
    assert set(errors) == {1} and "not UTF-8" in errors[1]["message"] and str(dataset) in errors[1]["message"]
    assert errors[1]["sample"] == '{"id": 1, "text": "caf\ufffd"}'
    adds_up(tmp_path / "out", out, 3)


def test_rows_nested_past_what_textsieve_takes_are_their_own_errors(tmp_path):
    """100,000 `[` raised RecursionError out of the reader; a row that
    parses but nests hundreds deep is refused too, before a worker or a
    writer recurses through it."""
    dataset = write_lines(tmp_path / "d.jsonl", [GOOD, "[" * 100_000, '{"a": ' + "[" * 300 + "]" * 300 + "}",
                                                 '{"a": ' + "[" * 20 + "]" * 20 + "}"])
    textsieve(dataset, tmp_path / "out")
    out = outputs(tmp_path / "out", "jsonl")
    errors = bad(out)
    assert set(errors) == {1, 2} and "deep" in errors[1]["message"] and "'a'" in errors[2]["message"]
    assert errors[1]["sample"] == "[" * 100_000
    assert [r.get("a") for r in out["kept"]] == [None, json.loads("[" * 20 + "]" * 20)]
    adds_up(tmp_path / "out", out, 4)


MIXED_ROWS = [{"id": 1, "text": "a", "n": 1, "meta": {"k": 1}, "videos": []},
              {"id": "x", "text": 5, "n": 2.5, "meta": {"k": "v"}, "videos": []},
              {"id": 3, "text": "c", "n": 3, "meta": None, "big": 2**70, "empty": {}, "videos": []}]


@pytest.mark.parametrize("fmt", ["parquet-file", "shards-parquet", "shards-parquet-one-shard"])
def test_a_field_of_mixed_types_keeps_its_strings_in_parquet(tmp_path, fmt):
    """A .parquet export failed at finalize (ArrowInvalid: 1 and "x" in
    one column), after all detection; the shards wrote every `text` as JSON
    text with its quotes when one row held 5. Now a column takes the one
    type that holds its values; where none does, strings stay the same
    strings and only the other values are their JSON text."""
    dataset = write_lines(tmp_path / "d.jsonl", [json.dumps(r) for r in MIXED_ROWS])
    extra = ["--export-shard-size", "100000000"] if fmt.endswith("one-shard") else []
    fmt = fmt.removesuffix("-one-shard")
    textsieve(dataset, tmp_path / "out", fmt, *extra)
    out = outputs(tmp_path / "out", fmt)
    kept = sorted(out["kept"], key=lambda r: r["n"])
    assert [r["text"] for r in kept] == ["a", "5", "c"]  # the strings as they were; 5 has no string type
    assert [r["id"] for r in kept] == ["1", "x", "3"]
    assert [r["n"] for r in kept] == [1.0, 2.5, 3.0]  # int promotes to float: one type holds them
    assert [r["meta"] for r in kept] == ['{"k": 1}', '{"k": "v"}', None]
    assert [r["big"] for r in kept] == [None, None, str(2**70)]  # past int64
    assert [r["empty"] for r in kept] == [None, None, "{}"]  # Parquet has no struct without fields
    folder = tmp_path / "out" / ("result.parquet" if fmt == "parquet-file" else "kept")
    schema = pq.read_table(folder).schema  # one dataset: the shards share one schema
    assert schema.field("text").type == pa.string() and schema.field("n").type == pa.float64()
    assert schema.field("text").metadata == {b"textsieve": b"mixed"}
    assert schema.field("videos").metadata is None
    adds_up(tmp_path / "out", out, 3)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_nan_and_infinity_are_written_as_null_and_every_output_is_strict_json(tmp_path, fmt):
    """Python's json reads NaN and Infinity (and 1e400 as Infinity) and
    wrote them back bare, which strict readers refuse. JSON has no such
    number: they are written as null, what pandas and JavaScript write,
    and the field keeps its type where the format has one (a float column
    with a null in Parquet)."""
    lines = ['{"v": NaN, "videos": []}', '{"v": Infinity, "w": [-Infinity, 1.5], "videos": []}',
             '{"v": 1e400, "videos": []}', '{"v": 2.5, "videos": []}']
    dataset = write_lines(tmp_path / "d.jsonl", lines)
    textsieve(dataset, tmp_path / "out", fmt)
    out = outputs(tmp_path / "out", fmt)  # parses every JSON output strictly
    kept = out["kept"]
    assert [r["v"] for r in kept if r["v"] is not None] == [2.5] and sum(r["v"] is None for r in kept) == 3
    assert [None, 1.5] in [r.get("w") for r in kept]
    if fmt.endswith("parquet") or fmt == "parquet-file":
        folder = tmp_path / "out" / ("result.parquet" if fmt == "parquet-file" else "kept")
        assert pq.read_table(folder).schema.field("v").type == pa.float64()
    adds_up(tmp_path / "out", out, 4)


def test_a_nan_in_a_parquet_dataset_is_null_in_the_outputs(tmp_path):
    """Parquet holds NaN; a pandas-made dataset has it for a missing float."""
    dataset = tmp_path / "d.parquet"
    pq.write_table(pa.table({"score": [float("nan"), 0.5], "videos": pa.array([[], []], pa.list_(pa.string()))}),
                   dataset)
    textsieve(dataset, tmp_path / "out")
    out = outputs(tmp_path / "out", "jsonl")
    assert [r["score"] for r in out["kept"]] == [None, 0.5]
    adds_up(tmp_path / "out", out, 2)


def test_stats_field_and_paths_that_cannot_be_used_are_bad_samples(tmp_path):
    """A `__dj__stats__` that is not an object failed with_stats (TypeError)
    and stopped the run; a path with a NUL cannot be opened by any file
    system."""
    dataset = write_lines(tmp_path / "d.jsonl", [GOOD, '{"__dj__stats__": 5}', '{"__dj__stats__": "x"}',
                                                 '{"videos": ["a\\u0000b.mp4"]}', '{"__dj__stats__": {"other": 1}}'])
    textsieve(dataset, tmp_path / "out")
    out = outputs(tmp_path / "out", "jsonl")
    errors = bad(out)
    assert set(errors) == {1, 2, 3} and "__dj__stats__" in errors[1]["message"] and "NUL" in errors[3]["message"]
    assert out["kept"][-1]["__dj__stats__"] == {"other": 1, "video_ocr_area_ratio": []}
    adds_up(tmp_path / "out", out, 5)


@pytest.mark.parametrize("fmt", ["parquet-file", "shards-jsonl", "shards-parquet"])
def test_every_defect_is_the_rows_own_error_in_every_format(tmp_path, fmt):
    lines = [GOOD, r'{"text": "\ud800"}', b'{"text": "\xff"}', "[" * 100_000, '{"v": NaN, "videos": []}',
             '{"text": 5, "videos": []}', '{"__dj__stats__": []}', GOOD]
    dataset = write_lines(tmp_path / "d.jsonl", lines)
    textsieve(dataset, tmp_path / "out", fmt)
    out = outputs(tmp_path / "out", fmt)
    assert set(bad(out)) == {1, 2, 3, 6}
    assert sorted(str(r["text"]) for r in out["kept"] if "text" in r and r["text"] is not None) == ["5", "fine", "fine"]
    adds_up(tmp_path / "out", out, len(lines))


# ---- fuzz ----------------------------------------------------------------------------

TINY = dict(width=64, height=48, frames=4, gop=2, fps=Fraction(4))


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("tiny") / "tiny.mp4", VideoSpec(**TINY))


# every character, controls included, and lone surrogates (which st.characters leaves out)
TEXT = st.text(st.characters(exclude_categories=()) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
               max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats() | TEXT
           | st.sampled_from([0, -1, 2**63, 1.5, "", "x" * 3000]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=8)
VIDEOS = st.one_of(st.just("tiny"), st.lists(st.sampled_from(["tiny", "missing.mp4", "", "a\x00b", "\u00e9/\u2028.mp4"])
                                             | TEXT, max_size=2), VALUES)


@st.composite
def line(draw) -> bytes:
    kind = draw(st.sampled_from(["row", "row", "row", "deep", "raw", "value"]))
    if kind == "raw":  # bytes as a broken file has them (not a newline: that ends the line)
        return draw(st.binary(max_size=24)).replace(b"\n", b" ")
    if kind == "deep":
        depth = draw(st.sampled_from([50, 257, 400, 100_000]))
        return b'{"d": ' + b"[" * depth + b"]" * (depth if depth < 1000 else 0) + b"}"
    if kind == "value":  # not an object
        return json.dumps(draw(VALUES)).encode()
    row = draw(st.fixed_dictionaries({}, optional={"id": VALUES, "text": VALUES, "videos": VIDEOS,
                                                   "__dj__stats__": VALUES}))
    row.update(draw(st.dictionaries(TEXT, VALUES, max_size=3)))
    # json.dumps escapes surrogates (valid JSON) and writes NaN/Infinity bare, as Python datasets have them
    return json.dumps(row).encode()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(line(), min_size=1, max_size=40), fmt=st.sampled_from(list(FORMATS)))
def test_fuzz_no_row_stops_a_run_and_every_row_is_accounted_for(tmp_path_factory, tiny_video, lines, fmt):
    folder = tmp_path_factory.mktemp("fuzz")
    # a first row that is an object: a file starting with `[` would be read as one JSON array
    lines = [GOOD.encode()] + [l.replace(b'"tiny"', json.dumps(str(tiny_video)).encode()) for l in lines]
    dataset = write_lines(folder / "d.jsonl", lines)
    rows = sum(1 for l in lines if l.strip())
    textsieve(dataset, folder / "out", fmt)
    out = outputs(folder / "out", fmt)
    adds_up(folder / "out", out, rows)
    indices = sorted(r["index"] for r in out["errors"]) + sorted(r["index"] for r in out["stats"])
    assert sorted(indices) == list(range(rows))  # each row once: kept or dropped (with its stats) or an error
