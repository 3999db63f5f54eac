"""Green-network layers: upload, check, store, serve, overlay and measure.

Where things live:

* :mod:`.reading` — an upload's format, safety limits and reading (GeoJSON, GeoPackage,
  zipped Shapefile); :mod:`.checks` — empty, mixed, invalid geometries and the CRS;
  :mod:`.attributes` — typed fields;
* :mod:`.store` — **where a layer is stored**: tables, records, writes, reads;
* :mod:`.collection` — each stored layer served as an OGC collection; the writes that
  publish or withdraw it (:func:`add_layer`, :func:`rename_layer`, :func:`delete_layer`);
* :mod:`.editing` — one feature at a time: create, replace, merge-patch, delete (OGC API –
  Features Part 4, served by ``api/routes/layer_items.py``);
* :mod:`.overlay` — measures per comune, zona, unione (EPSG:32632), :func:`metrics`;
* :mod:`.membership` — which comuni each park, PLIS or Naviglio involves, checked
  against a layer;
* :mod:`.cli` — ``cmm-geo layers …``.
"""

from geo.layers.collection import add_layer, delete_layer, rename_layer, sync_registry
from geo.layers.membership import membership, membership_check
from geo.layers.overlay import metrics
from geo.layers.reading import LayerData, read_path, read_upload
from geo.layers.store import StoredLayer, get_layer, list_layers, load_layer

__all__ = [
    "LayerData",
    "StoredLayer",
    "add_layer",
    "delete_layer",
    "get_layer",
    "list_layers",
    "load_layer",
    "membership",
    "membership_check",
    "metrics",
    "read_path",
    "read_upload",
    "rename_layer",
    "sync_registry",
]
