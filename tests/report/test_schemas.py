"""The published schemas of summary.json and stats.jsonl: generated from the
typed report, committed in docs/schemas, and met by real runs of every
executor (with errors, the cascade, pieces, shards and a Data-Juicer file
export among them)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest

from textsieve.calibration import Calibration, save_calibration
from textsieve.judging import Margins
from textsieve.cli import main
from textsieve.data.export import iter_records
from textsieve.errors import ConfigError
from textsieve.report.html import write_report
from textsieve.report.schema import FILES, render
from textsieve.report.schema import main as schema_main
from textsieve.report.stats_row import StatsRow
from textsieve.report.summary import SCHEMA_VERSION, RunSummary
from textsieve.synthetic import TextBlock, VideoSpec, write_video

from conftest import RAY_LOCAL
from runs import args

# whole runs of three executors, Ray among them: not the developer's loop
pytestmark = [pytest.mark.slow, pytest.mark.ray]

TINY = dict(width=160, height=120, frames=10, gop=5, fps=Fraction(10))
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"  # the committed files


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four samples: a video with text, one without, both in one sample (one
    listed twice), and a missing file (an error record)."""
    d = tmp_path_factory.mktemp("schema-data")
    write_video(d / "text.mp4", VideoSpec(**TINY, blocks=(TextBlock("Caption", 8, 50, size=24),)))
    write_video(d / "plain.mp4", VideoSpec(**TINY))
    rows = [{"id": 0, "videos": ["text.mp4"]}, {"id": 1, "videos": ["plain.mp4"]},
            {"id": 2, "videos": ["plain.mp4", "text.mp4", "plain.mp4"]}, {"id": 3, "videos": ["gone.mp4"]}]
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory) -> dict[str, Path]:
    """Each executor once, each run with other options, so that together
    they write every optional part of the summary and the stats rows; and a
    `textsieve decide` on the first."""
    root = tmp_path_factory.mktemp("schema-runs")
    # the cascade: an identity map with routing margins around max 0.05 (no calibration run needed)
    calibration = save_calibration(Calibration("ppocr", None, (0.0, 1.0), (0.0, 1.0),
                                               margins=Margins((0.05,), (0.02,), 0.99)), root / "cal.json")
    out = {"serial-cascade": root / "serial", "local-pieces-dj-file": root / "local" / "result.jsonl",
           "ray-shards": root / "ray"}
    assert main(args(dataset, out["serial-cascade"], "serial", "--detector", "cascade",
                     "--calibration", str(calibration))) == 0
    assert main(args(dataset, out["local-pieces-dj-file"], "local", "--segment-s", "0.5")) == 0
    out["local-pieces-dj-file"] = out["local-pieces-dj-file"].parent
    # the session's local Ray instance, as conftest's ray_local starts it (that
    # fixture is per test; this one runs once for the module)
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(**RAY_LOCAL)
    assert main(args(dataset, out["ray-shards"], "ray", "--export-shard-size", "2000")) == 0
    decided = root / "decided"
    decided.mkdir()
    for name in ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl", "summary.json"):
        (decided / name).write_bytes((out["serial-cascade"] / name).read_bytes())
    assert main(["decide", "--export", str(decided), "--max-area-ratio", "0.5"]) == 0
    out["decided"] = decided
    return out


def test_the_committed_schemas_are_the_codes():
    assert schema_main(["--check", "--out", str(SCHEMAS)]) == 0, "run `python -m textsieve.report.schema`"
    for name, root in FILES.items():
        assert (SCHEMAS / name).read_text() == render(root)


@pytest.mark.parametrize("run", ["serial-cascade", "local-pieces-dj-file", "ray-shards", "decided"])
def test_a_real_summary_meets_the_schema_and_its_types(runs, run):
    path = runs[run] / "summary.json"
    data = json.loads(path.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator("summary.schema.json").iter_errors(data)]
    assert not errors, errors
    summary = RunSummary.load(path)
    # the types hold every key and value the run wrote: none is lost on the way
    assert summary.to_json() == data
    assert summary.schema_version == SCHEMA_VERSION == data["schema_version"] == 1
    assert summary.counts.adds_up and summary.counts.error == 1 and summary.errors_by_kind == {"missing_file": 1}


