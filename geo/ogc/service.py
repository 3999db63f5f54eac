"""OGC API – Features resources, framework-free: each handler returns an :class:`OgcResponse`.

The API layer parses parameters into the types below, calls one handler and sends the
bytes. ETags are hashes of the body (strong validators), Last-Modified comes from the
collections' data.

Why ~550 lines: one class with one short method per OGC resource (landing, conformance,
collections, collection, queryables, items, item) and the links between them; the
request/response types live in :mod:`geo.ogc.http`, parameters in :mod:`geo.ogc.params`,
encoding in :mod:`geo.ogc.encode`. Splitting the resources further would scatter the link
relations that tie them together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from xxhash import xxh3_128_hexdigest

from geo.crs import CRS84, SUPPORTED_URIS, short_name
from geo.errors import InvalidParameter, NotFound, ServiceUnavailable, quoted
from geo.ogc import schema
from geo.ogc.conformance import CONFORMANCE
from geo.ogc.encode import bbox_in, encode_geometries
from geo.ogc.html_texts import template_context
from geo.ogc.http import (
    CACHE_CONTROL,
    GEOJSON,
    HTML,
    JSON,
    LANGUAGES,
    LEAFLET_BASE,
    OPENAPI_JSON,
    REL_CONFORMANCE,
    REL_DATA,
    REL_QUERYABLES,
    REL_SCHEMA,
    REL_SORTABLES,
    SCHEMA_JSON,
    TRS,
    ItemsRequest,
    OgcRequest,
    OgcResponse,
    feature_etag,
    http_date,
    text_etag,
)
from geo.ogc.metadata import JSONLD, dcat_record
from geo.ogc.params import check_property_filters
from geo.ogc.registry import (
    CollectionProvider,
    GeojsonPage,
    QueryResult,
    Registry,
    registry_version,
)
from geo.ogc.tiles import REL_TILESETS_VECTOR, REL_TILING_SCHEMES
from geo.settings import get_settings


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
    )


def unknown_collection(collection_id: str, known: Iterable[str]) -> NotFound:
    """The 404 of a collection id not in the registry, listing the known ones (English and
    Italian): raised by :meth:`OgcService.provider` and the API's ``collection`` dependency."""
    listed = ", ".join(known)
    return NotFound(
        f"no collection {collection_id!r}; known: {listed}",
        it=f"nessuna collezione {quoted(collection_id)}; quelle disponibili sono: {listed}",
        parameter="collectionId",
    )


def _inline_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return orjson.dumps(value).decode().replace("</", "<\\/")


