"""The HTTP side of OGC API resources without a web framework: media types, content
negotiation, the request and response types handlers exchange with the API layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from geo.crs import CRS84
from geo.ogc.registry import FeatureQuery

JSON = "application/json"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
HTML = "text/html"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
#: Cache-Control of every OGC GET: clients revalidate with the ETag after a minute.
CACHE_CONTROL = "public, max-age=60, must-revalidate"
#: Where the self-hosted Leaflet assets are served (api.routes.maps mounts them).
LEAFLET_BASE = "/static/vendor/leaflet"
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_CONFORMANCE = "http://www.opengis.net/def/rel/ogc/1.0/conformance"
REL_DATA = "http://www.opengis.net/def/rel/ogc/1.0/data"


def negotiate(f: str | None, accept: str | None) -> str:
    """``json`` or ``html``: the ``f`` parameter wins, else the Accept header."""
    if f:
        return f.lower()
    if not accept:
        return "json"
    best, best_q = "json", -1.0
    for i, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        kind = (
            "html"
            if media in ("text/html", "application/xhtml+xml")
            else "json"
            if ("json" in media or media in ("*/*", "application/*"))
            else None
        )
        if kind and (q > best_q or (q == best_q and i == 0)):
            best, best_q = kind, q
    return best


@dataclass
class OgcRequest:
    """What the handlers need of a request: absolute base URL, path, query, format."""

    base_url: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    fmt: str = "json"

    def url(self, path: str | None = None, **changes: Any) -> str:
        """Absolute URL of ``path`` (default: this one) with the query changed."""
        target = self.base_url + (path if path is not None else self.path)
        if path is not None and not changes:
            return target
        params = dict(self.query) if path is None else {}
        for k, v in changes.items():
            key = k.replace("_", "-") if k in ("bbox_crs", "filter_lang", "filter_crs") else k
            if v is None:
                params.pop(key, None)
            else:
                params[key] = str(v)
        return target + ("?" + urlencode(params) if params else "")


@dataclass
class OgcResponse:
    """Bytes to send, with their media type and headers (ETag, Last-Modified, …)."""

    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class ItemsRequest:
    """A parsed /items request: the provider query plus output options."""

    query: FeatureQuery
    crs: str = CRS84
    bbox_crs: str = CRS84
    simplify: float | None = None


def http_date(t: datetime) -> str:
    """RFC 9110 date."""
    return format_datetime(t.astimezone(UTC).replace(microsecond=0), usegmt=True)
