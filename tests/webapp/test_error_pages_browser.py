"""Errors as a browser shows them: the HTML error page of a bad parameter (Italian words
made from pydantic's error type) and of a domain error (a malformed ``bbox`` of the
interventions), English on request, every value given shown as text; and the map
application saying the service's errors in its page's language.
Screenshots: ``test-output/screenshots/error-page-*.png``, ``webapp-place-error-it.png``."""

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
    url = f"/collections/comuni/items?f=html&limit=abc&skipGeometry={quote(PAYLOAD)}{query}"
    _check_error_page(browser, server, locale, url, expected, f"error-page-{shot}")


def _check_error_page(browser, server, locale, url, expected, shot):  # type: ignore[no-untyped-def]
    """A 400 page that says every expected phrase, runs no payload and breaks no policy."""
    app = App(browser, server, locale=locale)
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
    _check_error_page(browser, server, "it-IT", url, expected, shot)


@pytest.mark.parametrize(
    ("locale", "path", "expected"),
    [
        # The browser asks for English, the page is Italian: the message follows the page.
        ("en-US", "/?comune=999999&lang=it", "Nessun comune con codice ISTAT 999999"),
        ("it-IT", "/?comune=999999&lang=en", "No comune with ISTAT code 999999"),
    ],
)
def test_the_app_says_the_services_errors_in_its_own_language(
    browser, server, locale, path, expected
):
    """The map application asks the service for its errors in the page's language (not the
    browser's), and shows them to the clerk as they come."""
    app = App(browser, server, locale=locale)
    try:
        page = app.open(path)
        alert = page.locator("#panel-place [role=alert]")
        alert.wait_for(timeout=20_000)
        assert alert.inner_text().strip() == expected  # a 404 says what is missing, alone
        assert app.errors == [] and app.blocked == [] and app.page.evaluate("window.__csp") == []
        assert set(app.failed) <= {"/app/session", "/comuni/999999"}, app.failed
        if "lang=it" in path:
            app.shot("place-error-it")
    finally:
        app.close()
