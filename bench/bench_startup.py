"""Start-up of the local executor's workers: fork server against spawn.

Runs the same small local run (CRAFT on the CPU, tiny drawn videos) several
times in one process, once with workers forked from the fork server
(textsieve's way: torch and EasyOCR imported once, in the server) and once
with each worker spawned (a fresh interpreter that imports them itself, as
textsieve did before), then once more each with a replica that crashes on its
first call and is replaced. Both ways run in this one process, alternating,
so the machine's noise hits both; read the ratios.

With --build: the CRAFT network's build alone, in one process, alternating
EasyOCR's own (a Reader with its detector, as Data-Juicer builds it and
textsieve did) and textsieve's (`load_craft`: on the meta device, then the
file's tensors), with a check that both give the same tensors.

    python bench/bench_startup.py [--runs 3] [--build]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from textsieve.cli import main
from textsieve.runtime import workers
from textsieve.synthetic import TextBlock, VideoSpec, write_video

TINY = dict(width=160, height=120, frames=10, gop=5, fps=Fraction(10))


def dataset(folder: Path) -> Path:
    for i, text in enumerate(["Hello world", "", "Caption", "BIG"]):
        blocks = (TextBlock(text, 8, 50, size=20 + 4 * i),) if text else ()
        write_video(folder / f"v{i}.mp4", VideoSpec(**TINY, blocks=blocks))
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps({"id": i, "videos": [f"v{i}.mp4"]}) + "\n" for i in range(4)))
    return path


def one_run(data: Path, export: Path, faults: dict | None) -> float:
    if faults:
        os.environ["TEXTSIEVE_FAULTS"] = json.dumps(faults)
    else:
        os.environ.pop("TEXTSIEVE_FAULTS", None)
    started = time.perf_counter()
    code = main(["run", "--dataset", str(data), "--export", str(export), "--executor", "local",
                 "--max-area-ratio", "0.05"])
    assert code == 0, code
    return time.perf_counter() - started


def bench(runs: int) -> None:
    ways = {"forkserver": workers.CTX, "spawn": mp.get_context("spawn")}
    times: dict[tuple[str, str], list[float]] = {(w, k): [] for w in ways for k in ("run", "crash")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = dataset(root)
        for i in range(runs):
            for way, ctx in ways.items():
                workers.CTX = ctx
                times[(way, "run")].append(one_run(data, root / f"{way}-run-{i}", None))
                marks = root / f"{way}-marks-{i}"
                marks.mkdir()
                times[(way, "crash")].append(one_run(data, root / f"{way}-crash-{i}",
                                                     {"crash_replica_calls": [1], "once_dir": str(marks)}))
    print(f"{'workers':<12}{'run (s)':>24}{'run + a replaced replica (s)':>32}")
    for way in ways:
        cells = ["/".join(f"{t:.1f}" for t in times[(way, kind)]) for kind in ("run", "crash")]
        print(f"{way:<12}{cells[0]:>24}{cells[1]:>32}")
    for kind in ("run", "crash"):
        # the first forkserver run pays the server's import once; later ones do not
        later = [statistics.median(times[(w, kind)][1:] or times[(w, kind)]) for w in ways]
        print(f"{kind}: spawn / forkserver, median of runs 2+: {later[1] / later[0]:.2f}x")


def bench_build(runs: int) -> None:
    import easyocr
    import torch

    from textsieve.detect.craft import load_craft
    from textsieve.detect.weights import CRAFT_FILE, find_craft_weights

    folder = find_craft_weights()
    times: dict[str, list[float]] = {"easyocr": [], "textsieve": []}
    for _ in range(runs):
        started = time.perf_counter()
        theirs = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(folder),
                                user_network_directory=str(folder), download_enabled=False, recognizer=False,
                                verbose=False).detector
        times["easyocr"].append(time.perf_counter() - started)
        started = time.perf_counter()
        ours = load_craft(folder / CRAFT_FILE, torch.device("cpu"))
        times["textsieve"].append(time.perf_counter() - started)
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    for way, seconds in times.items():
        print(f"{way:<10} {' / '.join(f'{t:.2f}' for t in seconds)} s")
    print(f"easyocr / textsieve, medians: "
          f"{statistics.median(times['easyocr']) / statistics.median(times['textsieve']):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--build", action="store_true", help="the CRAFT network's build alone")
    options = parser.parse_args()
    (bench_build if options.build else bench)(options.runs)
