"""The HTML error page of a domain error (a malformed ``bbox`` of the interventions) as a
comune's clerk sees it in Chromium: Italian by default, English on request, every value
given shown as text. Screenshot: ``test-output/screenshots/error-page-domain-it.png``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from servers import uvicorn_app

from tests.webapp.test_app_browser import SHOTS, App

pytestmark = pytest.mark.browser

PAYLOAD = "<img src=x onerror=window.__xss=1>"


@pytest.fixture(scope="module")
def server(map_assets) -> Iterator[str]:
    with uvicorn_app({"CMM_GEO_TILES_URL": "none"}, "cmm-geo-domain-errors-") as base:
        yield base


@pytest.mark.parametrize(
    ("url", "expected", "shot"),
    [
        ("/collections/interventions/items?f=html&bbox=1,2,3",
         ["Richiesta non valida", "bbox: servono 4 o 6 numeri separati da virgole "
          "(minx,miny,maxx,maxy), ricevuti 3", "Parametro: bbox", "Pagina iniziale"],
         "error-page-domain-it"),
        (f"/collections/interventions/items?f=html&sortby={quote(PAYLOAD)}",
         # "<img" is the property, the rest a direction: the first problem is said
         ["sortby: direzione «src=x onerror=window.__xss=1>» sconosciuta; usare ASC o DESC",
          "Parametro: sortby"], None),
        ("/collections/interventions/items?f=html&bbox=1,2,3&lang=en",
         ["Bad request", "bbox: give 4 (or 6) finite numbers: minx,miny,maxx,maxy",
          "Parameter: bbox", "Home"], None),
    ],
)  # fmt: skip
def test_domain_error_page_in_the_browser(browser, server, url, expected, shot):
    app = App(browser, server, locale="it-IT")
    try:
        resp = app.page.goto(server + url, wait_until="load")
        assert resp is not None and resp.status == 400
        text = app.page.locator("body").inner_text()
        for words in expected:
            assert words in text, (words, text)
        assert app.page.evaluate("typeof window.__xss") == "undefined"
        assert app.page.locator('img[src="x"]').count() == 0
        assert app.page.evaluate("window.__csp") == [] and app.errors == []
        if shot:
            SHOTS.mkdir(parents=True, exist_ok=True)
            app.page.screenshot(path=str(SHOTS / f"{shot}.png"))
    finally:
        app.close()
