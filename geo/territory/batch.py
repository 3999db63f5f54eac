"""Batch lookups answered column-wise: many points in, one column per answer field out.

The core (:func:`geo.territory.lookup.locate_indices`) gives each point the index of its
comune; everything else is array work: the answer fields are taken from per-comune
columns built once per territory version, points outside get the nearest comune from one
vectorised STRtree query, and the encoders write CSV (pyarrow) or JSON (pre-rendered
per-comune fragments) without building a dict per point. CSV in is parsed by pyarrow,
imported on the first batch (most workers never answer one).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from geo.crs import CRS84, METRIC_EPSG, epsg_uri, transformer_xy
from geo.errors import InvalidParameter
from geo.lazy import lazy_module
from geo.territory.model import Territory
from geo.territory.nearest import nearest_index

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
else:  # ~33 MB, ~66 with the pandas it loads: carried only by workers that answer a batch
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")
    pacsv = lazy_module("pyarrow.csv")

#: Answer fields of a point inside the territory, in output order.
INSIDE_FIELDS = ("istat_code", "name", "zona_omogenea", "zona_name", "unione", "unione_name")
#: Extra fields of a point outside it.
OUTSIDE_FIELDS = ("nearest_istat_code", "nearest_name", "distance_m")
FIELDS = ("id", *INSIDE_FIELDS, *OUTSIDE_FIELDS)


@dataclass(frozen=True)
class _Columns:
    """Per-comune answer columns (territory order) plus a trailing null row for -1."""

    values: dict[str, np.ndarray]
    arrow: dict[str, pa.Array]  # the same, one string array per field (no trailing null)
    inside_json: list[bytes]  # '"istat_code":"…",…' per comune
    outside_json: list[bytes]  # nulls + '"nearest_istat_code":"…","nearest_name":"…"'


_CACHE: dict[str, _Columns] = {}


def _columns(t: Territory) -> _Columns:
    cols = _CACHE.get(t.version)
    if cols is not None:
        return cols
    rows = []
    for c in t.comuni_list:
        u = t.unione_of(c)
        rows.append(
            (c.istat_code, c.name, c.zona_id, t.zones[c.zona_id].name,
             u.id if u else None, u.name if u else None)
        )  # fmt: skip
    values = {
        f: np.array([r[k] for r in rows] + [None], dtype=object)
        for k, f in enumerate(INSIDE_FIELDS)
    }
    inside_json = [orjson.dumps(dict(zip(INSIDE_FIELDS, r, strict=True)))[1:-1] for r in rows]
    nulls = orjson.dumps(dict.fromkeys(INSIDE_FIELDS))[1:-1]
    outside_json = [
        nulls + b"," + orjson.dumps({"nearest_istat_code": r[0], "nearest_name": r[1]})[1:-1]
        for r in rows
    ]
    arrow = {f: pa.array(list(values[f][:-1]), type=pa.string()) for f in INSIDE_FIELDS}
    cols = _Columns(values, arrow, inside_json, outside_json)
    _CACHE[t.version] = cols
    return cols


@dataclass
class BatchAnswer:
    """Where each point of a batch is: comune index (-1 outside), nearest comune, distance."""

    territory: Territory
    crs: str
    index: np.ndarray  # int64, -1 outside
    nearest: np.ndarray  # int64, -1 inside
    distance_m: np.ndarray  # float64, NaN inside
    ids: pa.Array | list[Any] | None = None  # None: 1..n

    @property
    def count(self) -> int:
        """Number of points."""
        return int(self.index.size)

    @property
    def matched(self) -> int:
        """Points inside the territory."""
        return int((self.index >= 0).sum())

    def _ids(self) -> pa.Array:
        if self.ids is None:
            return pa.array(np.arange(1, self.count + 1))
        if isinstance(self.ids, pa.Array | pa.ChunkedArray):
            return self.ids
        try:
            return pa.array(self.ids)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: as text
            return pa.array([str(v) for v in self.ids])

    def table(self) -> pa.Table:
        """Every answer field as a column (nulls where a field does not apply).

        Each field is a ``take`` from its per-comune column (pyarrow, in C++): no Python
        object per point.
        """
        cols = _columns(self.territory).arrow
        inside = pa.array(self.index, mask=self.index < 0)
        data: dict[str, Any] = {"id": self._ids()}
        for f in INSIDE_FIELDS:
            data[f] = cols[f].take(inside)
        out = self.nearest >= 0
        near = pa.array(self.nearest, mask=~out)
        data["nearest_istat_code"] = cols["istat_code"].take(near)
        data["nearest_name"] = cols["name"].take(near)
        data["distance_m"] = pa.array(np.round(self.distance_m, 1), mask=~out)
        return pa.table(data)

    def csv_bytes(self) -> bytes:
        """The answer as CSV (header + one row per point), written by pyarrow."""
        buf = io.BytesIO()
        pacsv.write_csv(self.table(), buf, pacsv.WriteOptions(quoting_style="needed"))
        return buf.getvalue()

    def json_bytes(self) -> bytes:
        """``{"crs", "count", "matched", "outside", "results": [...]}`` as JSON bytes."""
        cols = _columns(self.territory)
        ids = self._ids()
        if pa.types.is_integer(ids.type):
            id_json = [str(v).encode() for v in ids.to_pylist()]
        else:
            id_json = [orjson.dumps(v) for v in ids.to_pylist()]
        inside, outside = cols.inside_json, cols.outside_json
        idx = self.index.tolist()
        near = self.nearest.tolist()
        dist = np.round(self.distance_m, 1).tolist()
        parts = [
            b'{"id":' + i + b"," + inside[k] + b"}"
            if k >= 0
            else b'{"id":' + i + b"," + outside[n] + b',"distance_m":' + repr(d).encode() + b"}"
            for i, k, n, d in zip(id_json, idx, near, dist, strict=True)
        ]
        head = orjson.dumps(
            {"crs": self.crs, "count": self.count, "matched": self.matched,
             "outside": self.count - self.matched}
        )[:-1]  # fmt: skip
        return head + b',"results":[' + b",".join(parts) + b"]}"

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain Python (one dict per point; for small batches and notebooks)."""
        return orjson.loads(self.json_bytes())


