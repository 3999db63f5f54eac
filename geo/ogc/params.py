"""Parsing of OGC API – Features query parameters, without a web framework.

Each function takes the raw string of one parameter and returns a typed value or
raises :class:`geo.errors.InvalidParameter` naming the parameter, in English and in
Italian (``it=``), the value given echoed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely

from geo.crs import CRS84, is_lat_lon, parse_crs, to_pyproj, transformer
from geo.errors import InvalidParameter, quoted
from geo.ogc.geometry import BBox

#: Default and maximum page size of /items.
DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000

#: Parameters of /collections/{id}/items besides the queryables (property filters).
ITEMS_PARAMETERS = frozenset(
    {
        "f",
        "limit",
        "offset",
        "bbox",
        "bbox-crs",
        "datetime",
        "crs",
        "filter",
        "filter-lang",
        "filter-crs",
        "sortby",
        "properties",
        "skipGeometry",
        "simplify",
        "lang",
    }
)
#: Parameters of /collections/{id}/items/{featureId}.
ITEM_PARAMETERS = frozenset({"f", "crs", "properties", "skipGeometry", "simplify", "lang"})
#: Parameters of the other OGC resources (``lang``: it/en, as on the app's pages).
META_PARAMETERS = frozenset({"f", "lang"})


def check_parameters(names: Iterable[str], allowed: Iterable[str]) -> None:
    """Reject query parameters that are neither standard nor queryables (OGC: 400)."""
    allowed_set = set(allowed)
    for name in names:
        if name not in allowed_set:
            allowed_text = ", ".join(sorted(allowed_set))
            raise InvalidParameter(
                name,
                "unknown query parameter; allowed: " + allowed_text,
                it="parametro non previsto; quelli ammessi sono: " + allowed_text,
            )


def check_geographic(lons: Any, lats: Any, parameter: str) -> None:
    """Longitudes within ±180° and latitudes within ±90°, else a 400 naming ``parameter``."""
    lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
    if not (np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise InvalidParameter(
            parameter,
            "coordinates must be finite numbers",
            it="le coordinate devono essere numeri finiti",
        )
    if (np.abs(lats) > 90).any():
        bad = float(lats[np.abs(lats) > 90][0])
        raise InvalidParameter(
            parameter,
            f"latitude {bad:g} is out of range (-90 to 90)",
            it=f"latitudine {bad:g} fuori dall'intervallo ammesso (da -90 a 90)",
        )
    if (np.abs(lons) > 180).any():
        bad = float(lons[np.abs(lons) > 180][0])
        raise InvalidParameter(
            parameter,
            f"longitude {bad:g} is out of range (-180 to 180)",
            it=f"longitudine {bad:g} fuori dall'intervallo ammesso (da -180 a 180)",
        )


def parse_bbox(value: str | None, bbox_crs: str = CRS84) -> BBox | None:
    """``minx,miny,maxx,maxy`` (or 6 numbers) in ``bbox_crs`` axis order → a :class:`BBox`:
    CRS84 bounds plus the exact area asked for.

    In geographic CRSs the first longitude may exceed the second: the box crosses the
    antimeridian (OGC API – Features Part 1). In projected CRSs the box is transformed as
    a densified polygon, so it selects what lies inside it, not inside its lon/lat envelope.
    """
    if value is None or value == "":
        return None
    parts = value.split(",")
    try:
        nums = [float(v) for v in parts]
    except ValueError:
        bad = next(v for v in parts if not _is_number(v)).strip()
        raise InvalidParameter(
            "bbox",
            f"{value!r} is not a list of numbers",
            it=f"{quoted(bad) if bad else 'un valore vuoto'} non è un numero; servono 4 o 6 "
            "numeri separati da virgole (minx,miny,maxx,maxy)",
        ) from None
    given = len(nums)
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or any(n != n or n in (float("inf"), float("-inf")) for n in nums):
        raise InvalidParameter(
            "bbox",
            "give 4 (or 6) finite numbers: minx,miny,maxx,maxy",
            it=(
                "i numeri devono essere finiti (minx,miny,maxx,maxy)"
                if len(nums) == 4
                else "servono 4 o 6 numeri separati da virgole (minx,miny,maxx,maxy), "
                f"{'ricevuto' if given == 1 else 'ricevuti'} {given}"
            ),
        )
    a, b, c, d = nums
    if bbox_crs == CRS84 or (is_lat_lon(bbox_crs) and to_pyproj(bbox_crs).is_geographic):
        # lon,lat (CRS84) or lat,lon (EPSG:4326): validate, allow the antimeridian
        lon0, lat0, lon1, lat1 = (a, b, c, d) if bbox_crs == CRS84 else (b, a, d, c)
        in_range = -90 <= lat0 <= 90 and -90 <= lat1 <= 90
        if not (in_range and -180 <= lon0 <= 180 and -180 <= lon1 <= 180):
            check_geographic([lon0, lon1], [lat0, lat1], "bbox")  # raises, saying which
        if lat0 > lat1:
            raise InvalidParameter(
                "bbox",
                "the lower latitude must come before the upper one",
                it=f"la latitudine minore va prima di quella maggiore ({lat0:g} > {lat1:g})",
            )
        return BBox((lon0, lat0, lon1, lat1))
    if a > c or b > d:
        raise InvalidParameter(
            "bbox",
            "the lower corner must come before the upper corner",
            it="l'angolo in basso a sinistra (minx,miny) va prima di quello in alto a destra "
            "(maxx,maxy)",
        )
    box = shapely.segmentize(shapely.box(a, b, c, d), max(c - a, d - b) / 32 or 1.0)
    tx = transformer(bbox_crs, CRS84)

    def _to_crs84(xy: np.ndarray) -> np.ndarray:
        x, y = tx.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    try:
        area = shapely.transform(box, _to_crs84)
    except Exception as exc:  # pyproj raises on impossible coordinates
        raise InvalidParameter(
            "bbox",
            f"cannot convert from bbox-crs: {exc}",
            it=f"impossibile convertire le coordinate da bbox-crs ({exc})",
        ) from None
    coords = shapely.get_coordinates(area)
    if not np.isfinite(coords).all():
        raise InvalidParameter(
            "bbox",
            "outside the area of use of bbox-crs",
            it="fuori dall'area di validità del sistema di riferimento bbox-crs",
        )
    check_geographic(coords[:, 0], coords[:, 1], "bbox")
    if not area.is_valid:
        area = shapely.make_valid(area)
    return BBox(area.bounds, area)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_crs_param(value: str | None, parameter: str) -> str:
    """``crs``/``bbox-crs``/``filter-crs``: a supported CRS as its OGC URI (CRS84 default)."""
    return parse_crs(value, parameter)


def _instant(text: str, end: bool) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidParameter(
            "datetime",
            f"{text!r} is not an RFC 3339 date-time",
            it=f"{quoted(text)} non è una data o data-ora RFC 3339 "
            "(es. 2024-05-01 o 2024-05-01T12:00:00Z)",
        ) from None
    if len(text) == 10 and end:  # a whole day
        t = t.replace(hour=23, minute=59, second=59, microsecond=999999)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_datetime(value: str | None) -> tuple[datetime | None, datetime | None] | None:
    """An instant or an interval ``start/end`` (``..`` open) → (start, end) in UTC."""
    if value is None or value == "":
        return None
    if "/" in value:
        start_s, _, end_s = value.partition("/")
        start, end = _instant(start_s, False), _instant(end_s, True)
        if start and end and start > end:
            raise InvalidParameter(
                "datetime",
                "the interval ends before it starts",
                it="l'intervallo finisce prima di cominciare",
            )
        return (start, end)
    t = _instant(value, False)
    if t is None:
        raise InvalidParameter(
            "datetime",
            "give an instant or an interval",
            it="serve un istante o un intervallo inizio/fine (.. se aperto)",
        )
    return (t, _instant(value, True) if len(value) == 10 else t)


def parse_sortby(value: str | None, sortables: Iterable[str]) -> list[tuple[str, bool]]:
    """``+name,-population`` (or ``population DESC``) → [(property, ascending)]."""
    if not value:
        return []
    known = set(sortables)
    out: list[tuple[str, bool]] = []
    for part in value.split(","):
        term = part.strip()
        ascending = True
        if term.startswith(("+", "-")):
            ascending, term = term[0] == "+", term[1:].strip()
        elif " " in term or ":" in term:
            term, _, direction = term.replace(":", " ").partition(" ")
            d = direction.strip().upper()
            if d not in ("A", "ASC", "D", "DESC"):
                raise InvalidParameter(
                    "sortby",
                    f"unknown direction {direction!r}; use ASC or DESC",
                    it=f"direzione {quoted(direction.strip())} sconosciuta; usare ASC o DESC",
                )
            ascending = d.startswith("A")
        if term not in known:
            sortables = ", ".join(sorted(known))
            raise InvalidParameter(
                "sortby",
                f"cannot sort by {term!r}; sortables: " + sortables,
                it=f"impossibile ordinare per {quoted(term)}; proprietà ordinabili: " + sortables,
            )
        out.append((term, ascending))
    return out


def parse_limit(value: int | str | None) -> int:
    """``limit``: a positive integer; above :data:`MAX_LIMIT` it is capped (Part 1:
    /req/core/fc-limit-response-1 — the server answers with at most its maximum)."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidParameter(
            "limit", f"{value!r} is not an integer", it=f"{quoted(value)} non è un numero intero"
        ) from None
    if n < 1:
        raise InvalidParameter(
            "limit",
            "give a positive number of features",
            it=f"serve un numero di elementi maggiore di zero, non {n}",
        )
    return min(n, MAX_LIMIT)


