"""The ``textsieve`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence


from .errors import ConfigError, RunStopped
from .redact import configure_logging, redact_text

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
    "gpu_reserve": "gpu_reserve",
    "gpu_reserve_fraction": "gpu_reserve_fraction",
    "max_replicas_per_gpu": "max_replicas_per_gpu",
    "cpu_fallback": "cpu_fallback",
    "plan_frame_size": "plan_frame_size",
    "simulate_gpus": "simulate_gpus",
    "executor": "executor",
    "address": "ray_address",
    "decode_timeout_s": "decode_timeout_s",
    "detect_timeout_s": "detect_timeout_s",
    "failure_streak": "failure_streak",
    "export_shard_size": "export_shard_size",
    "segment_s": "filter.segment_s",
    "segment_aggregate": "filter.segment_aggregate",
    "export_type": "export_type",
    "detector": "filter.detector",
    "max_side": "filter.max_side",
    "color_conversion": "filter.color_conversion",
    "calibration": "filter.calibration",
}


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="Data-Juicer style recipe (YAML); flags override it")
    p.add_argument("--dataset", help="JSONL or Parquet dataset (recipe: dataset_path)")
    p.add_argument("--export", help="export folder, or a .jsonl file for kept samples (recipe: export_path)")
    p.add_argument("--np", type=int, help="cap on detector replicas (Data-Juicer's np: its model copies); "
                                          "decoders follow the cores")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, help="frames per detector forward pass (default: 8 on GPU, 1 on CPU)")
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
    p.add_argument("--detector", choices=["craft", "ppocr", "cascade"],
                   help="craft (default, Data-Juicer's), ppocr (PP-OCR DBNet, an order of magnitude faster, its own "
                        "errors), or cascade (ppocr first, CRAFT re-judges what it cannot settle: CRAFT's decisions); "
                        "see docs/fast-detector.md")
    p.add_argument("--segment-s", type=float,
                   help="judge long videos in pieces of this many seconds (segments.jsonl: the ranges to keep)")
    p.add_argument("--segment-aggregate", choices=["mean", "any", "all"],
                   help="a video judged in pieces: by the mean of its pieces' ratios (default), or any/all pieces kept")
    p.add_argument("--max-side", type=int, help="scale frames to this long side before detection (default: native)")
    p.add_argument("--color-conversion", choices=["dj", "tagged"],
                   help="YUV to RGB: dj (default, Data-Juicer's: BT.601 whatever the stream's tag, on any PyAV) or "
                        "tagged (the stream's own colour matrix and range; not Data-Juicer's ratios on BT.709 video)")
    p.add_argument("--calibration", help="a `textsieve calibrate` file mapping the fast detector's ratios to CRAFT's")
    p.add_argument("--max-video-pixels", type=int)
    p.add_argument("--max-video-duration-s", type=float)
    p.add_argument("--strict", action="store_true", default=None, help="exit 1 if any sample ends in errors.jsonl")
    p.add_argument("--executor", choices=["local", "serial", "ray"],
                   help="local (default): decoders + replicas; serial: one process; ray: a Ray cluster")
    p.add_argument("--address", help="Ray cluster address for --executor ray (e.g. auto); default: start a local one")
    p.add_argument("--decode-timeout-s", type=float, help="per-video decode time limit (default 300)")
    p.add_argument("--detect-timeout-s", type=float,
                   help="per-batch detector time limit; a batch past it is retried once, then `timeout` (default 600)")
    p.add_argument("--failure-streak", type=int,
                   help="stop the run when this many samples in a row fail at detection the same way (default 5)")
    p.add_argument("--export-shard-size", type=int,
                   help="write outputs as shards of about this many bytes, with a manifest (Data-Juicer's key; 0: one file each)")
    p.add_argument("--export-type", choices=["jsonl", "parquet"], help="format of the shards (default jsonl)")
    p.add_argument("--restart", action="store_true", help="discard a previous run in the export folder and start over")
    p.add_argument("--retry-errors", action="store_true",
                   help="judge again, once, the samples whose error is transient (timeout, worker_crashed, gpu_oom, "
                        "detector_error, remote_read); other errors stay")
    g = p.add_argument_group("planning")
    g.add_argument("--gpu-reserve", help="memory kept free on every GPU, at least (default 1GiB)")
    g.add_argument("--gpu-reserve-fraction", type=float, help="... or this share of its total (default 0.05)")
    g.add_argument("--max-replicas-per-gpu", type=int, help="default 2")
    g.add_argument("--no-cpu-fallback", dest="cpu_fallback", action="store_false", default=None,
                   help="fail instead of running on the CPU when no GPU fits a replica")
    g.add_argument("--plan-frame-size", help="largest frame size to plan memory for (default 1920x1080)")
    g.add_argument("--simulate-gpus", help='simulated GPUs, "TOTAL:FREE,..." (e.g. "80GiB:72GiB,24GiB:3GiB") or a JSON file')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textsieve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_flags(sub.add_parser("run", help="filter a dataset"))
    plan = sub.add_parser("plan", help="show how the run would use this machine's GPUs, CPUs and RAM")
    _add_run_flags(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    prof = sub.add_parser("profile", help="measure the detector's memory per replica on a device and cache it")
    _add_run_flags(prof)
    cal = sub.add_parser("calibrate", help="fit the map from the fast detector's ratios to CRAFT's on a sample of your dataset")
    _add_run_flags(cal)
    cal.add_argument("--samples", type=int, default=200, help="samples drawn at random from the dataset (default 200)")
    cal.add_argument("--seed", type=int, default=0, help="seed of the random draw and the folds")
    cal.add_argument("--out", help="calibration file (default: <export>/calibration-ppocr.json)")
    cal.add_argument("--min-agreement", type=float, default=0.99,
                     help="do not save a calibration whose held-out decision agreement at the recipe's thresholds "
                          "is below this (default 0.99)")
    cal.add_argument("--force", action="store_true", help="save the calibration even below --min-agreement")
    cal.add_argument("--level", type=float, default=0.995,
                     help="held-out coverage the cascade's margins are fitted for (default 0.995)")
    decide = sub.add_parser("decide", help="re-decide kept/dropped from a finished run's stats, without detecting again")
    decide.add_argument("--export", required=True, help="the run's export folder")
    decide.add_argument("--min-area-ratio", type=float)
    decide.add_argument("--max-area-ratio", type=float)
    decide.add_argument("--any-or-all", choices=["any", "all"])
    decide.add_argument("--kept-file", help="kept samples file if the run used a .jsonl export_path")
    report = sub.add_parser("report", help="write one self-contained HTML page about an export folder (finished or "
                                           "running): ratio histogram, what-if thresholds, frames with their boxes")
    report.add_argument("export", help="the run's export folder")
    report.add_argument("-o", "--output", help="the page to write (default: <export>/report.html)")
    report.add_argument("--open", action="store_true", help="open the page in the default browser")
    report.add_argument("--per-group", type=int, default=8, help="videos per gallery group (default 8)")
    report.add_argument("--seed", type=int, default=0, help="seed of the gallery's random sample")
    demo = sub.add_parser("demo", help="make a small dataset with drawn text and filter it")
    demo.add_argument("--out", default="textsieve-demo", help="folder for the demo data and outputs")
    demo.add_argument("--max-area-ratio", type=float, default=0.1)
    return parser


def config_from_args(args: argparse.Namespace):
    from .recipe import build_config

    overrides = {field: getattr(args, flag) for flag, field in RUN_FLAGS.items()}
    overrides["strict"] = args.strict
    return build_config(args.recipe, overrides)


def cmd_plan(args: argparse.Namespace) -> int:
    from .report.plan_table import render_plan
    from .runtime.planning import plan_for

    config = config_from_args(args)
    if config.executor == "ray":
        from rich.console import Console

        from .runtime.ray_exec import join_and_plan

        join_and_plan(config, Console(stderr=True))
        return 0
    inventory, plan = plan_for(config)
    if args.json:
        print(json.dumps({"inventory": inventory.to_json(), "plan": plan.to_json()}, indent=2))
    else:
        render_plan(inventory, plan)
    return 0 if plan.ok else 1


def cmd_profile(args: argparse.Namespace) -> int:
    from .resources.planner import GPU_BATCH
    from .resources.profile import cache_file, measure
    from .runtime.planning import detect_frame_size, model_specs

    config = config_from_args(args)
    device = config.device if config.device != "auto" else _auto_device()
    width, height = detect_frame_size(config)
    batch = config.batch_size or GPU_BATCH
    if config.filter.detector == "cascade":
        raise ConfigError("profile one detector at a time (--detector ppocr, then --detector craft): "
                          "a cascade replica's cost is their sum")
    (model,) = model_specs(config)
    name, params = model.name, dict(model.params)
    print(f"Profiling {name} on {device}: batch {batch} at {width}x{height} (in a child process) ...")
    result = measure(name, params, device, batch, width, height)
    print(
        f"{result['device_name']}: host peak {result['host_bytes'] / 2**30:.2f} GiB, "
        f"GPU {result['gpu_bytes'] / 2**30:.2f} GiB, {result['seconds_per_batch']:.2f} s per batch "
        f"(child pid {result['pid']}); cached in {cache_file()}"
    )
    return 0


def _auto_device() -> str:
    from .runtime.serial import resolve_device

    return resolve_device("auto")


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime.collector import AlreadyComplete
    from .runtime.execute import execute

    config = config_from_args(args)
    others = len(config._recipe.others) if config._recipe is not None else 0
    if others:
        print(f"video_ocr_area_ratio_filter runs here first (every op before it is a filter: the kept set is the "
              f"same in any order); the recipe's {others} other op(s) go to {config.export_dir / 'rest.yaml'} "
              "for Data-Juicer when the run ends")
    try:
        summary = execute(config, restart=args.restart, retry_errors=args.retry_errors)
    except AlreadyComplete as done:
        print(f"textsieve: {done}")
        summary = None
    else:
        if summary is None:
            return 2
    if others:
        # written once the run has ended, so that a refused run (a missing
        # dataset, a folder another run holds) leaves nothing behind
        from .recipe import write_rest_recipe

        rest = write_rest_recipe(config, config._recipe)
        print(f"then: dj-process --config {rest}   (the recipe's other ops, on textsieve's kept samples)")
    return _report(config, summary) if summary is not None else 0


def _report(config, summary: dict) -> int:
    counts = summary["counts"]
    print(
        f"{counts['input']} samples: {counts['kept']} kept, {counts['dropped']} dropped, "
        f"{counts['error']} errors -> {config.export_dir}"
    )
    import shlex

    print(f"see them: textsieve report {shlex.quote(str(config.export_dir))} --open")
    if not counts["adds_up"]:
        log.error("outcome counts do not add up to the input: %s", counts)
        return 3
    if config.strict and counts["error"]:
        print(f"--strict: {counts['error']} sample(s) failed, see {config.export_dir / 'errors.jsonl'}", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .runtime.calibrate import print_report, run_calibration

    config = config_from_args(args)
    calibration, path = run_calibration(config, args.samples, args.seed, args.out, restart=args.restart,
                                        min_agreement=args.min_agreement, force=args.force, level=args.level)
    print_report(calibration, path)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from .runtime.decide import redecide

    summary = redecide(Path(args.export), args.min_area_ratio, args.max_area_ratio, args.any_or_all, args.kept_file)
    c = summary["counts"]
    print(f"re-decided {c['kept'] + c['dropped']} judged samples: {c['kept']} kept, {c['dropped']} dropped ({c['error']} errors unchanged)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.html import write_report

    try:
        path = write_report(Path(args.export), Path(args.output) if args.output else None, args.per_group, args.seed)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        # a file of the folder that is not what a run writes: say which, not where the reader broke
        raise ConfigError(f"{args.export}: summary.json or stats.jsonl there cannot be read as a textsieve run "
                          f"wrote them ({type(exc).__name__}: {exc}); run `textsieve run` again with the same "
                          "command to rewrite them") from None
    print(f"wrote {path}")
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"no browser found here: copy {path} to a machine with one and open it there")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), args.max_area_ratio)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        commands = {"run": cmd_run, "plan": cmd_plan, "profile": cmd_profile, "calibrate": cmd_calibrate, "decide": cmd_decide, "demo": cmd_demo,
                    "report": cmd_report}
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"textsieve: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except RunStopped as exc:
        print(f"textsieve: stopped: {redact_text(str(exc))}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        # the collector committed what was done on its way out; the journal holds it
        print("textsieve: interrupted. What was committed is kept: run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

