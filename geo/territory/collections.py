"""The territory as OGC collections: ``comuni``, ``zone-omogenee``, ``unioni``.

Each is a :class:`geo.ogc.registry.MemoryProvider` built from the territory; properties
are flat (GDAL, GeoPackage and QGIS read flat attributes best).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from geo import BOUNDARIES_ATTRIBUTION, REPO_DATA_DIR
from geo.ogc.registry import MemoryProvider, Queryable, Registry, registry
from geo.territory import Group, Territory, get_territory

#: Licence of the ISTAT boundaries (see README "Data and licences").
BOUNDARIES_LICENSE = (
    "CC BY 4.0 — © ISTAT, openpolis",
    "https://creativecommons.org/licenses/by/4.0/",
)

COMUNI_QUERYABLES = [
    Queryable("istat_code", "string", "ISTAT code (6 digits)"),
    Queryable("name", "string", "Name"),
    Queryable("cadastral_code", "string", "Cadastral (Belfiore) code"),
    Queryable("population", "integer", "Resident population"),
    Queryable("area_km2", "number", "Area (km²)"),
    Queryable("zona_omogenea_id", "string", "Zona omogenea id"),
    Queryable("zona_omogenea_name", "string", "Zona omogenea"),
    Queryable("zona_confidence", "string", "Confidence of the zone assignment"),
    Queryable("unione_id", "string", "Union of comuni id"),
    Queryable("unione_name", "string", "Union of comuni"),
]

GROUP_QUERYABLES = [
    Queryable("id", "string", "Id"),
    Queryable("name", "string", "Name"),
    Queryable("n_comuni", "integer", "Number of comuni"),
    Queryable("population", "integer", "Resident population"),
    Queryable("area_km2", "number", "Area (km²)"),
]


def _last_modified() -> datetime:
    """Newest modification time of the committed territory files."""
    files = [*(REPO_DATA_DIR / "boundaries").glob("*"), *(REPO_DATA_DIR / "territory").glob("*")]
    newest = max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)
    return datetime.fromtimestamp(int(newest), tz=UTC)


def comuni_features(t: Territory) -> list[dict[str, Any]]:
    """The comuni as flat features."""
    out = []
    for c in t.comuni_list:
        z = t.zona_of(c)
        u = t.unione_of(c)
        out.append(
            {
                "id": c.istat_code,
                "geometry": c.geometry,
                "properties": {
                    "istat_code": c.istat_code,
                    "name": c.name,
                    "cadastral_code": c.cadastral_code,
                    "population": c.population,
                    "area_km2": c.area_km2,
                    "zona_omogenea_id": z.id,
                    "zona_omogenea_name": z.name,
                    "zona_confidence": c.zona_confidence,
                    "unione_id": u.id if u else None,
                    "unione_name": u.name if u else None,
                },
            }
        )
    return out


def group_features(groups: list[Group]) -> list[dict[str, Any]]:
    """Zones or unions as flat features."""
    out = []
    for g in groups:
        props: dict[str, Any] = {
            "id": g.id,
            "name": g.name,
            "n_comuni": len(g.comuni),
            "population": g.population,
            "area_km2": g.area_km2,
        }
        if g.kind == "zona":
            props["official_area_km2"] = g.official_area_km2
        else:
            props["short_name"] = g.short_name
        out.append({"id": g.id, "geometry": g.geometry, "properties": props})
    return out


def comuni_provider(t: Territory | None = None) -> MemoryProvider:
    """``comuni``: the 133 comuni of the metropolitan city."""
    t = t or get_territory()
    return MemoryProvider(
        "comuni",
        "Comuni della Città metropolitana di Milano",
        comuni_features(t),
        version=t.version,
        last_modified=_last_modified(),
        description="The 133 comuni with ISTAT and cadastral codes, population, area, "
        "zona omogenea and union of comuni.",
        keywords=("comuni", "confini", "ISTAT", "Città metropolitana di Milano"),
        queryables=COMUNI_QUERYABLES,
        attribution=BOUNDARIES_ATTRIBUTION,
        translations={
            "it": (
                "Comuni della Città metropolitana di Milano",
                "I 133 comuni con codici ISTAT e catastali, popolazione, superficie, zona "
                "omogenea e unione di comuni.",
            ),
            "en": (
                "Municipalities (comuni) of the Metropolitan City of Milan",
                "The 133 comuni with ISTAT and cadastral codes, population, area, zona "
                "omogenea and union of comuni.",
            ),
        },
        geometry_type="MultiPolygon",
        license=BOUNDARIES_LICENSE,
    )


def zones_provider(t: Territory | None = None) -> MemoryProvider:
    """``zone-omogenee``: the 7 zone omogenee and Milano, dissolved from the comuni."""
    t = t or get_territory()
    return MemoryProvider(
        "zone-omogenee",
        "Zone omogenee",
        group_features(list(t.zones.values())),
        version=t.version,
        last_modified=_last_modified(),
        description="The zone omogenee of the metropolitan city (and Milano), "
        "dissolved from their comuni.",
        keywords=("zone omogenee", "Città metropolitana di Milano"),
        queryables=[*GROUP_QUERYABLES, Queryable("official_area_km2", "number", "Official area")],
        attribution=BOUNDARIES_ATTRIBUTION,
        translations={
            "it": (
                "Zone omogenee",
                "Le zone omogenee della Città metropolitana (e Milano), unione dei loro comuni.",
            ),
            "en": (
                "Homogeneous zones (zone omogenee)",
                "The zone omogenee of the metropolitan city (and Milano), dissolved from "
                "their comuni.",
            ),
        },
        geometry_type="MultiPolygon",
        license=BOUNDARIES_LICENSE,
    )


def unions_provider(t: Territory | None = None) -> MemoryProvider:
    """``unioni``: the unions of comuni, dissolved from their members."""
    t = t or get_territory()
    return MemoryProvider(
        "unioni",
        "Unioni di comuni",
        group_features(list(t.unions.values())),
        version=t.version,
        last_modified=_last_modified(),
        description="The unions of comuni, dissolved from their members.",
        keywords=("unioni di comuni", "Città metropolitana di Milano"),
        queryables=[*GROUP_QUERYABLES, Queryable("short_name", "string", "Short name")],
        attribution=BOUNDARIES_ATTRIBUTION,
        translations={
            "it": ("Unioni di comuni", "Le unioni di comuni, unione dei loro membri."),
            "en": ("Unions of comuni", "The unions of comuni, dissolved from their members."),
        },
        geometry_type="MultiPolygon",
        license=BOUNDARIES_LICENSE,
    )


def register_territory(reg: Registry | None = None) -> None:
    """Register the three territory collections (built lazily on first use)."""
    reg = reg if reg is not None else registry
    reg.register("comuni", comuni_provider, static=True)
    reg.register("zone-omogenee", zones_provider, static=True)
    reg.register("unioni", unions_provider, static=True)