def check_property_filters(values: dict[str, str], queryables: Iterable[Any]) -> None:
    """``?name=value`` filters: the value must be of the queryable's type (a number for a
    number, true/false for a boolean, an ISO date for a date), else a 400 naming it."""
    types = {q.name: q for q in queryables}
    for name, raw in values.items():
        q = types.get(name)
        if q is None:
            continue
        text = raw.strip()
        try:
            if q.type == "integer":
                if not text.lstrip("+-").isdigit():
                    raise ValueError
            elif q.type == "number":
                if float(text) != float(text) or abs(float(text)) == float("inf"):
                    raise ValueError
            elif q.type == "boolean":
                if text.lower() not in ("true", "false"):
                    raise ValueError
            elif q.format == "date" or q.type == "datetime" or q.format == "date-time":
                datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            kind = {"integer": "an integer", "number": "a number", "boolean": "true or false"}
            wanted = kind.get(q.type, "an ISO 8601 date")
            kind_it = {"integer": "un numero intero", "number": "un numero",
                       "boolean": "true o false"}  # fmt: skip
            wanted_it = kind_it.get(q.type, "una data ISO 8601 (AAAA-MM-GG)")
            raise InvalidParameter(
                name, f"{raw!r} is not {wanted}", it=f"{quoted(raw)} non è {wanted_it}"
            ) from None


