"""WebDataset-style archives read in place: a .tar or .zip of members
grouped by key is a dataset, each video is read from within the archive (no
extraction), and the outputs name the archive and the member; through the
CLI on every executor, and from the S3 test server, with the answers of the
same files on disk."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
from runs import run_ok

from textsieve.synthetic import TextBlock, VideoSpec, write_video

TINY = dict(width=160, height=120, frames=10, gop=5, fps=Fraction(10))


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """The same samples three ways: loose files with a JSON-lines dataset, a tar and a zip.
    Keys 0-3: a video and its JSON; 4: a video and a .txt; 5: JSON only (no video);
    6: a JSON member that is not JSON (that row's error); part/7: a member in a folder."""
    d = tmp_path_factory.mktemp("archives")
    loose = d / "loose"
    loose.mkdir()
    members: list[tuple[str, bytes]] = []
    rows = []
    for i, text in enumerate(["Hello world", "", "Caption", "BIG", "Side", "", "", "Folder"]):
        key = f"part/{i:06d}" if i == 7 else f"{i:06d}"
        sample: dict = {"id": i, "text": f"sample {i}"}
        if i not in (5, 6):
            video = loose / f"{i:06d}.mp4"
            write_video(video, VideoSpec(**TINY, blocks=(TextBlock(text, 8, 50, size=20 + 3 * i),) if text else ()))
            members.append((f"{key}.mp4", video.read_bytes()))
        if i == 4:
            members.append((f"{key}.txt", b"sample 4"))
            rows.append({"text": "sample 4", "videos": [str(video)]})
            continue
        members.append((f"{key}.json", b"{not json" if i == 6 else json.dumps(sample).encode()))
        rows.append(None if i == 6 else {**sample, "videos": [str(video)] if i != 5 else []})
    dataset = loose / "data.jsonl"
    dataset.write_text("".join((json.dumps(r) if r is not None else "{not json") + "\n" for r in rows))
    with tarfile.open(d / "shard-000.tar", "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(d / "shard-000.zip", "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(name, data)
    return {"loose": dataset, "tar": d / "shard-000.tar", "zip": d / "shard-000.zip"}


def answers(export: Path) -> dict:
    stats = {r["index"]: (r["status"], r["video_ocr_area_ratio"])
             for r in map(json.loads, (export / "stats.jsonl").read_text().splitlines())}
    errors = {r["index"]: r["kind"] for r in map(json.loads, (export / "errors.jsonl").read_text().splitlines())}
    return {"stats": stats, "errors": errors}


def run(dataset: str, export: Path, executor: str, env: dict | None = None) -> dict:
    """As runs.run_ok runs it (``env``: ray_env for Ray)."""
    argv = ["run", "--dataset", dataset, "--export", str(export), "--executor", executor, "--device", "cpu",
            "--detector", "ppocr", "--max-area-ratio", "0.05"]
    run_ok(argv, executor, env)
    return answers(export)


@pytest.fixture(scope="module")
def reference(archives, tmp_path_factory) -> dict:
    return run(str(archives["loose"]), tmp_path_factory.mktemp("ref") / "out", "serial")


# both kinds on the serial executor, and each other executor once: an archive's member is read by
# the same code wherever the decoder runs, so what an executor adds is carrying its address there
@pytest.mark.parametrize("kind,executor", [("tar", "serial"), ("zip", "serial"), ("zip", "local"), ("tar", "ray")])
def test_an_archive_is_a_dataset_read_in_place(archives, reference, tmp_path, request, executor, kind):
    env = request.getfixturevalue("ray_env") if executor == "ray" else None
    got = run(str(archives[kind]), tmp_path / "out", executor, env)
    assert got == reference
    assert reference["errors"] == {6: "bad_sample"} and len(reference["stats"]) == 7
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    archive = str(archives[kind].resolve())
    videos = [v for row in kept for v in row.get("videos", [])]
    assert videos and all(v.startswith(f"{kind}://") and v.endswith(f"::{archive}") for v in videos)
    assert len(kept) == sum(status == "kept" for status, _ in reference["stats"].values())
    judged = {v["video"] for line in (tmp_path / "out" / "stats.jsonl").read_text().splitlines()
              for v in json.loads(line)["videos"]}
    assert {f"{kind}://part/000007.mp4::{archive}", f"{kind}://000004.mp4::{archive}"} <= judged
    # read in place: nothing was extracted beside the archive
    assert sorted(p.name for p in archives[kind].parent.iterdir()) == ["loose", "shard-000.tar", "shard-000.zip"]


@pytest.fixture(scope="module")
def s3_server():
    """One S3 test server (moto) for the module, and the environment that names it."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    # the runs are in this process: a file system cached by an earlier server's run must not answer
    s3fs.S3FileSystem.clear_instance_cache()
    yield {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_archive_in_s3_is_read_in_place(archives, reference, s3_server, tmp_path, kind):
    import s3fs

    env = s3_server
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
    fs.makedirs("shards", exist_ok=True)  # the other kind's test may have made it (one server, one process)
    fs.put(str(archives[kind]), f"shards/webdataset/shard-000.{kind}")
    got = run(f"s3://shards/webdataset/shard-000.{kind}", tmp_path / "out", "serial", env)
    assert got == reference
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    videos = [v for row in kept for v in row.get("videos", [])]
    assert videos and all(v.startswith(f"{kind}://") and v.endswith(f"::s3://shards/webdataset/shard-000.{kind}")
                          for v in videos)
