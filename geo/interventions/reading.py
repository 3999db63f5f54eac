"""Reading intervention files: CSV, GeoJSON and GeoPackage → :class:`InputTable`.

* **CSV** (``,`` or ``;`` separated, UTF-8): the columns of
  ``data/interventions/interventions.csv``; the location is ``lat``/``lon`` (CRS84), or a
  ``wkt`` (or ``geometry``) column in CRS84 — or in ``crs`` when given — or ``x``/``y``
  columns, which need ``crs``; rows without any locate at the comuni they name.
* **GeoJSON / GeoPackage** (read with pyogrio): the layer's CRS is used and
  reprojected to CRS84; a layer without a CRS is an error (name one with ``crs``).

Row numbers in errors count data rows from 1 (CSV line = row + 1; GeoJSON feature = row).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geo.crs import CRS84, parse_crs, transformer_xy
from geo.errors import InvalidParameter, ValidationFailed
from geo.interventions.model import InputTable
from geo.lazy import lazy_module

pd = lazy_module("pandas")  # imported on first use (geo.lazy)

CSV_SUFFIXES = {".csv", ".txt"}
OGR_SUFFIXES = {".geojson", ".json", ".gpkg"}
SUPPORTED = ", ".join(sorted(CSV_SUFFIXES | OGR_SUFFIXES))


def read_file(path: Path | str, *, crs: str | None = None, filename: str | None = None):
    """Read ``path`` by its suffix (or ``filename``'s) into an InputTable."""
    path = Path(path)
    name = filename or path.name
    suffix = Path(name).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv(path.read_bytes(), crs=crs, filename=name)
    if suffix in OGR_SUFFIXES:
        return read_ogr(path, crs=crs, filename=name)
    raise InvalidParameter("file", f"{name}: unsupported file type {suffix!r}; use {SUPPORTED}")


def _file_error(message: str, fieldname: str = "crs") -> dict[str, Any]:
    return {"row": None, "field": fieldname, "message": message}


def _refuse(filename: str, message: str, details: list[dict[str, Any]] | None = None):
    """A 422 about the whole file (or some of its rows), naming it."""
    problems = details or [{"row": None, "field": "file", "message": message}]
    return ValidationFailed(
        f"{filename}: {message}; nothing was written",
        details=[{"file": filename, **d} for d in problems],
        file=filename,
    )


def _csv_text(data: bytes, filename: str) -> str:
    """UTF-8 text of a CSV, refusing empty, binary and non-UTF-8 files with where they fail."""
    if not data.strip():
        raise _refuse(filename, "the file is empty")
    if b"\x00" in data[:65536]:
        raise _refuse(filename, "a binary file, not a CSV (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _refuse(
            filename,
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line}; save it as UTF-8",
            [{"row": line - 1 or None, "field": "file", "message": f"not UTF-8 (line {line})"}],
        ) from None


