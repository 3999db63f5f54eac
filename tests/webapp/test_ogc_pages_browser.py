"""The OGC HTML pages in a real headless Chromium, in Italian (the default) and English.

Each page of the OGC API (landing, collections, a collection, its items, one item,
conformance) is opened in both languages, with no script error, CSP violation or outside
request, and axe-core finds no serious or critical violation; the language link switches
and the choice holds on the next page. Screenshots: ``test-output/screenshots/ogc-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from servers import uvicorn_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
AXE = ROOT / "api" / "static" / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 768}
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
    window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""
#: name → (path, Italian h1, English h1)
PAGES = {
    "landing": ("/?f=html", None, None),
    "collections": ("/collections?f=html", "Collezioni", "Collections"),
    "collection": (
        "/collections/zone-omogenee?f=html",
        "Zone omogenee",
        "Homogeneous zones (zone omogenee)",
    ),
    "items": (
        "/collections/comuni/items?f=html&limit=10",
        "Comuni della Città metropolitana di Milano: elementi",
        "Municipalities (comuni) of the Metropolitan City of Milan: features",
    ),
    "item": ("/collections/comuni/items/015146?f=html", "Milano", "Milano"),
    "conformance": ("/conformance?f=html", "Conformità", "Conformance"),
}


@pytest.fixture(scope="module")
def server(map_assets) -> Iterator[str]:
    with uvicorn_app({"CMM_GEO_TILES_URL": "none"}, "cmm-geo-ogc-pages-") as base:
        yield base


class Page:
    """A browser page recording script errors, CSP violations and outside requests."""

    def __init__(self, browser, server: str, locale: str, *, bypass_csp: bool = False) -> None:
        self.server = server
        self.context = browser.new_context(viewport=DESKTOP, locale=locale, bypass_csp=bypass_csp)
        self.context.add_init_script(CSP_LISTENER)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("data:") or (urlparse(url).hostname or "") == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str):
        resp = self.page.goto(self.server + path, wait_until="load")
        assert resp is not None and resp.status == 200, path
        if "items" in path or path.startswith("/collections/"):
            self.page.wait_for_selector("path.leaflet-interactive, .leaflet-marker-icon")
        return resp

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"ogc-{name}.png"), full_page=True)

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.page.evaluate("window.__csp") == []
        assert self.blocked == [], self.blocked

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("lang", ["it", "en"])
def test_every_ogc_page_in_both_languages(browser, server, lang):
    # The browser's own language picks the page's (Accept-Language), as for the app.
    p = Page(browser, server, "it-IT" if lang == "it" else "en-GB")
    try:
        for name, (path, h1_it, h1_en) in PAGES.items():
            resp = p.open(path)
            assert resp.headers["content-language"] == lang, name
            assert p.page.locator("html").get_attribute("lang") == lang, name
            if h1_it:
                assert p.page.locator("h1").inner_text() == (h1_it if lang == "it" else h1_en)
            switch = p.page.locator("a[hreflang]")
            assert switch.inner_text() == ("English" if lang == "it" else "Italiano")
            p.shot(f"{name}-{lang}")
        p.clean()
    finally:
        p.close()


def test_language_link_switches_and_the_choice_holds(browser, server):
    p = Page(browser, server, "it-IT")
    pg = p.page
    try:
        p.open("/collections?f=html")
        assert pg.locator("th").first.inner_text() == "Collezione"
        pg.get_by_role("link", name="English").click()
        pg.wait_for_url(re.compile(r"lang=en"))
        assert pg.locator("html").get_attribute("lang") == "en"
        assert pg.locator("h1").inner_text() == "Collections"
        # Next page, reached by a link without ?lang=: English still (the cookie).
        pg.get_by_role("link", name="Unions of comuni").click()
        pg.wait_for_selector("path.leaflet-interactive")
        assert pg.locator("h1").inner_text() == "Unions of comuni"
        assert "extent (CRS84)" in pg.locator("table").inner_text()
        pg.get_by_role("link", name="Italiano").click()
        pg.wait_for_url(re.compile(r"lang=it"))
        assert pg.locator("h1").inner_text() == "Unioni di comuni"
        assert "estensione (CRS84)" in pg.locator("table").inner_text()
        p.shot("collection-switched-back-it")
        p.clean()
    finally:
        p.close()


def _axe(pg) -> list[dict]:
    pg.add_script_tag(path=str(AXE))
    return pg.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )


def test_no_serious_accessibility_violation(browser, server):
    # axe is injected as an inline script: this context alone bypasses the CSP.
    p = Page(browser, server, "it-IT", bypass_csp=True)
    try:
        found = {}
        for name, (path, _, _) in PAGES.items():
            p.open(path)
            found[name] = [v for v in _axe(p.page) if v["impact"] in ("serious", "critical")]
        assert all(v == [] for v in found.values()), found
    finally:
        p.close()
