"""A Data-Juicer style recipe, and command-line flags, into one typed config.

A recipe that runs ``video_ocr_area_ratio_filter`` in Data-Juicer runs here
unchanged. Mistakes (an unknown op, an unknown parameter, a value out of
range) stop the run before any work, naming the recipe line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .config import OcrFilter, RunConfig
from .errors import ConfigError

log = logging.getLogger(__name__)

OP_NAME = "video_ocr_area_ratio_filter"

# Data-Juicer's global recipe keys that mean nothing here: accepted so that
# existing recipes run, and reported once.
DJ_IGNORED_GLOBAL_KEYS = {
    "project_name", "use_cache", "ds_cache_dir", "cache_compress", "open_tracer",
    "op_list_to_trace", "trace_num", "op_fusion", "fusion_strategy",
    "keep_hashes_in_res_ds", "use_checkpoint", "temp_dir", "open_monitor", "save_stats_in_one_file",
    "text_keys", "image_key", "image_special_token", "audio_key", "audio_special_token",
    "video_special_token", "eoc_special_token", "suffixes", "turbo", "skip_op_error",
    "export_in_parallel", "load_dataset_kwargs", "work_dir",
    "auto", "auto_num", "adaptive_batch_size", "debug", "percentiles", "export_original_dataset",
    "event_logging", "dataset", "validators", "insight_mining", "open_insight_mining",
    "op_list_to_mine", "hpo_config", "data_probe_algo", "data_probe_ratio", "save_stats_in_res_ds",
}
# Data-Juicer's parameters common to every op: accepted; only video_key and
# mem_required mean something here.
DJ_COMMON_OP_KEYS = {
    "text_key", "image_key", "audio_key", "query_key", "response_key", "history_key", "index_key",
    "accelerator", "num_proc", "cpu_required", "gpu_required", "turbo", "batch_size", "skip_op_error",
    "work_dir", "ray_execution_mode", "num_cpus", "num_gpus", "memory", "runtime_env", "image_bytes_key",
}


def _refuse_aliases(text: str, path: Path) -> None:
    """A recipe is a plain document: YAML anchors and aliases are refused
    before anything is built, because a few lines of nested aliases (the
    "billion laughs") expand to gigabytes. The event stream is read without
    expanding anything."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(f"{path}:{event.start_mark.line + 1}: YAML anchors and aliases (&name, *name) are not "
                              "accepted in recipes: write the values out")


def _lines(node: yaml.Node, path: tuple = (), source: Path | None = None) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line; a key given
    twice in one mapping is refused (YAML keeps the last one silently)."""
    out: dict[tuple, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                raise ConfigError(f"{source}:{line}: key {key.value!r} is given twice (first at line {seen[key.value]}); "
                                  "keep one")
            seen[key.value] = line
            sub = path + (key.value,)
            out.update(_lines(value, sub, source))
            out[sub] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, path + (i,), source))
    return out


def _line_of(lines: dict[tuple, int], path: tuple) -> int | None:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


# Data-Juicer global keys that mean something here, and what they become
DJ_GLOBAL_KEYS = {"executor_type", "ray_address", "video_key", "text_key", "keep_stats_in_res_ds", "export_type"}
# Data-Juicer global keys that textsieve reads as its own settings
DJ_SHARED_KEYS = {"dataset_path", "export_path", "np", "export_shard_size"}
# op kinds by Data-Juicer's naming: only filters commute (each keeps or drops a
# sample on its own stats, so the kept set does not depend on their order)
COMMUTING_SUFFIX = "_filter"


@dataclass(frozen=True)
class RecipePlan:
    """A Data-Juicer recipe seen from textsieve: the OCR op's fields, and the
    recipe's other ops to hand back to Data-Juicer (``rest.yaml``)."""

    fields: dict[str, Any]  # RunConfig fields; the op's parameters under "filter"
    lines: dict[tuple, int]  # key path -> recipe line, to point at mistakes
    document: dict  # the recipe as read
    op_index: int  # where the OCR op stands in ``process``
    others: list[dict] = field(default_factory=list)  # the other ops, in order


