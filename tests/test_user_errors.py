"""What a careless or hostile user can type: each mistake is one line and exit
2 before any work (exit 4 for a store that fails during a run), never a
traceback; no secret of a URL reaches a file or the log; Ctrl-C says how to
resume."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from textsieve.detect import registry
from textsieve.synthetic import TextBlock, VideoSpec, write_video

from runs import in_process, journal_done

TINY = dict(width=160, height=120, frames=10, gop=5)


def cli(*argv: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command in a process of its own, as a user runs it (~6 s to import the model libraries)."""
    return subprocess.run([sys.executable, "-m", "textsieve.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A tiny video, a dataset naming it, and broken datasets of every kind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("careless")
    write_video(d / "v.mp4", VideoSpec(**TINY, blocks=(TextBlock("Hello", 8, 50, size=22),)))
    rows = [{"id": i, "videos": ["v.mp4"] if i == 0 else []} for i in range(3)]
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = gzip.compress((d / "data.jsonl").read_bytes())
    (d / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (d / "plain.jsonl.gz").write_bytes((d / "data.jsonl").read_bytes())
    pq.write_table(pa.Table.from_pylist(rows), d / "good.parquet")
    data = (d / "good.parquet").read_bytes()
    (d / "cut.parquet").write_bytes(data[: len(data) // 2])
    (d / "shards").mkdir()
    (d / "shards" / "a.parquet").write_bytes(data)
    (d / "shards" / "b.parquet").write_bytes(data[: len(data) // 2])
    (d / "a_file").write_text("mine\n")
    recipe = "dataset_path: data.jsonl\nexport_path: out\nprocess:\n  - video_ocr_area_ratio_filter:\n{params}"
    (d / "quoted.yaml").write_text(recipe.format(params="      max_area_ratio: '0.1'\n"))
    (d / "boolean.yaml").write_text(recipe.format(params="      frame_sample_num: true\n"))
    (d / "twice.yaml").write_text("dataset_path: data.jsonl\nexport_path: out\nexport_path: elsewhere\n"
                                  "process:\n  - video_ocr_area_ratio_filter:\n")
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        laughs.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (d / "laughs.yaml").write_text("\n".join(laughs) + "\nprocess: [*i]\n")
    (d / "broken_run").mkdir()
    (d / "broken_run" / "summary.json").write_text("{not json")
    (d / "broken_run" / "stats.jsonl").write_text("garbage{\n")
    return d


# (flags, what the one line must say); every case runs in `folder` with an export that must stay unmade
CASES = {
    "segment too short": (["--segment-s", "1e-9"], "segment_s"),
    "interval too short": (["--sampling", "interval", "--interval-s", "1e-9"], "interval_s"),
    "simulated GPUs garbage": (["--simulate-gpus", "garbage"], "not a size"),
    "unknown device": (["--device", "bogus"], "use auto, cpu, cuda or cuda:N"),
    "empty range": (["--min-area-ratio", "0.5", "--max-area-ratio", "0.1"], "above max_area_ratio"),
    "truncated gzip": (["--dataset", "cut.jsonl.gz"], "cut.jsonl.gz cannot be read"),
    "not gzip": (["--dataset", "plain.jsonl.gz"], "plain.jsonl.gz cannot be read"),
    "truncated parquet": (["--dataset", "cut.parquet"], "cut.parquet cannot be read"),
    "one bad shard in a glob": (["--dataset", "shards/*.parquet"], "b.parquet"),
    "export is a file": (["--export", "a_file"], "a_file is a file, not a folder"),
    "export under a file": (["--export", "a_file/out"], "a_file/out cannot be written"),
}
RECIPES = {
    "quoted number": ("quoted.yaml", "quoted.yaml:5: filter.max_area_ratio"),
    "boolean count": ("boolean.yaml", "boolean.yaml:5: filter.frame_sample_num"),
    "key given twice": ("twice.yaml", "twice.yaml:3: key 'export_path' is given twice"),
    "billion laughs": ("laughs.yaml", "laughs.yaml:1: YAML anchors and aliases"),
}


# In this process: a refusal is checked on what main returns and prints; the exit code of the process
# itself (sys.exit(main())) is checked by test_a_failing_url_prints_no_secret, in a subprocess.

def one_line_refusal(done: subprocess.CompletedProcess, says: str) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert says in done.stderr, done.stderr
    assert last.startswith("textsieve: ") or last.startswith("  "), last


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_mistake_in_flags_or_data_is_one_line_and_exit_2_before_any_work(folder, case, tmp_path):
    flags, says = CASES[case]
    export = tmp_path / "out"
    base = ["run", "--dataset", "data.jsonl", "--export", str(export), "--device", "cpu"]
    # a later flag wins: the case's own --dataset/--export replace the defaults
    done = in_process([*base, *flags], cwd=folder)
    one_line_refusal(done, says)
    assert not export.exists(), "a refused run writes nothing"


@pytest.mark.parametrize("case", sorted(RECIPES))
def test_a_mistake_in_a_recipe_names_its_line(folder, case):
    recipe, says = RECIPES[case]
    started = time.monotonic()
    if case == "billion laughs":
        # in a process of its own: were the guard gone, the expansion would exhaust that process, not pytest's
        done = cli("run", recipe, "--device", "cpu", cwd=folder, timeout=60)
    else:
        done = in_process(["run", recipe, "--device", "cpu"], cwd=folder)
    one_line_refusal(done, says)
    assert time.monotonic() - started < 60
    assert not (folder / "out").exists()


def test_report_on_a_broken_folder_is_one_line(folder):
    done = in_process(["report", "broken_run"], cwd=folder)
    one_line_refusal(done, "broken_run/summary.json cannot be read")


def test_memory_per_video_follows_the_frame_budget_not_a_fixed_limit(folder, tmp_path):
    """A tiny file with 8K frames is refused by the default limit (derived from
    the frame budget), naming the settings that would admit it; planning for
    that frame size raises the limit with it."""
    import av
    import numpy as np

    with av.open(str(folder / "eight_k.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((4320, 7680, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode())
    assert (folder / "eight_k.mp4").stat().st_size < 200_000
    (folder / "big.jsonl").write_text(json.dumps({"videos": ["eight_k.mp4"]}) + "\n")
    # the limit is the run's, not the executor's: serial, which starts no worker
    done = in_process(["run", "--dataset", "big.jsonl", "--export", str(tmp_path / "o"), "--device", "cpu",
                       "--executor", "serial"], cwd=folder)
    assert done.returncode == 0, done.stderr
    (error,) = [json.loads(line) for line in (tmp_path / "o" / "errors.jsonl").read_text().splitlines()]
    assert error["kind"] == "bad_resolution", error
    assert "--plan-frame-size" in error["message"] and "max_video_pixels" in error["message"]

    from textsieve.recipe import build_config

    default = build_config(None, {"dataset_path": "d", "export_path": "o"}).config
    assert 3840 * 2160 < default.video_pixel_limit < 7680 * 4320
    planned = build_config(None, {"dataset_path": "d", "export_path": "o", "plan_frame_size": "7680x4320"}).config
    assert planned.video_pixel_limit >= 7680 * 4320
    more_frames = build_config(None, {"dataset_path": "d", "export_path": "o", "filter.frame_sample_num": 100}).config
    assert more_frames.video_pixel_limit == 1920 * 1080  # never below the planned frame size


# ---- secrets --------------------------------------------------------------------------

PASSWORD, SIGNATURE = "hunter2PASS", "SIGsecret0123456789"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def web(folder):
    """The folder over HTTP on localhost (any userinfo accepted, as a server that checks it would)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_secrets_reach_no_file_and_no_log(folder, web, tmp_path, capfd, caplog):
    url = f"http://alice:{PASSWORD}@{web}/data.jsonl?X-Amz-Signature={SIGNATURE}&X-Amz-Credential=AKIA{SIGNATURE}"
    export = tmp_path / "out"
    # In this process (serial, ppocr: the secrets are the URL's, whatever runs the detection): textsieve's
    # DEBUG records, which -v turns on, reach the command's stderr; what -v does to third-party loggers in a
    # process of its own (botocore's credentials) is test_a_store_that_does_not_answer_stops_the_run_and_it_resumes's
    caplog.set_level(logging.DEBUG, logger="textsieve")
    for key, _ in registry.loaded():  # the model built by this run, as in a process of its own: -v logs that
        if key.name == "ppocr":
            registry.release(key)
    done = in_process(["-v", "run", "--dataset", url, "--export", str(export), "--device", "cpu", "--executor",
                       "serial", "--detector", "ppocr"])
    assert done.returncode == 0, done.stderr
    assert json.loads((export / "summary.json").read_text())["counts"]["adds_up"]
    report = in_process(["report", str(export)])
    assert report.returncode == 0, report.stderr
    # the video was read through the URL as given (its ratio is measured), but no copy keeps the secret
    stats = [json.loads(line) for line in (export / "stats.jsonl").read_text().splitlines()]
    assert any(v["ratio"] > 0 and v["video"].startswith(f"http://***@{web}/") for s in stats for v in s["videos"])
    # and what reached the file descriptors beside Python's streams (FFmpeg's own messages, say)
    logs = done.stdout + done.stderr + report.stdout + report.stderr + "".join(capfd.readouterr()) + caplog.text
    assert any(r.levelno == logging.DEBUG and r.name.startswith("textsieve") for r in caplog.records)  # -v was on
    files = sorted(p for p in export.rglob("*") if p.is_file())
    assert {"summary.json", "journal.jsonl", ".textsieve.lock", "stats.jsonl", "report.html"} <= {p.name for p in files}
    for secret in (PASSWORD, SIGNATURE):
        assert secret not in logs
        for path in files:
            assert secret not in path.read_text(errors="replace"), path


def test_a_failing_url_prints_no_secret(folder, web):
    done = cli("run", "--dataset", f"http://bob:{PASSWORD}@{web}/absent.jsonl", "--export", "unused", cwd=folder)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert PASSWORD not in done.stderr and "***@" in done.stderr


# ---- object storage that goes away -----------------------------------------------------

def s3_dataset(tmp_path: Path, samples: int) -> Path:
    """A dataset of ``samples`` rows, one video each, at s3://clips/c<i>.mp4."""
    dataset = tmp_path / "remote.jsonl"
    dataset.write_text("".join(json.dumps({"id": i, "videos": [f"s3://clips/c{i}.mp4"]}) + "\n" for i in range(samples)))
    return dataset


def serve_clips(video: Path, samples: int) -> tuple:
    """The S3 test server on a free port, holding ``video`` as each clip of :func:`s3_dataset`;
    returns the server (stop it) and its endpoint."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint},
                           skip_instance_cache=True)
    fs.makedirs("clips", exist_ok=True)  # moto keeps its buckets in this process across servers
    for i in range(samples):
        fs.put(str(video), f"clips/c{i}.mp4")
    return server, endpoint


# The runs below use the serial executor and ppocr: what is tested is how a store's failure
# stops the run (the collector's, the same in every executor) and that it resumes, not the
# detector; tests/data/test_remote.py reads videos from S3 on every executor.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def fresh_s3_clients() -> None:
    """Forget the S3 file systems fsspec keeps in this process: each knows the endpoint it was
    made with, and a run in a process of its own would make a new one."""
    pytest.importorskip("s3fs").S3FileSystem.clear_instance_cache()


def test_a_store_that_does_not_answer_stops_the_run_and_it_resumes(folder, tmp_path):
    """Every video's store refuses connections: not one bad sample each, but a
    stopped run (exit 4) with no error recorded, which resumes once the store
    answers; botocore's DEBUG log (which prints credentials) stays quiet under -v."""
    dataset = s3_dataset(tmp_path, 4)
    export = tmp_path / "out"
    token = "TOKEN-" + SIGNATURE
    env = {**S3_ENV, "AWS_SESSION_TOKEN": token}
    command = ["-v", "run", "--dataset", str(dataset), "--export", str(export), "--device", "cpu",
               "--failure-streak", "2", "--executor", "serial", "--detector", "ppocr"]
    # nothing listens on port 9; one attempt per request (botocore's default retries with backoff, which
    # only makes the test slower: what is tested is what happens once the client gives up). In a process
    # of its own: its -v logging is the CLI's own (stderr), where botocore's DEBUG log would print the token
    gone = cli(*command, env={**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"})
    assert gone.returncode == 4, gone.stderr
    assert "could not be read from their store" in gone.stderr and "Traceback" not in gone.stderr
    assert token not in gone.stderr + gone.stdout
    assert not (export / "errors.jsonl").exists()
    assert all(not line.strip() for line in (export / "errors.jsonl.part").read_text().splitlines())

    server, endpoint = serve_clips(folder / "v.mp4", 4)
    fresh_s3_clients()
    try:
        back = in_process(command, env={**env, "AWS_ENDPOINT_URL": endpoint})
    finally:
        server.stop()
        fresh_s3_clients()
    assert back.returncode == 0, back.stderr
    counts = json.loads((export / "summary.json").read_text())["counts"]
    assert counts["kept"] + counts["dropped"] == 4 and counts["error"] == 0 and counts["adds_up"]
    assert token not in back.stderr + back.stdout


def test_a_store_that_goes_away_mid_run_stops_it_and_no_sample_is_blamed(folder, tmp_path):
    """The store answers, then stops while the run is part-way (the issue's
    moto endpoint stopped 7 s in): the run stops with exit 4 instead of
    recording the rest as bad samples, no sample is recorded as its own
    decode error, and the same command finishes once a store answers again."""
    dataset = s3_dataset(tmp_path, 12)
    export = tmp_path / "out"
    # one attempt per request: once the store is gone, botocore's retries with backoff only slow the test
    env = {**S3_ENV, "AWS_MAX_ATTEMPTS": "1"}
    command = ["run", "--dataset", str(dataset), "--export", str(export), "--executor", "serial",
               "--device", "cpu", "--failure-streak", "2", "--detector", "ppocr"]

    server, endpoint = serve_clips(folder / "v.mp4", 12)
    slow = {**os.environ, **env, "AWS_ENDPOINT_URL": endpoint, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.5})}
    # in a process of its own: the store is stopped from here while the run goes on there
    proc = subprocess.Popen([sys.executable, "-m", "textsieve.cli", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=slow)
    journal, deadline = export / "journal.jsonl", time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline and not journal_done(journal):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the store went away"
    finally:
        server.stop()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 4, err[-3000:]
    assert "could not be read from their store" in err and "Traceback" not in err
    judged_before = journal_done(journal)
    assert 0 < judged_before < 12
    recorded = [json.loads(line) for line in (export / "errors.jsonl.part").read_text().splitlines() if line.strip()]
    assert recorded == [], recorded  # nothing blamed on a sample: the store's failure is the run's

    server, endpoint = serve_clips(folder / "v.mp4", 12)
    fresh_s3_clients()
    try:
        back = in_process(command, env={**env, "AWS_ENDPOINT_URL": endpoint})
    finally:
        server.stop()
        fresh_s3_clients()
    assert back.returncode == 0, back.stderr[-3000:]
    summary = json.loads((export / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["kept"] + counts["dropped"] == 12 and counts["error"] == 0 and counts["adds_up"]
    assert summary["resumed_with_done"] == judged_before


# ---- Ctrl-C ---------------------------------------------------------------------------

def test_ctrl_c_is_one_line_saying_how_to_resume(folder, tmp_path):
    # eight files, not one video eight times: the flow judges a path once per batch of samples,
    # and eight samples of one video finish together, before an interrupt can land between them
    for i in range(8):
        shutil.copyfile(folder / "v.mp4", tmp_path / f"v{i}.mp4")
    rows = [{"id": i, "videos": [str(tmp_path / f"v{i}.mp4")]} for i in range(8)]
    dataset = tmp_path / "eight.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    export = tmp_path / "out"
    # the local executor (its workers share the terminal's process group) with ppocr, whose replica
    # starts in a fraction of CRAFT's time: what is tested is the interrupt, not the detector
    argv = ["run", "--dataset", str(dataset), "--export", str(export), "--device", "cpu", "--detector", "ppocr",
            "--batch-size", "1"]
    # detection slowed down (0.7 s a frame, one frame a call), so that the interrupt surely lands mid-run
    slow = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.7})}
    # a terminal's Ctrl-C goes to the whole foreground process group: the supervisor and its workers
    # with SIGINT's default action, as a terminal's foreground job has it: a shell starts a background
    # job (`.ci/run ... &`) with SIGINT ignored, which its children inherit, and Python keeps it so
    proc = subprocess.Popen([sys.executable, "-m", "textsieve.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=slow,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = export / "journal.jsonl"
    deadline = time.monotonic() + 240
    # until a commit with a judged sample is on disk (every sample here is judged: none settles first)
    while time.monotonic() < deadline and proc.poll() is None and not journal_done(journal):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] == ("textsieve: interrupted. What was committed is kept: run the same "
                                            "command again to resume.")
    assert 0 < journal_done(journal) < 8  # it landed mid-run
    # the same command again, through the CLI's entry in this process (without the slow detection)
    again = in_process(argv)
    assert again.returncode == 0, again.stderr
    assert "resuming:" in again.stderr
    assert json.loads((export / "summary.json").read_text())["counts"]["adds_up"]
