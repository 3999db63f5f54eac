"""Green-network layers in the store: add, list, get, rename, delete, measure, serve.

A layer is stored in the same database as the interventions (tables ``layers`` and
``layer_features``, migration ``0002_layers``): geometries as CRS84 WKB plus bbox
columns (and a generated PostGIS ``geom`` on PostgreSQL). Every stored layer is served as
the OGC collection ``/collections/{id}`` through :data:`geo.collections.registry`,
registered at start-up (:func:`sync_registry`) and on every change.

Ids are slugs of the name (``Parco del Roccolo`` → ``parco-del-roccolo``), made unique
(``-2``, ``-3``…) and never equal to another collection's id; renaming changes the name
only, so URLs stay stable. Metrics are computed by :mod:`geo.overlay` in EPSG:32632 from
the stored CRS84 WKB, so both backends give the same numbers.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo.collections import (
    MemoryProvider,
    Queryable,
    Registry,
    SnapshotProvider,
    registry,
)
from geo.crs import CRS84, SUPPORTED_URIS, epsg_uri
from geo.errors import InvalidParameter, NotFound
from geo.layers_io import LayerData
from geo.names import fold
from geo.overlay import Interventions, layer_metrics
from geo.store import bump_revision, get_engine, metadata, revision, transaction, utcnow
from geo.territory import get_territory, to_metric

TOPIC = "layers"
#: Collection ids that are not layers (a layer never takes them).
RESERVED_IDS = frozenset({"comuni", "zone-omogenee", "unioni", "interventions", "layers"})
MAX_NAME = 200

layers_table = sa.Table(
    "layers",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("geometry_type", sa.String(10), nullable=False),
    sa.Column("feature_count", sa.Integer, nullable=False),
    sa.Column("source_crs", sa.String(200), nullable=False),
    sa.Column("minx", sa.Float, nullable=False),
    sa.Column("miny", sa.Float, nullable=False),
    sa.Column("maxx", sa.Float, nullable=False),
    sa.Column("maxy", sa.Float, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

features_table = sa.Table(
    "layer_features",
    metadata,
    sa.Column("layer_id", sa.String(80), primary_key=True),
    sa.Column("fid", sa.Integer, primary_key=True),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("geometry_wkb", sa.LargeBinary, nullable=False),
    sa.Column("minx", sa.Float, nullable=False),
    sa.Column("miny", sa.Float, nullable=False),
    sa.Column("maxx", sa.Float, nullable=False),
    sa.Column("maxy", sa.Float, nullable=False),
)


# ----- records ------------------------------------------------------------------------------


def _iso(ts: datetime) -> str:
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    return ts.isoformat().replace("+00:00", "Z")


def _record(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "geometry_type": r.geometry_type,
        "feature_count": r.feature_count,
        "source_crs": r.source_crs,
        "bbox": [r.minx, r.miny, r.maxx, r.maxy],
        "fields": list(r.fields),
        "report": dict(r.report),
        "created": _iso(r.created_at),
        "updated": _iso(r.updated_at),
    }


def _slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", fold(name)).strip("-")[:60].strip("-")
    return base or "layer"


def _clean_name(name: str | None, fallback: str) -> str:
    text = (name if name is not None else fallback).strip()
    if not text:
        raise InvalidParameter("name", "must not be empty")
    if len(text) > MAX_NAME:
        raise InvalidParameter("name", f"at most {MAX_NAME} characters")
    return text


# ----- writes -------------------------------------------------------------------------------


def add_layer(
    data: LayerData,
    name: str | None = None,
    *,
    engine: Engine | None = None,
    reg: Registry | None = None,
) -> dict[str, Any]:
    """Store a read and validated layer (one transaction) and serve it; its record."""
    engine = engine or get_engine()
    label = _clean_name(name, data.name)
    base = _slug(label)
    now = utcnow()
    wkb = shapely.to_wkb(data.geometries, output_dimension=2)
    bounds = shapely.bounds(data.geometries)
    with transaction(engine) as conn:
        taken = set(
            conn.execute(
                sa.select(layers_table.c.id).where(layers_table.c.id.like(f"{base}%"))
            ).scalars()
        )
        r = reg if reg is not None else registry
        taken |= RESERVED_IDS | (set(r.ids()) - _registered_ids(r))
        layer_id, n = base, 1
        while layer_id in taken:
            n += 1
            layer_id = f"{base}-{n}"
        conn.execute(
            layers_table.insert().values(
                id=layer_id,
                name=label,
                geometry_type=data.family,
                feature_count=data.feature_count,
                source_crs=data.source_crs,
                minx=data.bbox[0],
                miny=data.bbox[1],
                maxx=data.bbox[2],
                maxy=data.bbox[3],
                fields=data.fields,
                report=data.report,
                created_at=now,
                updated_at=now,
            )
        )
        rows = [
            {
                "layer_id": layer_id,
                "fid": i + 1,
                "properties": data.properties[i],
                "geometry_wkb": wkb[i],
                "minx": float(bounds[i, 0]),
                "miny": float(bounds[i, 1]),
                "maxx": float(bounds[i, 2]),
                "maxy": float(bounds[i, 3]),
            }
            for i in range(data.feature_count)
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(features_table.insert(), rows[start : start + 5000])
        bump_revision(conn, TOPIC)
    sync_registry(engine, reg)
    return get_layer(layer_id, engine=engine)


def rename_layer(
    layer_id: str, name: str, *, engine: Engine | None = None, reg: Registry | None = None
) -> dict[str, Any]:
    """Give a layer a new name (its id, and so its URLs, stay)."""
    engine = engine or get_engine()
    label = _clean_name(name, "")
    with transaction(engine) as conn:
        n = conn.execute(
            layers_table.update()
            .where(layers_table.c.id == layer_id)
            .values(name=label, updated_at=utcnow())
        ).rowcount
        if not n:
            raise _not_found(layer_id)
        bump_revision(conn, TOPIC)
    sync_registry(engine, reg)
    return get_layer(layer_id, engine=engine)


def delete_layer(
    layer_id: str, *, engine: Engine | None = None, reg: Registry | None = None
) -> None:
    """Delete a layer and its features, and stop serving it."""
    engine = engine or get_engine()
    with transaction(engine) as conn:
        conn.execute(features_table.delete().where(features_table.c.layer_id == layer_id))
        n = conn.execute(layers_table.delete().where(layers_table.c.id == layer_id)).rowcount
        if not n:
            raise _not_found(layer_id)
        bump_revision(conn, TOPIC)
    sync_registry(engine, reg)


# ----- reads --------------------------------------------------------------------------------


def _not_found(layer_id: str) -> NotFound:
    return NotFound(f"no layer {layer_id!r}; GET /layers lists them", parameter="layer_id")


def list_layers(*, engine: Engine | None = None) -> list[dict[str, Any]]:
    """Every stored layer (records with report), oldest first."""
    with (engine or get_engine()).connect() as conn:
        rows = conn.execute(
            sa.select(layers_table).order_by(layers_table.c.created_at, layers_table.c.id)
        ).all()
    return [_record(r) for r in rows]


def get_layer(layer_id: str, *, engine: Engine | None = None) -> dict[str, Any]:
    """One layer's record; NotFound otherwise."""
    with (engine or get_engine()).connect() as conn:
        row = conn.execute(sa.select(layers_table).where(layers_table.c.id == layer_id)).first()
    if row is None:
        raise _not_found(layer_id)
    return _record(row)


