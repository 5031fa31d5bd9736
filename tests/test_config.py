"""Recipes and flags: mistakes stop the run before any work, naming the line."""

from __future__ import annotations

import pytest

from textsieve.cli import main
from textsieve.recipe import build_config
from textsieve.errors import ConfigError

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
    cfg = build_config(write(tmp_path, GOOD))
    assert cfg.np == 4
    assert cfg.filter.min_area_ratio == 0.01 and cfg.filter.max_area_ratio == 0.2
    assert cfg.filter.frame_sample_num == 5 and cfg.filter.any_or_all == "all"
    assert cfg.filter.languages_to_detect == ["en"]
    assert str(cfg.export_dir) == "out" and str(cfg.kept_file) == "out/result.jsonl"


def test_defaults_are_data_juicers():
    cfg = build_config(overrides={"dataset_path": "d.jsonl", "export_path": "o"})
    f = cfg.filter
    assert (f.min_area_ratio, f.max_area_ratio, f.frame_sample_num, f.any_or_all) == (0.0, 1.0, 3, "any")
    assert f.languages_to_detect == ["ch_sim", "en"]
    assert (f.area_mode, f.aggregate, f.sampling) == ("dj", "mean", "uniform")


def test_flags_override_recipe(tmp_path):
    cfg = build_config(write(tmp_path, GOOD), {"filter.max_area_ratio": 0.5, "np": None})
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
