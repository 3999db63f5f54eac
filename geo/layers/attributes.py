"""Attributes of an uploaded layer: typed fields and JSON-ready values per feature.

Types are kept (integer, number, boolean, string, date, datetime, time, array); binary
columns are dropped and reported; NaN/inf become null.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from geo.lazy import lazy_module

if TYPE_CHECKING:
    import pyarrow as pa
else:  # arrow tables come from pyogrio: imported on the first file read (geo.lazy)
    pa = lazy_module("pyarrow")


def _field_type(t: pa.DataType) -> str | None:
    """JSON-schema-like type of an arrow column; None for types not kept (binary)."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    return None


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def properties(
    attrs: pa.Table,
) -> tuple[list[dict[str, str]], list[dict[str, Any]], list[dict[str, str]]]:
    """Fields schema, JSON-ready properties per feature, and the fields dropped (binary)."""
    fields: list[dict[str, str]] = []
    dropped: list[dict[str, str]] = []
    keep: list[str] = []
    for f in attrs.schema:
        t = _field_type(f.type)
        if t is None:
            dropped.append({"field": f.name, "type": str(f.type), "reason": "binary data"})
            continue
        fields.append({"name": f.name, "type": t})
        keep.append(f.name)
    rows = attrs.select(keep).to_pylist() if keep else [{} for _ in range(attrs.num_rows)]
    props = [{k: _json_value(v) for k, v in r.items()} for r in rows]
    return fields, props, dropped
