"""Find my zone: a comune, its zona omogenea and union, by code, name or point.

Rules, documented for users:

* **Codes**: a 6-digit ISTAT code (``015146``; leading zeros may be omitted) or a
  cadastral code (``F205``), any case.
* **Names**: case, accents, apostrophes (’ ' or none) and repeated spaces are ignored;
  a miss answers 404 with suggestions ranked by similarity.
* **Points**: a point belongs to the comune whose closed polygon covers it. A point on
  a border shared by two comuni (or in a sliver where generalised outlines overlap)
  goes to the one with the **lowest ISTAT code**, the same in single and batch lookups.
  A point outside every comune answers 404 with the nearest comune and its distance
  in metres (EPSG:32632).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from geo.crs import CRS84, METRIC_EPSG, epsg_uri, parse_crs, short_name, transformer_xy
from geo.crs import to_lonlat as crs_to_lonlat
from geo.errors import InvalidParameter, NotFound, quoted
from geo.territory import Territory, get_territory
from geo.territory.batch import BatchAnswer, nearest_outside, read_csv_points
from geo.territory.nearest import TIE_M

_EPSG4326 = epsg_uri(4326)
_ISTAT_RE = re.compile(r"^\d{4,6}$")
_CADASTRAL_RE = re.compile(r"^[A-Za-z]\d{3}$")

#: Bounds (lon/lat) of plausible input: northern Italy and surroundings.
_PLAUSIBLE_LON = (-10.0, 30.0)
_PLAUSIBLE_LAT = (30.0, 60.0)


def find_comune(q: str, territory: Territory | None = None) -> dict[str, Any]:
    """A comune by ISTAT code, cadastral code or name; NotFound with suggestions on a miss."""
    t = territory or get_territory()
    text = (q or "").strip()
    if not text:
        raise InvalidParameter(
            "q",
            "give a comune's name, ISTAT code or cadastral code",
            it="scrivere il nome di un comune, il suo codice ISTAT o il codice catastale",
        )
    code: str | None = None
    matched_by = "name"
    if _ISTAT_RE.match(text):
        code = text.zfill(6)
        matched_by = "istat_code"
        if code not in t.comuni:
            raise NotFound(
                f"no comune of the Città metropolitana di Milano has ISTAT code {code}",
                it=f"nessun comune della Città metropolitana di Milano ha codice ISTAT {code}",
                parameter="q",
                suggestions=[],
            )
    elif _CADASTRAL_RE.match(text) and text.upper() in t.by_cadastral:
        code = t.by_cadastral[text.upper()]
        matched_by = "cadastral_code"
    else:
        code = t.name_index.get(text)
    if code is None:
        suggestions = [
            {"istat_code": s["value"], "name": s["name"], "score": s["score"]}
            for s in t.name_index.suggest(text)
        ]
        hint = f"; did you mean {suggestions[0]['name']}?" if suggestions else ""
        hint_it = f"; forse {suggestions[0]['name']}?" if suggestions else ""
        raise NotFound(
            f"no comune named {text!r} in the Città metropolitana di Milano{hint}",
            it=f"nessun comune di nome {quoted(text)} nella Città metropolitana di Milano"
            + hint_it,
            parameter="q",
            suggestions=suggestions,
        )
    return {"query": text, "matched_by": matched_by, "comune": t.comune_record(code)}


@dataclass(frozen=True)
class PointInput:
    """A point as given: coordinates and the CRS URI they are in (axis order of that CRS)."""

    x: float
    y: float
    crs: str = CRS84


def to_lonlat(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates given in ``crs``'s own axis order to lon/lat arrays.

    The caller's x/y are the CRS's first/second axis, as EPSG defines them: EPSG:4326 takes
    (lat, lon), EPSG:6707 (northing, easting), CRS84 (lon, lat), the other projected CRSs
    (easting, northing). One rule for single and batch lookups (``geo.crs.to_lonlat``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    lon, lat = crs_to_lonlat(x, y, crs)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _check_finite(lon: np.ndarray, lat: np.ndarray, crs: str) -> None:
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    bad |= (lon < _PLAUSIBLE_LON[0]) | (lon > _PLAUSIBLE_LON[1])
    bad |= (lat < _PLAUSIBLE_LAT[0]) | (lat > _PLAUSIBLE_LAT[1])
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidParameter(
            "coordinates",
            f"point {i + 1} is not a valid location in {short_name(crs)} "
            "(check the CRS and the axis order: EPSG:4326 is lat,lon; CRS84 is lon,lat)",
            it=f"il punto {i + 1} non è una posizione valida in {short_name(crs)} (controllare "
            "il sistema di riferimento e l'ordine degli assi: EPSG:4326 è lat,lon; CRS84 è "
            "lon,lat)",
            index=i,
        )


def locate_indices(t: Territory, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Index into ``t.comuni_list`` of the comune covering each point, -1 when outside.

    Vectorised: points sorted by longitude, each comune's bounding box cut out with
    ``searchsorted``, then ``shapely.contains_xy`` on the prepared polygon; points left
    over (on a border) are settled with ``intersects_xy``. Lowest code wins ties,
    because comuni are ordered by code and the first hit is kept.
    """
    n = len(lon)
    result = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return result
    order = np.argsort(lon, kind="stable")
    xs, ys = lon[order], lat[order]
    bounds = shapely.bounds(t.geometries)
    found = np.full(n, -1, dtype=np.int64)  # in sorted order
    for predicate in (shapely.contains_xy, shapely.intersects_xy):
        for i, (x0, y0, x1, y1) in enumerate(bounds):
            lo = int(np.searchsorted(xs, x0, side="left"))
            hi = int(np.searchsorted(xs, x1, side="right"))
            if hi <= lo:
                continue
            seg = slice(lo, hi)
            cand = (found[seg] < 0) & (ys[seg] >= y0) & (ys[seg] <= y1)
            idx = np.flatnonzero(cand) + lo
            if idx.size == 0:
                continue
            inside = predicate(t.geometries[i], xs[idx], ys[idx])
            found[idx[inside]] = i
        if (found >= 0).all():
            break
    result[order] = found
    return result