@dataclass
class StoredLayer:
    """A layer's record and its features, loaded from the store."""

    record: dict[str, Any]
    fids: np.ndarray
    geometries: np.ndarray  # CRS84
    properties: list[dict[str, Any]]

    @property
    def metric_geometries(self) -> np.ndarray:
        """EPSG:32632 geometries, repaired where reprojection nudged them invalid."""
        geoms = to_metric(self.geometries)
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = shapely.make_valid(geoms[bad])
        return geoms


_cache: dict[tuple[int, str], tuple[str, StoredLayer]] = {}
_cache_lock = threading.Lock()


def load_layer(layer_id: str, *, engine: Engine | None = None) -> StoredLayer:
    """A layer with its features (cached until the layer changes)."""
    engine = engine or get_engine()
    record = get_layer(layer_id, engine=engine)
    key = (id(engine), layer_id)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == record["updated"] + record["created"]:
        hit[1].record = record
        return hit[1]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                features_table.c.fid, features_table.c.properties, features_table.c.geometry_wkb
            )
            .where(features_table.c.layer_id == layer_id)
            .order_by(features_table.c.fid)
        ).all()
    layer = StoredLayer(
        record=record,
        fids=np.array([r.fid for r in rows], dtype=int),
        geometries=shapely.from_wkb([bytes(r.geometry_wkb) for r in rows])
        if rows
        else np.array([], dtype=object),
        properties=[dict(r.properties) for r in rows],
    )
    with _cache_lock:
        _cache[key] = (record["updated"] + record["created"], layer)
    return layer


