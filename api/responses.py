"""Response helpers: fast JSON via orjson, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import Response


class JSONResponse(Response):
    """JSON rendered with orjson (numpy-aware, fast)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def json_response(content: Any, status_code: int = 200, **kw: Any) -> JSONResponse:
    """Shorthand for a JSON response."""
    return JSONResponse(content, status_code=status_code, **kw)


def csv_response(rows: Iterable[Mapping[str, Any]], filename: str) -> Response:
    """Rows as a CSV attachment (columns from the first row)."""
    rows = list(rows)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