def nearest(t: Territory, lon: float, lat: float) -> tuple[str, float]:
    """The nearest comune to a point outside the territory and its distance in metres."""
    tx = transformer_xy(CRS84, epsg_uri(METRIC_EPSG))
    mx, my = tx.transform(lon, lat)
    p = shapely.Point(mx, my)
    # Every comune at the least distance, then the lowest code: the batch's rule too
    # (geo.territory.nearest), so one point gets the same answer both ways.
    hits = t.metric_tree.query_nearest(p, all_matches=True)
    d = shapely.distance(t.metric_geometries[hits], p)
    i = int(hits[d <= d.min() + TIE_M].min())
    return str(t.codes[i]), float(d.min())


def locate_point(
    x: float, y: float, crs: str | None = None, territory: Territory | None = None
) -> dict[str, Any]:
    """The comune (with zone, union, neighbours) at a point given in ``crs``."""
    t = territory or get_territory()
    uri = parse_crs(crs)
    if uri == CRS84:
        lo, la = float(x), float(y)
    elif uri == _EPSG4326:
        lo, la = float(y), float(x)
    else:  # the CRS's own axis order (EPSG:6707 is northing first)
        lo, la = (float(v) for v in crs_to_lonlat(x, y, uri))
    plausible = _PLAUSIBLE_LON[0] <= lo <= _PLAUSIBLE_LON[1]
    plausible &= _PLAUSIBLE_LAT[0] <= la <= _PLAUSIBLE_LAT[1]
    if not plausible:  # NaN fails every comparison
        _check_finite(np.array([lo]), np.array([la]), uri)
    hits = t.tree.query(shapely.Point(lo, la), predicate="intersects")
    point = {"x": x, "y": y, "crs": short_name(uri), "lon": lo, "lat": la}
    if hits.size == 0:
        code, dist = nearest(t, lo, la)
        raise NotFound(
            f"the point ({x}, {y}) in {short_name(uri)} is outside the Città metropolitana "
            f"di Milano; the nearest comune is {t.comuni[code].name}, {dist:,.0f} m away",
            it=f"il punto ({x}, {y}) in {short_name(uri)} è fuori dalla Città metropolitana "
            f"di Milano; il comune più vicino è {t.comuni[code].name}, a "
            + f"{dist:,.0f} m".replace(",", "."),
            point=point,
            nearest={**t.comune_summary(code), "distance_m": round(dist, 1)},
        )
    code = str(t.codes[int(hits.min())])
    return {"point": point, "comune": t.comune_record(code)}


