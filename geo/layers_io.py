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
import math
import re
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo.crs import METRIC_EPSG, parse_crs, to_pyproj
from geo.errors import InvalidParameter, PayloadTooLarge, ValidationFailed
from geo.settings import Settings, get_settings

MB = 1024 * 1024

#: Geometry families: a layer holds one of them.
POLYGON, LINE, POINT = "polygon", "line", "point"
_FAMILY = {
    "Polygon": POLYGON,
    "MultiPolygon": POLYGON,
    "LineString": LINE,
    "MultiLineString": LINE,
    "LinearRing": LINE,
    "Point": POINT,
    "MultiPoint": POINT,
}
_MULTI = {POLYGON: shapely.MultiPolygon, LINE: shapely.MultiLineString, POINT: shapely.MultiPoint}

#: Where reprojected data must fall (lon/lat): northern Italy and its surroundings.
PLAUSIBLE_BOUNDS = (5.0, 42.0, 16.0, 48.5)

#: Feature numbers listed in messages and reports, at most.
MAX_LISTED = 20

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
    override = _parse_override(crs)
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


# ----- zip ----------------------------------------------------------------------------------


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


# ----- GeoPackage ---------------------------------------------------------------------------


def _choose_layer(path: Path, filename: str, layer: str | None) -> str:
    """The vector layer of a GeoPackage to read."""
    try:
        listed = pyogrio.list_layers(path)
    except (DataSourceError, DataLayerError, OSError) as exc:
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


# ----- reading ------------------------------------------------------------------------------


def _clean(exc: Exception, path: Path, filename: str) -> str:
    """A GDAL message without our temporary paths."""
    text = str(exc)
    for p in (str(path), str(path.parent)):
        text = text.replace(p, filename)
    return re.sub(r"/tmp/cmm-geo-upload-[^\s:'\"]*", filename, text)


def _parse_override(crs: str | None) -> CRS | None:
    """The ``crs`` override as a pyproj CRS (any EPSG code pyproj knows), or None."""
    if crs is None or not crs.strip():
        return None
    try:
        return to_pyproj(parse_crs(crs))
    except InvalidParameter:
        pass
    text = crs.strip()
    m = re.fullmatch(r"(?i)(?:EPSG:{1,2})?(\d{4,6})", text)
    try:
        return CRS.from_epsg(int(m.group(1))) if m else CRS.from_user_input(text)
    except (CRSError, ValueError):
        raise InvalidParameter(
            "crs", f"unknown CRS {crs!r}; give an EPSG code such as EPSG:32632 or EPSG:3003"
        ) from None


def _crs_label(crs: CRS) -> str:
    """``CRS84``, ``EPSG:n`` or the CRS's name."""
    if crs.equals(CRS.from_user_input("OGC:CRS84")):
        return "CRS84"
    code = crs.to_epsg(min_confidence=70)
    if code == 4326 and crs.axis_info and crs.axis_info[0].direction.lower() == "east":
        return "CRS84"
    return f"EPSG:{code}" if code else crs.name


def suggest_crs(bounds: tuple[float, float, float, float]) -> list[str]:
    """Likely CRS of coordinates from their ranges (Lombardy), best first; [] when unsure."""
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        return []

    def inside(lo: float, hi: float, a: float, b: float) -> bool:
        return lo <= a and b <= hi

    if inside(-180, 180, minx, maxx) and inside(-90, 90, miny, maxy):
        if inside(35, 48, minx, maxx) and inside(5, 20, miny, maxy):
            return ["EPSG:4326"]  # latitude first
        return ["CRS84"]
    if inside(4.6e6, 5.4e6, miny, maxy):
        if inside(1.2e6, 1.9e6, minx, maxx):
            return ["EPSG:3003"]
        if inside(2.2e6, 2.9e6, minx, maxx):
            return ["EPSG:3004"]
        if inside(1.5e5, 9.0e5, minx, maxx):
            return ["EPSG:32632", "EPSG:7791"]
    if inside(5.2e6, 6.2e6, miny, maxy) and inside(5.0e5, 1.8e6, minx, maxx):
        return ["EPSG:3857"]
    return []


def _describe(bounds: tuple[float, float, float, float]) -> str:
    minx, miny, maxx, maxy = bounds
    return f"x {minx:,.6g} to {maxx:,.6g}, y {miny:,.6g} to {maxy:,.6g}"


_SUGGESTION_NAMES = {
    "CRS84": "longitude/latitude in degrees (CRS84)",
    "EPSG:4326": "latitude/longitude in degrees (EPSG:4326, latitude first)",
    "EPSG:3003": "Gauss-Boaga, Monte Mario / Italy zone 1 (EPSG:3003)",
    "EPSG:3004": "Gauss-Boaga, Monte Mario / Italy zone 2 (EPSG:3004)",
    "EPSG:32632": "UTM zone 32N (EPSG:32632 WGS 84, or EPSG:7791 RDN2008)",
    "EPSG:3857": "Web Mercator (EPSG:3857)",
}


