"""How samples are stored in Parquet: one rule for a column's type, used by
the Parquet shards and by a single-file ``.parquet`` export alike.

JSON lines let a field be ``1`` in one row and ``"x"`` in another; a Parquet
column has one type. The rule, as faithful to the input as Parquet allows:

- A column takes the one Arrow type that holds all its values, as pyarrow
  infers it and promotes it across files (null to anything, int to float,
  struct fields merged: a row without one of them reads it as null).
- Where no one type holds them (``1`` and ``"x"``; an integer past int64;
  ``{"a": 1}`` and ``{"a": "x"}``), or Parquet cannot store that type (a
  struct without fields, from ``{}``; nesting deeper than
  :data:`MAX_NESTING`), the column is text, marked :data:`MIXED` in its
  field metadata: a string stays the very same string, every other value
  is written as its JSON text (``5`` as ``"5"``, ``{"a": 1}`` as
  ``'{"a": 1}'``), null stays null. A warning names the column. Only values
  the column's type cannot hold are encoded; a reader that needs the
  numbers back parses the values that are not meant as text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .strict_json import dumps
from .atomic import replacing

log = logging.getLogger(__name__)

# field metadata of a column whose non-string values are their JSON text
MIXED = {b"textsieve": b"mixed"}
# pyarrow refuses to read back a Parquet schema nested much deeper (a list
# 48 levels down cannot be opened): deeper columns are stored as text
MAX_NESTING = 32


def _arrow_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    # OverflowError: an int past int64; ArrowInvalid is a ValueError, ArrowTypeError a TypeError
    return (pa.ArrowException, OverflowError, ValueError, TypeError)


def column(values: list[Any]):
    """One column of Python values by the rule above: (array, mixed?)."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except _arrow_errors():
        return mixed_text(values), True
    if not storable(array.type):
        return mixed_text(values), True
    return array, False


def mixed_text(values: Iterable[Any]):
    """Strings as they are, other values as their JSON text, null as null."""
    import pyarrow as pa

    return pa.array([v if v is None or isinstance(v, str) else dumps(v) for v in values], pa.string())


def storable(kind: Any, depth: int = 0) -> bool:
    """Whether Parquet can store and read back a column of this Arrow type."""
    import pyarrow as pa

    if depth > MAX_NESTING:
        return False
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(storable(kind.field(i).type, depth + 1) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return storable(kind.value_type, depth + 1)
    if pa.types.is_map(kind):
        return storable(kind.key_type, depth + 1) and storable(kind.item_type, depth + 1)
    return True


def arrow_table(records: list[dict]):
    """Rows as an Arrow table with every field any row has (pyarrow's
    ``from_pylist`` keeps only the first row's), missing ones null, each
    column typed by the rule above."""
    import pyarrow as pa

    names = list(dict.fromkeys(key for record in records for key in record))
    fields, columns = [], []
    for name in names:
        array, is_mixed = column([record.get(name) for record in records])
        columns.append(array)
        fields.append(pa.field(name, array.type, metadata=MIXED if is_mixed else None))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def warn_mixed(schema: Any, where: str) -> None:
    """Name the fields stored as text, so that no type changes unannounced."""
    mixed = [f.name for f in schema if f.metadata == MIXED]
    if mixed:
        log.warning("%s: field(s) %s hold values no one Parquet type holds; stored as text (strings as they are, "
                    "other values as their JSON text)", where, ", ".join(mixed))


def common_schema(schemas: list[Any]):
    """The schema every part's schema promotes to (fields in order of first
    appearance), and the fields that became text because no one type holds
    them across the parts."""
    import pyarrow as pa

    names = list(dict.fromkeys(name for schema in schemas for name in schema.names))
    target, as_text = [], set()
    for name in names:
        common = common_field([schema.field(name) for schema in schemas if name in schema.names])
        if common is None:
            common = pa.field(name, pa.string(), metadata=MIXED)
            as_text.add(name)
        target.append(common)
    return pa.schema(target), as_text


def common_field(fields: list[Any]) -> Any:
    """The field every part's version of it promotes to, or None: values of
    no one type, a type Parquet cannot store, or text in some part already."""
    import pyarrow as pa

    if any(f.metadata == MIXED for f in fields):
        return None
    try:
        common = pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive").field(0)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return common.remove_metadata() if storable(common.type) else None


def conform(table: Any, schema: Any):
    """``table`` with ``schema``'s columns: missing ones null, promoted where
    the type widens, as text where the target is :data:`MIXED`."""
    import pyarrow as pa

    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(len(table), f.type))
            continue
        column_ = table.column(f.name)
        if f.metadata == MIXED:
            own = table.schema.field(f.name)
            columns.append(column_ if own.metadata == MIXED else mixed_text(column_.to_pylist()))
            continue
        try:
            columns.append(column_.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            # casts Arrow lacks (a struct gaining fields): through Python values
            columns.append(pa.array(column_.to_pylist(), f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def shape(schema: Any) -> list[tuple]:
    return [(f.name, f.type, f.metadata) for f in schema]


def replace_file(path: Path, table: Any) -> None:
    """Write ``table`` to ``path`` atomically (a temporary file, synced, renamed)."""
    import pyarrow.parquet as pq

    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def write_records(path: Path, chunks: Callable[[], Iterator[list[dict]]]) -> None:
    """One Parquet file from records read in chunks (bounded memory), by the
    same rule as the shards: a first pass types each chunk and finds the
    common schema, a second writes each chunk conformed to it (a row group
    per chunk). ``chunks`` is called once per pass. Atomic, as
    :func:`replace_file`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [arrow_table(chunk).schema for chunk in chunks()]
    if not schemas:
        replace_file(path, pa.table({}))
        return
    schema, _ = common_schema(schemas)
    warn_mixed(schema, str(path))
    with replacing(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for chunk in chunks():
            writer.write_table(conform(arrow_table(chunk), schema))