def locate_columns(
    x: np.ndarray,
    y: np.ndarray,
    crs: str | None = None,
    territory: Territory | None = None,
    ids: Any = None,
) -> BatchAnswer:
    """Locate many points at once, answered column-wise (see :mod:`geo.territory.batch`).

    Points outside the territory get the nearest comune with its distance, so a batch
    never fails because of one stray point.
    """
    t = territory or get_territory()
    uri = parse_crs(crs)
    lon, lat = to_lonlat(np.asarray(x), np.asarray(y), uri)
    _check_finite(lon, lat, uri)
    idx = locate_indices(t, lon, lat)
    nearest_i, dist = nearest_outside(t, lon, lat, idx)
    return BatchAnswer(t, short_name(uri), idx, nearest_i, dist, ids)


def locate_batch(
    x: np.ndarray,
    y: np.ndarray,
    crs: str | None = None,
    territory: Territory | None = None,
    ids: list[Any] | None = None,
) -> dict[str, Any]:
    """Locate many points at once; each row gets its comune, zone and union (or nulls).

    Points outside the territory get ``istat_code: null`` and the nearest comune with
    its distance. Plain Python rows, for notebooks and small batches;
    :func:`locate_columns` answers large ones column-wise.
    """
    return locate_columns(x, y, crs, territory, ids).to_dict()


def read_points(content: bytes, fmt: str) -> tuple[np.ndarray, np.ndarray, list[Any], str | None]:
    """Parse a batch of points from CSV or GeoJSON bytes.

    CSV: a header with ``lon``/``lat`` (or ``x``/``y``), optional ``id``; ``,`` or ``;``.
    GeoJSON: a FeatureCollection of Points (``id`` or ``properties.id`` kept); a legacy
    ``crs`` member is honoured. Returns x, y, ids and the CRS found in the file (or None).
    Errors name the row or feature.
    """
    if fmt == "geojson":
        return _read_points_geojson(content)
    if fmt == "csv":
        return _read_points_csv(content)
    raise InvalidParameter("format", f"unsupported batch format {fmt!r}; use csv or geojson")


def _read_points_csv(content: bytes) -> tuple[np.ndarray, np.ndarray, list[Any], str | None]:
    x, y, ids = read_csv_points(content)
    return x, y, (ids.to_pylist() if ids is not None else list(range(1, len(x) + 1))), None


