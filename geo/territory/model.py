"""The territory: the 133 comuni joined to their zona omogenea and union of comuni.

Loaded once from the committed files in ``data/boundaries`` and ``data/territory``
and validated: an unknown code, a duplicate or a comune without a zone raises
:class:`geo.errors.DataError` naming the file and row. Zones and unions are
polygons dissolved from their comuni.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo import REPO_DATA_DIR
from geo.crs import CRS84, METRIC_EPSG, epsg_uri, transformer_xy
from geo.errors import DataError

BOUNDARIES_FILE = REPO_DATA_DIR / "boundaries" / "comuni.geojson"
TERRITORY_DIR = REPO_DATA_DIR / "territory"

#: Minimum shared border (m) for two comuni to count as neighbours (not a mere corner).
NEIGHBOUR_MIN_SHARED_M = 20.0
#: Tolerance (m) for generalised boundaries that do not meet exactly.
NEIGHBOUR_TOLERANCE_M = 5.0


def slug(text: str) -> str:
    """URL-safe id of a name: ``Magentino e Abbiatense`` → ``magentino-e-abbiatense``."""
    from geo.names import fold

    return re.sub(r"\s+", "-", fold(text))


def to_metric(geoms: np.ndarray | BaseGeometry) -> Any:
    """Reproject CRS84 geometries to EPSG:32632 (vectorised)."""
    tx = transformer_xy(CRS84, epsg_uri(METRIC_EPSG))

    def _f(xy: np.ndarray) -> np.ndarray:
        x, y = tx.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _f)


@dataclass(frozen=True)
class Comune:
    """One comune of the metropolitan city."""

    istat_code: str
    name: str
    cadastral_code: str
    population: int
    area_km2: float
    zona_id: str
    zona_confidence: str
    zona_source: str
    unione_id: str | None
    geometry: BaseGeometry = field(repr=False, compare=False)


@dataclass(frozen=True)
class Group:
    """A zona omogenea or a union of comuni: a named set of comuni, dissolved."""

    id: str
    name: str
    kind: str  # "zona" | "unione"
    comuni: tuple[str, ...]
    population: int
    area_km2: float
    geometry: BaseGeometry = field(repr=False, compare=False)
    short_name: str | None = None
    official_area_km2: float | None = None
    source: str = ""
    zone: tuple[str, ...] = ()


class Territory:
    """The joined territory; build with :func:`load_territory`."""

    def __init__(
        self,
        comuni: list[Comune],
        zones: dict[str, Group],
        unions: dict[str, Group],
        version: str,
    ) -> None:
        self.comuni_list = comuni
        self.comuni = {c.istat_code: c for c in comuni}
        self.zones = zones
        self.unions = unions
        self.version = version
        self.codes = np.array([c.istat_code for c in comuni])
        self.geometries = np.array([c.geometry for c in comuni], dtype=object)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self.by_cadastral = {c.cadastral_code.upper(): c.istat_code for c in comuni}
        self._records: dict[tuple[str, bool], dict[str, Any]] = {}

    @cached_property
    def metric_geometries(self) -> np.ndarray:
        """Comuni in EPSG:32632, same order as ``comuni_list``."""
        geoms = to_metric(self.geometries)
        shapely.prepare(geoms)
        return geoms

    @cached_property
    def metric_tree(self) -> shapely.STRtree:
        """STRtree over the metric geometries."""
        return shapely.STRtree(self.metric_geometries)

    @cached_property
    def neighbours(self) -> dict[str, tuple[str, ...]]:
        """Comuni sharing a border of at least NEIGHBOUR_MIN_SHARED_M metres, by code."""
        geoms = self.metric_geometries
        left, right = self.metric_tree.query(
            geoms, predicate="dwithin", distance=NEIGHBOUR_TOLERANCE_M
        )
        keep = left < right
        left, right = left[keep], right[keep]
        shared = shapely.length(
            shapely.intersection(
                shapely.boundary(geoms[left]),
                shapely.buffer(geoms[right], NEIGHBOUR_TOLERANCE_M),
            )
        )
        result: dict[str, list[str]] = {c.istat_code: [] for c in self.comuni_list}
        for i, j, s in zip(left, right, shared, strict=True):
            if s >= NEIGHBOUR_MIN_SHARED_M:
                a, b = str(self.codes[i]), str(self.codes[j])
                result[a].append(b)
                result[b].append(a)
        return {k: tuple(sorted(v)) for k, v in result.items()}

    @cached_property
    def name_index(self):  # -> NameIndex
        """Forgiving name index of the comuni."""
        from geo.names import NameIndex

        return NameIndex((c.name, c.istat_code) for c in self.comuni_list)

    def zona_of(self, comune: Comune) -> Group:
        """The zone of a comune."""
        return self.zones[comune.zona_id]

    def unione_of(self, comune: Comune) -> Group | None:
        """The union of a comune, or None."""
        return self.unions.get(comune.unione_id) if comune.unione_id else None

    def comune_summary(self, code: str) -> dict[str, Any]:
        """Short JSON form of a comune (for lists of neighbours)."""
        c = self.comuni[code]
        return {"istat_code": c.istat_code, "name": c.name}

    def comune_record(self, code: str, *, with_neighbours: bool = True) -> dict[str, Any]:
        """Full JSON answer about a comune: its facts, zone, union and neighbours.

        The territory is immutable, so records are built once; callers get a fresh
        shallow copy they may extend.
        """
        key = (code, with_neighbours)
        rec = self._records.get(key)
        if rec is None:
            rec = self._records[key] = self._build_record(code, with_neighbours)
        return dict(rec)

    def _build_record(self, code: str, with_neighbours: bool) -> dict[str, Any]:
        c = self.comuni[code]
        z = self.zones[c.zona_id]
        u = self.unione_of(c)
        rec: dict[str, Any] = {
            "istat_code": c.istat_code,
            "name": c.name,
            "cadastral_code": c.cadastral_code,
            "population": c.population,
            "area_km2": c.area_km2,
            "zona_omogenea": {
                "id": z.id,
                "name": z.name,
                "confidence": c.zona_confidence,
                "source": c.zona_source,
            },
            "unione": None
            if u is None
            else {"id": u.id, "name": u.name, "short_name": u.short_name},
        }
        if with_neighbours:
            rec["neighbours"] = [self.comune_summary(n) for n in self.neighbours[code]]
        return rec

    def group_record(self, g: Group) -> dict[str, Any]:
        """JSON form of a zone or union (without geometry)."""
        rec: dict[str, Any] = {
            "id": g.id,
            "name": g.name,
            "n_comuni": len(g.comuni),
            "population": g.population,
            "area_km2": g.area_km2,
            "comuni": [self.comune_summary(c) for c in g.comuni],
        }
        if g.kind == "zona":
            rec["official_area_km2"] = g.official_area_km2
        else:
            rec["short_name"] = g.short_name
            rec["zone_omogenee"] = list(g.zone)
        rec["source"] = g.source
        return rec


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _dissolve(comuni: list[Comune], members: list[str]) -> tuple[BaseGeometry, int, float]:
    by = {c.istat_code: c for c in comuni}
    geoms = [by[m].geometry for m in members]
    # Snap away slivers between generalised boundaries, then dissolve.
    merged = shapely.union_all(shapely.set_precision(np.array(geoms), 1e-7))
    return (
        merged,
        sum(by[m].population for m in members),
        round(sum(by[m].area_km2 for m in members), 4),
    )


def load_territory(
    boundaries: Path = BOUNDARIES_FILE, territory_dir: Path = TERRITORY_DIR
) -> Territory:
    """Read, validate and join the committed territory files."""
    raw = boundaries.read_bytes()
    fc = orjson.loads(raw)
    base: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(fc["features"], start=1):
        p = f["properties"]
        code = p["istat_code"]
        if code in base:
            raise DataError(f"{boundaries.name}: feature {i}: duplicate istat_code {code}")
        base[code] = {**p, "geometry": shapely.geometry.shape(f["geometry"])}

    zone_file = territory_dir / "zone_omogenee.csv"
    info_file = territory_dir / "zone_omogenee_info.csv"
    union_file = territory_dir / "unioni_di_comuni.csv"
    zone_info = {r["name"]: r for r in _read_csv(info_file)}
    zona_of: dict[str, dict[str, str]] = {}
    for i, r in enumerate(_read_csv(zone_file), start=2):
        code = r["istat_code"].strip().zfill(6)
        where = f"{zone_file.name}: row {i}"
        if code not in base:
            raise DataError(f"{where}: unknown istat_code {code!r} ({r.get('name')})")
        if code in zona_of:
            raise DataError(f"{where}: duplicate istat_code {code} ({r.get('name')})")
        if r["zona_omogenea"] not in zone_info:
            raise DataError(f"{where}: unknown zona_omogenea {r['zona_omogenea']!r}")
        if r["name"] != base[code]["name"]:
            raise DataError(
                f"{where}: name {r['name']!r} differs from ISTAT's {base[code]['name']!r}"
            )
        zona_of[code] = r
    missing = sorted(set(base) - set(zona_of))
    if missing:
        names = ", ".join(f"{c} {base[c]['name']}" for c in missing)
        raise DataError(f"{zone_file.name}: comuni without a zona omogenea: {names}")

    union_rows: dict[str, list[dict[str, str]]] = {}
    union_of: dict[str, str] = {}
    for i, r in enumerate(_read_csv(union_file), start=2):
        code = r["member_istat_code"].strip().zfill(6)
        where = f"{union_file.name}: row {i}"
        if code not in base:
            raise DataError(f"{where}: unknown member_istat_code {code!r} ({r.get('member_name')})")
        uid = slug(r["short_name"])
        if code in union_of:
            raise DataError(f"{where}: comune {code} is already in union {union_of[code]}")
        union_of[code] = uid
        union_rows.setdefault(uid, []).append(r)

    comuni = [
        Comune(
            istat_code=code,
            name=p["name"],
            cadastral_code=p["cadastral_code"],
            population=int(p["population"]),
            area_km2=float(p["area_km2"]),
            zona_id=slug(zona_of[code]["zona_omogenea"]),
            zona_confidence=zona_of[code]["confidence"],
            zona_source=zona_of[code]["source"],
            unione_id=union_of.get(code),
            geometry=p["geometry"],
        )
        for code, p in sorted(base.items())
    ]

    zones: dict[str, Group] = {}
    for zname, info in sorted(zone_info.items()):
        members = [c.istat_code for c in comuni if c.zona_id == slug(zname)]
        if not members:
            raise DataError(f"{info_file.name}: zona {zname!r} has no comuni")
        geom, pop, area = _dissolve(comuni, members)
        off = info.get("official_area_km2") or ""
        zones[slug(zname)] = Group(
            id=slug(zname),
            name=zname,
            kind="zona",
            comuni=tuple(members),
            population=pop,
            area_km2=area,
            geometry=geom,
            official_area_km2=float(off) if off else None,
            source=info["source"],
        )

    unions: dict[str, Group] = {}
    zona_by_code = {c.istat_code: c.zona_id for c in comuni}
    for uid, rows in sorted(union_rows.items()):
        members = sorted(r["member_istat_code"].zfill(6) for r in rows)
        geom, pop, area = _dissolve(comuni, members)
        unions[uid] = Group(
            id=uid,
            name=rows[0]["union_name"],
            short_name=rows[0]["short_name"],
            kind="unione",
            comuni=tuple(members),
            population=pop,
            area_km2=area,
            geometry=geom,
            source=" | ".join(sorted({r["source"] for r in rows})),
            zone=tuple(sorted({zona_by_code[m] for m in members})),
        )

    digest = hashlib.sha256(raw)
    for f in (zone_file, info_file, union_file):
        digest.update(f.read_bytes())
    return Territory(comuni, zones, unions, version=digest.hexdigest()[:16])


@lru_cache(maxsize=1)
def get_territory() -> Territory:
    """The process-wide territory, loaded once from the committed files."""
    return load_territory()
