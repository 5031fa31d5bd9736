"""Recipes and flags: mistakes stop the run before any work, naming the line."""

from __future__ import annotations

import pytest

from textsieve.cli import main
from textsieve.errors import ConfigError
from textsieve.recipe import build_config

GOOD = """project_name: demo
dataset_path: data.jsonl
export_path: out/result.jsonl
np: 4
open_tracer: false
process:
  - video_ocr_area_ratio_filter:
      min_area_ratio: 0.01
      max_area_ratio: 0.2
      frame_sample_num: 5
      languages_to_detect: en
      any_or_all: all
      mem_required: 2GB
"""


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_data_juicer_recipe_is_read(tmp_path):
    cfg = build_config(write(tmp_path, GOOD)).config
    assert cfg.np == 4
    assert cfg.filter.min_area_ratio == 0.01 and cfg.filter.max_area_ratio == 0.2
    assert cfg.filter.frame_sample_num == 5 and cfg.filter.any_or_all == "all"
    assert cfg.filter.languages_to_detect == ["en"]
    assert str(cfg.export_dir) == "out" and str(cfg.kept_file) == "out/result.jsonl"


def test_defaults_are_data_juicers():
    cfg = build_config(overrides={"dataset_path": "d.jsonl", "export_path": "o"}).config
    f = cfg.filter
    assert (f.min_area_ratio, f.max_area_ratio, f.frame_sample_num, f.any_or_all) == (0.0, 1.0, 3, "any")
    assert f.languages_to_detect == ["ch_sim", "en"]
    assert (f.area_mode, f.aggregate, f.sampling) == ("dj", "mean", "uniform")


def test_flags_override_recipe(tmp_path):
    cfg = build_config(write(tmp_path, GOOD), {"filter.max_area_ratio": 0.5, "np": None}).config
    assert cfg.filter.max_area_ratio == 0.5 and cfg.np == 4


@pytest.mark.parametrize(
    "old,new,line,words",
    [
        ("  - video_ocr_area_ratio_filter:", "  - video_motion_score_filter:", 6, "has no video_ocr_area_ratio_filter"),
        ("      any_or_all: all", "      any_or_al: all", 12, "unknown parameter 'any_or_al'"),
        ("      max_area_ratio: 0.2", "      max_area_ratio: 1.5", 9, "max_area_ratio"),
        ("      frame_sample_num: 5", "      frame_sample_num: 0", 10, "frame_sample_num"),
        ("      languages_to_detect: en", "      languages_to_detect: [en, klingon]", 11, "klingon"),
        ("open_tracer: false", "colour: blue", 5, "unknown recipe key 'colour'"),
        ("np: 4", "np: lots", 4, "np"),
    ],
)
def test_mistakes_name_the_line(tmp_path, old, new, line, words):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert f"recipe.yaml:{line}:" in str(err.value) and words in str(err.value)


def test_missing_dataset_is_reported(capsys):
    assert main(["run", "--export", "o"]) == 2
    assert "dataset_path is required" in capsys.readouterr().err


def test_second_op_instance_is_refused(tmp_path):
    text = GOOD + "  - video_ocr_area_ratio_filter:\n      max_area_ratio: 0.3\n"
    with pytest.raises(ConfigError, match="appears twice"):
        build_config(write(tmp_path, text))


def test_a_recipe_without_the_ocr_op_fails_before_any_work(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("video_ocr_area_ratio_filter", "image_aesthetics_filter"))
    assert main(["run", str(path)]) == 2
    assert not (tmp_path / "out").exists()
    assert "recipe.yaml:6: the recipe has no video_ocr_area_ratio_filter" in capsys.readouterr().err