def _suggestion_text(suggested: list[str]) -> str:
    if not suggested:
        return "the coordinate ranges match no CRS used in Lombardy; give it with crs=EPSG:…"
    return f"they look like {_SUGGESTION_NAMES[suggested[0]]}; upload again with crs={suggested[0]}"


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
    """Read one dataset with pyogrio and turn it into a validated, reprojected layer."""
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (DataSourceError, DataLayerError, OSError) as exc:
        if fmt == "geojson":
            _locate_geojson_problem(path.read_bytes(), filename)
        raise ValidationFailed(
            f"{filename}: cannot read it as {fmt} ({_clean(exc, path, filename)})",
            parameter="file",
        ) from None
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
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        if fmt == "geojson":
            _locate_geojson_problem(path.read_bytes(), filename)
        raise ValidationFailed(
            f"{filename}: cannot read it as {fmt} ({_clean(exc, path, filename)})",
            parameter="file",
        ) from None
    if table.num_rows > s.max_features:
        raise PayloadTooLarge(
            f"{filename}: more than {s.max_features:,} features (CMM_GEO_MAX_FEATURES)",
            parameter="file",
        )
    if table.num_rows == 0:
        raise ValidationFailed(f"{filename}: the layer has no features", parameter="file")
    geom_col = meta.get("geometry_name") or "wkb_geometry"
    if geom_col not in table.column_names:
        raise ValidationFailed(f"{filename}: the layer has no geometry column", parameter="file")
    wkb = table.column(geom_col).to_pylist()
    attrs = table.drop_columns([geom_col])
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
    name = (
        layer or (PurePosixPath(filename).stem if path.stem == "upload" else path.stem) or "layer"
    )
    fields, props, dropped_fields = _properties(attrs)

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

    # Missing/empty geometries are dropped and counted.
    missing = np.array([g is None for g in geoms], dtype=bool)
    empty = missing.copy()
    empty[~missing] = shapely.is_empty(geoms[~missing].astype(object))
    report["empty_dropped"] = int(empty.sum())
    report["empty_features"] = _listed(np.flatnonzero(empty) + 1)
    keep = np.flatnonzero(~empty)
    if keep.size == 0:
        raise ValidationFailed(
            f"{filename}: all {len(geoms)} features have missing or empty geometries",
            parameter="file",
        )
    geoms = shapely.force_2d(geoms[keep].astype(object))
    props = [props[i] for i in keep]
    numbers = keep + 1  # 1-based feature numbers in the file

    family, geoms = _single_family(geoms, numbers, filename)

    # Invalid geometries are repaired and counted.
    invalid = ~shapely.is_valid(geoms)
    report["repaired"] = int(invalid.sum())
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid])
        report["repaired_features"] = [
            {"feature": int(f), "reason": str(r)}
            for f, r in zip(numbers[invalid][:MAX_LISTED], reasons[:MAX_LISTED], strict=False)
        ]
        geoms[invalid] = _repair(geoms[invalid], family)
        collapsed = shapely.is_empty(geoms)
        if collapsed.any():
            report["collapsed_dropped"] = int(collapsed.sum())
            report["collapsed_features"] = _listed(numbers[collapsed])
            geoms, numbers = geoms[~collapsed], numbers[~collapsed]
            props = [p for p, c in zip(props, collapsed, strict=True) if not c]
            if len(geoms) == 0:
                raise ValidationFailed(
                    f"{filename}: every geometry collapses when repaired", parameter="file"
                )

    # CRS: override, else the file's, else refuse with a suggestion.
    file_crs = _file_crs(meta.get("crs"))
    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    if override is not None:
        src, crs_from = override, "override"
    elif file_crs is not None:
        src, crs_from = file_crs, "file"
    else:
        raise ValidationFailed(
            f"{filename}: the file has no CRS"
            + (" (no .prj in the zip)" if fmt == "shapefile" else "")
            + f"; its coordinates span {_describe(bounds)}: "
            + _suggestion_text(suggest_crs(bounds)),
            parameter="crs",
            suggested_crs=suggest_crs(bounds),
        )
    report["source_crs"] = _crs_label(src)
    if fmt == "geojson" and report["source_crs"] == "EPSG:4326":
        report["source_crs"] = "CRS84"  # GeoJSON coordinates are lon/lat (RFC 7946)
    report["crs_from"] = crs_from
    if file_crs is not None:
        report["file_crs"] = _crs_label(file_crs)

    lonlat = _transform(geoms, src, CRS.from_user_input("OGC:CRS84"))
    ll_bounds = tuple(float(v) for v in shapely.total_bounds(lonlat))
    if not all(math.isfinite(v) for v in ll_bounds) or not _plausible(ll_bounds):
        suggested = [c for c in suggest_crs(bounds) if c != report["source_crs"]]
        raise ValidationFailed(
            f"{filename}: in {report['source_crs']} (from the {crs_from}) the coordinates "
            f"({_describe(bounds)}) do not fall in northern Italy: " + _suggestion_text(suggested),
            parameter="crs",
            suggested_crs=suggested,
        )
    metric = _transform(geoms, src, CRS.from_epsg(METRIC_EPSG))
    # Reprojection can nudge a valid ring into a self-touch: fix silently in both.
    for arr in (lonlat, metric):
        bad = ~shapely.is_valid(arr)
        if bad.any():
            arr[bad] = _repair(arr[bad], family)

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
        bbox=ll_bounds,  # type: ignore[arg-type]
        report=report,
    )


