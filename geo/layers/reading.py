"""Read an uploaded layer: detect its format, check it is safe, validate, repair, reproject.

Formats (detected from the bytes, not trusted from the name):

* **GeoJSON** (``{`` first), CRS from the file (RFC 7946 GeoJSON is CRS84);
* **GeoPackage** (an SQLite file): the only vector layer, or the one named by ``layer``;
  several and no choice → :class:`~geo.errors.InvalidParameter` listing them;
* **zipped Shapefile** (``.shp`` + ``.shx`` + ``.dbf``, ``.prj`` for the CRS), in any
  folder of the zip; a zip holding several Shapefiles needs ``layer`` too. A zip holding
  one GeoPackage or GeoJSON is read as that file.

Safety, before anything is read: the upload size (``max_upload_mb``), the number of zip
entries (``max_zip_entries``), the total uncompressed size (``max_unzipped_mb``, counted
while extracting, so a zip that lies about its sizes is caught too), zip entries with an
absolute path, a drive letter, ``..`` or a symbolic link, and the number of features
(``max_features``). Every refusal is a :class:`~geo.errors.GeoError` 4xx saying what is
wrong and where; nothing is stored by this module anyway.

CRS: the file's own; ``crs`` overrides it. With none, the upload is refused with the CRS
the coordinate ranges suggest (Gauss-Boaga EPSG:3003 eastings ≈ 1.4–1.6 million, UTM 32N
EPSG:32632/7791 ≈ 0.3–0.8 million, degrees → CRS84). Coordinates that land far from
northern Italy after reprojection are refused the same way (a wrong CRS or override).

Geometries: missing/empty ones are dropped and counted; invalid ones are repaired with
``shapely.make_valid`` (polygons keep their polygonal parts) and counted; Z is dropped.
**Mixed geometry types are refused** (polygons, lines and points in one file), listing the
features of each type: a layer is one collection of one kind, measured one way; split the
file (e.g. ``ogr2ogr -where "OGR_GEOMETRY='POLYGON'"``). ``MultiX`` counts as ``X``; a
GeometryCollection whose parts are all of one family is turned into that ``MultiX``.
Attributes keep their types (integer, number, boolean, string, date, datetime).
"""

from __future__ import annotations

import io
import re
import stat
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import shapely
from pyproj import CRS

from geo.errors import InvalidParameter, PayloadTooLarge, ValidationFailed
from geo.layers import attributes, checks
from geo.layers.checks import LINE, MAX_LISTED, POINT, POLYGON, parse_override, suggest_crs
from geo.lazy import lazy_module
from geo.settings import Settings, get_settings

pyogrio = lazy_module("pyogrio")  # GDAL, imported on the first file read (geo.lazy)
if TYPE_CHECKING:
    import pyarrow as pa
else:  # pyogrio's tables, and as heavy as it (~30 MB): imported with it
    pa = lazy_module("pyarrow")


def _gdal_errors() -> tuple[type[Exception], ...]:
    """pyogrio's "cannot open / no such layer" errors. An ``except`` clause evaluates its
    tuple only when an exception is matched, so naming them there does not import GDAL."""
    return (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError)


__all__ = ["LINE", "MB", "POINT", "POLYGON", "LayerData", "read_path", "read_upload", "suggest_crs"]

MB = 1024 * 1024

_SHP_PARTS = (".shp", ".shx", ".dbf")


@dataclass
class LayerData:
    """A layer read, validated and reprojected; nothing stored yet."""

    name: str
    family: str  # "polygon" | "line" | "point"
    geometries: np.ndarray  # CRS84 (lon, lat)
    metric_geometries: np.ndarray  # EPSG:32632
    properties: list[dict[str, Any]]
    fields: list[dict[str, str]]
    source_crs: str  # "EPSG:3003", "CRS84", or the CRS name when it has no EPSG code
    bbox: tuple[float, float, float, float]  # CRS84
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_count(self) -> int:
        """Number of features kept."""
        return len(self.geometries)


