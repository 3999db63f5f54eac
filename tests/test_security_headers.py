"""Security headers, the Content-Security-Policy of each kind of page, link base URLs, 414.

In-process (TestClient); the browser side (pages really satisfy the policy, payloads never
run) is tests/maps/test_xss_browser.py.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.security import (
    content_security_policy,
    ogc_script_source,
    public_base_url,
    sha256_source,
    tiles_source,
)
from geo import maps
from geo.maps.assets import add_nonce
from geo.maps.style import safe_url
from geo.settings import Settings

FIXED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
}
IMG = "<img src=x onerror=window.__xss=1>"


def _policy(r) -> dict[str, list[str]]:
    """The CSP header as {directive: sources}."""
    out = {}
    for part in r.headers["content-security-policy"].split(";"):
        name, *sources = part.split()
        out[name] = sources
    return out


def _check_headers(r) -> dict[str, list[str]]:
    for k, v in FIXED.items():
        assert r.headers.get(k) == v, (r.url, k)
    csp = _policy(r)
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    return csp


@pytest.mark.parametrize(
    "path, kind",
    [
        ("/collections", "application/json"),
        ("/collections?f=html", "text/html"),
        ("/collections/comuni/items/015146?f=html", "text/html"),
        ("/comuni/015146", "application/json"),
        ("/maps", "text/html"),
        ("/collections/nope", "application/json"),  # an error answer too
        ("/openapi.json", "application/json"),
    ],
)
def test_headers_on_every_kind_of_response(client, path, kind):
    r = client.get(path)
    assert r.headers["content-type"].startswith(kind)
    _check_headers(r)


def test_headers_on_static_files_and_cached_answers(client, map_assets):
    r = client.get("/static/vendor/leaflet/leaflet.js")
    assert r.status_code == 200
    _check_headers(r)
    first = client.get("/collections/comuni/items?limit=2")
    again = client.get(
        "/collections/comuni/items?limit=2", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    _check_headers(again)


def test_ogc_page_script_is_allowed_by_its_hash_only(client):
    r = client.get("/collections/comuni/items?f=html&limit=2")
    scripts = re.findall(r"<script(?![^>]*src=)[^>]*>(.*?)</script>", r.text, re.S)
    assert len(scripts) == 1
    csp = _check_headers(r)
    assert csp["script-src"] == ["'self'", sha256_source(scripts[0])]
    assert sha256_source(scripts[0]) == ogc_script_source()


def test_map_page_nonce_is_on_every_folium_script_and_follows_the_etag(client):
    pages = [
        client.get(p) for p in ("/maps/territory", "/maps/territory", "/maps/zone-omogenee/sud-est")
    ]
    nonces = []
    for r in pages:
        csp = _check_headers(r)
        (nonce,) = [s[len("'nonce-") : -1] for s in csp["script-src"] if s.startswith("'nonce-")]
        assert len(nonce) >= 22
        tags = re.findall(r"<script[^>]*>", r.text)
        assert tags and all(f'nonce="{nonce}"' in t for t in tags)
        nonces.append(nonce)
    # Same ETag, same bytes (and nonce); another page (another ETag), another nonce.
    assert pages[0].headers["etag"] == pages[1].headers["etag"] and nonces[0] == nonces[1]
    assert pages[0].content == pages[1].content
    assert nonces[2] != nonces[0]


def test_tiles_host_is_allowed_for_images():
    osm = Settings(tiles_url="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    img = content_security_policy(osm).split("img-src ")[1].split(";")[0].split()
    assert img == ["'self'", "data:", "https://tile.openstreetmap.org"]
    assert tiles_source("https://{s}.tile.example.org:8443/{z}/{x}/{y}.png") == (
        "https://*.tile.example.org:8443"
    )
    assert tiles_source("none") is None and tiles_source("javascript:alert(1)") is None


def test_user_script_never_gets_the_nonce():
    m = maps.base_map([[45.4, 9.0], [45.6, 9.3]], tiles="none")
    page = maps.render_page(
        m, title=IMG, before="<script>x()</script>", after="", nonce="abcdefghijklmnop0123"
    )
    assert '<script nonce="abcdefghijklmnop0123">x()' not in page
    assert "<title>&lt;img" in page
    with pytest.raises(ValueError):
        add_nonce(page, 'x" onload="y')


def test_layer_names_popups_and_links_are_escaped():
    square = {
        "type": "Polygon",
        "coordinates": [[[9.1, 45.4], [9.2, 45.4], [9.2, 45.5], [9.1, 45.4]]],
    }
    overlay = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": square}],
    }
    m = maps.choropleth_map({}, metric_label=IMG, overlay=overlay, overlay_name=IMG, tiles="none")
    page = m.get_root().render()
    assert "<img src=x" not in page and "\\u003cimg" not in page  # escaped before JSON
    assert "\\u0026lt;img src=x onerror=window.__xss=1\\u0026gt;" in page
    popup = maps.intervention_popup(
        {"title": IMG, "status": "</script>", "source_url": "javascript://x.org/%0aalert(1)"}
    )
    assert "<a " not in popup and "<img" not in popup and "&lt;/script&gt;" in popup
    assert safe_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "JaVaScRiPt://x/%0aalert(1)", "data:text/html,x", "//x"):
        assert safe_url(bad) is None, bad


# ----- 414 -----------------------------------------------------------------------------------


def test_long_url_is_414_json_before_routing(client):
    limit = client.app.state.settings.max_url_length
    for url in ("/collections/comuni/items?filter=" + "x" * limit, "/" + "a" * (limit + 1)):
        r = client.get(url)
        assert r.status_code == 414
        assert r.json()["code"] == "URITooLong" and str(limit) in r.json()["description"]
        _check_headers(r)
    # Exactly at the limit: routed as usual (the query is fine, the collection exists).
    path = "/collections/comuni/items?limit=1&x="
    r = client.get(path + "y" * (limit - len(path)))
    assert r.status_code != 414


# ----- links -----------------------------------------------------------------------------


def _hrefs(body: dict) -> list[str]:
    """The service's own links (a licence link points to the licence's own site)."""
    return [link["href"] for link in body["links"] if link["rel"] != "license"]


def test_host_header_cannot_poison_links(client):
    r = client.get(
        "/collections",
        headers={
            "Host": "evil.example",
            "X-Forwarded-Host": "evil2.example",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Prefix": "/evil",
        },
    )
    assert r.status_code == 200
    assert "evil" not in r.text
    assert all(h.startswith("http://testserver/") for h in _hrefs(r.json()))


@pytest.fixture(scope="module")
def proxied_client():
    """The app trusting the test client's address as a reverse proxy."""
    from api.main import create_app

    with TestClient(create_app(Settings(trusted_proxies="10.0.0.0/8, testclient"))) as c:
        yield c