def test_each_executor_wrote_its_own_parts(runs):
    serial, local, ray, decided = (RunSummary.load(runs[k] / "summary.json")
                                   for k in ("serial-cascade", "local-pieces-dj-file", "ray-shards", "decided"))
    assert serial.executor == "serial" and serial.detector.device == "cpu" and serial.plan is not None
    assert serial.ratios.cascade is not None and serial.ratios.cascade.videos == 4
    assert local.workers.decoders >= 1 and local.workers.restarts.replica == 0 and local.detector.replicas
    assert local.outputs.stats.endswith("result_stats.jsonl")  # Data-Juicer's stats file beside the export file
    assert ray.executor_detail.nodes and ray.executor_detail.actors and ray.node_resources
    assert ray.workers.restarts.replica == 0 and ray.plan is None and set(ray.outputs.shards) >= {"stats"}
    assert decided.redecided[-1].max_area_ratio == 0.5 and decided.op["max_area_ratio"] == 0.5


@pytest.mark.parametrize("run", ["serial-cascade", "local-pieces-dj-file", "ray-shards", "decided"])
def test_real_stats_rows_meet_the_schema_and_their_types(runs, run):
    check = validator("stats.schema.json")
    rows = list(iter_records(runs[run], runs[run] / "kept.jsonl", "stats"))
    assert len(rows) == 3  # the judged samples (the error has none)
    for row in rows:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(row)]
        assert not errors, (row["index"], errors)
        assert StatsRow.from_json(row).to_json() == row
    videos = [v for row in rows for v in row["videos"]]
    if run == "serial-cascade":
        assert all("decided_by" in v and "raw_frame_ratios" in v for v in videos)
    if run == "local-pieces-dj-file":
        assert all(len(v["pieces"]) == 2 for v in videos) and all("entry_videos" in row for row in rows)


def test_the_report_reads_every_real_summary(runs):
    for folder in runs.values():
        page = write_report(folder, folder / "report.html", per_group=1).read_text()
        assert 'class="badge ok">finished' in page and 'id="session"' in page


def test_the_schemas_refuse_what_a_run_does_not_write(runs):
    """The checks above can fail: a wrong type, a missing section, an unset
    optional key written as null, and a stats row without its ratio."""
    data = json.loads((runs["serial-cascade"] / "summary.json").read_text())
    check = validator("summary.schema.json")
    assert not check.is_valid({**data, "counts": {**data["counts"], "kept": "3"}})
    assert not check.is_valid({k: v for k, v in data.items() if k != "this_session"})
    assert not check.is_valid({**data, "outputs": None})
    row = next(iter_records(runs["serial-cascade"], runs["serial-cascade"] / "kept.jsonl", "stats"))
    video = {k: v for k, v in row["videos"][0].items() if k != "ratio"}
    assert not validator("stats.schema.json").is_valid({**row, "videos": [video]})


def test_an_older_summary_reads_as_version_1_and_a_newer_one_is_refused(runs, tmp_path):
    data = json.loads((runs["ray-shards"] / "summary.json").read_text())
    older = tmp_path / "older.json"
    older.write_text(json.dumps({k: v for k, v in data.items() if k != "schema_version"}))
    assert RunSummary.load(older).to_json() == data  # read as version 1: its keys are version 1's
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ConfigError, match=f"{newer}.*newer textsieve.*upgrade"):
        RunSummary.load(newer)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in data.items() if k != "counts"}))
    with pytest.raises(ConfigError, match=f"{broken} is not a summary.*counts: Field required.*--restart"):
        RunSummary.load(broken)
