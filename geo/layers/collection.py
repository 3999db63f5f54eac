"""Every stored layer as an OGC collection, registered in the collection registry.

:func:`sync_registry` registers new layers and unregisters deleted ones (cheap when the
store's ``layers`` revision is unchanged). :func:`add_layer`, :func:`replace_layer`,
:func:`rename_layer` and :func:`delete_layer` write through :mod:`geo.layers.store` and
then publish the change.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo.crs import CRS84, SUPPORTED_URIS, epsg_uri
from geo.layers.reading import LayerData
from geo.layers.store import (
    TOPIC,
    StoredLayer,
    layers_table,
    load_layer,
    store_add,
    store_delete,
    store_rename,
    store_replace,
)
from geo.ogc.registry import MemoryProvider, Queryable, Registry, SnapshotProvider, registry
from geo.store import get_engine, read_connection, revision


def crs_list(source_crs: str) -> list[str]:
    """CRS URIs a layer is offered in: CRS84, the upload's CRS when supported, the rest."""
    uris = [CRS84]
    m = re.fullmatch(r"EPSG:(\d+)", source_crs)
    if m and epsg_uri(int(m.group(1))) in SUPPORTED_URIS:
        uris.append(epsg_uri(int(m.group(1))))
    return uris + [u for u in SUPPORTED_URIS if u not in uris]


class LayerProvider(SnapshotProvider):
    """One stored layer as an OGC collection, rebuilt from the store when it changes.

    No longer served (:class:`geo.layers.sql_collection.LayerSqlProvider` is): kept as the
    reference the tests compare the store's answers with.
    """

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
        queryables = [_queryable(f["name"], f["type"]) for f in rec["fields"]]
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


def _queryable(name: str, t: str) -> Queryable:
    """A field of the upload as a queryable: dates keep ``format: date`` (Part 5)."""
    if t in ("date", "time"):
        return Queryable(name, "string", format=t)
    if t == "array":
        return Queryable(name, "string", array=True)
    return Queryable(name, t)


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
    from geo.layers.sql_collection import LayerSqlProvider  # it imports this module

    with read_connection(engine) as conn:
        ids = set(conn.execute(sa.select(layers_table.c.id)).scalars())
    with _reg_lock:
        for gone in current - ids:
            reg.unregister(gone)
        for lid in sorted(ids):
            # Re-register changed layers too, so the registry's built instance is fresh.
            reg.register(lid, lambda lid=lid: LayerSqlProvider(lid, engine))
        _registered[id(reg)] = ids
        _synced[key] = rev
    return sorted(ids)


#: The default registry lists the stored layers too, synced lazily (the database may be down
#: when the service starts; an outage only postpones the sync).
registry.add_refresher(sync_registry)


# ----- writes that change what is served ----------------------------------------------------


def add_layer(
    data: LayerData,
    name: str | None = None,
    *,
    engine: Engine | None = None,
    reg: Registry | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Store a read and validated layer (one transaction) and serve it; its record."""
    engine = engine or get_engine()
    r = reg if reg is not None else registry
    reserved = set(r.ids()) - _registered_ids(r)
    record = store_add(data, name, engine=engine, reserved=reserved, owner=owner)
    sync_registry(engine, reg)
    return record


def replace_layer(
    layer_id: str,
    data: LayerData,
    name: str | None = None,
    *,
    engine: Engine | None = None,
    reg: Registry | None = None,
) -> dict[str, Any]:
    """Replace a layer's features with a new upload (same id and URLs) and serve them."""
    engine = engine or get_engine()
    record = store_replace(layer_id, data, name, engine=engine)
    sync_registry(engine, reg)
    return record


def rename_layer(
    layer_id: str, name: str, *, engine: Engine | None = None, reg: Registry | None = None
) -> dict[str, Any]:
    """Give a layer a new name (its id, and so its URLs, stay)."""
    engine = engine or get_engine()
    record = store_rename(layer_id, name, engine=engine)
    sync_registry(engine, reg)
    return record


def delete_layer(
    layer_id: str, *, engine: Engine | None = None, reg: Registry | None = None
) -> None:
    """Delete a layer and its features, and stop serving it."""
    engine = engine or get_engine()
    store_delete(layer_id, engine=engine)
    sync_registry(engine, reg)