def test_trusted_proxy_headers_build_links(proxied_client):
    r = proxied_client.get(
        "/collections",
        headers={
            "X-Forwarded-Host": "gis.example.org",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Prefix": "/web-gis/",
        },
    )
    assert all(
        h.startswith("https://gis.example.org/web-gis/collections") for h in _hrefs(r.json())
    )
    # A malformed forwarded host is not used, even from a trusted proxy.
    bad = proxied_client.get("/collections/comuni", headers={"X-Forwarded-Host": 'x.org/"><b'})
    assert all(h.startswith("http://testserver/") for h in _hrefs(bad.json()))


def test_cached_answers_follow_the_forwarded_host(proxied_client):
    url = "/collections/comuni/items?limit=1"
    for host in ("a.example.org", "b.example.org"):
        r = proxied_client.get(url, headers={"X-Forwarded-Host": host})
        assert all(h.startswith(f"http://{host}/") for h in _hrefs(r.json()))


def test_base_url_setting_wins():
    from api.main import create_app

    app = create_app(
        Settings(base_url="https://geo.cittametropolitana.mi.it/api/", trusted_proxies="testclient")
    )
    with TestClient(app) as c:
        r = c.get(
            "/collections", headers={"X-Forwarded-Host": "other.example", "Host": "evil.example"}
        )
    hrefs = _hrefs(r.json())
    assert all(h.startswith("https://geo.cittametropolitana.mi.it/api/collections") for h in hrefs)


