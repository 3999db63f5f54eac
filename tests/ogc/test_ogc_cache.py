"""HTTP caching of every OGC GET: ETag, Last-Modified, 304, Cache-Control, gzip, CORS, and
the response cache keyed by data version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import shapely

from geo.ogc.registry import MemoryProvider, registry

URLS = [
    "/",
    "/conformance",
    "/api",
    "/collections",
    "/collections/comuni",
    "/collections/comuni/queryables",
    "/collections/comuni/items?limit=5",
    "/collections/comuni/items/015146",
]


@pytest.mark.parametrize("url", URLS)
def test_etag_and_if_none_match_304(client, url):
    r = client.get(url)
    assert r.status_code == 200
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert "Last-Modified" in r.headers
    assert "max-age" in r.headers["Cache-Control"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    other = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == r.content


def test_if_modified_since(client):
    r = client.get("/collections/comuni/items/015146")
    lm = r.headers["Last-Modified"]
    assert client.get(r.url, headers={"If-Modified-Since": lm}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(r.url, headers={"If-Modified-Since": old}).status_code == 200


def test_etag_differs_by_format_and_query(client):
    a = client.get("/collections/comuni/items?limit=5").headers["ETag"]
    b = client.get("/collections/comuni/items?limit=6").headers["ETag"]
    c = client.get("/collections/comuni/items?limit=5", headers={"Accept": "text/html"})
    assert c.headers["content-type"].startswith("text/html")
    assert len({a, b, c.headers["ETag"]}) == 3


def test_gzip_on_large_responses(client):
    r = client.get("/collections/comuni/items?limit=133", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert r.json()["numberReturned"] == 133
    plain = client.get(
        "/collections/comuni/items?limit=133", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert plain.json() == r.json() or plain.json()["features"] == r.json()["features"]


def test_cors_header(client):
    r = client.get("/collections", headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "ETag" in r.headers["access-control-expose-headers"]


def test_head(client):
    r = client.head("/collections/comuni/items/015146")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["ETag"] == client.get("/collections/comuni/items/015146").headers["ETag"]


def test_errors_are_not_cached_as_success(client):
    assert client.get("/collections/comuni/items/999999").status_code == 404
    assert client.get("/collections/comuni/items/999999").status_code == 404


def _provider(version: str, name: str) -> MemoryProvider:
    return MemoryProvider(
        "test-cache-layer",
        "A test layer",
        [{"id": "a", "properties": {"name": name}, "geometry": shapely.Point(9.19, 45.46)}],
        version=version,
        last_modified=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_new_data_version_is_served_not_the_cache(client):
    """A provider re-registered with a new version replaces the cached answers."""
    try:
        registry.register("test-cache-layer", lambda: _provider("v1", "first"))
        url = "/collections/test-cache-layer/items/a"
        first = client.get(url)
        assert first.json()["properties"]["name"] == "first"
        registry.register("test-cache-layer", lambda: _provider("v2", "second"))
        second = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert second.status_code == 200
        assert second.json()["properties"]["name"] == "second"
        listing = client.get("/collections").json()
        assert "test-cache-layer" in [c["id"] for c in listing["collections"]]
    finally:
        registry.unregister("test-cache-layer")
    assert client.get("/collections/test-cache-layer/items/a").status_code == 404