def nearest_outside(
    t: Territory, lon: np.ndarray, lat: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest comune index and distance (m, EPSG:32632) of the points outside (-1/NaN in).

    Exact distances to the comuni's outlines from the grid of candidate segments of
    :mod:`geo.territory.nearest` (lowest code among equidistant comuni).
    """
    nearest = np.full(index.size, -1, dtype=np.int64)
    dist = np.full(index.size, np.nan)
    outside = np.flatnonzero(index < 0)
    if outside.size:
        tx = transformer_xy(CRS84, epsg_uri(METRIC_EPSG))
        mx, my = tx.transform(lon[outside], lat[outside])
        owner, d = nearest_index(t).query(t, np.asarray(mx), np.asarray(my))
        nearest[outside] = owner
        dist[outside] = d
    return nearest, dist


# ----- CSV points in ------------------------------------------------------------------------

X_NAMES = ("lon", "longitude", "lng", "x", "easting")
Y_NAMES = ("lat", "latitude", "y", "northing")
ID_NAMES = ("id", "fid", "name", "code")


def read_csv_points(content: bytes) -> tuple[np.ndarray, np.ndarray, pa.Array | None]:
    """x, y and ids (None: row numbers) of a CSV of points, parsed column-wise by pyarrow.

    A header with ``lon``/``lat`` (or ``x``/``y``…), optional ``id``; ``,`` or ``;``
    separated (with ``;``, decimal commas are accepted). Errors name the row.
    """
    if not content.strip():
        raise InvalidParameter("file", "the CSV is empty")
    sample = content[:2048]
    delimiter = ";" if sample.count(b";") > sample.count(b",") else ","
    try:
        table = pacsv.read_csv(
            io.BytesIO(content),
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False,
                                                 auto_dict_encode=False),
        )  # fmt: skip
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidParameter("file", f"not a readable CSV: {exc}") from None
    header = [h.strip().lower() for h in table.column_names]
    xcol = next((header.index(n) for n in X_NAMES if n in header), None)
    ycol = next((header.index(n) for n in Y_NAMES if n in header), None)
    if xcol is None or ycol is None:
        raise InvalidParameter(
            "file", f"the CSV header needs lon,lat (or x,y) columns; found {header}"
        )
    if table.num_rows == 0:
        raise InvalidParameter("file", "the CSV has a header but no points")
    idcol = next((header.index(n) for n in ID_NAMES if n in header), None)
    x = _numbers(table.column(xcol), delimiter, header[xcol], header[ycol], table, xcol, ycol)
    y = _numbers(table.column(ycol), delimiter, header[xcol], header[ycol], table, xcol, ycol)
    ids = None
    if idcol is not None:
        ids = pc.cast(table.column(idcol), pa.string()).combine_chunks()
    return x, y, ids


def _numbers(
    col: pa.ChunkedArray, delimiter: str, xname: str, yname: str, table: pa.Table, xi: int, yi: int
) -> np.ndarray:
    """A coordinate column as floats; InvalidParameter naming the first bad row."""
    numeric = pa.types.is_floating(col.type) or pa.types.is_integer(col.type)
    if numeric and col.null_count == 0:
        return col.to_numpy().astype(float)
    text = pc.cast(col, pa.string())
    if delimiter == ";":
        text = pc.replace_substring(text, ",", ".")
    try:
        values = pc.cast(pc.utf8_trim_whitespace(text), pa.float64())
        if values.null_count:
            raise pa.ArrowInvalid("null")
        return values.to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        xs, ys = table.column(xi).to_pylist(), table.column(yi).to_pylist()
        for k, (a, b) in enumerate(zip(xs, ys, strict=True)):
            try:
                float(str(a).replace(",", ".") if delimiter == ";" else a)
                float(str(b).replace(",", ".") if delimiter == ";" else b)
            except (TypeError, ValueError):
                raise InvalidParameter(
                    "file",
                    f"row {k + 2}: {xname}/{yname} are not numbers: {[a, b]}",
                    row=k + 2,
                ) from None
        raise InvalidParameter("file", f"{xname}/{yname}: not numbers") from None