class OgcService:
    """The OGC API – Features resources of a registry."""

    def __init__(
        self,
        reg: Registry,
        *,
        title: str,
        description: str = "",
        tiles_url: str = "none",
        attribution: str = "",
        leaflet_base: str = LEAFLET_BASE,
        service_links: tuple[tuple[str, str, str, str], ...] = (),
    ) -> None:
        #: Further resources of the service on the landing page: (rel, type, title, path).
        self.service_links = service_links
        self.leaflet_base = leaflet_base
        self.registry = reg
        self.title = title
        self.description = description
        self.tiles_url = tiles_url
        self.attribution = attribution

    # --- helpers -------------------------------------------------------------------

    def provider(self, collection_id: str) -> CollectionProvider:
        """The provider of a collection, or NotFound listing the known ones."""
        p = self.registry.get(collection_id)
        if p is None:
            raise unknown_collection(collection_id, self.registry.ids())
        return p

    def _last_modified(self) -> datetime:
        dates = []
        for p in self.registry:
            try:
                dates.append(p.last_modified())
            except ServiceUnavailable:  # its store is down: the others still date the page
                continue
        return max(dates) if dates else datetime(2024, 1, 1, tzinfo=UTC)

    def respond(
        self,
        req: OgcRequest,
        payload: Any,
        media_type: str,
        last_modified: datetime | None = None,
        html: tuple[str, dict[str, Any]] | None = None,
        extra_headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> OgcResponse:
        """Encode ``payload`` (or render ``html`` when asked for HTML) with cache headers;
        ``body``: ``payload`` already encoded (then ``payload`` gives the links only)."""
        if req.fmt == "html" and html is not None:
            body = self._render(*html, req)
            media_type = HTML + "; charset=utf-8"
        elif body is None:
            body = orjson.dumps(payload)
        last_modified = last_modified or self._last_modified()
        etag = (extra_headers or {}).get("ETag")
        headers = {
            **_link_header(payload),
            "ETag": etag or '"' + xxh3_128_hexdigest(body) + '"',
            "Last-Modified": http_date(last_modified),
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Accept, Accept-Encoding, Accept-Language",
            "Content-Language": req.lang,
            **(extra_headers or {}),
        }
        return OgcResponse(body=body, media_type=media_type, headers=headers)

    def _render(self, template: str, context: dict[str, Any], req: OgcRequest) -> bytes:
        other = next(x for x in LANGUAGES if x != req.lang)
        ctx = {
            # In the request's language: t(key), label(English label), the switch link.
            **template_context(req.lang, req.url(lang=other)),
            "service_title": self.title,
            "tiles_url": self.tiles_url,
            "leaflet_base": self.leaflet_base,
            "breadcrumbs": [],
            "links": [],
            "map": None,
            "collections": None,
            "classes": None,
            "facts": None,
            "features": None,
            "description": "",
            "attribution": self.attribution,
            **context,
        }
        return _templates().get_template(template).render(**ctx).encode()

    def _alternates(self, req: OgcRequest, json_type: str, title: str) -> list[dict[str, str]]:
        fmt = req.fmt if req.fmt in ("json", "html") else "json"
        links = [
            {
                "rel": "self",
                "type": json_type if fmt == "json" else HTML,
                "title": "This document",
                "href": req.url(f=fmt),
            },
            {
                "rel": "alternate",
                "type": HTML if fmt == "json" else json_type,
                "title": f"{title} as {'HTML' if fmt == 'json' else 'JSON'}",
                "href": req.url(f="html" if fmt == "json" else "json"),
            },
        ]
        return links

    def _crumbs(self, req: OgcRequest, *extra: tuple[str, str]) -> list[dict[str, str]]:
        items = [{"title": "Home", "href": req.url("/") + "?f=html"}]
        items += [{"title": t, "href": req.url(p) + "?f=html"} for t, p in extra]
        return items

    # --- resources ---------------------------------------------------------------------

    def landing(self, req: OgcRequest) -> OgcResponse:
        """``/``: what the service is and where its resources are."""
        links = [
            *self._alternates(req, JSON, "Landing page"),
            {
                "rel": "service-desc",
                "type": OPENAPI_JSON,
                "title": "OpenAPI 3.0 definition",
                "href": req.url("/api"),
            },
            {
                "rel": "service-doc",
                "type": HTML,
                "title": "API documentation",
                "href": req.url("/api") + "?f=html",
            },
            {
                "rel": "conformance",
                "type": JSON,
                "title": "Conformance classes",
                "href": req.url("/conformance"),
            },
            {
                "rel": REL_CONFORMANCE,
                "type": JSON,
                "title": "Conformance classes",
                "href": req.url("/conformance"),
            },
            {"rel": "data", "type": JSON, "title": "Collections", "href": req.url("/collections")},
            {
                "rel": REL_TILING_SCHEMES,
                "type": JSON,
                "title": "Tile matrix sets of the vector tiles",
                "href": req.url("/tileMatrixSets"),
            },
            {
                "rel": REL_DATA,
                "type": JSON,
                "title": "Collections",
                "href": req.url("/collections"),
            },
        ]
        links += [
            {"rel": rel, "type": mtype, "title": title, "href": req.url(path)}
            for rel, mtype, title, path in self.service_links
        ]
        payload = {
            "title": self.title,
            "description": self.description,
            "attribution": self.attribution,
            "links": links,
        }
        html = (
            "page.html",
            {
                "title": self.title,
                "description": self.description,
                "links": links[1:],
                "collections": self._collection_rows(req),
            },
        )
        return self.respond(req, payload, JSON, self._last_modified(), html)

    def conformance(self, req: OgcRequest) -> OgcResponse:
        """``/conformance``: exactly the classes implemented."""
        payload = {"conformsTo": list(CONFORMANCE)}
        html = (
            "page.html",
            {
                "title": "Conformance",
                "classes": CONFORMANCE,
                "breadcrumbs": self._crumbs(req),
                "links": self._alternates(req, JSON, "Conformance")[1:],
            },
        )
        return self.respond(req, payload, JSON, self._last_modified(), html)

    def _collection_rows(self, req: OgcRequest) -> list[dict[str, str]]:
        return [
            {
                "title": p.localized(req.lang)[0],
                "description": p.localized(req.lang)[1],
                "href": req.url(f"/collections/{p.id}") + "?f=html",
                "items": req.url(f"/collections/{p.id}/items") + "?f=html",
            }
            for p in self.registry
        ]

    def collection_document(self, req: OgcRequest, p: CollectionProvider) -> dict[str, Any]:
        """The JSON description of one collection."""
        base = f"/collections/{p.id}"
        extent: dict[str, Any] = {
            "spatial": {"bbox": [bbox_in(p.extent(), CRS84)], "crs": CRS84},
        }
        temporal = p.temporal_extent()
        if temporal is not None:
            extent["temporal"] = {
                "interval": [[t.isoformat() if t else None for t in temporal]],
                "trs": TRS,
            }
        title, description = p.localized(req.lang)
        doc: dict[str, Any] = {
            "id": p.id,
            "title": title,
            "description": description,
            "keywords": list(p.keywords),
            "itemType": p.item_type,
            "extent": extent,
            "crs": list(p.crs or SUPPORTED_URIS),
            "storageCrs": p.storage_crs,
            "links": [
                {
                    "rel": "self",
                    "type": JSON,
                    "title": p.title,
                    "href": req.url(base) + "?f=json",
                },
                {
                    "rel": "alternate",
                    "type": HTML,
                    "title": f"{p.title} as HTML",
                    "href": req.url(base) + "?f=html",
                },
                {
                    "rel": "items",
                    "type": GEOJSON,
                    "title": f"{p.title} (GeoJSON)",
                    "href": req.url(base + "/items") + "?f=json",
                },
                {
                    "rel": "items",
                    "type": HTML,
                    "title": f"{p.title} (HTML)",
                    "href": req.url(base + "/items") + "?f=html",
                },
                {
                    "rel": REL_QUERYABLES,
                    "type": SCHEMA_JSON,
                    "title": "Queryables",
                    "href": req.url(base + "/queryables"),
                },
                {
                    "rel": REL_SCHEMA,
                    "type": SCHEMA_JSON,
                    "title": "Schema of the features (returnables)",
                    "href": req.url(base + "/schema"),
                },
                {
                    "rel": REL_SORTABLES,
                    "type": SCHEMA_JSON,
                    "title": "Sortables",
                    "href": req.url(base + "/sortables"),
                },
                {
                    # GDAL's OAPIF driver types its fields from this link (see geo.ogc.schema).
                    # Spelt "describedBy": relation types compare case-insensitively (RFC 8288)
                    # but GDAL up to 3.6 (Debian 12) compares them as written.
                    "rel": "describedBy",
                    "type": SCHEMA_JSON,
                    "title": "JSON Schema of one GeoJSON feature",
                    "href": req.url(base + "/feature-schema"),
                },
                {
                    "rel": "describedby",
                    "type": JSONLD,
                    "title": "Metadata record (DCAT-AP_IT, JSON-LD)",
                    "href": req.url(base + "/metadata"),
                },
                {  # OGC API – Tiles (geo.ogc.tiles)
                    "rel": REL_TILESETS_VECTOR,
                    "type": JSON,
                    "title": "Vector tilesets (Mapbox Vector Tiles)",
                    "href": req.url(base + "/tiles"),
                },
            ],
        }
        if p.license:
            doc["links"].append(
                {"rel": "license", "type": HTML, "title": p.license[0], "href": p.license[1]}
            )
        if p.attribution:
            doc["attribution"] = p.attribution
        return doc

    def collections(self, req: OgcRequest) -> OgcResponse:
        """``/collections``: every registered collection (what its store can tell now)."""
        providers, down = self.registry.listing()
        docs, notes = [], []
        for p in providers:
            try:
                docs.append(self.collection_document(req, p))
            except ServiceUnavailable:  # listed without its extent while the store is down
                doc = self.collection_document(req, _NoExtent(p))
                del doc["extent"]
                docs.append(doc)
                notes.append(f"{p.id}: the database is unavailable; extent omitted")
        notes += [f"{cid}: the database is unavailable; not listed" for cid in down]
        payload: dict[str, Any] = {
            "links": self._alternates(req, JSON, "Collections"),
            "collections": docs,
            "crs": list(SUPPORTED_URIS),
        }
        if notes:
            payload["notes"] = notes
        html = (
            "page.html",
            {
                "title": "Collections",
                "collections": self._collection_rows(req),
                "breadcrumbs": self._crumbs(req),
                "links": payload["links"][1:],
            },
        )
        return self.respond(req, payload, JSON, self._last_modified(), html)

    def collection(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}``: extent, CRSs, links; in HTML with a map of its items."""
        p = self.provider(collection_id)
        doc = self.collection_document(req, p)
        ext = doc["extent"]["spatial"]["bbox"][0]
        html = (
            "page.html",
            {
                "title": doc["title"],  # in the request's language
                "description": doc["description"],
                "breadcrumbs": self._crumbs(req, ("Collections", "/collections")),
                "links": doc["links"][2:],
                "facts": [
                    ("id", p.id),
                    ("extent (CRS84)", ", ".join(map(str, ext))),
                    ("storage CRS", p.storage_crs),
                    ("CRS", " ".join(doc["crs"])),
                ],
                "map": {
                    "url": req.url(f"/collections/{p.id}/items") + "?f=json&limit=1000&simplify=20",
                    "inline": "null",
                },
                "attribution": p.attribution or "",
            },
        )
        return self.respond(req, doc, JSON, p.last_modified(), html)

    def _schema_response(
        self, req: OgcRequest, p: CollectionProvider, title: str, payload: dict[str, Any]
    ) -> OgcResponse:
        props = payload["properties"]
        fields = props.get("properties", {}).get("properties", props)
        facts = [
            (k, v.get("format", v.get("type")) if "type" not in v else _type_label(v))
            for k, v in fields.items()
        ]
        html = (
            "page.html",
            {
                "title": f"{title}: {p.title}",
                "breadcrumbs": self._crumbs(
                    req, ("Collections", "/collections"), (p.title, f"/collections/{p.id}")
                ),
                "facts": facts,
                "links": self._alternates(req, SCHEMA_JSON, title)[1:],
            },
        )
        return self.respond(req, payload, SCHEMA_JSON, p.last_modified(), html)

    def queryables(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}/queryables``: a JSON Schema of the filterable properties."""
        p = self.provider(collection_id)
        url = req.url(f"/collections/{p.id}/queryables")
        return self._schema_response(req, p, "Queryables", schema.queryables_schema(p, url))

    def schema(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}/schema``: the properties of the features (Part 5)."""
        p = self.provider(collection_id)
        url = req.url(f"/collections/{p.id}/schema")
        return self._schema_response(req, p, "Schema", schema.returnables_schema(p, url))

    def sortables(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}/sortables``: what ``sortby`` accepts (Part 5)."""
        p = self.provider(collection_id)
        url = req.url(f"/collections/{p.id}/sortables")
        return self._schema_response(req, p, "Sortables", schema.sortables_schema(p, url))

    def feature_schema(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}/feature-schema``: one GeoJSON feature as JSON Schema (GDAL)."""
        p = self.provider(collection_id)
        url = req.url(f"/collections/{p.id}/feature-schema")
        payload = schema.geojson_feature_schema(p, url)
        return self._schema_response(req, p, "GeoJSON feature schema", payload)

    def metadata(self, req: OgcRequest, collection_id: str) -> OgcResponse:
        """``/collections/{id}/metadata``: the dataset's DCAT-AP_IT record (JSON-LD)."""
        p = self.provider(collection_id)
        payload = dcat_record(req, p, self.attribution)
        html = (
            "page.html",
            {
                "title": f"Metadata: {p.title}",
                "breadcrumbs": self._crumbs(
                    req, ("Collections", "/collections"), (p.title, f"/collections/{p.id}")
                ),
                "facts": [
                    (k, v if isinstance(v, str) else orjson.dumps(v).decode())
                    for k, v in payload.items()
                    if k != "@context"
                ],
                "links": self._alternates(req, JSONLD, "Metadata")[1:],
            },
        )
        return self.respond(req, payload, JSONLD, p.last_modified(), html)

    def _features(
        self,
        req: OgcRequest,
        p: CollectionProvider,
        features: list[dict[str, Any]],
        crs: str,
        simplify: float | None,
    ) -> list[dict[str, Any]]:
        geoms = encode_geometries([f.get("geometry") for f in features], crs, simplify)
        return [
            {
                "type": "Feature",
                "id": f.get("id"),
                "geometry": g,
                "properties": f.get("properties") or {},
                "links": [
                    {
                        "rel": "self",
                        "type": GEOJSON,
                        "href": req.url(f"/collections/{p.id}/items/{f.get('id')}"),
                    }
                ],
            }
            for f, g in zip(features, geoms, strict=True)
        ]

    def _encoded_features(
        self, req: OgcRequest, p: CollectionProvider, page: GeojsonPage
    ) -> orjson.Fragment:
        """The features the store encoded, each given its ``self`` link (as
        :meth:`_features`), as the JSON array orjson would write of them
        (:meth:`GeojsonPage.json_array`)."""
        prefix = orjson.dumps(req.url(f"/collections/{p.id}/items/")).decode()[:-1]
        head = ',"links":[{"rel":"self","type":"' + GEOJSON + '","href":' + prefix
        return orjson.Fragment(page.json_array(head))

    def items(self, req: OgcRequest, collection_id: str, ir: ItemsRequest) -> OgcResponse:
        """``/collections/{id}/items``: one page of features with paging links."""
        p = self.provider(collection_id)
        # Filtered pages are counted up to CMM_GEO_COUNT_LIMIT (see Settings.count_limit).
        q = replace(ir.query, count_limit=get_settings().count_limit or None)
        check_property_filters(q.properties_eq, p.queryables())
        sortable = {s.name for s in schema.sortables(p)} if q.sortby else set()
        for name, _ascending in q.sortby:
            if name not in sortable:
                sortables = ", ".join(sorted(sortable))
                raise InvalidParameter(
                    "sortby",
                    f"cannot sort by {name!r} (a list or not a property); sortables: " + sortables,
                    it=f"impossibile ordinare per {quoted(name)} (è una lista o non è una "
                    "proprietà); proprietà ordinabili: " + sortables,
                )
        fmt = req.fmt
        encoded = None
        if fmt == "json" and ir.crs == CRS84 and not ir.simplify:
            encoded = p.query_geojson(q)
        if encoded is not None:
            result = QueryResult([], encoded.number_matched)
            returned = encoded.returned
            feats: Any = self._encoded_features(req, p, encoded)
        else:
            result = p.query(q)
            feats = self._features(req, p, result.features, ir.crs, ir.simplify)
            returned = len(feats)
        links = self._alternates(req, GEOJSON, "Items")
        links.append(
            {
                "rel": "collection",
                "type": JSON,
                "title": p.title,
                "href": req.url(f"/collections/{p.id}"),
            }
        )
        nxt = prv = None
        matched = result.number_matched
        # Not counted beyond count_limit: there are more than that many, so a full page
        # has a next one (which may turn out empty, as OGC allows).
        if (q.offset + returned < matched) if matched is not None else returned >= q.limit:
            nxt = req.url(offset=q.offset + q.limit, limit=q.limit, f=fmt)
            links.append({"rel": "next", "type": GEOJSON if fmt == "json" else HTML, "href": nxt})
        if q.offset > 0:
            prv = req.url(offset=max(0, q.offset - q.limit) or None, limit=q.limit, f=fmt)
            links.append({"rel": "prev", "type": GEOJSON if fmt == "json" else HTML, "href": prv})
        payload = {
            "type": "FeatureCollection",
            "features": feats,
            "numberMatched": matched,
            "numberReturned": returned,
            # When the data last changed, not the wall clock: the same data gives the same
            # bytes, hence the same ETag, in every worker and replica (and after restarts).
            "timeStamp": p.last_modified()
            .astimezone(UTC)
            .replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
            "links": links,
        }
        if matched is None:
            del payload["numberMatched"]
        headers = {"Content-Crs": f"<{ir.crs}>"}
        html = None
        if fmt == "html":
            map_fc = None
            if ir.crs == CRS84:
                map_fc = {"type": "FeatureCollection", "features": feats}
            columns: list[str] = []
            for f in result.features:
                columns.extend(k for k in (f.get("properties") or {}) if k not in columns)
            title = p.localized(req.lang)[0]
            html = (
                "page.html",
                {
                    "title": f"{title}: features",
                    "breadcrumbs": self._crumbs(
                        req, ("Collections", "/collections"), (title, f"/collections/{p.id}")
                    ),
                    "links": links[1:2],
                    "features": [
                        {
                            "id": f.get("id"),
                            "href": req.url(f"/collections/{p.id}/items/{f.get('id')}") + "?f=html",
                            "properties": f.get("properties") or {},
                        }
                        for f in result.features
                    ],
                    "columns": columns,
                    "number_matched": matched,
                    "count_limit": f"{q.count_limit or 0:,}".replace(
                        ",", "." if req.lang == "it" else ","
                    ),
                    "number_returned": returned,
                    "next": nxt,
                    "prev": prv,
                    "map": {"url": None, "inline": _inline_json(map_fc)},
                    "attribution": p.attribution or "",
                },
            )
        return self.respond(req, payload, GEOJSON, p.last_modified(), html, headers)

    def item(
        self,
        req: OgcRequest,
        collection_id: str,
        feature_id: str,
        crs: str = CRS84,
        simplify: float | None = None,
        properties: list[str] | None = None,
        skip_geometry: bool = False,
    ) -> OgcResponse:
        """``/collections/{id}/items/{featureId}``: one feature."""
        p = self.provider(collection_id)
        canonical = (
            req.fmt != "html"
            and crs == CRS84
            and not simplify
            and properties is None
            and not skip_geometry
        )
        if canonical:  # as the store encodes it: no Python feature in between
            text = p.get_geojson(feature_id)
            if text is None:
                raise _no_feature(feature_id, collection_id)
            links = self._item_links(req, p)
            body = f'{text[:-1]},"links":{orjson.dumps(links).decode()}}}'.encode()
            headers = {"Content-Crs": f"<{crs}>", "ETag": text_etag(text)}
            return self.respond(
                req, {"links": links}, GEOJSON, p.last_modified(), extra_headers=headers, body=body
            )
        f = p.get(feature_id)
        if f is None:
            raise _no_feature(feature_id, collection_id)
        props = f.get("properties") or {}
        if properties is not None:
            props = {k: props[k] for k in properties if k in props}
        f = {**f, "properties": props, "geometry": None if skip_geometry else f.get("geometry")}
        feat = self._features(req, p, [f], crs, simplify)[0]
        feat["links"] = self._item_links(req, p)
        variant = ",".join(
            v
            for v in (
                "html" if req.fmt == "html" else "",
                "" if crs == CRS84 else short_name(crs),
                "" if properties is None else "p=" + ",".join(properties),
                "nogeom" if skip_geometry else "",
                f"s={simplify:g}" if simplify else "",
            )
            if v
        )
        # A strong ETag of the feature's data: what If-Match is checked against (Part 4).
        headers = {"Content-Crs": f"<{crs}>", "ETag": feature_etag(f, variant)}
        html = None
        if req.fmt == "html":
            inline = {"type": "FeatureCollection", "features": [feat]} if crs == CRS84 else None
            html = (
                "page.html",
                {
                    "title": str(props.get("name") or feature_id),
                    "breadcrumbs": self._crumbs(
                        req,
                        ("Collections", "/collections"),
                        (p.title, f"/collections/{p.id}"),
                        ("Items", f"/collections/{p.id}/items"),
                    ),
                    "facts": [("id", feature_id), *props.items()],
                    "links": feat["links"][1:],
                    "map": {"url": None, "inline": _inline_json(inline)},
                    "attribution": p.attribution or "",
                },
            )
        return self.respond(req, feat, GEOJSON, p.last_modified(), html, headers)

    def _item_links(self, req: OgcRequest, p: CollectionProvider) -> list[dict[str, str]]:
        """A feature's links: itself in its formats, and its collection."""
        return [
            *self._alternates(req, GEOJSON, "Feature"),
            {
                "rel": "collection",
                "type": JSON,
                "title": p.title,
                "href": req.url(f"/collections/{p.id}"),
            },
        ]

    def version(self, collection_id: str | None = None) -> str:
        """Data version of one collection (or of all), for response caches."""
        if collection_id is not None:
            p = self.registry.get(collection_id)
            return p.version() if p is not None else "missing"
        return registry_version(self.registry)


def _no_feature(feature_id: str, collection_id: str) -> NotFound:
    return NotFound(
        f"no feature {feature_id!r} in collection {collection_id!r}",
        it=f"nessun elemento {quoted(feature_id)} nella collezione {quoted(collection_id)}",
        parameter="featureId",
    )


#: Link relations repeated as ``Link`` headers (so HEAD answers carry them too).
_HEADER_RELS = frozenset({"self", "alternate", "next", "prev", "collection", "license"})


def _link_header(payload: Any) -> dict[str, str]:
    """The payload's main links as an RFC 8288 ``Link`` header (Part 1 /rec/core/link-header)."""
    links = payload.get("links") if isinstance(payload, dict) else None
    if not isinstance(links, list):
        return {}
    parts = [
        f'<{link["href"]}>; rel="{link["rel"]}"'
        + (f'; type="{link["type"]}"' if link.get("type") else "")
        for link in links
        if isinstance(link, dict) and link.get("rel") in _HEADER_RELS and "href" in link
    ]
    return {"Link": ", ".join(parts)} if parts else {}


def _type_label(v: dict[str, Any]) -> str:
    """``number``, ``string (date)``, ``array of string``… for the HTML pages."""
    t = v.get("type")
    kinds = [k for k in (t if isinstance(t, list) else [t]) if k != "null"]
    label = str(kinds[0]) if kinds else "any"
    if label == "array":
        label = "array of " + _type_label(v.get("items", {}))
    if v.get("format"):
        label += f" ({v['format']})"
    return label


class _NoExtent:
    """A provider's metadata without touching its store (for listing it during an outage)."""

    def __init__(self, p: CollectionProvider) -> None:
        self._p = p

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def extent(self) -> tuple[float, float, float, float]:
        return (-180.0, -90.0, 180.0, 90.0)

    def temporal_extent(self) -> None:
        return None
