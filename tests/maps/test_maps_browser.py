"""The map pages in a real headless Chromium, with every route to the outside blocked.

A uvicorn server runs the app on a free loopback port (CMM_GEO_TILES_URL=none, its own
data dir). Each page must load with no console error, create a Leaflet map, draw the
expected number of comuni / interventions, and open a popup on click. A screenshot of
each page goes to ``test-output/screenshots/``.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from servers import uvicorn_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


@pytest.fixture(scope="module")
def server(map_assets) -> Iterator[str]:
    """Base URL of a uvicorn server running the app (no base-map tiles)."""
    with uvicorn_app({"CMM_GEO_TILES_URL": "none"}, "cmm-geo-maps-browser-") as base:
        yield base


class Page:
    """A browser page that blocks the outside and records console errors and outside hits."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        host = urlparse(url).hostname or ""
        if url.startswith("data:") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, url: str, shot: str):
        resp = self.page.goto(url, wait_until="load")
        assert resp is not None and resp.status == 200, url
        self.page.wait_for_selector(".leaflet-container")
        self.page.wait_for_selector("path.cmm-comune", state="attached")
        assert self.page.evaluate("typeof window.L === 'object' && !!window.L.map")
        assert self.page.locator(".leaflet-control-layers").count() == 1
        assert "ISTAT" in self.page.locator(".leaflet-control-attribution").inner_text()
        return self.page

    def screenshot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def check_clean(self) -> None:
        assert self.blocked == [], f"requests to the outside: {self.blocked}"
        assert self.errors == [], f"console errors: {self.errors}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    p.close()


def _click_comune(pg, code: str, expect: str) -> None:
    pg.locator(f"path.cmm-c-{code}").first.click()
    popup = pg.locator(".leaflet-popup-content")
    popup.wait_for()
    assert expect in popup.inner_text()
    _popup_shown(pg)


def _popup_shown(pg) -> None:
    """Wait until the popup has faded in (so the screenshot shows it fully)."""
    pg.wait_for_function(
        "() => { const p = document.querySelector('.leaflet-popup');"
        " return p && getComputedStyle(p).opacity === '1'; }"
    )


def test_territory_page(server, page):
    pg = page.open(server + "/maps/territory", "territory")
    assert pg.locator("path.cmm-comune").count() == 133
    assert pg.locator("path.cmm-unione").count() >= 1
    legend = pg.locator(".cmm-legend").inner_text()
    assert "Adda Martesana" in legend and "Unione di comuni" in legend
    # Hover shows the tooltip, click opens the popup with the comune's facts.
    pg.locator("path.cmm-c-015146").hover()
    pg.locator(".leaflet-tooltip").wait_for()
    assert "Milano" in pg.locator(".leaflet-tooltip").inner_text()
    _click_comune(pg, "015146", "Milano")
    assert "Popolazione" in pg.locator(".leaflet-popup-content").inner_text()
    page.screenshot("territory")
    page.check_clean()


def test_comune_page(server, page):
    code = "015014"
    status, rec = _get_json(f"{server}/comuni/{code}")
    assert status == 200
    pg = page.open(f"{server}/maps/comuni/{code}", "comune")
    assert pg.locator("path.cmm-comune").count() == 1 + len(rec["neighbours"])
    assert pg.locator("path.cmm-selected").count() == 1
    assert pg.locator("path.cmm-unione").count() == 1
    assert "Basiano" in pg.locator("h1").inner_text()
    _click_comune(pg, code, "Basiano")
    page.screenshot(f"comune-{code}")
    page.check_clean()


def test_zone_page(server, page):
    status, rec = _get_json(f"{server}/zone-omogenee/adda-martesana")
    assert status == 200
    pg = page.open(f"{server}/maps/zone-omogenee/adda-martesana", "zone")
    assert pg.locator("path.cmm-comune").count() == 133
    assert pg.locator("path.cmm-comune:not(.cmm-context)").count() == rec["n_comuni"]
    code = rec["comuni"][0]["istat_code"]
    _click_comune(pg, code, rec["comuni"][0]["name"])
    page.screenshot("zone-adda-martesana")
    page.check_clean()


def _expected_interventions(server: str, query: str = "") -> int | None:
    """numberMatched from the API, or None when the service has no interventions."""
    status, body = _get_json(f"{server}/collections/interventions/items?limit=1{query}")
    if status == 200 and "numberMatched" in body:
        return int(body["numberMatched"])
    return None


#: JS: the centre of a single intervention marker that is on top at that point, when the
#: map is not animating; null otherwise (used with wait_for_function).
CLICKABLE_MARKER = """() => {
    if (document.querySelector('.leaflet-zoom-anim, .leaflet-cluster-anim')) return null;
    for (const p of document.querySelectorAll('path.cmm-intervention')) {
        const r = p.getBoundingClientRect();
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        if (x > 5 && y > 5 && x < innerWidth - 5 && y < innerHeight - 5
                && document.elementFromPoint(x, y) === p) return {x: x, y: y};
    }
    return null;
}"""


