"""Nothing a user owns is overwritten, and no row can stop a run for good
(issue #22), through the CLI as a user meets it (its own entry, its exit codes
and messages, in this process; a run that is killed, in a process of its own):
outputs never replace what textsieve did not write, `decide` re-decides only
stats that cover the run, and resume checks what it resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import args as run_args
from runs import in_process, outputs, summary


def args(dataset: Path, export: Path, executor: str, *extra: str) -> list[str]:
    """runs.args with the fast detector: what these tests check is the folder, not what finds the text."""
    return run_args(dataset, export, executor, "--detector", "ppocr", *extra)


def cli(*argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return in_process(list(argv), env, cwd)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """The one line a refusal prints (exit 2), which names ``words``."""
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textsieve: "), done.stderr[-2000:]
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished(small_dataset, tmp_path_factory) -> Path:
    """A finished run of the small dataset (copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    done = cli(*args(small_dataset, out, "serial"))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


# ---- 1. outputs never replace what textsieve did not write ---------------------------------

def test_an_export_that_is_the_dataset_is_refused_and_the_dataset_kept(small_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_dataset.parent, data)
    before = tree(data)
    clips = data / "data.jsonl"
    refused(cli(*args(clips, clips, "serial")), str(clips), "is the dataset", "choose another --export")
    # one of its files, beside a file export: Data-Juicer's <stem>_stats.jsonl
    stats_named = data / "data_stats.jsonl"
    shutil.copy(clips, stats_named)
    before = tree(data)
    refused(cli(*args(stats_named, data / "data.jsonl", "serial")), str(stats_named), "is the dataset")
    assert tree(data) == before


@pytest.mark.parametrize("restart", [False, True], ids=["run", "restart"])
@pytest.mark.parametrize("name", ["kept.jsonl", "stats.jsonl", "summary.json"])
def test_a_users_own_file_in_the_export_folder_is_never_overwritten(small_dataset, tmp_path, name, restart):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text('{"mine": true}\n')
    before = tree(out)
    done = cli(*args(small_dataset, out, "serial", *(["--restart"] if restart else [])))
    refused(done, str(out / name), "not written by textsieve", "choose another --export")
    assert tree(out) == before  # no lock, no journal: nothing created


def test_a_users_own_shards_folder_is_never_emptied(small_dataset, tmp_path):
    out = tmp_path / "out"
    (out / "errors").mkdir(parents=True)
    (out / "errors" / "notes.txt").write_text("my notes\n")
    before = tree(out)
    refused(cli(*args(small_dataset, out, "serial", "--export-shard-size", "1000", "--restart")),
            str(out / "errors"), "did not write")
    assert tree(out) == before


def test_a_finished_run_is_still_its_own_to_restart(finished, small_dataset, tmp_path):
    """The folder's journal says the outputs are textsieve's: --restart redoes them."""
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    done = cli(*args(small_dataset, out, "serial", "--restart"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert outputs(out) == outputs(finished)


# ---- 2. an export inside the dataset ---------------------------------------------------------

@pytest.fixture
def layouts(small_dataset, tmp_path) -> Path:
    """The small dataset's files, a folder of its four videos, and a folder of datasets."""
    shutil.copytree(small_dataset.parent, tmp_path / "data")
    (tmp_path / "videos").mkdir()
    for i in range(4):
        shutil.copy(small_dataset.parent / f"v{i}.mp4", tmp_path / "videos")
    (tmp_path / "sets").mkdir()
    shutil.copy(small_dataset, tmp_path / "sets" / "a.jsonl")
    return tmp_path


@pytest.mark.parametrize("dataset, export, extra, words", [
    ("videos", "videos/out", (), ("inside the dataset folder",)),
    ("videos", "videos", (), ("inside the dataset folder",)),
    ("sets", "sets/out", (), ("inside the dataset folder",)),
    ("data/*.jsonl", "data/result.jsonl", (), ("matches the dataset's glob",)),
    ("data/**/*.jsonl", "data/out", (), ("matches the dataset's glob",)),
    ("data/data.jsonl sets/a.jsonl", "sets/a.jsonl", (), ("is the dataset",)),
    ("0.5 data/data.jsonl 0.5 videos", "videos/out", (), ("inside the dataset folder",)),
    ("out/kept/a.jsonl", "out", ("--export-shard-size", "1000"), ("inside the shard folder",)),
], ids=["video-folder/out", "video-folder-itself", "folder-of-datasets", "glob", "recursive-glob", "several-files",
        "weighted-mixture", "shard-folder-holds-it"])
def test_an_export_inside_the_dataset_is_refused_before_any_work(layouts, dataset, export, extra, words):
    if dataset.startswith("out/"):
        (layouts / "out" / "kept").mkdir(parents=True)
        shutil.copy(layouts / "sets" / "a.jsonl", layouts / "out" / "kept")
    before = tree(layouts)
    done = cli("run", "--dataset", dataset, "--export", export, "--executor", "serial", "--detector", "ppocr", *extra,
               cwd=layouts)
    refused(done, *words, "choose another --export")
    assert tree(layouts) == before


def test_an_export_beside_a_folder_of_videos_reads_the_videos(layouts):
    """The control: the same folder, the export outside it, four samples."""
    done = cli("run", "--dataset", "videos", "--export", "out", "--executor", "serial", "--detector", "ppocr",
               cwd=layouts)
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary(layouts / "out")["counts"]["input"] == 4


# ---- 3. decide re-decides only stats that cover the run ---------------------------------------

def _delete_line(path: Path, number: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    del lines[number - 1]
    path.write_text("".join(lines))


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


DAMAGES = {
    "empty": (lambda out: (out / "stats.jsonl").write_text(""), ("stats.jsonl holds 0 judged samples",)),
    "one-line-deleted": (lambda out: _delete_line(out / "stats.jsonl", 2), ("samples are missing",)),
    "garbage-line": (lambda out: _replace_line(out / "stats.jsonl", 3, "#!garbage"),
                     ("stats.jsonl line 3 is not valid JSON",)),
    "wrong-shape": (lambda out: _replace_line(out / "stats.jsonl", 1, '{"index": "zero"}'),
                    ("stats.jsonl line 1 is not a stats record",)),
    "a-line-twice": (lambda out: _replace_line(out / "stats.jsonl", 2, (out / "stats.jsonl").read_text().splitlines()[0]),
                     ("stats.jsonl line 2",)),
    "errors-garbage": (lambda out: _replace_line(out / "errors.jsonl", 1, "[1, 2"), ("errors.jsonl line 1",)),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_decide_refuses_stats_that_do_not_cover_the_run_and_writes_nothing(finished, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    spoil, words = DAMAGES[damage]
    spoil(out)
    before = tree(out)
    done = cli("decide", "--export", str(out), "--max-area-ratio", "0.2")
    assert "Traceback" not in done.stderr
    refused(done, *words, "left as they were")
    after = tree(out)
    after.pop(".textsieve.lock"), before.pop(".textsieve.lock")  # the run's lock, held while deciding
    assert after == before


def test_decide_on_intact_stats_still_re_decides(finished, tmp_path):
    """The control: the same checks pass on the run's own files."""
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    done = cli("decide", "--export", str(out), "--max-area-ratio", "0.2")
    assert done.returncode == 0, done.stderr[-2000:]
    counts = summary(out)["counts"]
    assert counts["adds_up"] and counts["kept"] + counts["dropped"] == 6


@pytest.mark.parametrize("content", ["empty", "user-files"])
def test_decide_on_a_folder_that_is_not_a_run_creates_nothing(tmp_path, content):
    folder = tmp_path / "mine"
    folder.mkdir()
    if content == "user-files":
        (folder / "stats.jsonl").write_text('{"mine": 1}\n')
    before = tree(folder)
    refused(cli("decide", "--export", str(folder), "--max-area-ratio", "0.2"), "no summary.json")
    assert tree(folder) == before and not (folder / ".textsieve.lock").exists()


# ---- 8. resume checks what it resumes ---------------------------------------------------------

def stop_part_way(dataset: Path, out: Path) -> Path:
    """A run stopped part-way (exit 4) with committed records: samples 0
    and 1 are judged, then the detector fails the same way on samples 2
    and 3 and a streak of two stops the run."""
    done = cli(*args(dataset, out, "serial", "--failure-streak", "2"),
               env={"TEXTSIEVE_FAULTS": json.dumps({"detector_error_on": ["v2.mp4", "v3.mp4"]})})
    assert done.returncode == 4, done.stderr[-2000:]
    assert _committed(out) and (out / "kept.jsonl.part").stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def stopped(small_dataset, tmp_path_factory) -> Path:
    """A run stopped part-way (copy it before use)."""
    return stop_part_way(small_dataset, tmp_path_factory.mktemp("stopped") / "out")


def _committed(out: Path) -> set[int]:
    done: set[int] = set()
    for line in (out / "journal.jsonl").read_text().splitlines()[1:]:
        done.update(json.loads(line).get("done", []))
    return done


def _cut_short(part: Path) -> None:
    os.truncate(part, part.stat().st_size // 2)


def _zero_filled(part: Path) -> None:
    part.write_bytes(b"\0" * (part.stat().st_size + 100))  # as a crash can leave a file: its blocks zeros, grown


@pytest.mark.parametrize("part, damage", [("kept.jsonl.part", _cut_short), ("stats.jsonl.part", _zero_filled)],
                         ids=["kept-part-cut-short", "stats-part-zero-filled"])
def test_a_part_file_that_lost_committed_records_is_repaired_on_resume(finished, small_dataset, tmp_path, part, damage):
    out = stop_part_way(small_dataset, tmp_path / "out")  # in place: the damage alone is tested
    committed = _committed(out)
    damage(out / part)
    done = cli(*args(small_dataset, out, "serial"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "judged again" in done.stderr
    assert outputs(out) == outputs(finished)  # no sample lost, none doubled, no NUL
    assert not list(out.glob("*.part"))
    assert summary(out)["resumed_with_done"] < len(committed)  # the lost ones were judged again


def test_a_copied_half_done_export_folder_resumes_where_it_lies(stopped, finished, small_dataset, tmp_path):
    """The fingerprint holds what decides the answers, not where the folder lies."""
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(stopped, copy)
    done = cli(*args(small_dataset, copy, "serial"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert outputs(copy) == outputs(finished)
    assert summary(copy)["resumed_with_done"] == len(_committed(stopped))
    assert not (stopped / "summary.json").exists()  # the original was left alone


def test_retried_errors_are_still_counted_after_a_kill_and_a_resume(small_dataset, finished, tmp_path):
    out = tmp_path / "out"
    first = cli(*args(small_dataset, out, "serial"), env={"TEXTSIEVE_FAULTS": json.dumps({"detector_error_on": ["v2.mp4"]})})
    assert first.returncode == 0, first.stderr[-2000:]
    retry = args(small_dataset, out, "serial", "--retry-errors")
    # the retried sample's detection is slow: the run, a process of its own, is killed after it
    # took the sample back
    proc = subprocess.Popen([sys.executable, "-m", "textsieve.cli", *retry], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 60})})
    journal, deadline = out / "journal.jsonl", time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            lines = journal.read_text().splitlines()
            if len(lines) == 2 and '"complete"' not in lines[1]:  # the retry's rewrite: one commit, unfinished
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the retry ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = cli(*retry)  # the same command again
    assert done.returncode == 0, done.stderr[-3000:]
    assert outputs(out) == outputs(finished)
    assert summary(out)["retried_errors"] == 1 and summary(out)["counts"]["adds_up"]


def test_a_finished_run_missing_its_summary_is_not_reported_finished(finished, small_dataset, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / "summary.json").unlink()
    done = cli(*args(small_dataset, out, "serial"))
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]  # after the plan, which a run prints first
    assert last.startswith("textsieve: ") and str(out / "summary.json") in last and "--restart" in last, last
    assert "already holds" not in done.stdout