def _read_points_geojson(content: bytes) -> tuple[np.ndarray, np.ndarray, list[Any], str | None]:
    import orjson

    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("file", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidParameter("file", "expected a GeoJSON FeatureCollection of Points")
    crs = None
    legacy = doc.get("crs")
    if isinstance(legacy, dict):
        crs = (legacy.get("properties") or {}).get("name")
    xs: list[float] = []
    ys: list[float] = []
    ids: list[Any] = []
    for i, f in enumerate(doc.get("features") or [], start=1):
        g = (f or {}).get("geometry") or {}
        coords = g.get("coordinates")
        if g.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
            raise InvalidParameter(
                "file",
                f"feature {i}: expected a Point geometry, got {g.get('type')!r}",
                feature=i,
            )
        try:
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
        except (TypeError, ValueError):
            raise InvalidParameter(
                "file", f"feature {i}: coordinates are not numbers", feature=i
            ) from None
        props = f.get("properties") or {}
        ids.append(f.get("id", props.get("id", i)))
    if not xs:
        raise InvalidParameter("file", "the FeatureCollection has no features")
    return np.array(xs), np.array(ys), ids, crs


# ----- suggestions as the user types -----------------------------------------------------

_SUGGEST_CACHE: dict[str, list[dict[str, Any]]] = {}


def _suggest_entries(t: Territory) -> list[dict[str, Any]]:
    """Comuni, zones and unions with their folded words and forgiving keys (once per data)."""
    from geo.names import fold, name_key

    entries = _SUGGEST_CACHE.get(t.version)
    if entries is None:
        rows = [("comune", c.istat_code, c.name, [c.name]) for c in t.comuni_list]
        rows += [("zona", z.id, z.name, [z.name]) for z in t.zones.values()]
        rows += [("unione", u.id, u.name, [u.name, u.short_name or ""]) for u in t.unions.values()]
        entries = [
            {"kind": kind, "id": i, "name": name,
             "words": [fold(n).split() for n in names if n],
             "keys": [name_key(n) for n in names if n]}
            for kind, i, name, names in rows
        ]  # fmt: skip
        _SUGGEST_CACHE.clear()
        _SUGGEST_CACHE[t.version] = entries
    return entries


def _words_match(tokens: list[str], words: list[str]) -> bool:
    """Each token begins a different word (``s n`` ~ ``sul naviglio``), in any order."""
    free = list(words)
    for tok in tokens:
        hit = next((w for w in free if w.startswith(tok)), None)
        if hit is None:
            return False
        free.remove(hit)
    return True


def suggest(q: str, limit: int = 8, territory: Territory | None = None) -> list[dict[str, Any]]:
    """What a search box offers while the user types, best first.

    Comuni by name typed any way (case, accents, apostrophes, partial words such as
    ``san giul``, abbreviations such as ``Cernusco S/N`` or ``S. Giuliano``, typos), by
    ISTAT code or cadastral code (prefixes too); zone omogenee and unions by name. Each
    answer: ``kind`` (comune, zona, unione), ``id``, ``name``, ``score`` (0-100).
    """
    from geo.names import fold, name_key

    t = territory or get_territory()
    text = (q or "").strip()[:100]
    if not text:
        return []
    scores: dict[tuple[str, str], float] = {}

    def hit(kind: str, ident: str, score: float) -> None:
        scores[(kind, ident)] = max(score, scores.get((kind, ident), 0.0))

    if text.isdigit():
        for code in t.comuni:
            if code == text.zfill(6):
                hit("comune", code, 100)
            elif code.startswith(text) or code.lstrip("0").startswith(text.lstrip("0") or "-"):
                hit("comune", code, 80)
    if re.fullmatch(r"[A-Za-z]\d{1,3}", text):
        for cad, code in t.by_cadastral.items():
            if cad == text.upper():
                hit("comune", code, 100)
            elif cad.startswith(text.upper()):
                hit("comune", code, 80)
    key, tokens = name_key(text), fold(text).split()
    if key:
        for e in _suggest_entries(t):
            for words, k in zip(e["words"], e["keys"], strict=True):
                if k == key:
                    score = 100.0
                elif k.startswith(key):
                    score = 95.0
                elif tokens and _words_match(tokens, words):
                    score = 90.0 if words and words[0].startswith(tokens[0]) else 85.0
                elif len(key) >= 3 and key in k:
                    score = 75.0
                else:
                    continue
                hit(e["kind"], e["id"], score)
        if not scores:  # typos: similar comune names
            for s in t.name_index.suggest(text, limit=limit, cutoff=70.0):
                hit("comune", s["value"], round(s["score"] * 0.7, 1))
    names = {("comune", c): t.comuni[c].name for c in t.comuni}
    names.update({("zona", z): g.name for z, g in t.zones.items()})
    names.update({("unione", u): g.name for u, g in t.unions.items()})
    order = {"comune": 0, "zona": 1, "unione": 2}
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0][0]], names[kv[0]]))
    return [
        {"kind": kind, "id": ident, "name": names[(kind, ident)], "score": score}
        for (kind, ident), score in ranked[: max(1, min(limit, 20))]
    ]
