"""What the maps show, read from the OGC collections (interventions, layers).

The maps never open the store themselves: they ask the collection registry, so a map
shows what the API serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from geo.errors import NotFound, ServiceUnavailable
from geo.lazy import lazy_module
from geo.settings import get_settings
from geo.territory import get_territory

folium = lazy_module("folium")  # it imports pandas: on the first map drawn (geo.lazy)

#: Collections that are not green-network layers.
NON_LAYER_COLLECTIONS = frozenset({"comuni", "zone-omogenee", "unioni", "interventions", "layers"})


_MAX_FEATURES = 1_000_000


def _registry():
    from geo.ogc.registry import registry

    return registry


def _interventions_provider():
    """The ``interventions`` collection, registering it when its module is installed."""
    reg = _registry()
    if "interventions" not in reg:
        try:
            from geo.interventions import collection as interventions_collection
        except ImportError:
            return None
        interventions_collection.register(reg)
    return reg.get("interventions")


def interventions_available() -> bool:
    """Whether this service has the interventions collection."""
    try:
        return _interventions_provider() is not None
    except Exception:  # a store that cannot be opened: maps without interventions
        return False


def fetch_interventions(
    filters: Mapping[str, str] | None = None, *, optional: bool = True
) -> list[dict[str, Any]] | None:
    """Interventions matching the API's property filters (programme, mission, driver,
    status, comune, zona, unione, …) as GeoJSON features, or None when unavailable.

    ``optional``: a page that merely shows interventions beside the territory (a comune,
    a zone) renders without them while the database is down; the interventions map
    passes ``optional=False`` and answers 503.
    """
    from geo.ogc.registry import FeatureQuery

    if not interventions_available():
        return None
    provider = _interventions_provider()
    q = FeatureQuery(properties_eq=dict(filters or {}), limit=_MAX_FEATURES)
    try:
        return list(provider.query(q).features)
    except ServiceUnavailable:
        if optional:
            return None
        raise


def _stored_layers() -> dict[str, str]:
    """Layers of the store (geo.layers), id → name; {} when that module is absent."""
    try:
        from geo import layers
    except ImportError:
        return {}
    try:
        layers.sync_registry()
        return {r["id"]: r["name"] for r in layers.list_layers()}
    except Exception:  # a store that cannot be opened: no layers on the maps
        return {}


def available_layers() -> list[tuple[str, str]]:
    """(id, title) of the green-network layers: stored ones and other registered layers."""
    found = _stored_layers()
    reg = _registry()
    for cid in reg.ids():
        if cid in NON_LAYER_COLLECTIONS or cid in found:
            continue
        try:
            p = reg.get(cid)
        except Exception:
            continue
        if p is not None:
            found[cid] = p.title
    return list(found.items())


def _family(geoms: np.ndarray) -> str:
    from geo.layers.reading import LINE, POINT, POLYGON

    kinds = set(shapely.get_type_id(geoms).tolist())
    if kinds & {3, 6}:
        return POLYGON
    if kinds & {1, 2, 5}:
        return LINE
    return POINT


#: Metric shown per geometry family: (key in the metrics rows, legend label).
LAYER_METRIC = {
    "polygon": ("share", "Quota coperta (%)"),
    "line": ("length_km", "Lunghezza (km)"),
    "point": ("count", "Numero di elementi"),
}


def _layer_geometries(layer_id: str) -> tuple[np.ndarray, str, dict[str, Any] | None]:
    """CRS84 geometries, title and (for stored layers) per-comune metrics of a layer."""
    stored = _stored_layers()
    if layer_id in stored:
        from geo import layers

        return layers.load_layer(layer_id).geometries, stored[layer_id], layers.metrics(layer_id)
    from geo.ogc.registry import FeatureQuery

    provider = _registry().get(layer_id)
    if provider is None or layer_id in NON_LAYER_COLLECTIONS:
        raise NotFound(f"no layer {layer_id!r}", parameter="layer_id")
    feats = provider.query(FeatureQuery(limit=_MAX_FEATURES)).features
    geoms = [shapely.geometry.shape(f["geometry"]) for f in feats if f.get("geometry")]
    return np.array(geoms, dtype=object), provider.title, None


def data_version(layer_id: str | None = None) -> str:
    """Token of everything a map depends on: territory, interventions, layer, tiles, assets."""
    parts = [get_territory().version, get_settings().tiles_url, folium.__version__]
    try:
        p = _interventions_provider()
        parts.append(p.version() if p is not None else "-")
    except Exception:
        parts.append("?")
    if layer_id is not None:
        p = _registry().get(layer_id)
        parts.append(p.version() if p is not None else "-")
    parts.extend(f"{i}:{t}" for i, t in available_layers())
    return "|".join(parts)
