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


@pytest.fixture
def front_answers(client, monkeypatch):
    """The URLs (path?query) the front door answered, in order."""
    from api.ogc_cache import FrontDoor

    answered: list[str] = []
    original = FrontDoor.answered

    async def spy(self, scope, send):  # type: ignore[no-untyped-def]
        done = await original(self, scope, send)
        if done:
            answered.append(scope["path"] + "?" + scope["query_string"].decode())
        return done

    monkeypatch.setattr(FrontDoor, "answered", spy)
    return answered


def test_a_hit_at_the_front_door_is_the_stacks_response(client, front_answers):
    """The territory's cache hits are answered before the middleware stack, with the same
    status, headers (security ones included) and bytes the stack answered."""
    url = "/collections/comuni/items?limit=7&offset=3"
    h = {"Accept-Encoding": "identity", "Origin": "https://example.org"}
    through = [client.get(url, headers=h) for _ in range(2)]  # asked twice: then kept
    hit = client.get(url, headers=h)
    assert front_answers == [url]
    assert hit.status_code == through[1].status_code == 200
    assert hit.content == through[1].content

    def same(r, skip=()):  # type: ignore[no-untyped-def]
        return {k: v for k, v in r.headers.items() if k not in ("date", *skip)}

    assert same(hit) == same(through[1])
    assert hit.headers["content-security-policy"] and hit.headers["x-frame-options"]
    gz = client.get(url, headers={**h, "Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.content == hit.content
    assert same(gz, ("content-encoding", "content-length")) == same(hit, ("content-length",))
    assert client.get(url, headers={"If-None-Match": hit.headers["ETag"]}).status_code == 304
    assert front_answers == [url] * 3


def test_the_front_doors_prepared_answers_keep_each_variant_apart(client, front_answers):
    """The front door builds a hit's messages once per variant (gzipped or not, the CORS
    origin sent): asked again, each variant answers as it first did, and none is answered
    with another's headers; a HEAD sends no body."""
    url = "/collections/comuni/items?limit=6&offset=17"  # a page no other test asks for
    variants = {
        "plain": {"Accept-Encoding": "identity"},
        "gzip": {"Accept-Encoding": "gzip"},
        "origin": {"Accept-Encoding": "identity", "Origin": "https://example.org"},
    }
    for _ in range(2):
        client.get(url)  # asked twice: then kept
    first = {n: client.get(url, headers=h) for n, h in variants.items()}
    head = client.head(url, headers=variants["plain"])
    again = {n: client.get(url, headers=h) for n, h in variants.items()}
    assert front_answers[-7:] == [url] * 7

    def same(r):  # type: ignore[no-untyped-def]
        return {k: v for k, v in r.headers.items() if k != "date"}

    for name in variants:
        assert same(again[name]) == same(first[name]), name
        assert again[name].content == first[name].content == first["plain"].content, name
    assert "access-control-allow-origin" not in again["plain"].headers
    assert again["origin"].headers["access-control-allow-origin"]
    assert again["gzip"].headers["content-encoding"] == "gzip"
    assert "content-encoding" not in again["plain"].headers
    assert again["gzip"].headers["content-length"] != again["plain"].headers["content-length"]
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == again["plain"].headers["content-length"]
    assert (
        head.headers["content-security-policy"] == again["plain"].headers["content-security-policy"]
    )


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("lang=en", {}),  # the page language
        ("f=html", {}),
        ("f=%68tml", {}),
        ("", {"Accept": "text/html"}),
        ("filter=population%20%3E%2050000", {}),  # budget and rate limit of filters
    ],
)
def test_the_front_door_leaves_the_rest_to_the_stack(client, front_answers, query, headers):
    url = "/collections/comuni/items?limit=4" + ("&" + query if query else "")
    answers = [client.get(url, headers=headers) for _ in range(3)]
    assert front_answers == []
    assert {r.status_code for r in answers} == {200}
    assert answers[2].content == answers[1].content
    if "html" in query or headers:
        assert answers[2].headers["content-type"].startswith("text/html")
        assert "Cookie" in answers[2].headers["vary"]
    if query == "lang=en":
        assert answers[2].headers["content-language"] == "en"


def test_an_overlong_url_of_a_cached_page_is_still_refused(client, front_answers):
    from geo.settings import get_settings

    url = "/collections/comuni/items?limit=5&x=" + "a" * get_settings().max_url_length
    assert client.get(url).status_code == 414
    assert client.get(url).status_code == 414
    assert client.get(url).status_code == 414
    assert front_answers == []


def test_the_front_door_remembers_each_request_apart(monkeypatch, front_answers):
    """The front door remembers how each request goes, keyed by everything its answer
    depends on: behind a trusted proxy two hosts asking for the same page get links to
    themselves, however often and in whatever order they ask, and the memory is bounded."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.ogc_cache import FrontDoor
    from geo.settings import get_settings

    monkeypatch.setenv("CMM_GEO_TRUSTED_PROXIES", "127.0.0.1")
    get_settings.cache_clear()
    monkeypatch.setattr(FrontDoor, "DOORS", 3)
    url = "/collections/comuni/items?limit=2&offset=51"  # a page no other test asks for
    hosts = ["a.example.org", "b.example.org:8443"]
    try:
        app = create_app()
        with TestClient(app, client=("127.0.0.1", 50000)) as c:
            for host in hosts * 4:
                r = c.get(url, headers={"X-Forwarded-Host": host, "X-Forwarded-Proto": "https"})
                links = [link["href"] for link in r.json()["links"]]
                assert links and all(h.startswith(f"https://{host}/") for h in links), host
            for n in range(6):  # more requests than the door remembers
                assert c.get(url, headers={"X-Request-Id": str(n)}).status_code == 200
            assert len(app._front._doors) <= 3
            again = c.get(url, headers={"X-Forwarded-Host": hosts[1], "X-Forwarded-Proto": "https"})
    finally:
        get_settings.cache_clear()
    assert front_answers.count(url) >= 4  # the hits were the door's
    assert all(h["href"].startswith(f"https://{hosts[1]}/") for h in again.json()["links"])
