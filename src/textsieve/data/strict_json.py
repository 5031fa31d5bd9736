"""The one JSON encoder every output uses: outputs, shards, summary,
journal and manifest are strict JSON (RFC 8259) in UTF-8, whatever a value
holds.

Python's ``json.dumps`` writes ``NaN`` and ``Infinity``, which strict
readers (pyarrow, Go, Rust, JavaScript's ``JSON.parse``) refuse, and with
``ensure_ascii=False`` it returns text holding a lone surrogate, which then
cannot be encoded to UTF-8 (the run would stop at that row, and every
resume at the same row). Rows never carry either past the reader
(:func:`textsieve.data.sources.row_defect`); this is the guarantee for
everything else written.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


def dumps(obj: Any, indent: int | None = None, ascii: bool = False) -> str:
    """``obj`` as strict JSON text that encodes to UTF-8.

    A non-finite float (NaN, Infinity) is written as ``null``: JSON has no
    such number, and null is what pandas and JavaScript write for it. A lone
    surrogate is written as its ``\\udXXX`` escape (the text stays valid JSON
    and reads back to the same string in Python). ``ascii`` escapes every
    non-ASCII character, as ``json.dumps`` does by default (summary.json
    keeps the bytes it always had)."""
    try:
        text = json.dumps(obj, ensure_ascii=ascii, allow_nan=False, default=_fallback, indent=indent)
    except ValueError:  # a NaN or an Infinity somewhere: the slow path, only then
        text = json.dumps(finite(obj), ensure_ascii=ascii, allow_nan=False, default=_fallback, indent=indent)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return dumps(obj, indent, ascii=True)
    return text


def _fallback(obj: Any) -> Any:
    # Parquet rows may hold numpy scalars, bytes or dates.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    return str(obj)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (numpy's too) replaced by None;
    containers are copied only where they hold one."""
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):  # float, numpy floats
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