def test_the_config_imports_no_detector_and_reads_no_file(tmp_path):
    """Layering: a config is built without loading a model library or
    touching the dataset (what needs the machine is checked by preflight)."""
    import subprocess
    import sys

    code = ("import sys; from textsieve.config import RunConfig; "
            f"c = RunConfig(dataset_path={str(tmp_path / 'absent.jsonl')!r}, export_path='o', filter={{'detector': 'cascade'}}); "
            "c.dataset, c.kept_file, c.frame_size; "
            "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'easyocr', 'onnxruntime', 'av') "
            "or m.startswith('textsieve.detect')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- flags generated from the config fields ---------------------------------------------

def _settings():
    """Every field a user sets, walked here on its own (not through cli.run_flags):
    (recipe key, field info, recipe-only reason or None)."""
    from textsieve.config import Flag, OcrFilter, RunConfig

    fields = [(f"filter.{n}", n, i) for n, i in OcrFilter.model_fields.items()]
    fields += [(n, n, i) for n, i in RunConfig.model_fields.items() if n != "filter"]
    for path, name, info in fields:
        flag = next((m for m in info.metadata if isinstance(m, Flag)), Flag())
        yield path, name, info, flag.recipe_only


def _run_actions():
    import argparse

    from textsieve.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    own = {"help", "recipe", "restart", "retry_errors"}  # not settings: the run's own options
    return [a for a in run._actions if a.dest not in own]


def test_every_setting_has_exactly_one_flag_whose_help_names_its_real_default():
    actions = _run_actions()
    claimed = []
    for _path, name, info, recipe_only in _settings():
        if recipe_only:
            # a setting without a flag says why, and then no flag may reach it
            assert len(recipe_only) > 20 and not [a for a in actions if f"recipe: {name})" in a.help]
            continue
        assert info.description, f"{name} has no description: its flag would have no help"
        mine = [a for a in actions if a.help.endswith(f"; recipe: {name})")]
        assert len(mine) == 1, (name, [a.option_strings for a in mine])
        default = info.default
        spelled = ("none" if default is None else str(default).lower() if isinstance(default, bool)
                   else " ".join(default) if isinstance(default, list) else str(default))
        assert f"(default: {spelled};" in mine[0].help, (name, mine[0].help)
        # a flag not given must leave the recipe's value: argparse's default is None
        assert mine[0].default is None, name
        claimed += mine
    assert sorted(a.dest for a in claimed) == sorted(a.dest for a in actions), "a flag that sets no config field"
    # the defaults that users read most, spelled out, in case the field walk above is wrong too
    helps = {a.option_strings[0]: a.help for a in actions}
    assert "default: 300.0" in helps["--decode-timeout-s"] and "default: 1GiB" in helps["--gpu-reserve"]
    assert "default: 5;" in helps["--failure-streak"] and "default: craft" in helps["--detector"]
    assert "default: true" in helps["--no-cpu-fallback"] and "default: ch_sim en" in helps["--languages"]


def test_every_flag_sets_its_field_and_the_ones_not_given_leave_the_recipe(tmp_path):
    """Each generated flag given a value other than its default lands on its
    own field, through the real parser and build_config."""
    from textsieve.cli import RUN_FLAGS, build_parser, settings_from_args
    from textsieve.config import RunConfig

    from textsieve.config import KIND_KEYS

    special = {"device": "cpu", "gpu_reserve": "2GiB", "plan_frame_size": "640x480",
               "simulate_gpus": "8GiB:8GiB", "filter.languages_to_detect": ["en"], "filter.count_kinds": ["scene"]}
    # the kinds of text and pieces exclude each other (config.OcrFilter._kinds): two command lines
    kinds = [f for f in RUN_FLAGS if f.path.removeprefix("filter.") in KIND_KEYS]
    for flags in (kinds, [f for f in RUN_FLAGS if f not in kinds]):
        argv, wanted = ["run"], {}
        for flag in flags:
            kind, choices = flag.arguments.get("type"), flag.arguments.get("choices")
            if "action" in flag.arguments:
                argv.append(flag.option)
                value = flag.arguments["action"] == "store_true"
            else:
                value = special.get(flag.path, choices[-1] if choices else {int: 64, float: 0.25, str: "x"}[kind])
                argv += [flag.option, *(value if isinstance(value, list) else [str(value)])]
            wanted[flag.path] = value
        config = settings_from_args(build_parser().parse_args(argv)).config
        default = RunConfig()
        for path, value in wanted.items():
            got, was = config, default
            for part in path.split("."):
                got, was = getattr(got, part), getattr(was, part)
            assert got == value and got != was, (path, got, was)

    recipe = write(tmp_path, GOOD)
    alone = settings_from_args(build_parser().parse_args(["run", str(recipe)]))
    assert alone.config == build_config(recipe).config
    one = settings_from_args(build_parser().parse_args(["run", str(recipe), "--frame-sample-num", "7"])).config
    assert one.filter.frame_sample_num == 7
    assert one.model_dump(exclude={"filter": {"frame_sample_num"}}) == alone.config.model_dump(
        exclude={"filter": {"frame_sample_num"}})


@pytest.mark.parametrize("command", ["run", "plan", "calibrate", "profile"])
def test_help_lists_every_generated_flag(command, capsys):
    from textsieve.cli import RUN_FLAGS

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "planning:" in out
    assert all(flag.option in out for flag in RUN_FLAGS), [f.option for f in RUN_FLAGS if f.option not in out]


def test_build_config_returns_the_config_and_the_recipe_plan(tmp_path):
    from dataclasses import FrozenInstanceError

    settings = build_config(write(tmp_path, GOOD))
    assert settings.recipe is not None and settings.recipe.op_index == 0 and settings.recipe.others == []
    assert settings.config.filter.frame_sample_num == 5
    with pytest.raises(FrozenInstanceError):
        settings.config = None
    assert build_config(overrides={"dataset_path": "d"}).recipe is None


def test_precision_is_opt_in_and_only_for_craft(tmp_path):
    """fp32 (Data-Juicer's) dumps as before precision existed, so older
    journals resume; a reduced precision under ppocr, which runs ONNX
    Runtime at fp32, is refused rather than ignored."""
    from textsieve.config import OcrFilter

    assert "precision" not in OcrFilter().without_kinds()
    assert OcrFilter(precision="bf16").without_kinds()["precision"] == "bf16"
    OcrFilter(detector="cascade", precision="fp16")
    with pytest.raises(ValueError, match="precision bf16 applies to CRAFT"):
        OcrFilter(detector="ppocr", precision="bf16")
    with pytest.raises(SystemExit):
        main(["run", "--dataset", str(tmp_path / "d.jsonl"), "--export", str(tmp_path / "o"), "--precision", "int4"])


def test_a_bf16_run_says_so_in_its_summary(small_dataset, tmp_path):
    """The ratios of a bf16 run are not Data-Juicer's: summary.json names the
    precision and its scale says so; the calibration's reference pass stays fp32."""
    import json

    from textsieve.config import OcrFilter, RunConfig
    from textsieve.runtime.passes import pass_op

    assert main(["run", "--dataset", str(small_dataset), "--export", str(tmp_path / "o"), "--precision", "bf16",
                 "--executor", "serial"]) == 0
    ratios = json.loads((tmp_path / "o" / "summary.json").read_text())["ratios"]
    assert ratios["precision"] == "bf16" and "bf16" in ratios["scale"]
    config = RunConfig(dataset_path="d.jsonl", export_path="o", filter=OcrFilter(detector="cascade", precision="bf16"))
    assert pass_op(config, "craft").precision == "fp32"


def test_fp16_on_a_cpu_is_refused_before_any_work(small_dataset, tmp_path, capsys):
    """torch runs fp16 on a CPU several times slower than fp32: a user asking
    for speed is told to use bf16 there, before anything is written."""
    from textsieve.detect.craft import CraftDetector

    code = main(["run", "--dataset", str(small_dataset), "--export", str(tmp_path / "o"), "--precision", "fp16",
                 "--device", "cpu", "--executor", "serial"])
    assert code == 2 and "use precision bf16 on a CPU" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        CraftDetector("cpu", precision="fp16")
