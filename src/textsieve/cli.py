"""The ``textsieve`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from .errors import ConfigError

log = logging.getLogger("textsieve")

# flag -> config field; "filter." fields are the op's parameters
RUN_FLAGS = {
    "dataset": "dataset_path",
    "export": "export_path",
    "np": "np",
    "device": "device",
    "batch_size": "batch_size",
    "weights_dir": "weights_dir",
    "min_area_ratio": "filter.min_area_ratio",
    "max_area_ratio": "filter.max_area_ratio",
    "frame_sample_num": "filter.frame_sample_num",
    "any_or_all": "filter.any_or_all",
    "languages": "filter.languages_to_detect",
    "video_key": "filter.video_key",
    "area_mode": "filter.area_mode",
    "aggregate": "filter.aggregate",
    "sampling": "filter.sampling",
    "interval_s": "filter.interval_s",
    "max_video_pixels": "max_video_pixels",
    "max_video_duration_s": "max_video_duration_s",
}


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="Data-Juicer style recipe (YAML); flags override it")
    p.add_argument("--dataset", help="JSONL or Parquet dataset (recipe: dataset_path)")
    p.add_argument("--export", help="export folder, or a .jsonl file for kept samples (recipe: export_path)")
    p.add_argument("--np", type=int, help="cap on worker processes (Data-Juicer's np)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, help="frames per detector forward pass (default 8)")
    p.add_argument("--weights-dir", help="folder holding craft_mlt_25k.pth (default: installed package)")
    p.add_argument("--min-area-ratio", type=float)
    p.add_argument("--max-area-ratio", type=float)
    p.add_argument("--frame-sample-num", type=int)
    p.add_argument("--any-or-all", choices=["any", "all"])
    p.add_argument("--languages", nargs="+", help="EasyOCR language codes (validated; CRAFT ignores them)")
    p.add_argument("--video-key", help="sample field holding the video list (default: videos)")
    p.add_argument("--area-mode", choices=["dj", "union"], help="dj (default, Data-Juicer's sum) or union")
    p.add_argument("--aggregate", choices=["mean", "max", "p90"], help="per-video statistic (default mean)")
    p.add_argument("--sampling", choices=["uniform", "interval", "keyframe"], help="frame sampling (default uniform)")
    p.add_argument("--interval-s", type=float, help="seconds between frames for --sampling interval")
    p.add_argument("--max-video-pixels", type=int)
    p.add_argument("--max-video-duration-s", type=float)
    p.add_argument("--strict", action="store_true", default=None, help="exit 1 if any sample ends in errors.jsonl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textsieve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_flags(sub.add_parser("run", help="filter a dataset"))
    demo = sub.add_parser("demo", help="make a small dataset with drawn text and filter it")
    demo.add_argument("--out", default="textsieve-demo", help="folder for the demo data and outputs")
    demo.add_argument("--max-area-ratio", type=float, default=0.1)
    return parser


def config_from_args(args: argparse.Namespace):
    from .config import build_config

    overrides = {field: getattr(args, flag) for flag, field in RUN_FLAGS.items()}
    overrides["strict"] = args.strict
    return build_config(args.recipe, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime.serial import run_serial

    config = config_from_args(args)
    summary = run_serial(config)
    counts = summary["counts"]
    print(
        f"{counts['input']} samples: {counts['kept']} kept, {counts['dropped']} dropped, "
        f"{counts['error']} errors -> {config.export_dir}"
    )
    if not counts["adds_up"]:
        log.error("outcome counts do not add up to the input: %s", counts)
        return 3
    if config.strict and counts["error"]:
        print(f"--strict: {counts['error']} sample(s) failed, see {config.export_dir / 'errors.jsonl'}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), args.max_area_ratio)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return {"run": cmd_run, "demo": cmd_demo}[args.command](args)
    except ConfigError as exc:
        print(f"textsieve: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

