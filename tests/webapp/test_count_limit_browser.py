"""The interventions panel stays exact, and light, however many interventions match.

A filtered items page carries ``numberMatched`` only up to ``CMM_GEO_COUNT_LIMIT`` (here 5),
so the panel does not count features: its counts, sums, facet counts and charts come from
``/stats/interventions`` (counted in the store with the same filters), its table is paged
and sorted by the server, and its map draws the ``MAP_LIMIT`` (2,000) largest matches. A
server holding 10,050 extra interventions shows: the exact count and amount of 10,051
matches, a note that the map holds the 2,000 largest, a table whose last page is reached
through the server; and the browser never asks for more than 2,000 features at once.
Screenshots: ``test-output/screenshots/webapp-count-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from servers import uvicorn_app

from tests.webapp.test_app_browser import App

#: The programme filter (its label's text also holds the options': "Programma" alone
#: would match the status filter's "programmato" too).
PROGRAMME = "#iv-filters select[name=programme]"
MAP_LIMIT = 2000  # interventions.js

pytestmark = pytest.mark.browser

TOKEN = "count-limit-admin-token"
SEEDED = 104  # the documented interventions every store starts with
EXTRA = 10_050  # more than the map draws and than the service counts per page
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


def seeded(server: str, programme: str) -> list[dict]:
    """The seeded interventions of ``programme`` (every one but the extra ``prova-…``)."""
    got = items(server, programme=programme, filter="NOT (id LIKE 'prova-%')", limit=10_000)
    return got["features"]


def shown(pg, count: int) -> str:
    """The count line once the app shows ``count``."""
    pg.wait_for_function(
        "n => document.querySelector('#iv-n')?.dataset.count === n", arg=str(count), timeout=60_000
    )
    return pg.locator("#iv-n").inner_text()


def watch_items(pg) -> list[int]:
    """The ``limit`` of every items request the page makes."""
    limits: list[int] = []

    def seen(request) -> None:
        url = urlparse(request.url)
        if url.path == "/collections/interventions/items":
            limits.append(int(parse_qs(url.query).get("limit", ["10"])[0]))

    pg.on("request", seen)
    return limits


def test_the_service_leaves_the_count_out_beyond_the_limit(server):
    """What the app cannot rely on (else the test below proves nothing)."""
    assert items(server, limit=1)["numberMatched"] == SEEDED + EXTRA  # unfiltered: exact
    assert "numberMatched" not in items(server, limit=1, programme="Idroscalo")
    assert "numberMatched" not in items(server, limit=1, programme="PINQUA")  # 13 > 5


def test_italian_counts_and_sums_every_match_and_loads_little(browser, server):
    app = App(browser, server)
    try:
        limits = watch_items(app.page)
        pg = app.open("/?tab=interventions&iv_programme=Idroscalo")
        base = seeded(server, "Idroscalo")
        n = EXTRA + len(base)
        amount = sum(BASE_AMOUNT + k for k in range(1, EXTRA + 1)) + sum(
            f["properties"]["amount_eur"] or 0 for f in base
        )
        total = "10.154"  # SEEDED + EXTRA
        assert shown(pg, n) == f"{n:,} interventi su {total}".replace(",", ".")
        assert float(pg.locator("#iv-amount").get_attribute("data-amount")) == pytest.approx(amount)
        note = pg.locator("#iv-partial").inner_text()
        # Italian groups digits from five on (Intl): "2000", "10.051"
        assert "La mappa mostra i 2000 con l'importo maggiore" in note
        assert pg.locator(".leaflet-points-pane path").count() == MAP_LIMIT
        # The counts beside the choices are exact: counted by the store, not in the page.
        choices = pg.locator(PROGRAMME).locator("option").all_inner_texts()
        assert f"Idroscalo ({n:,})".replace(",", ".") in choices and "PINQUA (0)" in choices
        # The table's largest amount first, and its last page is the server's.
        first = pg.locator("#iv-table tbody td.num").first.inner_text()
        assert first == f"{BASE_AMOUNT + EXTRA:,}".replace(",", ".")
        pages = -(-n // 15)
        assert pg.locator("#iv-page").inner_text() == f"Pagina 1 di {pages:,}".replace(",", ".")
        pg.locator("#iv-next").click()
        pg.wait_for_function(
            "() => document.querySelector('#iv-page').textContent.startsWith('Pagina 2 ')"
        )
        second = pg.locator("#iv-table tbody td.num").first.inner_text()
        assert second == f"{BASE_AMOUNT + EXTRA - 15:,}".replace(",", ".")
        app.shot("count-1-exact-it")

        # Fewer than the map draws: no note, and the count is exact there too.
        pinqua = len(seeded(server, "PINQUA"))
        pg.locator(PROGRAMME).select_option("PINQUA")
        assert shown(pg, pinqua) == f"{pinqua} interventi su {total}"
        assert pg.locator("#iv-partial").count() == 0
        assert pg.locator(".leaflet-points-pane path").count() == pinqua

        # No filter: the exact total; the map still holds the largest 2,000.
        pg.locator("#iv-reset").click()
        assert shown(pg, SEEDED + EXTRA) == f"{total} interventi"
        assert pg.locator("#iv-partial").count() == 1
        assert limits and max(limits) <= MAP_LIMIT, limits  # never 10,000 features at once
        app.check_clean()
    finally:
        app.close()


def test_english_counts_every_match(browser, server):
    app = App(browser, server, locale="en-GB")
    try:
        pg = app.open("/?lang=en&tab=interventions&iv_programme=Idroscalo")
        assert pg.locator("html").get_attribute("lang") == "en"
        n = EXTRA + len(seeded(server, "Idroscalo"))
        assert shown(pg, n) == f"{n:,} interventions of 10,154"
        assert (
            "The map shows the 2,000 with the largest amounts"
            in pg.locator("#iv-partial").inner_text()
        )
        app.shot("count-2-exact-en")
        app.check_clean()
    finally:
        app.close()