@dataclass(frozen=True)
class Settings:
    """What :func:`build_config` makes: the run's config, and the recipe it
    came from (None when flags alone gave it), whose other ops a run hands back."""

    config: RunConfig
    recipe: RecipePlan | None = None


class OpsBeforeFilter(ConfigError):
    """An op before the OCR filter that changes the samples (a mapper, a
    deduplicator): textsieve cannot run first. It carries what
    :func:`write_prefix_recipe` needs, so that ``textsieve run`` writes those
    ops as a recipe of their own; reading a recipe writes nothing."""

    def __init__(self, recipe: Path, line: int | None, op: str, document: dict, op_index: int) -> None:
        self.recipe, self.line, self.op = recipe, line, op
        self.document, self.op_index = document, op_index
        super().__init__(self._message(f"`textsieve run` writes them to {prefix_recipe_path(recipe)}"))

    def _message(self, how: str) -> str:
        where = f"{self.recipe}:{self.line}" if self.line else str(self.recipe)
        return (f"{where}: {self.op} comes before {OP_NAME}: it changes the samples the OCR filter would see, so "
                f"textsieve cannot run first. Run the ops before it with Data-Juicer ({how}), "
                f"then textsieve on its output with the rest of the recipe")

    def with_prefix(self, prefix: Path) -> str:
        """The message once the ops before the filter are written to ``prefix``."""
        return self._message(f"dj-process --config {prefix}")


@dataclass(frozen=True)
class _Source:
    """A recipe as read: its path, document and line map."""

    path: Path
    document: dict
    lines: dict[tuple, int]

    def error(self, key_path: tuple, message: str) -> ConfigError:
        line = _line_of(self.lines, key_path)
        return ConfigError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")


def read_recipe(path: str | Path) -> RecipePlan:
    """Read a recipe into RunConfig fields, refusing unknown keys and ops
    textsieve cannot place. It reads the file and writes nothing."""
    source = _parse(Path(path))
    fields, globals_ = _split_keys(source)
    fields.update(_dj_globals(globals_, fields, source))
    process = source.document.get("process")
    index = _find_op(process, source)
    _refuse_ops_before(process, index, source)
    fields["filter"] = _op_fields(process[index], index, globals_, source)
    others = [entry for i, entry in enumerate(process) if i != index]
    return RecipePlan(fields, source.lines, source.document, index, others)


def _parse(path: Path) -> _Source:
    """The YAML document and its line map; a file that is not a recipe is refused."""
    try:
        text = path.read_text()
        _refuse_aliases(text, path)
        doc = yaml.safe_load(text)
        lines = _lines(yaml.compose(text, Loader=yaml.SafeLoader), source=path) if doc else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path}: cannot read recipe: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping with dataset_path, export_path and process")
    return _Source(path, doc, lines)


