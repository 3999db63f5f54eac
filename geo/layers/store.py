"""Green-network layers in the store: add, list, get, rename, delete, measure, serve.

A layer is stored in the same database as the interventions (tables ``layers`` and
``layer_features``, migration ``0002_layers``): geometries as CRS84 WKB plus bbox
columns (and a generated PostGIS ``geom`` on PostgreSQL). Every stored layer is served as
the OGC collection ``/collections/{id}`` (:mod:`geo.layers.collection`).

Ids are slugs of the name (``Parco del Roccolo`` → ``parco-del-roccolo``), made unique
(``-2``, ``-3``…) and never equal to another collection's id; renaming changes the name
only, so URLs stay stable. :func:`find_by_name` tells an upload whose name is taken (the
app then asks: replace, :func:`store_replace`, keeping id and owner, or keep both).
Metrics are computed by :mod:`geo.layers.overlay` in EPSG:32632 from
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

from geo.errors import InvalidParameter, NotFound
from geo.layers.reading import LayerData
from geo.names import fold
from geo.ogc.encode import kept_geometry_texts
from geo.store import bump_revision, get_engine, metadata, store_meta, transaction, utcnow
from geo.territory import to_metric

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
    sa.Column("owner", sa.Text),  # who uploaded it (geo.auth.Principal.owner), 0004
)

features_table = sa.Table(
    "layer_features",
    metadata,
    sa.Column("layer_id", sa.String(80), primary_key=True),
    sa.Column("fid", sa.Integer, primary_key=True),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("geometry_wkb", sa.LargeBinary, nullable=False),
    # SQLite: its GeoJSON text, rounded (geo.ogc.encode.stored_geometry_texts), 0010.
    sa.Column("geometry_json", sa.Text),
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
        "owner": r.owner,
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
    if not text.isprintable():  # they would end up in every listing and page
        raise InvalidParameter("name", f"control characters in the name {text!r}")
    return text


# ----- writes -------------------------------------------------------------------------------


def store_add(
    data: LayerData,
    name: str | None = None,
    *,
    engine: Engine | None = None,
    reserved: frozenset[str] | set[str] = frozenset(),
    owner: str | None = None,
) -> dict[str, Any]:
    """Store a read and validated layer (one transaction); its record.

    ``reserved``: ids of other collections, which a layer's id never takes; ``owner``: who
    uploads it (:attr:`geo.auth.Principal.owner`).
    """
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
        taken |= RESERVED_IDS | set(reserved)
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
                owner=owner,
            )
        )
        _insert_features(conn, layer_id, data, wkb, bounds)
        bump_revision(conn, TOPIC)
    return get_layer(layer_id, engine=engine)


def store_replace(
    layer_id: str, data: LayerData, name: str | None = None, *, engine: Engine | None = None
) -> dict[str, Any]:
    """Replace a layer's features and report with a new upload; id, URLs and owner stay."""
    engine = engine or get_engine()
    wkb = shapely.to_wkb(data.geometries, output_dimension=2)
    bounds = shapely.bounds(data.geometries)
    with transaction(engine) as conn:
        values: dict[str, Any] = {
            "geometry_type": data.family,
            "feature_count": data.feature_count,
            "source_crs": data.source_crs,
            "minx": data.bbox[0],
            "miny": data.bbox[1],
            "maxx": data.bbox[2],
            "maxy": data.bbox[3],
            "fields": data.fields,
            "report": data.report,
            "updated_at": utcnow(),
        }
        if name is not None:
            values["name"] = _clean_name(name, "")
        n = conn.execute(
            layers_table.update().where(layers_table.c.id == layer_id).values(**values)
        ).rowcount
        if not n:
            raise _not_found(layer_id)
        conn.execute(features_table.delete().where(features_table.c.layer_id == layer_id))
        _insert_features(conn, layer_id, data, wkb, bounds)
        bump_revision(conn, TOPIC)
    return get_layer(layer_id, engine=engine)


def _insert_features(
    conn: Any, layer_id: str, data: LayerData, wkb: np.ndarray, bounds: np.ndarray
) -> None:
    texts = kept_geometry_texts(wkb)
    rows = [
        {
            "layer_id": layer_id,
            "fid": i + 1,
            "properties": data.properties[i],
            "geometry_wkb": wkb[i],
            "geometry_json": texts[i],
            "minx": float(bounds[i, 0]),
            "miny": float(bounds[i, 1]),
            "maxx": float(bounds[i, 2]),
            "maxy": float(bounds[i, 3]),
        }
        for i in range(data.feature_count)
    ]
    for start in range(0, len(rows), 5000):
        conn.execute(features_table.insert(), rows[start : start + 5000])


def store_rename(layer_id: str, name: str, *, engine: Engine | None = None) -> dict[str, Any]:
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
    return get_layer(layer_id, engine=engine)


def store_delete(layer_id: str, *, engine: Engine | None = None) -> None:
    """Delete a layer and its features (the record locked first, as the feature writes of
    :mod:`geo.layers.editing` do, so the two never wait for each other in a circle)."""
    engine = engine or get_engine()
    with transaction(engine) as conn:
        conn.execute(
            sa.select(layers_table.c.id).where(layers_table.c.id == layer_id).with_for_update()
        ).first()
        conn.execute(features_table.delete().where(features_table.c.layer_id == layer_id))
        conn.execute(store_meta.delete().where(store_meta.c.key == fid_key(layer_id)))
        n = conn.execute(layers_table.delete().where(layers_table.c.id == layer_id)).rowcount
        if not n:
            raise _not_found(layer_id)
        bump_revision(conn, TOPIC)


def fid_key(layer_id: str) -> str:
    """``store_meta`` key of the highest feature id a layer ever had (ids of deleted
    features are never given again, :mod:`geo.layers.editing`)."""
    return f"layer-last-fid:{layer_id}"


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


def find_by_name(name: str, *, engine: Engine | None = None) -> dict[str, Any] | None:
    """The layer a new upload named ``name`` would collide with (same name or same id)."""
    label = (name or "").strip()
    if not label:
        return None
    slug, folded = _slug(label), fold(label)
    for rec in list_layers(engine=engine):
        if rec["id"] == slug or fold(rec["name"]) == folded:
            return rec
    return None


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
