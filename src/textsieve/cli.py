"""The ``textsieve`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from .config import Flag, OcrFilter, RunConfig
from .errors import ConfigError, RunStopped
from .kind_rules import KINDS
from .recipe import (
    OpsBeforeFilter,
    Settings,
    build_config,
    write_prefix_recipe,
    write_rest_recipe,
)
from .redact import configure_logging, redact_text

log = logging.getLogger("textsieve")


@dataclass(frozen=True)
class RunFlag:
    """A flag of run, plan, profile and calibrate, generated from one config
    field (config.py declares each setting once: its type, default, help and
    any :class:`~textsieve.config.Flag`)."""

    path: str  # the field: "filter.<name>" for the op's parameters
    option: str  # "--batch-size"
    dest: str  # the attribute argparse sets: the option's own name, or the field's for --no-<name>
    group: str | None
    arguments: dict[str, Any]  # add_argument's keywords


def shown_default(value: Any) -> str:
    """A default as a recipe spells it, for the help."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def _value_type(annotation: Any) -> tuple[type, tuple[str, ...] | None]:
    """The type argparse converts a value to, and the choices of a Literal."""
    options = [a for a in get_args(annotation) if a is not type(None)] \
        if get_origin(annotation) in (Union, UnionType) else [annotation]
    first = options[0]
    if get_origin(first) is list:  # nargs "+": each value's type
        return _value_type(get_args(first)[0])
    if get_origin(first) is Literal:
        return str, get_args(first)
    if first in (int, float, str):
        return first, None
    raise TypeError(f"no flag type for {annotation!r}: declare the field's Flag(recipe_only=...) in config.py")


def _run_flag(path: str, name: str, info: FieldInfo) -> RunFlag | None:
    flag = next((m for m in info.metadata if isinstance(m, Flag)), Flag())
    if flag.recipe_only:
        return None
    # every flag defaults to None: a flag not given leaves the recipe's value
    arguments: dict[str, Any] = {"default": None}
    help_text = info.description or ""
    if info.annotation is bool:
        arguments["action"] = "store_false" if flag.turns_off else "store_true"
        help_text = f"turns off: {help_text}" if flag.turns_off else help_text
    else:
        arguments["type"], choices = _value_type(info.annotation)
        if choices:
            arguments["choices"] = list(choices)
        if flag.nargs:
            arguments["nargs"] = flag.nargs
    # argparse formats help with %: a description's own % is text
    arguments["help"] = f"{help_text} (default: {shown_default(info.default)}; recipe: {name})".replace("%", "%%")
    option = flag.name or f"--{'no-' if flag.turns_off else ''}{name.replace('_', '-')}"
    dest = name if flag.turns_off else option[2:].replace("-", "_")
    if flag.turns_off:
        arguments["dest"] = dest
    return RunFlag(path, option, dest, flag.group, arguments)


def run_flags() -> tuple[RunFlag, ...]:
    """One flag per setting of RunConfig and its op's OcrFilter, in their order."""
    fields = []
    for name, info in RunConfig.model_fields.items():
        if name == "filter":
            fields += [(f"filter.{sub}", sub, sub_info) for sub, sub_info in OcrFilter.model_fields.items()]
        else:
            fields.append((name, name, info))
    return tuple(flag for flag in (_run_flag(*f) for f in fields) if flag is not None)