def _csv_frame(data: bytes, filename: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The CSV as text columns and its rows with the wrong number of fields (errors).

    Empty, binary, non-UTF-8 and badly quoted files are refused here (422 naming the file).
    """
    text = _csv_text(data, filename)
    header = text.split("\n", 1)[0]
    sep = ";" if header.count(";") > header.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    records: list[list[str]] = []
    try:
        for rec in reader:
            if any(v.strip() for v in rec):  # blank lines are skipped, as before
                records.append(rec)
    except csv.Error as exc:
        row = len(records)  # the data row being read (the header is row 0)
        raise _refuse(
            filename,
            f"malformed CSV at line {reader.line_num}: {exc} (an unclosed quote?)",
            [{"row": row or None, "field": "file", "message": f"malformed CSV: {exc}"}],
        ) from None
    if not records:
        raise _refuse(filename, "the file is empty")
    columns = [c.strip().lower() for c in records[0]]
    if any(c == "" for c in columns):
        raise _refuse(filename, "the header has an empty column name")
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise _refuse(filename, f"repeated column(s) in the header: {', '.join(dup)}")
    body = records[1:]
    if not body:
        raise _refuse(filename, "the file has a header but no data rows")
    ragged = [
        {"row": i, "field": "columns", "message": f"{len(r)} fields, the header has {len(columns)}"}
        for i, r in enumerate(body, start=1)
        if len(r) != len(columns)
    ]
    # Ragged rows are reported (see prepare) with the rest, never guessed: padded for now.
    width = len(columns)
    body = [r[:width] + [""] * (width - len(r)) for r in body]
    frame = pd.DataFrame(body, columns=columns, dtype=str)
    return frame.apply(lambda s: s.str.strip()), ragged


def read_csv(data: bytes, *, crs: str | None = None, filename: str = "upload.csv") -> InputTable:
    """CSV bytes → InputTable (geometries from lat/lon, wkt or x/y)."""
    frame, ragged = _csv_frame(data, filename)
    n = len(frame)
    geoms = np.full(n, None, dtype=object)
    errors: list[dict[str, Any]] = list(ragged)
    rows = np.arange(1, n + 1)

    def coords(a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys = frame[a].str.strip(), frame[b].str.strip()
        x = pd.to_numeric(xs.str.replace(",", ".", regex=False), errors="coerce").to_numpy()
        y = pd.to_numeric(ys.str.replace(",", ".", regex=False), errors="coerce").to_numpy()
        given = (xs != "") | (ys != "")
        bad = given.to_numpy() & ~(np.isfinite(x) & np.isfinite(y))
        for i in np.flatnonzero(bad):
            errors.append(
                {
                    "row": int(rows[i]),
                    "field": "lat/lon" if a == "lon" else f"{a}/{b}",
                    "message": f"need two finite numbers, got {xs[i]!r} and {ys[i]!r}",
                }
            )
        return x, y, given.to_numpy() & ~bad

    if "lat" in frame.columns and "lon" in frame.columns:
        x, y, ok = coords("lon", "lat")
        if crs is not None and parse_crs(crs) != CRS84:
            errors.append(_file_error("lat/lon columns are CRS84; use x/y with a crs instead"))
        bad = ok & ((np.abs(y) > 90) | (np.abs(x) > 180))
        for i in np.flatnonzero(bad):
            errors.append(
                {"row": int(rows[i]), "field": "lat/lon", "message": "out of range for lat/lon"}
            )
        ok = ok & ~bad
        geoms[ok] = shapely.points(x[ok], y[ok])
    elif "x" in frame.columns and "y" in frame.columns:
        x, y, ok = coords("x", "y")
        if crs is None:
            errors.append(_file_error("x/y columns need a CRS (e.g. crs=EPSG:32632)"))
        elif ok.any():
            tx = transformer_xy(parse_crs(crs), CRS84)
            lon, lat = tx.transform(x[ok], y[ok])
            geoms[ok] = shapely.points(lon, lat)
    wkt_col = next((c for c in ("wkt", "geometry") if c in frame.columns), None)
    if wkt_col is not None:
        w = frame[wkt_col].str.strip()
        has = (w != "").to_numpy()
        parsed = shapely.from_wkt(w[has].to_numpy(), on_invalid="ignore")
        idx = np.flatnonzero(has)
        for i, g in zip(idx, parsed, strict=True):
            if g is None:
                errors.append(
                    {"row": int(rows[i]), "field": wkt_col, "message": "not a WKT geometry"}
                )
        good = idx[np.array([g is not None for g in parsed], dtype=bool)] if len(idx) else idx
        if len(good):
            gs = np.array([g for g in parsed if g is not None], dtype=object)
            if crs is not None and parse_crs(crs) != CRS84:
                gs = _reproject(gs, parse_crs(crs))
            both = good[np.array([geoms[i] is not None for i in good], dtype=bool)]
            for i in both:
                errors.append(
                    {"row": int(rows[i]), "field": wkt_col, "message": "both lat/lon and a WKT"}
                )
            geoms[good] = gs
    table = InputTable.build(frame, geoms)
    table.file_errors = errors
    return table


def _reproject(geoms: np.ndarray, src: str) -> np.ndarray:
    tx = transformer_xy(src, CRS84)

    def f(xy: np.ndarray) -> np.ndarray:
        x, y = tx.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, f)


def _layer_crs(text: str) -> str | None:
    """The OGC URI of a layer's CRS (GDAL may give it as WKT), None when unsupported."""
    try:
        return parse_crs(text.replace("OGC:CRS84", "CRS84"))
    except InvalidParameter:
        pass
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        return None
    if crs.equals(CRS.from_user_input("OGC:CRS84")):
        return CRS84
    code = crs.to_epsg(min_confidence=90)
    try:
        return parse_crs(f"EPSG:{code}") if code else None
    except InvalidParameter:
        return None


def read_ogr(path: Path, *, crs: str | None = None, filename: str | None = None) -> InputTable:
    """GeoJSON or GeoPackage (first layer) → InputTable in CRS84."""
    import pyogrio

    name = filename or path.name
    if path.stat().st_size == 0:
        raise _refuse(name, "the file is empty")
    try:
        meta = pyogrio.read_info(path)
        frame = pyogrio.read_dataframe(path, read_geometry=True, use_arrow=False)
    except Exception as exc:  # GDAL's message names the problem (without our temp path)
        msg = str(exc).replace(str(path), name).replace(str(path.parent), "")
        raise _refuse(name, f"cannot read it: {msg}") from None
    if len(frame) == 0:
        raise _refuse(name, "the file has no features")
    try:
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column].map(lambda v: v.encode() if isinstance(v, str) else v)
    except UnicodeEncodeError as exc:  # invalid UTF-8 read from the file
        raise _refuse(name, f"attribute {column!r} is not UTF-8 text ({exc.reason})") from None
    errors: list[dict[str, Any]] = []
    geoms = np.asarray(frame.geometry.values, dtype=object) if "geometry" in frame else None
    if geoms is not None:
        geoms = np.array([None if g is None else g for g in geoms], dtype=object)
    layer_crs = meta.get("crs")
    src: str | None = None
    if crs is not None:
        src = parse_crs(crs)
    elif layer_crs:
        src = _layer_crs(layer_crs)
        if src is None:
            errors.append(_file_error(f"unsupported CRS {layer_crs!r} in the file"))
    elif geoms is not None and any(g is not None for g in geoms):
        errors.append(_file_error("the file has no CRS; give one (e.g. crs=EPSG:32632)"))
    if geoms is not None and src is not None and src != CRS84 and not errors:
        has = np.array([g is not None for g in geoms], dtype=bool)
        geoms[has] = _reproject(geoms[has], src)
    props = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    props.columns = [str(c).strip().lower() for c in props.columns]
    if "lat" in props.columns and "lon" in props.columns and geoms is not None:
        lat = pd.to_numeric(props["lat"], errors="coerce").to_numpy()
        lon = pd.to_numeric(props["lon"], errors="coerce").to_numpy()
        fill = np.array([g is None for g in geoms]) & ~np.isnan(lat) & ~np.isnan(lon)
        geoms[fill] = shapely.points(lon[fill], lat[fill])
    table = InputTable.build(props, geoms)
    table.file_errors = errors
    return table
