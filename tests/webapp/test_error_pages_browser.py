"""The HTML error page of a bad parameter, as a browser shows it: Italian words made from
pydantic's error type, English on request, every value given shown as text.
Screenshots: ``test-output/screenshots/error-page-*.png``."""

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
    with uvicorn_app({"CMM_GEO_TILES_URL": "none"}, "cmm-geo-errors-") as base:
        yield base


@pytest.mark.parametrize(
    ("locale", "query", "expected", "shot"),
    [
        ("it-IT", "", ["limit: deve essere un numero intero, non «abc»", "Parametro: limit",
                       "Inoltre:", "skipGeometry: deve essere true o false", f"«{PAYLOAD}»",
                       "Pagina iniziale"], "it"),
        ("it-IT", "&lang=en", ["limit: Input should be a valid integer", "Parameter: limit",
                               "Also:", "skipGeometry: Input should be a valid boolean"], "en"),
    ],
)  # fmt: skip
def test_error_page_in_the_browser(browser, server, locale, query, expected, shot):
    app = App(browser, server, locale=locale)
    try:
        url = f"/collections/comuni/items?f=html&limit=abc&skipGeometry={quote(PAYLOAD)}{query}"
        resp = app.page.goto(server + url, wait_until="load")
        assert resp is not None and resp.status == 400
        text = app.page.locator("body").inner_text()
        for words in expected:
            assert words in text, (words, text)
        assert app.page.evaluate("typeof window.__xss") == "undefined"
        assert app.page.locator('img[src="x"]').count() == 0
        assert app.page.evaluate("window.__csp") == [] and app.errors == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        app.page.screenshot(path=str(SHOTS / f"error-page-{shot}.png"))
    finally:
        app.close()
