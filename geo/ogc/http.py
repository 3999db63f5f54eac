"""The HTTP side of OGC API resources without a web framework: media types, content
negotiation, the request and response types handlers exchange with the API layer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

import orjson

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
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
REL_SORTABLES = "http://www.opengis.net/def/rel/ogc/1.0/sortables"


@lru_cache(maxsize=512)
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


#: Languages of titles and descriptions, the first the default (Italian, then English).
LANGUAGES = ("it", "en")


@lru_cache(maxsize=512)
def negotiate_language(accept_language: str | None) -> str:
    """``it`` or ``en`` from an Accept-Language header (q-values honoured); Italian when
    neither is asked for."""
    best, best_q = LANGUAGES[0], 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


@dataclass
class OgcRequest:
    """What the handlers need of a request: absolute base URL, path, query, format and the
    language of titles and descriptions."""

    base_url: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    fmt: str = "json"
    lang: str = "it"
    _pairs: tuple[list[tuple[str, str]], dict[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def url(self, path: str | None = None, **changes: Any) -> str:
        """Absolute URL of ``path`` (default: this one) with the query changed."""
        target = self.base_url + (path if path is not None else self.path)
        if path is not None and not changes:
            return target
        params = dict(self._encoded()) if path is None else {}
        for k, v in changes.items():
            key = k.replace("_", "-") if k in ("bbox_crs", "filter_lang", "filter_crs") else k
            if v is None:
                params.pop(key, None)
            else:
                params[key] = _pair(key, str(v))
        return target + ("?" + "&".join(params.values()) if params else "")

    def _encoded(self) -> dict[str, str]:
        """The query as ``urlencode`` writes it, one ``key=value`` per key (the last value
        of a repeated key in its first place), encoded once: a page's links (self,
        alternate, next, collection, one per feature) each rebuilt it, ~25 ``quote_plus``
        calls a page."""
        if self._pairs is None or self._pairs[0] is not self.query:
            pairs: dict[str, str] = {}
            for k, v in self.query:
                pairs[k] = v
            self._pairs = (self.query, {k: _pair(k, v) for k, v in pairs.items()})
        return self._pairs[1]


def _pair(key: str, value: str) -> str:
    """``key=value`` as ``urlencode`` writes one parameter (short ones remembered: the
    ``f``, ``limit`` and ``offset`` of the links; a filter is encoded once a request)."""
    if len(value) > 64 or len(key) > 64:
        return quote_plus(key) + "=" + quote_plus(value)
    return _short_pair(key, value)


@lru_cache(maxsize=2048)
def _short_pair(key: str, value: str) -> str:
    return quote_plus(key) + "=" + quote_plus(value)


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


@lru_cache(maxsize=256)
def http_date(t: datetime) -> str:
    """RFC 9110 date. Memoised: a response's Last-Modified is its data's revision time,
    the same for every request until the next write (formatting it took ~4 % of the
    worker's time for a feature by id)."""
    return format_datetime(t.astimezone(UTC).replace(microsecond=0), usegmt=True)


def feature_etag(feature: dict[str, Any], variant: str = "") -> str:
    """A strong ETag of one feature's data, the same in every worker and whatever the base
    URL; ``variant`` (format, CRS…) tells representations apart. The canonical GeoJSON in
    CRS84 has no variant: that is the ETag ``If-Match`` is checked against before a write
    (OGC API – Features Part 4, optimistic locking)."""
    from geo.ogc.encode import feature_text

    return text_etag(feature_text(feature), variant)


def text_etag(text: str, variant: str = "") -> str:
    """:func:`feature_etag` of a feature's canonical text (``geo.ogc.encode.feature_text``,
    or the store's own encoding of it): a hash of what is served — properties and the
    geometry at the output precision — with the members' order left out (a store may keep
    a feature's properties in its own order)."""
    feature = orjson.loads(text)
    geometry = feature.get("geometry")
    if isinstance(geometry, dict):
        feature["geometry"] = _printed(geometry)
    data = orjson.dumps(feature, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(data, digest_size=12).hexdigest()
    return f'"{digest}-{variant}"' if variant else f'"{digest}"'


def _printed(value: Any) -> Any:
    """A GeoJSON geometry's coordinates as 6-decimal numbers: GEOS prints some rounded
    coordinates one unit in the last place off (9.497058000000001 for 9.497058), where
    PostGIS prints the shortest form; the ETag of a feature is the same whoever wrote it."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_printed(v) for v in value]
    if isinstance(value, dict):
        return {
            k: _printed(v) if k in ("coordinates", "geometries") else v for k, v in value.items()
        }
    return value


def etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 ``If-Match``: ``*`` or one of the listed strong ETags (weak ones never)."""
    candidates = [c.strip() for c in if_match.split(",")]
    return "*" in candidates or etag in candidates