def test_base_url_rule_without_headers():
    s = Settings(host="0.0.0.0", port=8080, trusted_proxies="192.168.1.0/24")
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("::1", 8000),
        "root_path": "",
        "client": ("192.168.1.7", 5000),
        "headers": [(b"host", b"evil.example"), (b"x-forwarded-host", b"p.example")],
    }
    assert public_base_url(scope, s) == "http://p.example"  # trusted by network
    scope["client"] = ("192.168.2.7", 5000)
    assert public_base_url(scope, s) == "http://[::1]:8000"  # the socket, not the Host
    scope["server"] = None
    assert public_base_url(scope, s) == "http://0.0.0.0:8080"  # the configured host:port


# ----- 429: filtered requests per client -------------------------------------------------


def test_rate_limit_bucket_refills_at_its_rate():
    from api.security import RateLimit

    bucket = RateLimit(rate=2.0)  # bursts of 4
    assert [bucket.retry_after("a", now=0.0) for _ in range(4)] == [None] * 4
    wait = bucket.retry_after("a", now=0.0)
    assert wait is not None and wait == pytest.approx(0.5)
    assert bucket.retry_after("b", now=0.0) is None  # another address has its own bucket
    assert bucket.retry_after("a", now=0.6) is None  # 0.6 s later: one more token
    assert bucket.retry_after("a", now=0.6) is not None


def test_rate_limit_forgets_the_oldest_addresses():
    from api.security import RateLimit

    bucket = RateLimit(rate=1.0, max_clients=3)
    for client in "abcd":
        bucket.retry_after(client, now=0.0)
    assert "a" not in bucket._buckets and len(bucket._buckets) == 3


def test_a_client_over_its_filter_rate_gets_429_and_lookup_still_answers():
    """Filtered requests beyond the client's burst are refused before routing with a 429
    that says which limit and when to retry; unfiltered requests and /lookup go on."""
    from api.main import create_app

    settings = Settings(filter_rate_per_client=2.0)  # bursts of 4
    with TestClient(create_app(settings)) as c:
        url = "/collections/comuni/items?limit=1&filter=population%20%3E%20{}"
        statuses = [c.get(url.format(i)).status_code for i in range(8)]
        assert statuses[:4] == [200] * 4
        assert 429 in statuses[4:]
        r = c.get(url.format(99))
        assert r.status_code == 429
        body = r.json()
        assert body["code"] == "TooManyRequests"
        assert "CMM_GEO_FILTER_RATE_PER_CLIENT" in body["description"]
        assert int(r.headers["retry-after"]) >= 1
        _check_headers(r)
        # Other requests of the same client are not limited.
        assert c.get("/collections/comuni/items?limit=1").status_code == 200
        assert c.get("/lookup", params={"q": "Rho"}).status_code == 200


def test_filters_of_the_aggregates_and_downloads_share_the_rate_and_budget():
    """/stats/interventions and /downloads/… evaluate a CQL2 filter in the store as the
    items do: they spend the same per-client tokens, and a filter over its budget is
    refused before routing (the same 400 as on the items)."""
    from api.main import create_app
    from geo.ogc.cql import Budget

    settings = Settings(filter_rate_per_client=2.0)  # bursts of 4
    urls = [
        "/stats/interventions?by=zona&filter=amount_eur%20%3E%20{}",
        "/downloads/interventions?f=csv&filter=amount_eur%20%3E%20{}",
    ]
    with TestClient(create_app(settings)) as c:
        statuses = [c.get(urls[i % 2].format(i)).status_code for i in range(8)]
        assert statuses[:4] == [200] * 4 and 429 in statuses[4:], statuses
        assert c.get("/stats/interventions?by=zona").status_code == 200  # unfiltered: free
    with TestClient(create_app(Settings())) as c:
        too_long = "amount_eur > 1 OR " * (Budget.from_settings().max_length // 17 + 2)
        for url in urls:
            r = c.get(url.split("&filter")[0], params={"filter": too_long + "amount_eur > 2"})
            assert r.status_code == 400 and r.json()["parameter"] == "filter", r.text[:200]