def metrics(
    layer_id: str,
    by: str = "comune",
    within_m: float | None = 0.0,
    *,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Overlay metrics of a stored layer per comune, zona or unione, with interventions.

    Only interventions with their own geometry (``precision = exact``) are related to the
    layer: those placed at their comune's representative point are not where they are.
    """
    from geo.interventions import snapshot

    engine = engine or get_engine()
    layer = load_layer(layer_id, engine=engine)
    snap = snapshot(engine)
    exact = [i for i, p in enumerate(snap.properties) if p.get("precision") == "exact"]
    iv = Interventions(
        ids=[snap.ids[i] for i in exact],
        geometries=np.asarray(snap.geometries, dtype=object)[exact]
        if exact
        else np.array([], dtype=object),
    )
    result = layer_metrics(
        layer.record["geometry_type"],
        layer.metric_geometries,
        by,
        interventions=iv,
        within_m=within_m,
    )
    result["layer"] = {k: layer.record[k] for k in ("id", "name", "geometry_type")}
    result["interventions_considered"] = len(exact)
    result["interventions_note"] = (
        "only interventions with their own geometry (precision=exact) are related to the "
        "layer; those placed at their comune are not"
    )
    return {"layer": result.pop("layer"), **result}


# ----- the collection registry --------------------------------------------------------------


def crs_list(source_crs: str) -> list[str]:
    """CRS URIs a layer is offered in: CRS84, the upload's CRS when supported, the rest."""
    uris = [CRS84]
    m = re.fullmatch(r"EPSG:(\d+)", source_crs)
    if m and epsg_uri(int(m.group(1))) in SUPPORTED_URIS:
        uris.append(epsg_uri(int(m.group(1))))
    return uris + [u for u in SUPPORTED_URIS if u not in uris]


class LayerProvider(SnapshotProvider):
    """One stored layer as an OGC collection, rebuilt from the store when it changes."""

    def __init__(self, layer_id: str, engine: Engine | None = None) -> None:
        super().__init__()
        self.id = layer_id
        self._engine = engine
        self._current()

    def _source(self) -> tuple[str, StoredLayer]:
        layer = load_layer(self.id, engine=self._engine)
        return layer.record["updated"] + layer.record["created"], layer

    def _build(self, layer: StoredLayer) -> MemoryProvider:
        rec = layer.record
        feats = [
            {"id": int(fid), "properties": p, "geometry": g}
            for fid, p, g in zip(layer.fids, layer.properties, layer.geometries, strict=True)
        ]
        queryables = [Queryable(f["name"], _ogc_type(f["type"])) for f in rec["fields"]]
        self.title = rec["name"]
        self.description = (
            f"Uploaded {rec['geometry_type']} layer ({rec['feature_count']} features); "
            f"uploaded in {rec['source_crs']}, stored and served in CRS84. "
            f"Metrics per comune/zona/unione: /layers/{self.id}/metrics"
        )
        self.keywords = ("green network", "layer", rec["geometry_type"])
        #: CRSs this layer is offered in (the upload's own CRS listed second).
        self.crs = crs_list(rec["source_crs"])
        self.source_crs = rec["source_crs"]
        return MemoryProvider(
            self.id,
            rec["name"],
            feats,
            version=f"{self.id}-{rec['updated']}{rec['created']}",
            last_modified=datetime.fromisoformat(rec["updated"].replace("Z", "+00:00")),
            description=self.description,
            keywords=self.keywords,
            queryables=queryables or None,
        )


def _ogc_type(t: str) -> str:
    return {"date": "string", "time": "string", "array": "string"}.get(t, t)


_registered: dict[int, set[str]] = {}
_synced: dict[tuple[int, int], int] = {}
_reg_lock = threading.Lock()


def _registered_ids(reg: Registry | None = None) -> set[str]:
    return set(_registered.get(id(reg if reg is not None else registry), set()))


def sync_registry(engine: Engine | None = None, reg: Registry | None = None) -> list[str]:
    """Register every stored layer in the collection registry, unregister deleted ones.

    Cheap when nothing changed (one read of the store's ``layers`` revision). Returns the
    layer ids served.
    """
    engine = engine or get_engine()
    reg = reg if reg is not None else registry
    rev, _ = revision(engine, TOPIC)
    key = (id(engine), id(reg))
    with _reg_lock:
        current = _registered.setdefault(id(reg), set())
        if _synced.get(key) == rev:
            return sorted(current)
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(layers_table.c.id)).scalars())
    with _reg_lock:
        for gone in current - ids:
            reg.unregister(gone)
        for lid in sorted(ids):
            # Re-register changed layers too, so the registry's built instance is fresh.
            reg.register(lid, lambda lid=lid: LayerProvider(lid, engine))
        _registered[id(reg)] = ids
        _synced[key] = rev
    return sorted(ids)


