"""OGC API – Features, framework-free: parameters, encodings, resources, conformance."""

from geo.ogc.conformance import CONFORMANCE
from geo.ogc.service import ItemsRequest, OgcRequest, OgcResponse, OgcService, negotiate

__all__ = ["CONFORMANCE", "ItemsRequest", "OgcRequest", "OgcResponse", "OgcService", "negotiate"]