# ----- entry points -------------------------------------------------------------------------


def read_upload(
    data: bytes,
    filename: str = "upload",
    *,
    crs: str | None = None,
    layer: str | None = None,
    settings: Settings | None = None,
) -> LayerData:
    """Read an uploaded file (its bytes and its name as given) into a validated layer."""
    s = settings or get_settings()
    filename = PurePosixPath((filename or "upload").replace("\\", "/")).name or "upload"
    if len(data) == 0:
        raise ValidationFailed(f"{filename}: the file is empty", parameter="file")
    if len(data) > s.max_upload_mb * MB:
        raise PayloadTooLarge(
            f"{filename}: {len(data) / MB:.1f} MB exceeds the upload limit of "
            f"{s.max_upload_mb:g} MB (CMM_GEO_MAX_UPLOAD_MB)",
            parameter="file",
        )
    override = parse_override(crs)
    kind = detect_format(data, filename)
    with tempfile.TemporaryDirectory(prefix="cmm-geo-upload-") as tmp:
        tmpdir = Path(tmp)
        if kind == "zip":
            path, lyr, fmt = _extract_zip(data, filename, tmpdir, layer, s)
        else:
            path = tmpdir / ("upload.gpkg" if kind == "gpkg" else "upload.geojson")
            path.write_bytes(data)
            fmt = kind
            lyr = _choose_layer(path, filename, layer) if kind == "gpkg" else None
        return _read_dataset(path, lyr, fmt, filename, tmpdir, override, s, data)


def read_path(
    path: str | Path,
    *,
    crs: str | None = None,
    layer: str | None = None,
    settings: Settings | None = None,
) -> LayerData:
    """Read a file on disk (GeoJSON, GeoPackage or zipped Shapefile), as an upload."""
    p = Path(path)
    if not p.is_file():
        raise InvalidParameter("file", f"{p} is not a file")
    s = settings or get_settings()
    size = p.stat().st_size
    if size > s.max_upload_mb * MB:
        raise PayloadTooLarge(
            f"{p.name}: {size / MB:.1f} MB exceeds the upload limit of {s.max_upload_mb:g} MB "
            "(CMM_GEO_MAX_UPLOAD_MB)",
            parameter="file",
        )
    return read_upload(p.read_bytes(), p.name, crs=crs, layer=layer, settings=s)


def detect_format(data: bytes, filename: str = "upload") -> str:
    """``zip``, ``gpkg`` or ``geojson`` from the first bytes; ValidationFailed otherwise."""
    head = data[:64]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "geojson"
    if head[:4] == b"\x00\x00\x27\x0a":
        raise ValidationFailed(
            f"{filename}: a bare Shapefile (.shp) cannot be read alone; zip it together with "
            "its .shx, .dbf and .prj and upload the zip",
            parameter="file",
        )
    raise ValidationFailed(
        f"{filename}: unrecognised format; upload GeoJSON, a GeoPackage (.gpkg) or a zipped "
        "Shapefile (.zip with .shp, .shx, .dbf, .prj)",
        parameter="file",
    )


