"""Outputs own only what they wrote (DESIGN.md 11).

A run writes, and on ``--restart`` discards, the files of its export folder.
Before any work this module refuses a run whose outputs would replace what
textsieve did not write:

- an output that is the dataset, or one of its files (``--dataset a.jsonl
  --export a.jsonl`` would leave only the kept rows of the input);
- an output inside a dataset folder, or matched by a dataset glob: the
  folder is read whole, so the run's own journal would be read as samples
  (``--dataset videos --export videos/out`` judged one "sample");
- a shard folder that holds the dataset (a restart empties it);
- an existing file the run would write, in a folder that holds no journal
  or manifest of textsieve's: a user's own ``kept.jsonl`` or ``summary.json``.

Remote datasets (URLs) are not checked for the inside rule: the export
folder is local.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .export import output_paths, part_of
from .journal import JOURNAL
from .shards import MANIFEST, folders
from .sources import _kind, is_url, mixture

if TYPE_CHECKING:
    from ..config import RunConfig

SUMMARY = "summary.json"
# what else a run writes in its export folder (collector, recipe)
OTHER_FILES = (SUMMARY, "segments.jsonl", "rest.yaml")


def stats_beside(export_file: Path) -> Path:
    """Data-Juicer's ``<stem>_stats.jsonl`` beside an export_path naming a file."""
    return export_file.with_name(f"{export_file.stem}_stats.jsonl")


def written_by_run(config: RunConfig) -> tuple[list[Path], list[Path]]:
    """The files and the folders (shards) a run of ``config`` writes."""
    export_dir = config.export_dir
    others = [export_dir / name for name in (*OTHER_FILES, JOURNAL, MANIFEST)]
    if config.sharded:
        return others, [export_dir / name for name in folders(config.kept_shards).values()]
    outputs = output_paths(export_dir, config.kept_file)
    files = [config.export_file, stats_beside(config.export_file)] if config.export_file is not None else []
    files += [*outputs.values(), *(part_of(path) for path in outputs.values())]
    return list(dict.fromkeys(files + others)), []


def is_textsieve_log(path: Path) -> bool:
    """Whether ``path`` is a journal or manifest that textsieve started: its
    first line is a header with the run's fingerprint."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and "fingerprint" in header and "settings" in header


def check_outputs(config: RunConfig) -> None:
    """Refuse (ConfigError, exit 2) a run whose outputs would replace what
    textsieve did not write; nothing is created. ``--restart`` changes
    nothing here: it discards a run, never a user's files."""
    files, shard_folders = written_by_run(config)
    _apart_from_the_dataset(config, files, shard_folders)
    _owned(config, files, shard_folders)


def _real(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _apart_from_the_dataset(config: RunConfig, files: list[Path], shard_folders: list[Path]) -> None:
    fix = "choose another --export (export_path) outside the dataset"
    # a shard folder is checked through the files it will hold
    shard_files = [folder / f"part-0-00000.{ext}" for folder in shard_folders for ext in ("jsonl", "parquet")]
    for _, part in mixture(config.dataset):
        if is_url(part):
            continue
        if any(c in part for c in "*?["):
            for output in (*files, *shard_files):
                # a glob reads the files it lists that have a dataset suffix
                if _kind(output.name) and _glob_matches(_real(output), part):
                    raise ConfigError(f"{output} matches the dataset's glob {part}: the run would read its own "
                                      f"output as samples, or overwrite an input; {fix}")
            continue
        dataset = _real(part)
        if os.path.isdir(dataset):
            # every output lies in the export folder
            if _inside(_real(config.export_dir), dataset):
                raise ConfigError(f"the export folder {config.export_dir} is inside the dataset folder {part}, "
                                  "which is read whole: the run would read its own outputs as samples; " + fix)
            continue
        for output in files:
            if _real(output) == dataset:
                raise ConfigError(f"{output} is the dataset {part}: the run would overwrite its input with its "
                                  f"outputs; {fix}")
        for folder in shard_folders:
            if _inside(dataset, _real(folder)):
                raise ConfigError(f"the dataset {part} is inside the shard folder {folder}, which a run empties; "
                                  f"{fix}")


def _glob_matches(path: str, pattern: str) -> bool:
    """Whether ``glob.glob(pattern, recursive=True)`` would list ``path``
    (once it exists): component by component, ``**`` spanning any number of
    folders, and names starting with a dot matched only by a dot."""
    parts = pattern.split(os.sep)
    magic = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    prefix = _real(os.sep.join(parts[:magic]) or os.sep)  # as the outputs: symbolic links resolved
    pattern = os.path.join(prefix, *parts[magic:])
    return _match(path.strip(os.sep).split(os.sep), pattern.strip(os.sep).split(os.sep))


def _match(names: list[str], parts: list[str]) -> bool:
    if not parts:
        return not names
    if parts[0] == "**":
        return any(_match(names[i:], parts[1:]) for i in range(len(names) + 1)
                   if not any(n.startswith(".") for n in names[:i]))
    if not names:
        return False
    if names[0].startswith(".") and not parts[0].startswith("."):
        return False
    return fnmatch.fnmatchcase(names[0], parts[0]) and _match(names[1:], parts[1:])


def _owned(config: RunConfig, files: list[Path], shard_folders: list[Path]) -> None:
    export_dir = config.export_dir
    logs = [export_dir / JOURNAL, export_dir / MANIFEST]
    for log in logs:
        if log.exists() and not is_textsieve_log(log):
            raise ConfigError(f"{log} exists and is not a textsieve journal: this run would replace it. Choose "
                              "another --export, or move the file away (--restart does not discard files "
                              "textsieve did not write)")
    if any(log.exists() for log in logs):
        return  # the folder holds a textsieve run: its outputs are that run's
    for path in files:
        if path.exists():
            raise ConfigError(f"{path} exists and was not written by textsieve ({export_dir} holds no {JOURNAL} "
                              f"or {MANIFEST} of a run): this run would overwrite it. Choose another --export, or "
                              "move the file away (--restart does not discard files textsieve did not write)")
    for folder in shard_folders:
        if folder.is_dir() and any(folder.iterdir()):
            raise ConfigError(f"{folder} holds files that textsieve did not write ({export_dir} holds no "
                              f"{MANIFEST} of a run): a sharded run would empty it. Choose another --export, or "
                              "move them away (--restart does not discard files textsieve did not write)")