def _split_keys(source: _Source) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe's global keys: textsieve's own settings, and Data-Juicer's
    that mean something here (translated by :func:`_dj_globals`); those that
    mean nothing are reported once, unknown ones refused."""
    fields: dict[str, Any] = {}
    own = set(RunConfig.model_fields) - {"filter"}
    ignored = []
    globals_: dict[str, Any] = {}
    for key, value in source.document.items():
        if key == "process":
            continue
        if key in DJ_GLOBAL_KEYS:
            globals_[key] = value
        elif key in own:
            fields[key] = value
        elif key in DJ_IGNORED_GLOBAL_KEYS:
            ignored.append(key)
        else:
            raise source.error((key,), f"unknown recipe key {key!r}")
    if ignored:
        log.info("recipe keys with no effect in textsieve: %s", ", ".join(sorted(ignored)))
    # Relative paths stay relative to the working directory, as in Data-Juicer.
    for key in ("dataset_path", "export_path", "weights_dir"):
        if fields.get(key) is not None:
            fields[key] = str(fields[key])
    return fields, globals_


def _dj_globals(globals_: dict[str, Any], fields: dict[str, Any], source: _Source) -> dict[str, Any]:
    """Data-Juicer's global keys as textsieve's fields; a value textsieve
    cannot honour is refused, naming its line."""
    out: dict[str, Any] = {}
    if "executor_type" in globals_:
        kind = globals_["executor_type"]
        if kind not in ("default", "ray"):
            raise source.error(("executor_type",), f"executor_type {kind!r}: textsieve runs default (local) or ray")
        out["executor"] = "ray" if kind == "ray" else fields.get("executor", "local")
    if globals_.get("ray_address") is not None:
        out["ray_address"] = str(globals_["ray_address"])
    if "export_type" in globals_:
        kind = {"json": "jsonl"}.get(globals_["export_type"], globals_["export_type"])
        if kind not in ("jsonl", "parquet"):
            raise source.error(("export_type",),
                               f"export_type {globals_['export_type']!r}: textsieve writes jsonl, json or parquet")
        out["export_type"] = kind
    if "text_key" in globals_:
        log.info("text_key %r: the OCR filter reads no text; it stays in rest.yaml for the other ops",
                 globals_["text_key"])
    if "keep_stats_in_res_ds" in globals_:
        out["keep_stats_in_res_ds"] = bool(globals_["keep_stats_in_res_ds"])
    return out


def _find_op(process: Any, source: _Source) -> int:
    """Where the OCR op stands in ``process``: once, among single-op entries."""
    if not isinstance(process, list) or not process:
        raise source.error(("process",), f"process must be a list holding one {OP_NAME} op")
    index = None
    for i, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise source.error(("process", i), "each process entry is a mapping with a single op name")
        (name, _), = entry.items()
        if name == OP_NAME:
            if index is not None:
                raise source.error(("process", i), f"{OP_NAME} appears twice; give it once")
            index = i
    if index is None:
        raise source.error(("process",), f"the recipe has no {OP_NAME}: textsieve runs that op (and hands the others back)")
    return index


def _refuse_ops_before(process: list[dict], index: int, source: _Source) -> None:
    """Only filters may come before the OCR op: they commute with it, so it
    can run first; the first op that does not is refused, naming its line."""
    for i, entry in enumerate(process[:index]):
        name = next(iter(entry))
        if not name.endswith(COMMUTING_SUFFIX):
            line = _line_of(source.lines, ("process", i, name))
            raise OpsBeforeFilter(source.path, line, name, source.document, index)


def _op_fields(entry: dict, index: int, globals_: dict[str, Any], source: _Source) -> dict[str, Any]:
    """The OCR op's parameters as OcrFilter fields; Data-Juicer's common op
    parameters are accepted and reported, unknown ones refused."""
    (_, params), = entry.items()
    params = params or {}
    if not isinstance(params, dict):
        raise source.error(("process", index, OP_NAME), f"{OP_NAME} takes a mapping of parameters")
    op_fields = {}
    if globals_.get("video_key") is not None:
        op_fields["video_key"] = globals_["video_key"]  # Data-Juicer's global default for every op
    for key, value in params.items():
        if key in OcrFilter.model_fields:
            op_fields[key] = value
        elif key in DJ_COMMON_OP_KEYS:
            log.info("op parameter %s has no effect in textsieve", key)
        else:
            raise source.error(("process", index, OP_NAME, key), f"unknown parameter {key!r} for {OP_NAME}")
    return op_fields


def prefix_recipe_path(recipe: Path) -> Path:
    """Where :func:`write_prefix_recipe` puts the ops before the OCR filter: beside the recipe."""
    return recipe.with_name(f"{recipe.stem}.prefix.yaml")


def write_prefix_recipe(recipe: Path, doc: dict, index: int) -> Path:
    """The ops before the OCR filter, as a Data-Juicer recipe of their own."""
    prefix = {k: v for k, v in doc.items() if k != "process"}
    export = Path(str(doc.get("export_path") or "outputs/result.jsonl"))
    prefix["export_path"] = str(export.with_name(f"{export.stem}-before-ocr.jsonl"))
    prefix["process"] = doc["process"][:index]
    path = prefix_recipe_path(recipe)
    path.write_text(yaml.safe_dump(prefix, sort_keys=False))
    return path


def write_rest_recipe(config: RunConfig, plan: RecipePlan) -> Path | None:
    """The recipe's other ops, in order, reading textsieve's kept output:
    ``<export>/rest.yaml``, ready for ``dj-process --config``. None when the
    OCR filter was the only op."""
    if not plan.others:
        return None
    # Data-Juicer's own keys only: textsieve's (device, batch_size, ...) would be refused by dj-process
    rest = {k: v for k, v in plan.document.items() if k in DJ_IGNORED_GLOBAL_KEYS | DJ_GLOBAL_KEYS | DJ_SHARED_KEYS}
    rest.pop("executor_type", None) if config.executor != "ray" else None
    if config.sharded:
        kept = config.export_dir / config.kept_shards
    else:
        kept = config.export_file or config.kept_file  # a .parquet export_path holds them once the run ends
    rest["dataset_path"] = str(kept.resolve())
    export = Path(str(plan.document.get("export_path") or config.export_dir / "result.jsonl"))
    rest_export = str(export.with_name(f"{export.stem}-rest{export.suffix or '.jsonl'}"))
    # dj-process resolves a relative export_path against its own working
    # directory, and rest.yaml is run from anywhere: resolve it as this run did
    rest["export_path"] = rest_export if "://" in rest_export else str(Path(rest_export).resolve())
    rest["process"] = plan.others
    path = config.export_dir / "rest.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rest, sort_keys=False))
    return path


def build_config(recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Recipe values, then flag overrides (``filter.<name>`` keys go to the
    op; None means not given). Writes nothing."""
    plan = read_recipe(recipe) if recipe is not None else None
    fields = _with_overrides(plan.fields if plan is not None else {}, overrides or {})
    try:
        config = RunConfig(**fields)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, recipe, plan)) from None
    _check_languages(config, recipe, plan)
    return Settings(config, plan)