def parse_properties(value: str | None, names: Iterable[str]) -> list[str] | None:
    """``name,population`` → the listed properties (must exist)."""
    if value is None:
        return None
    known = set(names)
    out = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in out if p not in known]
    if unknown:
        available = ", ".join(sorted(known))
        raise InvalidParameter(
            "properties",
            f"unknown {', '.join(map(repr, unknown))}; available: " + available,
            it=f"{'proprietà sconosciuta' if len(unknown) == 1 else 'proprietà sconosciute'} "
            f"{', '.join(map(quoted, unknown))}; disponibili: " + available,
        )
    return out


def parse_bool(value: str | None, parameter: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no)."""
    if value is None or value == "":
        return False
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise InvalidParameter(
        parameter,
        f"{value!r} is not a boolean (true or false)",
        it=f"{quoted(value)} non è un valore vero/falso (true o false)",
    )


def parse_simplify(value: float | str | None) -> float | None:
    """Simplification tolerance in metres (≥ 0, at most 10 km); 0 or none = exact."""
    if value is None or value == "":
        return None
    try:
        tol = float(value)
    except ValueError:
        raise InvalidParameter(
            "simplify",
            f"{value!r} is not a number of metres",
            it=f"{quoted(value)} non è un numero di metri",
        ) from None
    if not (0 <= tol <= 10_000):
        raise InvalidParameter(
            "simplify",
            "give a tolerance in metres between 0 and 10000",
            it="serve una tolleranza in metri tra 0 e 10000",
        )
    return tol or None