# ----- membership facts ---------------------------------------------------------------------


def _matches(value: Any, key: str) -> bool:
    if not isinstance(value, str) or len(value) < 4:
        return False
    v = fold(value)
    return v == key or (len(key) >= 6 and (key in v or v in key))


def membership_check(layer_id: str, name: str, *, engine: Engine | None = None) -> dict[str, Any]:
    """Check a membership entry (``data/green_network/membership.csv``) against a layer.

    The layer's features whose text attributes name the entry (e.g. ``NOME_PLIS``) are
    used when there are any, else the whole layer. A comune counts as touched when the
    layer covers at least TOUCH_MIN_M2 of it (lines: TOUCH_MIN_M; points: one point), so
    slivers from generalised boundaries do not count.
    """
    from geo.green_network import TOUCH_MIN_M, TOUCH_MIN_M2, find_entry

    engine = engine or get_engine()
    entry = find_entry(name)
    layer = load_layer(layer_id, engine=engine)
    key = fold(entry["name"])
    key_short = fold(re.sub(r"\(.*?\)", "", entry["name"])).strip()
    chosen = [
        i
        for i, p in enumerate(layer.properties)
        if any(_matches(v, key) or _matches(v, key_short) for v in p.values())
    ]
    used = np.array(chosen if chosen else range(len(layer.fids)), dtype=int)
    family = layer.record["geometry_type"]
    result = layer_metrics(family, layer.metric_geometries[used], "comune")
    t = get_territory()
    touched: set[str] = set()
    measure: dict[str, Any] = {}
    for r in result["units"]:
        value = r.get("covered_km2", r.get("length_km", r.get("count")))
        measure[r["id"]] = value
        if (
            (family == "polygon" and r["covered_km2"] * 1e6 >= TOUCH_MIN_M2)
            or (family == "line" and r["length_km"] * 1e3 >= TOUCH_MIN_M)
            or (family == "point" and r["count"] > 0)
        ):
            touched.add(r["id"])
    listed = {c["istat_code"] for c in entry["comuni"] if c["istat_code"]}

    unit = {"polygon": "covered_km2", "line": "length_km", "point": "count"}[family]

    def named(codes: set[str]) -> list[dict[str, Any]]:
        return [{**t.comune_summary(c), unit: measure[c]} for c in sorted(codes)]

    return {
        "layer": {"id": layer_id, "name": layer.record["name"]},
        "entry": {k: entry[k] for k in ("layer_kind", "name", "source", "status")},
        "features_used": len(used),
        "matched_by": ("features whose attributes name the entry" if chosen else "the whole layer"),
        "matched_features": [int(layer.fids[i]) for i in chosen],
        "touch_threshold": {"polygon_m2": TOUCH_MIN_M2, "line_m": TOUCH_MIN_M, "point": 1},
        "listed_and_touched": named(listed & touched),
        "listed_not_touched": named(listed - touched),
        "touched_not_listed": named(touched - listed),
        "listed_outside_metropolitan_city": [
            c["name"] for c in entry["comuni"] if not c["istat_code"]
        ],
    }