def _with_overrides(fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    # copies: the recipe's plan keeps its fields as read
    out = dict(fields, filter=dict(fields.get("filter", {})))
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("filter."):
            out["filter"][key.split(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def _recipe_line(plan: RecipePlan | None, loc: tuple) -> int | None:
    """The recipe line of a config field; the op's parameters stand under the op."""
    if plan is None:
        return None
    if loc and loc[0] == "filter":
        return _line_of(plan.lines, ("process", plan.op_index, OP_NAME) + tuple(loc[1:]))
    return _line_of(plan.lines, loc)


def _where(recipe: str | Path | None, line: int | None) -> str:
    return f"{recipe}:{line}: " if line else (f"{recipe}: " if recipe else "")


def _check_languages(config: RunConfig, recipe: str | Path | None, plan: RecipePlan | None) -> None:
    """Data-Juicer hands its languages to EasyOCR, which refuses unknown
    codes; so does textsieve, against EasyOCR's own list."""
    from .detect.craft import validate_languages

    try:
        validate_languages(config.filter.languages_to_detect)
    except ConfigError as exc:
        line = _recipe_line(plan, ("filter", "languages_to_detect"))
        raise ConfigError(f"{_where(recipe, line)}languages_to_detect: {exc}") from None


def _explain(exc: ValidationError, recipe: str | Path | None, plan: RecipePlan | None) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        name = ".".join(str(p) for p in loc)
        where = _where(recipe, _recipe_line(plan, loc))
        if err["type"] == "missing":
            msgs.append(f"{where}{name} is required (recipe key or flag)")
        else:
            msgs.append(f"{where}{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(msgs)
