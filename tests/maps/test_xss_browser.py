"""Stored XSS and the Content-Security-Policy, in a real headless Chromium.

A uvicorn server runs the app with OpenStreetMap tiles configured; the browser blocks
every outside request except the tile requests, which it answers with a local blank tile
(so a tile that loads proves the policy allows the tile host). Script payloads are stored
through the API in an uploaded layer (its name and attributes) and in an intervention
(title, status, remark); every page showing them is opened, its features clicked, and:

* no payload ran (each sets ``window.__xss``) and no element it would create exists;
* the payload text is visible, escaped, where the page shows it;
* the page reported no CSP violation (``securitypolicyviolation`` events and console)
  and no script error, and the map rendered.

Screenshots go to ``test-output/screenshots/xss-*.png``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from servers import uvicorn_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
TILE_HOST = "tile.openstreetmap.org"
TOKEN = os.environ.get("CMM_GEO_ADMIN_TOKEN", "test-admin-token")

#: Each payload sets window.__xss if it ever runs.
IMG = "<img src=x onerror=window.__xss=1>"
SCRIPT = '"><script>window.__xss=1</script>'
CLOSE = "</script><script>window.__xss=1</script>"
SVG = "'><svg onload=window.__xss=1>"
JS_URL = "javascript:window.__xss=1"

#: Records CSP violations before any page script runs.
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
    window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"""


def _tile_png() -> bytes:
    """A light grey 256 px tile with a darker border (visible in screenshots)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (236, 232, 222))
    ImageDraw.Draw(img).rectangle([0, 0, 255, 255], outline=(200, 196, 186))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(map_assets) -> Iterator[str]:
    """Base URL of a uvicorn server with OSM tiles configured and its own empty data dir."""
    env = {"CMM_GEO_TILES_URL": TILES, "CMM_GEO_ADMIN_TOKEN": TOKEN}
    with uvicorn_app(env, "cmm-geo-xss-") as base:
        yield base


def _square(x: float, y: float, d: float = 0.02) -> dict:
    ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture(scope="module")
def poisoned(server) -> dict[str, str]:
    """Stores the payloads: a layer (name, attributes) and an intervention; their ids."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    layer = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": _square(9.10, 45.44),
             "properties": {"name": SCRIPT, "note": IMG, "link": JS_URL}},
            {"type": "Feature", "geometry": _square(9.25, 45.50),
             "properties": {"name": CLOSE, "note": SVG, "link": JS_URL}},
        ],
    }  # fmt: skip
    r = httpx.post(
        f"{server}/layers",
        files={"file": ("x.geojson", json.dumps(layer).encode(), "application/geo+json")},
        data={"name": IMG + " Parco " + CLOSE},
        headers=auth,
        timeout=120,
    )
    assert r.status_code == 201, r.text
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [9.19, 45.466]},
        "properties": {"title": IMG + " Titolo " + CLOSE, "programme": "PINQUA",
                       "comuni": "015146", "status": SVG, "remark": SCRIPT},
    }  # fmt: skip
    r2 = httpx.post(
        f"{server}/collections/interventions/items", json=feature, headers=auth, timeout=120
    )
    assert r2.status_code == 201, r2.text
    rec = r.json()
    return {"layer": rec["id"], "layer_name": rec["name"], "intervention": r2.json()["id"]}


