"""The metadata record of each collection, in DCAT-AP_IT (JSON-LD), linked as ``describedby``.

Why DCAT-AP_IT rather than ISO 19139: it is the national profile the Italian catalogue
(dati.gov.it) harvests from public administrations, and JSON-LD is JSON, which the rest of
the API speaks. And a ``describedby`` link typed ``application/xml``/``text/xml`` is taken
by GDAL's OAPIF driver for a GML application schema of the features: an ISO 19139 record
there would make GDAL drop the JSON Schema that types its fields. INSPIRE download
services through OGC API – Features (the INSPIRE good practice) accept a DCAT-based
record for the dataset metadata.
"""

from __future__ import annotations

from typing import Any

import shapely

from geo.ogc.http import GEOJSON, OgcRequest
from geo.ogc.registry import CollectionProvider

JSONLD = "application/ld+json"

_CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "dcatapit": "http://dati.gov.it/onto/dcatapit#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
_EU = "http://publications.europa.eu/resource/authority/"
#: The publisher and rights holder of every dataset of the service.
PUBLISHER = "Città metropolitana di Milano"


def _agent(name: str) -> dict[str, Any]:
    return {"@type": ["foaf:Agent", "dcatapit:Agent"], "foaf:name": name}


def _texts(p: CollectionProvider, i: int) -> Any:
    """Title (0) or description (1): one literal per language when translated."""
    if not p.translations:
        return (p.title, p.description or p.title)[i]
    return [{"@language": lang, "@value": pair[i]} for lang, pair in p.translations.items()]


def dcat_record(req: OgcRequest, p: CollectionProvider, attribution: str = "") -> dict[str, Any]:
    """A DCAT-AP_IT Dataset with one GeoJSON distribution (the collection's items)."""
    base = req.url(f"/collections/{p.id}")
    distribution: dict[str, Any] = {
        "@id": base + "/items",
        "@type": ["dcat:Distribution", "dcatapit:Distribution"],
        "dct:title": f"{p.title} (GeoJSON, OGC API – Features)",
        "dcat:accessURL": {"@id": base + "/items"},
        "dcat:mediaType": GEOJSON,
        "dct:format": {"@id": _EU + "file-type/GEOJSON"},
    }
    record: dict[str, Any] = {
        "@context": _CONTEXT,
        "@id": base,
        "@type": ["dcat:Dataset", "dcatapit:Dataset"],
        "dct:identifier": f"cmm-geo:{p.id}",
        "dct:title": _texts(p, 0),
        "dct:description": _texts(p, 1),
        "dcat:keyword": list(p.keywords),
        "dcat:theme": {"@id": _EU + "data-theme/REGI"},
        "dct:language": {"@id": _EU + "language/ITA"},
        "dct:publisher": _agent(PUBLISHER),
        "dct:rightsHolder": _agent(PUBLISHER),
        "dct:modified": {"@value": p.last_modified().date().isoformat(), "@type": "xsd:date"},
        "dct:accrualPeriodicity": {"@id": _EU + "frequency/IRREG"},
        "dcat:landingPage": {"@id": base},
        "dcat:distribution": [distribution],
    }
    try:
        bounds = p.extent()
    except Exception:  # the store is down: the record without its extent
        bounds = None
    if bounds is not None:
        record["dct:spatial"] = {
            "@type": "dct:Location",
            "dcat:bbox": {"@value": shapely.box(*bounds).wkt, "@type": "gsp:wktLiteral"},
        }
    if p.license:
        distribution["dct:license"] = {
            "@id": p.license[1],
            "@type": ["dct:LicenseDocument", "dcatapit:LicenseDocument"],
            "foaf:name": p.license[0],
        }
    else:
        distribution["dct:rights"] = "As stated by the source of each feature"
    if p.attribution or attribution:
        record["dct:rights"] = p.attribution or attribution
    return record
