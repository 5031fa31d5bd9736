"""Videos and datasets in object storage, read through fsspec with ranged
reads, against an S3-compatible server the test starts on localhost (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runs import OUTPUTS, in_process, ray_job

from textsieve.synthetic import TextBlock, VideoSpec, write_video

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

SECRET = "not-a-real-secret-key-0123456789"
TINY = dict(width=160, height=120, frames=10, gop=5)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with a bucket holding videos and a dataset that
    names them relative to itself; the same files on local disk."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()  # one cached by another module's server in this process
    local = tmp_path_factory.mktemp("s3local")
    rows = []
    for i, text in enumerate(["Hello world", "", "A caption"]):
        write_video(local / f"v{i}.mp4", VideoSpec(**TINY, blocks=(TextBlock(text, 8, 50, size=22),) if text else ()))
        rows.append({"id": i, "videos": [f"clips/v{i}.mp4"]})
    rows.append({"id": "gone", "videos": ["clips/missing.mp4"]})
    (local / "clips").mkdir()
    for i in range(3):
        (local / f"v{i}.mp4").rename(local / "clips" / f"v{i}.mp4")
    (local / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fs = s3fs.S3FileSystem()
    # moto keeps its buckets per process, not per server: another module's server may have made it
    fs.makedirs("videos", exist_ok=True)
    fs.put(str(local / "clips"), "videos/set/clips", recursive=True)
    fs.put(str(local / "data.jsonl"), "videos/set/data.jsonl")
    yield local, env
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def write_noise(path: Path, frames: int, gop: int) -> None:
    """Incompressible frames: a file of many blocks, as real footage is."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


COMMON = ["--max-area-ratio", "0.05", "--detector", "ppocr"]


@pytest.fixture(scope="module")
def on_disk(s3, tmp_path_factory) -> Path:
    """The same files on local disk, on the serial executor: what every executor must write
    from S3 (every executor writes the serial outputs from local files: test_conformance)."""
    local, _ = s3
    out = tmp_path_factory.mktemp("disk") / "out"
    done = in_process(["run", "--dataset", str(local / "data.jsonl"), "--export", str(out), "--executor", "serial",
                       *COMMON])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("executor", ["serial", "local", "ray"])
def test_videos_in_s3_give_the_outputs_of_the_same_files_on_disk(s3, on_disk, tmp_path, request, executor):
    """Each executor's outputs from S3 are the serial outputs of the files on disk. On Ray the
    decode tasks read the videos (the session's local instance: its workers take the
    credentials from their environment, which the job gives them, as a cluster's must have them)."""
    local, env = s3
    argv = ["run", "--dataset", "s3://videos/set/data.jsonl", "--export", str(tmp_path / "s3"), "--executor", executor,
            *COMMON]
    if executor == "ray":  # a CLI subprocess that joins the session's instance, as a user's command joins a cluster
        remote = subprocess.run([sys.executable, "-m", "textsieve.cli", *argv], capture_output=True, text=True,
                                timeout=400, env=ray_job(request.getfixturevalue("ray_env"), env))
    else:
        remote = in_process(argv)
    assert remote.returncode == 0, remote.stderr[-3000:]
    for name in OUTPUTS:
        disk_text = (on_disk / name).read_text().replace(str(local), "s3://videos/set")
        assert (tmp_path / "s3" / name).read_text() == disk_text, name
    errors = [json.loads(line) for line in (tmp_path / "s3" / "errors.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["video"]) for e in errors] == [("missing_file", "s3://videos/set/clips/missing.mp4")]
    # credentials come from the environment and are never written or printed
    for text in (remote.stdout, remote.stderr, *(p.read_text() for p in (tmp_path / "s3").iterdir() if p.is_file())):
        assert SECRET not in text


def test_a_video_is_read_in_ranges_not_downloaded_whole(s3, monkeypatch):
    """Sampling 3 frames of a 10 s video fetches a fraction of it (blocks of
    16 KiB here, 1 MiB in real use)."""
    from textsieve.video import frames
    from textsieve.video.frames import sample_video

    monkeypatch.setattr(frames, "REMOTE_BLOCK", 16 << 10)
    local, _ = s3
    long = local / "long.mp4"
    write_noise(long, frames=250, gop=25)
    fs = s3fs.S3FileSystem()
    fs.put(str(long), "videos/long.mp4")
    fetched: list[int] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        fetched.append(end - start)
        return original(self, start, end)

    s3fs.core.S3File._fetch_range = counting
    try:
        sampled = sample_video("s3://videos/long.mp4", 3)
    finally:
        s3fs.core.S3File._fetch_range = original
    assert sampled.times == sample_video(str(long), 3).times
    assert 0 < sum(fetched) < long.stat().st_size / 2
