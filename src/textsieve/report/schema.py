"""The published JSON Schemas of ``summary.json`` and of ``stats.jsonl``'s
rows, generated from the classes that describe them.

    python -m textsieve.report.schema            # rewrite docs/schemas/*.schema.json
    python -m textsieve.report.schema --check    # exit 1 if the committed files differ

A test runs the check, so the committed schemas cannot drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from .stats_row import StatsRow
from .summary import SCHEMA_VERSION, RunSummary
from .typed import adapter, omitted_when_none

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FILES = {"summary.schema.json": RunSummary, "stats.schema.json": StatsRow}


def json_schema(root: type) -> dict:
    """``root``'s JSON Schema, stricter than pydantic's about what is
    written: every field is required except those written only when set
    (a default is for reading older files, not a promise that the key may
    be missing), and those are never null."""
    schema = adapter(root).json_schema()
    classes = _dataclasses(root)
    for name, definition in [(root.__name__, schema), *schema.get("$defs", {}).items()]:
        cls = classes.get(name)
        if cls is not None:
            _tighten(definition, cls)
    # x-schema-version: the summary's schema_version these files describe
    return {"$schema": DRAFT, **schema, "x-schema-version": SCHEMA_VERSION}


def _tighten(definition: dict, cls: type) -> None:
    props = definition.get("properties", {})
    required = []
    for f in dataclasses.fields(cls):
        if f.name not in props:
            continue
        if omitted_when_none(f):
            prop = props[f.name]
            prop.pop("default", None)
            options = [o for o in prop.pop("anyOf", []) if o != {"type": "null"}]
            if len(options) == 1:
                prop.update(options[0])
            elif options:
                prop["anyOf"] = options
        else:
            required.append(f.name)
    definition["required"] = required


def _dataclasses(root: type) -> dict[str, type]:
    """Every dataclass reachable from ``root``'s field types, by name (the
    names pydantic gives their definitions)."""
    found: dict[str, type] = {}
    todo: list[Any] = [root]
    while todo:
        kind = todo.pop()
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            if kind.__name__ in found:
                continue
            found[kind.__name__] = kind
            todo += list(typing.get_type_hints(kind).values())
        elif isinstance(kind, (types.UnionType, typing._GenericAlias, types.GenericAlias)):  # type: ignore[attr-defined]
            todo += list(typing.get_args(kind))
    return found


def render(root: type) -> str:
    return json.dumps(json_schema(root), indent=2, ensure_ascii=False) + "\n"


def default_folder() -> Path:
    # the repository's docs/schemas, from src/textsieve/report/schema.py
    return Path(__file__).resolve().parents[3] / "docs" / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m textsieve.report.schema", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_folder(), help="folder of the schema files")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = []
    for name, root in FILES.items():
        path, text = args.out / name, render(root)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} differs from the code's schema: run `python -m textsieve.report.schema` and commit it",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
