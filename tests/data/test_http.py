"""http(s) datasets and videos, as the README promises them, against a local
HTTP server that answers range requests and one that does not (Python's own
http.server, which sends the whole file to every request), through the CLI
on every executor: the same answers as from local files."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from runs import run_ok

from textsieve.synthetic import TextBlock, VideoSpec, write_video
from textsieve.video.frames import REMOTE_BLOCK


class Plain(http.server.SimpleHTTPRequestHandler):
    """Whole files only, as http.server serves them; counts what it was asked."""

    asked: list[tuple[str, str | None]]

    def log_message(self, *args) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # the client closed a stream it no longer needs
            pass

    def send_head(self):
        self.asked.append((self.path, self.headers.get("Range")))
        return super().send_head()


class Ranged(Plain):
    """Range requests answered with 206 and just those bytes."""

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        path = self.translate_path(self.path)
        if not match or not os.path.isfile(path):
            return super().send_head()
        self.asked.append((self.path, self.headers["Range"]))
        size = os.path.getsize(path)
        start, stop = int(match[1]), min(int(match[2] or size - 1), size - 1)
        f = open(path, "rb")
        f.seek(start)
        body = f.read(stop - start + 1)
        f.close()
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

        return io.BytesIO(body)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Tiny clips with and without text, one noisy clip larger than a ranged read's block (so
    that a seek past the first block needs a range request), a missing one, relative paths."""
    d = tmp_path_factory.mktemp("site")
    for i, text in enumerate(["Hello world", "", "Caption"]):
        blocks = (TextBlock(text, 8, 50, size=22),) if text else ()
        write_video(d / f"v{i}.mp4", VideoSpec(width=160, height=120, frames=10, gop=5, fps=Fraction(10), blocks=blocks))
    with av.open(str(d / "noise.mp4"), "w") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast"}  # noise does not compress: the file is large at any preset
        rng = np.random.default_rng(0)
        for _ in range(60):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    assert (d / "noise.mp4").stat().st_size > 2 * REMOTE_BLOCK
    rows = [{"id": i, "videos": [f"v{i}.mp4"]} for i in range(3)] + [
        {"id": 3, "videos": ["noise.mp4", "v0.mp4"]}, {"id": 4, "videos": ["gone.mp4"]}, {"id": 5, "videos": []}]
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def serve(folder: Path, handler: type[Plain]):
    handler = type(handler.__name__, (handler,), {"asked": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.asked


def run(dataset: str, export: Path, executor: str, ray_env: dict | None = None) -> dict:
    """As runs.run_ok runs it (``ray_env`` for Ray). The
    fast detector: what is tested is how the bytes arrive, not what finds the text."""
    argv = ["run", "--dataset", dataset, "--export", str(export), "--executor", executor, "--device", "cpu",
            "--detector", "ppocr", "--max-area-ratio", "0.05"]
    run_ok(argv, executor, ray_env if executor == "ray" else None)
    stats = {r["index"]: (r["status"], r["video_ocr_area_ratio"]) for r in map(json.loads, (export / "stats.jsonl").read_text().splitlines())}
    errors = {r["index"]: r["kind"] for r in map(json.loads, (export / "errors.jsonl").read_text().splitlines())}
    kept = [r["id"] for r in map(json.loads, (export / "kept.jsonl").read_text().splitlines())]
    return {"stats": stats, "errors": errors, "kept": kept}


@pytest.fixture(scope="module")
def reference(site, tmp_path_factory) -> dict:
    return run(str(site / "data.jsonl"), tmp_path_factory.mktemp("ref") / "out", "serial")


# every executor reads http(s), and both kinds of server on one executor: the whole-file spool
# is the same code wherever it runs
@pytest.mark.parametrize("executor,handler", [("serial", Ranged), ("serial", Plain), ("local", Plain), ("ray", Ranged)])
def test_http_datasets_and_videos_give_the_local_answers(site, reference, tmp_path, request, executor, handler):
    ray_env = request.getfixturevalue("ray_env") if executor == "ray" else None
    server, asked = serve(site, handler)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        got = run(f"{base}/data.jsonl", tmp_path / "out", executor, ray_env)
    finally:
        server.shutdown()
    assert got == reference
    assert reference["errors"] == {4: "missing_file"} and reference["stats"][3][1][0] == 0.0
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    assert all(v.startswith(f"{base}/") for row in kept for v in row["videos"])  # relative paths written as URLs
    noise = [r for p, r in asked if p == "/noise.mp4"]
    if handler is Ranged:  # read in blocks: ranges past the first block were asked for and answered
        assert any(r and not r.startswith("bytes=0-") for r in noise), noise
    else:  # fetched whole, once, after the server showed it sends whole files
        assert noise.count(None) >= 1
