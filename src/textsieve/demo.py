"""``textsieve demo``: a dataset made on the spot, filtered, explained."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .recipe import build_config
from .report.summary import RunSummary
from .runtime.lifecycle import RunSetup
from .runtime.serial import SerialExecutor
from .synthetic import demo_specs, drawn_text_ratio, write_audio_only, write_dataset


def run_demo(out: Path, max_area_ratio: float = 0.1) -> RunSummary:
    console = Console()
    data = out / "data"
    specs = demo_specs()
    console.print(f"Making {len(specs)} demo videos (320x240, 2 s) with drawn text in {data} ...")
    (data / "not_a_video.mp4").parent.mkdir(parents=True, exist_ok=True)
    (data / "not_a_video.mp4").write_text("this is a text file, not a video\n")
    write_audio_only(data / "audio_only.mp4")
    dataset = write_dataset(
        data,
        specs,
        extra_rows=[
            {"text": "two clips", "videos": ["no_text.mp4", "slides.mp4"]},
            {"text": "missing file", "videos": ["does_not_exist.mp4"]},
            {"text": "not a video", "videos": ["not_a_video.mp4"]},
            {"text": "audio only", "videos": ["audio_only.mp4"]},
        ],
    )
    export = out / "output"
    config = build_config(
        overrides={
            "dataset_path": str(dataset),
            "export_path": str(export),
            "device": "cpu",
            "filter.max_area_ratio": max_area_ratio,
        }
    ).config
    console.print(f"Filtering with CRAFT: keep samples whose videos have text area ratio <= {max_area_ratio} ...")
    summary = SerialExecutor(RunSetup.resolve(config, restart=True)).run()

    drawn = {f"{name}.mp4": drawn_text_ratio(spec) for name, spec in specs.items()}
    table = Table(title="textsieve demo")
    for col in ("sample", "video", "drawn text ratio", "measured ratio", "outcome"):
        table.add_column(col)
    stats = {r["index"]: r for r in _read(export / "stats.jsonl")}
    errors = {r["index"]: r for r in _read(export / "errors.jsonl")}
    for index, line in enumerate(dataset.read_text().splitlines()):
        sample = json.loads(line)
        if index in errors:
            err = errors[index]
            table.add_row(sample["text"], ", ".join(sample["videos"]), "", "", f"error: {err['kind']}")
            continue
        record = stats[index]
        for i, (video, ratio) in enumerate(zip(sample["videos"], record["video_ocr_area_ratio"])):
            table.add_row(
                sample["text"] if i == 0 else "",
                video,
                f"{drawn[video]:.4f}",
                f"{ratio:.4f}",
                record["status"] if i == 0 else "",
            )
    console.print(table)
    counts = summary.counts
    console.print(
        f"{counts.input} samples -> {counts.kept} kept, {counts.dropped} dropped, {counts.error} errors "
        f"(adds up: {counts.adds_up}) in {summary.this_session.wall_s:.1f} s"
    )
    console.print(f"Outputs in {export}: " + ", ".join(sorted(p.name for p in export.iterdir())))
    return summary


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