RUN_FLAGS = run_flags()


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="Data-Juicer style recipe (YAML); flags override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag in RUN_FLAGS:
        if flag.group is not None and flag.group not in groups:
            groups[flag.group] = p.add_argument_group(flag.group)
        target = groups[flag.group] if flag.group is not None else p
        target.add_argument(flag.option, **flag.arguments)
    p.add_argument("--restart", action="store_true", help="discard a previous run in the export folder and start over")
    p.add_argument("--retry-errors", action="store_true",
                   help="judge again, once, the samples whose error is transient (timeout, worker_crashed, gpu_oom, "
                        "detector_error, remote_read); other errors stay")


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
    cal = sub.add_parser(
        "calibrate", help="fit the map from the fast detector's ratios to CRAFT's on a sample of your dataset",
        description="Both detectors on a random sample of the dataset, then the map and the cascade's margins. "
                    "What the two passes measure is kept in <export>/calibrate/passes.json: a refused calibration "
                    "is accepted with --force and extended with a larger --samples without detecting again, and an "
                    "interrupted one resumes. --restart discards the kept passes (needed after changing a setting "
                    "that changes what they measure, such as max_side or frame_sample_num).")
    _add_run_flags(cal)
    cal.add_argument("--samples", type=int, default=200,
                     help="samples drawn at random from the dataset (default 200); a larger count than an earlier "
                          "calibration's keeps its samples and detects only the new ones")
    cal.add_argument("--seed", type=int, default=0, help="seed of the random draw and the folds")
    cal.add_argument("--out", help="calibration file (default: <export>/calibration-ppocr.json)")
    cal.add_argument("--min-agreement", type=float, default=0.99,
                     help="do not save a calibration whose held-out decision agreement at the recipe's thresholds "
                          "is below this (default 0.99)")
    cal.add_argument("--force", action="store_true",
                     help="save the calibration even below --min-agreement (reuses the kept passes: accepting a "
                          "refused calibration detects nothing again)")
    cal.add_argument("--level", type=float, default=0.995,
                     help="held-out coverage the cascade's margins are fitted for (default 0.995)")
    decide = sub.add_parser("decide", help="re-decide kept/dropped from a finished run's stats, without detecting again")
    decide.add_argument("--export", required=True, help="the run's export folder")
    decide.add_argument("--min-area-ratio", type=float)
    decide.add_argument("--max-area-ratio", type=float)
    decide.add_argument("--any-or-all", choices=["any", "all"])
    decide.add_argument("--kept-file", help="kept samples file if the run used a .jsonl export_path")
    for kind in KINDS:
        decide.add_argument(f"--max-{kind}-ratio", type=float,
                            help=f"new highest ratio of {kind} text, for a run that judged kinds (docs/kinds.md)")
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


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The recipe, then the flags given (a flag not given is None and leaves the recipe's value)."""
    return build_config(args.recipe, {flag.path: getattr(args, flag.dest) for flag in RUN_FLAGS})


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return settings_from_args(args).config


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

    try:
        settings = settings_from_args(args)
    except OpsBeforeFilter as refused:
        # written here, not when the recipe is read: parsing writes nothing, and
        # a run that cannot start is the one place the user needs these ops
        prefix = write_prefix_recipe(refused.recipe, refused.document, refused.op_index)
        raise ConfigError(refused.with_prefix(prefix)) from None
    config, recipe = settings.config, settings.recipe
    others = len(recipe.others) if recipe is not None else 0
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
        rest = write_rest_recipe(config, recipe)
        print(f"then: dj-process --config {rest}   (the recipe's other ops, on textsieve's kept samples)")
    return _report(config, summary) if summary is not None else 0


if TYPE_CHECKING:  # the summary's module loads numpy: not for `textsieve --help`
    from .report.summary import RunSummary


def _report(config: RunConfig, summary: RunSummary) -> int:
    counts = summary.counts
    print(
        f"{counts.input} samples: {counts.kept} kept, {counts.dropped} dropped, "
        f"{counts.error} errors -> {config.export_dir}"
    )
    import shlex

    print(f"see them: textsieve report {shlex.quote(str(config.export_dir))} --open")
    if not counts.adds_up:
        log.error("outcome counts do not add up to the input: %s", counts)
        return 3
    if config.strict and counts.error:
        print(f"--strict: {counts.error} sample(s) failed, see {config.export_dir / 'errors.jsonl'}", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .runtime.calibrate import CalibrateRequest, CalibrationRefused, print_report, run_calibration

    config = config_from_args(args)
    request = CalibrateRequest(args.samples, args.seed, args.out, args.restart, args.min_agreement, args.force,
                               args.level)
    try:
        calibration, path = run_calibration(config, request)
    except CalibrationRefused as refused:
        # the table first, then why it is not saved and the ways on (main prints the error, exit 2)
        print_report(refused.calibration, None)
        raise
    print_report(calibration, path)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from .runtime.decide import redecide

    kind_limits = {kind: value for kind in KINDS
                   if (value := getattr(args, f"max_{kind}_ratio")) is not None}
    summary = redecide(Path(args.export), args.min_area_ratio, args.max_area_ratio, args.any_or_all, args.kept_file,
                       kind_limits)
    c = summary.counts
    print(f"re-decided {c.kept + c.dropped} judged samples: {c.kept} kept, {c.dropped} dropped ({c.error} errors unchanged)")
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

