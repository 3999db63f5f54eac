"""OGC API – Features, framework-free: requests, parameters, CQL2, encodings, resources.

Where things live:

* :mod:`.service` — the resources (landing, conformance, collections, items, item);
* :mod:`.http` — media types, content negotiation, request/response types;
* :mod:`.params` — bbox, datetime, limit, sortby… parsed and checked;
* :mod:`.cql` — **where CQL2 is parsed and evaluated** (text and JSON);
* :mod:`.registry` — the collection registry: providers and the in-memory provider;
* :mod:`.encode` — GeoJSON encoding and CRS transforms of geometries;
* :mod:`.conformance` — the conformance classes declared, next to what implements them.
"""

from geo.ogc.conformance import CONFORMANCE
from geo.ogc.http import ItemsRequest, OgcRequest, OgcResponse, negotiate
from geo.ogc.service import OgcService

__all__ = ["CONFORMANCE", "ItemsRequest", "OgcRequest", "OgcResponse", "OgcService", "negotiate"]