#: JS: the zoom of the page's Folium map (a global named after its div's id).
MAP_ZOOM = "() => window[document.querySelector('.folium-map').id].getZoom()"


#: JS: how many single intervention markers are drawn inside the window.
VISIBLE_MARKERS = """() => [...document.querySelectorAll('path.cmm-intervention')].filter(p => {
    const r = p.getBoundingClientRect();
    return r.width > 0 && r.right > 0 && r.bottom > 0 && r.left < innerWidth
        && r.top < innerHeight;
}).length"""


def _rendered_interventions(pg) -> int:
    """Markers drawn: single markers plus the counts shown on clusters."""
    return pg.evaluate(
        """() => {
            const single = document.querySelectorAll('path.cmm-intervention').length;
            let clustered = 0;
            document.querySelectorAll('.marker-cluster span').forEach(
                s => { clustered += parseInt(s.textContent, 10) || 0; });
            return single + clustered;
        }"""
    )


@pytest.mark.parametrize("query", ["", "&programme=PUI%20SPUGNA"])
def test_interventions_page(server, page, query):
    expected = _expected_interventions(server, query)
    assert expected is not None and expected > 0
    pg = page.open(f"{server}/maps/interventions?colour_by=programme{query}", "interventions")
    pg.wait_for_function(
        """(n) => {
            const single = document.querySelectorAll('path.cmm-intervention').length;
            let c = 0;
            document.querySelectorAll('.marker-cluster span').forEach(
                s => { c += parseInt(s.textContent, 10) || 0; });
            return single + c === n;
        }""",
        arg=expected,
        timeout=15_000,
    )
    assert _rendered_interventions(pg) == expected
    assert pg.locator(".marker-cluster").count() >= 1
    assert pg.locator(".cmm-legend").count() == 1
    # A single marker's popup opens on click (real mouse click at its centre).
    point = pg.wait_for_function(CLICKABLE_MARKER, timeout=15_000).json_value()
    page.screenshot("interventions" + ("-spugna" if query else ""))
    pg.mouse.click(point["x"], point["y"])
    pg.locator(".leaflet-popup-content").wait_for()
    _popup_shown(pg)
    text = pg.locator(".leaflet-popup-content").inner_text()
    assert "Stato:" in text and "Importo:" in text
    pg.locator(".leaflet-popup-close-button").click()
    # Clicking a cluster zooms in, or spiderfies markers at one place: more markers show.
    zoom, shown = pg.evaluate(MAP_ZOOM), pg.evaluate(VISIBLE_MARKERS)
    pg.locator(".marker-cluster").first.click()
    pg.wait_for_function(
        f"() => ({MAP_ZOOM})() > {zoom} || ({VISIBLE_MARKERS})() > {shown}", timeout=15_000
    )
    page.check_clean()


def test_index_page_links_work(server, page):
    pg = page.page
    resp = pg.goto(server + "/maps", wait_until="load")
    assert resp is not None and resp.status == 200
    hrefs = pg.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert "/maps/territory" in hrefs
    assert sum(1 for h in hrefs if h.startswith("/maps/comuni/")) == 133
    pg.click("text=Il territorio: comuni per zona omogenea e unioni")
    pg.wait_for_selector("path.cmm-comune")
    page.screenshot("index-then-territory")
    page.check_clean()


def test_layer_page(server, page):
    """A layer uploaded through the API gets a choropleth page over the 133 comuni."""
    import httpx

    park = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nome": "Parco di prova"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[9.15, 45.45], [9.22, 45.45], [9.22, 45.49], [9.15, 45.49], [9.15, 45.45]]
                    ],
                },
            }
        ],
    }
    token = os.environ.get("CMM_GEO_ADMIN_TOKEN", "test-admin-token")
    r = httpx.post(
        f"{server}/layers",
        files={"file": ("parco.geojson", json.dumps(park).encode(), "application/geo+json")},
        data={"name": "Parco di prova mappe"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    layer_id = r.json()["id"]
    pg = page.open(f"{server}/maps/layers/{layer_id}", "layer")
    assert pg.locator("path.cmm-comune").count() == 133
    assert pg.locator("path.cmm-overlay").count() == 1
    assert "Quota coperta" in pg.locator(".cmm-legend").inner_text()
    pg.locator("path.cmm-c-015146").hover()
    pg.locator(".leaflet-tooltip").wait_for()
    assert "Quota coperta" in pg.locator(".leaflet-tooltip").inner_text()
    page.screenshot("layer")
    page.check_clean()
    index = httpx.get(f"{server}/maps", timeout=60).text
    assert f'href="/maps/layers/{layer_id}"' in index


def test_api_docs_render_offline(server, page):
    """/docs (Swagger UI) renders every operation with no request leaving the machine."""
    resp = page.page.goto(server + "/docs", wait_until="load")
    assert resp is not None and resp.status == 200
    page.page.wait_for_selector(".opblock", timeout=30_000)
    summaries = page.page.locator(".opblock-summary-path").all_inner_texts()
    assert "/lookup" in summaries and "/collections/{collectionId}/items" in summaries
    page.screenshot("api-docs")
    page.check_clean()
