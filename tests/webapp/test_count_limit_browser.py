"""The interventions' count in the app stays honest when the service stops counting.

A filtered items page carries ``numberMatched`` only up to ``CMM_GEO_COUNT_LIMIT`` (here 5);
the app loads at most 10,000 features. A server holding 10,050 extra interventions shows:
more than the app loaded → "oltre 10.000" / "more than 10,000"; an uncounted filter the
app loaded whole → its exact number; exactly 10,000 (a full page, an empty next one) → the
exact number too. Screenshots: ``test-output/screenshots/webapp-count-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from servers import uvicorn_app

from tests.webapp.test_app_browser import App

#: The programme filter (its label's text also holds the options': "Programma" alone
#: would match the status filter's "programmato" too).
PROGRAMME = "#iv-filters select[name=programme]"

pytestmark = pytest.mark.browser

TOKEN = "count-limit-admin-token"
SEEDED = 104  # the documented interventions every store starts with
EXTRA = 10_050  # more than the app's page (10,000)
BASE_AMOUNT = 100_000_000  # above every seeded amount (at most 50 M)


@pytest.fixture(scope="module")
def server(map_assets) -> Iterator[str]:
    env = {
        "CMM_GEO_TILES_URL": "none",
        "CMM_GEO_ADMIN_TOKEN": TOKEN,
        "CMM_GEO_COUNT_LIMIT": "5",
    }
    rows = ["id,title,programme,comuni,amount_eur"] + [
        f"prova-{k},Prova {k},Idroscalo,Milano,{BASE_AMOUNT + k}" for k in range(1, EXTRA + 1)
    ]
    with uvicorn_app(env, "cmm-geo-count-") as base:
        r = httpx.post(
            f"{base}/imports/interventions",
            files={"file": ("prova.csv", "\n".join(rows).encode(), "text/csv")},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=600,
        )
        assert r.status_code == 200, r.text[:500]
        assert r.json()["new"] == EXTRA
        yield base


def items(server: str, **params) -> dict:
    r = httpx.get(f"{server}/collections/interventions/items", params=params, timeout=120)
    assert r.status_code == 200, r.text[:300]
    return r.json()


def label(pg, *, exact: bool, count: int) -> str:
    """The count line once the app shows ``count`` (exact or a lower bound)."""
    pg.wait_for_function(
        "([n, e]) => { const x = document.querySelector('#iv-n');"
        " return x && x.dataset.count === n && x.dataset.exact === e; }",
        arg=[str(count), str(exact).lower()],
        timeout=60_000,
    )
    return pg.locator("#iv-n").inner_text()


def test_the_service_leaves_the_count_out_beyond_the_limit(server):
    """What the app has to go on (else the test below proves nothing)."""
    assert items(server, limit=1)["numberMatched"] == SEEDED + EXTRA  # unfiltered: exact
    assert "numberMatched" not in items(server, limit=1, programme="Idroscalo")
    assert "numberMatched" not in items(server, limit=1, programme="PINQUA")  # 13 > 5
    assert items(server, limit=1, programme="Biciplan")["numberMatched"] == 1


def test_italian_says_oltre_and_keeps_exact_counts(browser, server):
    app = App(browser, server)
    try:
        pg = app.open("/?tab=interventions&iv_programme=Idroscalo")
        total = "10.154"  # SEEDED + EXTRA, exact (an unfiltered page is always counted)
        assert label(pg, exact=False, count=10_000) == f"oltre 10.000 interventi su {total}"
        count_line = pg.locator("#iv-count").inner_text()
        assert "importo dichiarato dei 10.000 caricati" in count_line
        assert "mostrano i primi 10.000" in pg.locator("#iv-partial").inner_text()
        # The counts beside the choices are of the loaded features: lower bounds.
        choices = pg.locator(PROGRAMME).locator("option").all_inner_texts()
        assert "Idroscalo (10.000+)" in choices and "PINQUA (0+)" in choices
        app.shot("count-1-oltre-it")

        # More than the service counts (13 > 5), fewer than the app loads: exact.
        pinqua = items(server, programme="PINQUA", limit=10_000)
        assert "numberMatched" not in pinqua
        n = len(pinqua["features"])
        pg.locator(PROGRAMME).select_option("PINQUA")
        assert label(pg, exact=True, count=n) == f"{n} interventi su {total}"
        assert pg.locator("#iv-partial").count() == 0
        assert "importo dichiarato:" in pg.locator("#iv-count").inner_text()
        choices = pg.locator(PROGRAMME).locator("option").all_inner_texts()
        assert f"PINQUA ({n})" in choices and not any(c.endswith("+)") for c in choices)

        # Under the service's limit: its own numberMatched, as before.
        pg.locator(PROGRAMME).select_option("Biciplan")
        assert label(pg, exact=True, count=1) == f"1 intervento su {total}"  # singular

        # Exactly a full page of the app (10,000), the page after it empty: exact.
        pg.locator(PROGRAMME).select_option("")
        pg.get_by_label("Importo minimo (€)").fill(str(BASE_AMOUNT + 1))
        pg.get_by_label("Importo massimo (€)").fill(str(BASE_AMOUNT + 10_000))
        assert label(pg, exact=True, count=10_000) == f"10.000 interventi su {total}"
        app.shot("count-2-exact-it")

        # No filter: the exact total, of which the app loaded 10,000.
        pg.locator("#iv-reset").click()
        assert label(pg, exact=True, count=SEEDED + EXTRA) == f"{total} interventi"
        assert pg.locator("#iv-partial").count() == 1
        app.check_clean()
    finally:
        app.close()


def test_english_says_more_than(browser, server):
    app = App(browser, server, locale="en-GB")
    try:
        pg = app.open("/?lang=en&tab=interventions&iv_programme=Idroscalo")
        assert pg.locator("html").get_attribute("lang") == "en"
        text = label(pg, exact=False, count=10_000)
        assert text == "more than 10,000 interventions of 10,154"
        assert "stated amount of the 10,000 loaded" in pg.locator("#iv-count").inner_text()
        app.shot("count-3-more-than-en")
        n = len(items(server, programme="PINQUA", limit=10_000)["features"])
        pg.locator(PROGRAMME).select_option("PINQUA")
        assert label(pg, exact=True, count=n) == f"{n} interventions of 10,154"
        app.check_clean()
    finally:
        app.close()