def _listed(numbers: Iterable[int]) -> list[int]:
    return [int(n) for n in list(numbers)[:MAX_LISTED]]


def _plausible(b: tuple[float, ...]) -> bool:
    minx, miny, maxx, maxy = PLAUSIBLE_BOUNDS
    return b[0] >= minx and b[2] <= maxx and b[1] >= miny and b[3] <= maxy


def _file_crs(value: str | None) -> CRS | None:
    if not value:
        return None
    try:
        return CRS.from_user_input(value)
    except CRSError:
        return None


def _transform(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Reproject an array of 2D geometries (x = east, y = north in and out)."""
    if src.equals(dst):
        return geoms.copy()
    tx = Transformer.from_crs(src, dst, always_xy=True)

    def _f(xy: np.ndarray) -> np.ndarray:
        x, y = tx.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _f)


def _repair(geoms: np.ndarray, family: str) -> np.ndarray:
    """make_valid, keeping only the parts of the layer's family."""
    if family == POLYGON:
        fixed = shapely.make_valid(geoms, method="structure", keep_collapsed=False)
    else:
        fixed = shapely.make_valid(geoms)
    out = np.empty(len(fixed), dtype=object)
    for i, g in enumerate(fixed):
        fam = _FAMILY.get(g.geom_type)
        if fam == family:
            out[i] = g
        else:
            parts = [p for p in shapely.get_parts(g) if _FAMILY.get(p.geom_type) == family]
            out[i] = _multi(parts, family)
    return out


def _multi(parts: list[Any], family: str) -> Any:
    flat = []
    for p in parts:
        flat.extend(shapely.get_parts(p) if p.geom_type.startswith("Multi") else [p])
    return _MULTI[family](flat) if flat else shapely.from_wkt("GEOMETRYCOLLECTION EMPTY")


def _single_family(geoms: np.ndarray, numbers: np.ndarray, filename: str) -> tuple[str, np.ndarray]:
    """The layer's one geometry family; ValidationFailed listing features when mixed."""
    types = shapely.get_type_id(geoms)
    fam = np.empty(len(geoms), dtype=object)
    names = {0: POINT, 1: LINE, 2: LINE, 3: POLYGON, 4: POINT, 5: LINE, 6: POLYGON}
    for i, t in enumerate(types):
        if t == 7:  # GeometryCollection: one family inside is fine
            fams = {_FAMILY.get(p.geom_type) for p in shapely.get_parts(geoms[i])}
            fam[i] = fams.pop() if len(fams) == 1 else "mixed collection"
        else:
            fam[i] = names.get(int(t), f"unsupported type {geoms[i].geom_type}")
    kinds = sorted(set(fam))
    if len(kinds) > 1 or kinds[0] not in (POLYGON, LINE, POINT):
        details = []
        for k in kinds:
            where = numbers[fam == k]
            details.append(
                {"geometry_type": k, "count": int(where.size), "features": _listed(where)}
            )
        summary = "; ".join(
            f"{d['count']} {d['geometry_type']}"
            + ("s" if d["geometry_type"] in (POLYGON, LINE, POINT) else "")
            + f" (features {', '.join(map(str, d['features']))}"
            + (", …" if d["count"] > MAX_LISTED else "")
            + ")"
            for d in details
        )
        raise ValidationFailed(
            f"{filename}: mixed geometry types: {summary}. A layer holds one type "
            "(polygons, lines or points; MultiX counts as X): split the file by type and "
            "upload each part as its own layer",
            details=details,
            parameter="file",
        )
    family = kinds[0]
    collections = np.flatnonzero(types == 7)
    for i in collections:
        geoms[i] = _multi(list(shapely.get_parts(geoms[i])), family)
    return family, geoms


# ----- attributes ---------------------------------------------------------------------------


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


def _properties(
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


def _locate_geojson_problem(data: bytes, filename: str) -> None:
    """Raise ValidationFailed saying where a GeoJSON file GDAL could not read is broken."""
    import orjson

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
