"""Coordinate reference systems the service accepts and serves, via pyproj.

Served coordinates are CRS84 (lon/lat); metric work is done in EPSG:32632.
Lombardy publishes data in EPSG:32632 (WGS 84 / UTM 32N), EPSG:7791 (RDN2008 / UTM 32N)
and EPSG:3003 (Monte Mario / Italy zone 1, Gauss-Boaga); Italian public administrations
also publish in EPSG:6707, RDN2008 / UTM 32N with **northing first** as EPSG defines it
(like EPSG:4326's latitude first): coordinates in that CRS are (northing, easting).
"""

from __future__ import annotations

from functools import lru_cache

from pyproj import CRS, Transformer

from geo.errors import InvalidParameter, quoted

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
METRIC_EPSG = 32632

#: EPSG codes accepted for input and output (besides CRS84).
SUPPORTED_EPSG: tuple[int, ...] = (4326, 32632, 3003, 7791, 6707, 3857)


def epsg_uri(code: int) -> str:
    """OGC URI of an EPSG code."""
    return f"http://www.opengis.net/def/crs/EPSG/0/{code}"


SUPPORTED_URIS: tuple[str, ...] = (CRS84, *(epsg_uri(c) for c in SUPPORTED_EPSG))


@lru_cache(maxsize=256)
def parse_crs(value: str | None, parameter: str = "crs") -> str:
    """Normalise a CRS given as URI, ``EPSG:n``, ``n`` or ``CRS84`` to its OGC URI.

    Raises InvalidParameter naming ``parameter`` for anything unsupported.
    """
    if value is None or value.strip() == "":
        return CRS84
    v = value.strip()
    upper = v.upper().replace("[", "").replace("]", "")
    if upper in {"CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", CRS84.upper()}:
        return CRS84
    code: str | None = None
    for prefix in (
        "HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/",
        "HTTPS://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/",
        "URN:OGC:DEF:CRS:EPSG::",
        "URN:OGC:DEF:CRS:EPSG:",
        "EPSG::",
        "EPSG:",
    ):
        if upper.startswith(prefix):
            code = upper[len(prefix) :]
            break
    if code is None and upper.isdigit():
        code = upper
    if code is None or not code.isdigit() or int(code) not in SUPPORTED_EPSG:
        offered = "CRS84, " + ", ".join(f"EPSG:{c}" for c in SUPPORTED_EPSG)
        raise InvalidParameter(
            parameter,
            f"unsupported CRS {value!r}; use one of {offered}",
            it=f"sistema di riferimento {quoted(value)} non supportato; usare uno tra {offered}",
        )
    return epsg_uri(int(code))


def to_pyproj(uri: str) -> CRS:
    """pyproj CRS of a normalised URI."""
    if uri == CRS84:
        return CRS.from_user_input("OGC:CRS84")
    return CRS.from_epsg(int(uri.rsplit("/", 1)[1]))


def short_name(uri: str) -> str:
    """``CRS84`` or ``EPSG:n``."""
    return "CRS84" if uri == CRS84 else f"EPSG:{uri.rsplit('/', 1)[1]}"


@lru_cache(maxsize=64)
def transformer(src: str, dst: str) -> Transformer:
    """A cached transformer between two normalised URIs, honouring each CRS's axis order."""
    return Transformer.from_crs(to_pyproj(src), to_pyproj(dst), always_xy=False)


@lru_cache(maxsize=64)
def transformer_xy(src: str, dst: str) -> Transformer:
    """A cached transformer that takes and returns (x=east/lon, y=north/lat) whatever the CRS."""
    return Transformer.from_crs(to_pyproj(src), to_pyproj(dst), always_xy=True)


def is_lat_lon(uri: str) -> bool:
    """True when the CRS's first axis is latitude (EPSG:4326)."""
    axis = to_pyproj(uri).axis_info
    return bool(axis) and axis[0].direction.lower() == "north"


def to_lonlat(first: object, second: object, uri: str) -> tuple[object, object]:
    """Coordinates given in ``uri``'s own axis order (EPSG:4326 lat/lon, EPSG:6707
    northing/easting, CRS84 lon/lat, others easting/northing) → (lon, lat)."""
    if uri == CRS84:
        return first, second
    return transformer(uri, CRS84).transform(first, second)