def _unsafe_entry_reason(name: str) -> str | None:
    """Why a zip entry name is refused, or None."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "absolute path"
    if ".." in norm.split("/"):
        return "'..' in the path"
    if "\x00" in norm:
        return "NUL in the name"
    return None


def _extract_zip(
    data: bytes, filename: str, tmpdir: Path, layer: str | None, s: Settings
) -> tuple[Path, str | None, str]:
    """Check and extract a zip; return the dataset path, its layer and its format."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ValidationFailed(f"{filename}: corrupt zip file ({exc})", parameter="file") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > s.max_zip_entries:
            raise PayloadTooLarge(
                f"{filename}: the zip has {len(infos)} entries, more than the limit of "
                f"{s.max_zip_entries} (CMM_GEO_MAX_ZIP_ENTRIES)",
                parameter="file",
            )
        bad = []
        for info in infos:
            reason = _unsafe_entry_reason(info.filename)
            mode = info.external_attr >> 16
            if reason is None and stat.S_ISLNK(mode):
                reason = "symbolic link"
            if reason:
                bad.append({"entry": info.filename, "problem": reason})
        if bad:
            listed = "; ".join(f"{b['entry']!r}: {b['problem']}" for b in bad[:MAX_LISTED])
            raise ValidationFailed(
                f"{filename}: unsafe zip entries refused: {listed}", details=bad, parameter="file"
            )
        limit = int(s.max_unzipped_mb * MB)
        declared = sum(i.file_size for i in infos)
        if declared > limit:
            raise PayloadTooLarge(
                f"{filename}: the zip expands to {declared / MB:,.1f} MB, more than the limit "
                f"of {s.max_unzipped_mb:g} MB (CMM_GEO_MAX_UNZIPPED_MB)",
                parameter="file",
            )
        files = [
            i
            for i in infos
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not PurePosixPath(i.filename).name.startswith("._")
        ]
        root = tmpdir / "zip"
        root.mkdir()
        written = 0
        for info in files:
            target = root.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, target.open("wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > limit:
                            raise PayloadTooLarge(
                                f"{filename}: the zip expands to more than "
                                f"{s.max_unzipped_mb:g} MB (CMM_GEO_MAX_UNZIPPED_MB); "
                                f"stopped at entry {info.filename!r}",
                                parameter="file",
                            )
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise ValidationFailed(
                    f"{filename}: corrupt zip entry {info.filename!r} ({exc})", parameter="file"
                ) from None
    rel = [PurePosixPath(i.filename.replace("\\", "/")) for i in files]
    shps = [p for p in rel if p.suffix.lower() == ".shp"]
    others = [p for p in rel if p.suffix.lower() in (".gpkg", ".geojson", ".json")]
    if shps:
        chosen = _choose_named(shps, layer, filename, "Shapefiles")
        present = {
            p.suffix.lower(): p
            for p in rel
            if p.parent == chosen.parent and p.stem.lower() == chosen.stem.lower()
        }
        missing = [ext for ext in _SHP_PARTS if ext not in present]
        if missing:
            raise ValidationFailed(
                f"{filename}: Shapefile {str(chosen)!r} lacks its "
                + ", ".join(missing)
                + " file(s); zip all the parts together (.shp, .shx, .dbf, .prj)",
                parameter="file",
            )
        return root.joinpath(*chosen.parts), None, "shapefile"
    if others:
        chosen = _choose_named(others, layer if len(others) > 1 else None, filename, "files")
        path = root.joinpath(*chosen.parts)
        if chosen.suffix.lower() == ".gpkg":
            inner_layer = layer if len(others) == 1 else None
            return path, _choose_layer(path, f"{filename}/{chosen}", inner_layer), "gpkg"
        return path, None, "geojson"
    names = ", ".join(str(p) for p in rel[:MAX_LISTED]) or "nothing"
    raise ValidationFailed(
        f"{filename}: the zip holds no Shapefile (.shp), GeoPackage or GeoJSON; it holds: {names}",
        parameter="file",
    )


def _choose_named(
    paths: list[PurePosixPath], layer: str | None, filename: str, what: str
) -> PurePosixPath:
    """One of several datasets in a zip, by stem or path given as ``layer``."""
    if len(paths) == 1 and layer is None:
        return paths[0]
    if layer is not None:
        for p in paths:
            if layer in (p.stem, str(p), p.name):
                return p
        raise InvalidParameter(
            "layer",
            f"{filename} has no {layer!r}; it holds: " + ", ".join(p.stem for p in paths),
            layers=[p.stem for p in paths],
        )
    raise InvalidParameter(
        "layer",
        f"{filename} holds {len(paths)} {what}: "
        + ", ".join(p.stem for p in paths)
        + "; choose one with layer=…",
        layers=[p.stem for p in paths],
    )


def _choose_layer(path: Path, filename: str, layer: str | None) -> str:
    """The vector layer of a GeoPackage to read."""
    try:
        listed = pyogrio.list_layers(path)
    except (*_gdal_errors(), OSError) as exc:
        raise ValidationFailed(
            f"{filename}: not a readable GeoPackage ({_clean(exc, path, filename)})",
            parameter="file",
        ) from None
    vector = [str(n) for n, g in listed if g is not None]
    if not vector:
        raise ValidationFailed(
            f"{filename}: the GeoPackage holds no vector layer", parameter="file"
        )
    if layer is not None:
        if layer not in vector:
            raise InvalidParameter(
                "layer",
                f"{filename} has no layer {layer!r}; its layers: {', '.join(vector)}",
                layers=vector,
            )
        return layer
    if len(vector) > 1:
        raise InvalidParameter(
            "layer",
            f"{filename} holds {len(vector)} layers: {', '.join(vector)}; choose one with layer=…",
            layers=vector,
        )
    return vector[0]


def _clean(exc: Exception, path: Path, filename: str) -> str:
    """A GDAL message without our temporary paths."""
    text = str(exc)
    for p in (str(path), str(path.parent)):
        text = text.replace(p, filename)
    return re.sub(r"/tmp/cmm-geo-upload-[^\s:'\"]*", filename, text)


# ----- reading steps ------------------------------------------------------------------------


def _open_dataset(
    path: Path, layer: str | None, fmt: str, filename: str, s: Settings
) -> tuple[dict[str, Any], pa.Table, list[warnings.WarningMessage]]:
    """pyogrio's metadata and arrow table of one dataset, within the feature limit."""
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (*_gdal_errors(), OSError) as exc:
        raise _unreadable(exc, path, fmt, filename) from None
    n = int(info.get("features") or -1)
    if n > s.max_features:
        raise PayloadTooLarge(
            f"{filename}: {n:,} features, more than the limit of {s.max_features:,} "
            "(CMM_GEO_MAX_FEATURES)",
            parameter="file",
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, table = pyogrio.read_arrow(path, layer=layer, max_features=s.max_features + 1)
    except (*_gdal_errors(), OSError, ValueError) as exc:
        raise _unreadable(exc, path, fmt, filename) from None
    if table.num_rows > s.max_features:
        raise PayloadTooLarge(
            f"{filename}: more than {s.max_features:,} features (CMM_GEO_MAX_FEATURES)",
            parameter="file",
        )
    if table.num_rows == 0:
        raise ValidationFailed(f"{filename}: the layer has no features", parameter="file")
    return meta, table, caught


def _unreadable(exc: Exception, path: Path, fmt: str, filename: str) -> ValidationFailed:
    """Where GDAL could not read: a GeoJSON problem located, else GDAL's message."""
    if fmt == "geojson":
        _locate_geojson_problem(path.read_bytes(), filename)
    return ValidationFailed(
        f"{filename}: cannot read it as {fmt} ({_clean(exc, path, filename)})", parameter="file"
    )


def _decode_geometries(wkb: list[bytes | None], filename: str) -> np.ndarray:
    """Shapely geometries of the WKB column (None where missing)."""
    geoms = np.empty(len(wkb), dtype=object)
    for i, w in enumerate(wkb):
        if w is None:
            continue
        try:
            geoms[i] = shapely.from_wkb(w)
        except shapely.errors.GEOSException as exc:
            raise ValidationFailed(
                f"{filename}: feature {i + 1}: unreadable geometry ({exc})",
                parameter="file",
                feature=i + 1,
            ) from None
    return geoms


def _read_dataset(
    path: Path,
    layer: str | None,
    fmt: str,
    filename: str,
    tmpdir: Path,
    override: CRS | None,
    s: Settings,
    raw: bytes,
) -> LayerData:
    """Read one dataset with pyogrio, then check, repair and reproject it (see checks)."""
    meta, table, caught = _open_dataset(path, layer, fmt, filename, s)
    geom_col = meta.get("geometry_name") or "wkb_geometry"
    if geom_col not in table.column_names:
        raise ValidationFailed(f"{filename}: the layer has no geometry column", parameter="file")
    geoms = _decode_geometries(table.column(geom_col).to_pylist(), filename)
    name = (
        layer or (PurePosixPath(filename).stem if path.stem == "upload" else path.stem) or "layer"
    )
    attrs = table.drop_columns([geom_col])
    _check_text(attrs, filename)
    fields, props, dropped_fields = attributes.properties(attrs)
    report: dict[str, Any] = {
        "filename": filename,
        "format": fmt,
        "source_layer": layer or name,
        "bytes": len(raw),
        "features_read": len(geoms),
    }
    if dropped_fields:
        report["fields_dropped"] = dropped_fields
    if caught:
        report["reader_warnings"] = [
            _clean(Exception(str(w.message)), path, filename) for w in caught[:MAX_LISTED]
        ]
    geoms, props, numbers = checks.drop_empty(geoms, props, report, filename)
    family, geoms = checks.single_family(geoms, numbers, filename)
    geoms, numbers, props = checks.repair_invalid(geoms, numbers, props, family, report, filename)
    src = checks.source_crs(meta.get("crs"), override, geoms, fmt, report, filename)
    lonlat, metric, ll_bounds = checks.reproject(geoms, src, family, report, filename)
    report["features_kept"] = len(lonlat)
    report["geometry_type"] = family
    return LayerData(
        name=str(name),
        family=family,
        geometries=lonlat,
        metric_geometries=metric,
        properties=props,
        fields=fields,
        source_crs=report["source_crs"],
        bbox=ll_bounds,
        report=report,
    )


def _check_text(attrs: pa.Table, filename: str) -> None:
    """Refuse attributes that are not valid UTF-8 (a Latin-1 GeoJSON), naming field and feature."""
    for name in attrs.column_names:
        column = attrs.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        feature = next((i + 1 for i, v in enumerate(_values(column)) if v is None), None)
        where = f", feature {feature}" if feature else ""
        raise ValidationFailed(
            f"{filename}: attribute {name!r}{where} is not UTF-8 text; save the file as UTF-8",
            parameter="file",
            field=name,
            feature=feature,
        )


def _values(column: pa.ChunkedArray) -> list[str | None]:
    """Each value as text, None where it is not valid UTF-8 (or null)."""
    out: list[str | None] = []
    for chunk in column.chunks:
        for scalar in chunk:
            try:
                out.append(scalar.as_py() if scalar.is_valid else "")
            except UnicodeDecodeError:
                out.append(None)
    return out


def _locate_geojson_problem(data: bytes, filename: str) -> None:
    """Raise ValidationFailed saying where a GeoJSON file GDAL could not read is broken."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"{filename}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            parameter="file",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise ValidationFailed(
            f"{filename}: JSON but not GeoJSON (no 'type' member at the top)", parameter="file"
        )
    feats = doc.get("features") if doc.get("type") == "FeatureCollection" else None
    if doc.get("type") == "FeatureCollection" and not isinstance(feats, list):
        raise ValidationFailed(
            f"{filename}: FeatureCollection without a 'features' array", parameter="file"
        )
    for i, f in enumerate(feats or [], start=1):
        g = f.get("geometry") if isinstance(f, dict) else None
        if g is None:
            continue
        try:
            shapely.geometry.shape(g)
        except Exception as exc:  # any problem building the geometry is reported
            raise ValidationFailed(
                f"{filename}: feature {i}: invalid geometry ({exc})",
                parameter="file",
                feature=i,
            ) from None