class Page:
    """A page that records CSP violations, script errors, outside requests and tile hits."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(CSP_LISTENER)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.tiles: list[str] = []
        self.tile = _tile_png()
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        host = urlparse(url).hostname or ""
        if url.startswith("data:") or host in LOCAL_HOSTS:
            route.continue_()
        elif host == TILE_HOST:
            self.tiles.append(url)
            route.fulfill(status=200, content_type="image/png", body=self.tile)
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, url: str):
        resp = self.page.goto(url, wait_until="load")
        assert resp is not None and resp.status == 200, url
        return self.page

    def violations(self) -> list[str]:
        """CSP violations seen by the page and by the console."""
        events = self.page.evaluate("window.__csp || []")
        logged = [m for m in self.console if "Content Security Policy" in m]
        return events + logged

    def check(self, shot: str) -> None:
        """No payload ran, no CSP violation, no script error; take the screenshot."""
        pg = self.page
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"xss-{shot}.png"))
        assert pg.evaluate("typeof window.__xss") == "undefined", "a payload ran"
        assert pg.locator('img[src="x"], svg[onload], a[href^="javascript:"]').count() == 0
        assert self.violations() == []
        assert self.errors == [], self.errors
        assert self.console == [], self.console

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    p.close()


def _popup(pg) -> str:
    pop = pg.locator(".leaflet-popup-content")
    pop.wait_for()
    return pop.inner_text()


def _wait_tiles(page: Page) -> None:
    """The base map is drawn: some tiles were requested and are shown."""
    page.page.wait_for_selector("img.leaflet-tile-loaded")
    assert page.tiles, "no tile requested"


def test_layer_items_page_escapes_and_popups(server, poisoned, page):
    pg = page.open(f"{server}/collections/{poisoned['layer']}/items?f=html")
    pg.wait_for_selector("path.leaflet-interactive")
    cells = pg.locator("td").all_inner_texts()
    for text in (SCRIPT, CLOSE, IMG, SVG, JS_URL):
        assert text in cells, text
    assert IMG in pg.locator("h1").inner_text()
    shown = set()
    for i in range(2):
        pg.locator("path.leaflet-interactive").nth(i).click()
        shown.add(_popup(pg))
        pg.locator(".leaflet-popup-close-button").click()
        pg.wait_for_selector(".leaflet-popup", state="detached")
    assert shown == {SCRIPT, CLOSE}
    _wait_tiles(page)
    page.check("layer-items")


def test_layer_item_page(server, poisoned, page):
    status_items = httpx.get(
        f"{server}/collections/{poisoned['layer']}/items?f=json", timeout=60
    ).json()
    fid = status_items["features"][1]["id"]
    pg = page.open(f"{server}/collections/{poisoned['layer']}/items/{fid}?f=html")
    pg.wait_for_selector("path.leaflet-interactive")
    facts = dict(zip(pg.locator("th").all_inner_texts(), pg.locator("td").all_inner_texts(),
                     strict=False))  # fmt: skip
    assert facts.get("name") == CLOSE and facts.get("note") == SVG
    pg.locator("path.leaflet-interactive").first.click()
    assert _popup(pg) == CLOSE
    page.check("layer-item")


def test_layer_map_page(server, poisoned, page):
    pg = page.open(f"{server}/maps/layers/{poisoned['layer']}")
    pg.wait_for_selector("path.cmm-comune", state="attached")
    assert pg.locator("path.cmm-comune").count() == 133
    name = poisoned["layer_name"]
    assert IMG in name  # stored as given
    assert pg.locator("h1").inner_text() == name
    assert pg.title() == f"{name} — mappa"
    assert name in pg.locator(".leaflet-control-layers").inner_text()
    pg.locator("path.cmm-c-015146").click()
    assert "Milano" in _popup(pg)
    _wait_tiles(page)
    page.check("layer-map")


def test_intervention_item_page(server, poisoned, page):
    pg = page.open(f"{server}/collections/interventions/items/{poisoned['intervention']}?f=html")
    pg.wait_for_selector(".leaflet-marker-icon")
    facts = dict(zip(pg.locator("th").all_inner_texts(), pg.locator("td").all_inner_texts(),
                     strict=False))  # fmt: skip
    assert facts["title"] == IMG + " Titolo " + CLOSE
    assert facts["remark"] == SCRIPT and facts["status"] == SVG
    pg.locator(".leaflet-marker-icon").first.click()
    assert _popup(pg) == IMG + " Titolo " + CLOSE
    page.check("intervention-item")


def test_interventions_map_page(server, poisoned, page):
    pg = page.open(f"{server}/maps/interventions?source=api")
    pg.wait_for_selector("path.cmm-intervention")
    assert pg.locator("path.cmm-intervention").count() == 1
    table = pg.locator("table.cmm-interventions").inner_text()
    assert IMG + " Titolo " + CLOSE in table and SVG in table
    marker = pg.locator("path.cmm-intervention")
    marker.hover()
    pg.locator(".leaflet-tooltip").wait_for()
    assert pg.locator(".leaflet-tooltip").inner_text() == "PINQUA"
    marker.click()
    text = _popup(pg)
    assert IMG + " Titolo " + CLOSE in text and "Stato: " + SVG in text
    pg.wait_for_function(
        "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'"
    )
    _wait_tiles(page)
    page.check("interventions-map")


def test_comune_map_page_lists_escaped_intervention(server, poisoned, page):
    pg = page.open(f"{server}/maps/comuni/015146")
    pg.wait_for_selector("path.cmm-selected", state="attached")
    assert IMG + " Titolo " + CLOSE in pg.locator("table.cmm-interventions").inner_text()
    page.check("comune-map")


@pytest.mark.parametrize(
    "path",
    ["/", "/collections?f=html", "/collections/comuni/items?f=html&limit=3", "/maps",
     "/maps/territory", "/maps/zone-omogenee/adda-martesana"],
)  # fmt: skip
def test_pages_load_without_csp_violation(server, poisoned, page, path):
    """Every kind of page (landing, list, items with map, maps index, Folium maps)."""
    pg = page.open(server + path)
    if "items" in path:
        pg.wait_for_selector("path.leaflet-interactive")
        _wait_tiles(page)
    if path.startswith("/maps/"):
        pg.wait_for_selector("path.cmm-comune", state="attached")
        assert pg.locator(".cmm-legend").count() == 1
        _wait_tiles(page)
    page.check("page" + path.replace("/", "-").replace("?", "-").replace("&", "-"))


def test_docs_page_has_no_csp_violation(server, page):
    """Swagger UI (self-hosted) renders: its inline script is allowed by its hash."""
    pg = page.open(server + "/docs")
    pg.wait_for_selector(".swagger-ui .info .title")
    pg.wait_for_selector(".opblock")
    page.check("docs")
