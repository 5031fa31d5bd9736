"""Dataclasses as the JSON files textsieve writes, and read back.

Some keys of ``summary.json`` and ``stats.jsonl`` appear only where they
apply (``plan`` for serial and local runs, ``decided_by`` under the
cascade...): a field made with :func:`when_set` is left out of the JSON
while it is None, so the files keep the keys they always had. Reading goes
through pydantic, which builds the dataclasses (nested ones included) and
says which field is wrong.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

OMIT_WHEN_NONE = "textsieve_omit_when_none"
# a class's attribute docstrings become its fields' descriptions in the published schemas
DOCUMENTED = ConfigDict(use_attribute_docstrings=True)

T = TypeVar("T")


def when_set(default: Any = None) -> Any:
    """A field written only while it is not None (absent from the JSON otherwise)."""
    return dataclasses.field(default=default, metadata={OMIT_WHEN_NONE: True})


def omitted_when_none(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get(OMIT_WHEN_NONE))


def to_json(value: Any) -> Any:
    """``value`` as JSON-ready Python: dataclasses as dicts in field order
    (without their unset :func:`when_set` fields), tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (omitted_when_none(f) and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


@cache
def adapter(kind: Any) -> TypeAdapter:
    # building an adapter walks the whole type: once per type per process
    return TypeAdapter(kind)


def parse(kind: type[T] | Any, data: Any) -> T:
    """``data`` (parsed JSON) as ``kind``; a ValueError naming the first
    wrong field (``counts.kept: Field required``) when it does not fit."""
    try:
        return adapter(kind).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"{where}: {first['msg']}{more}") from None
