"""``numberMatched`` of filtered pages is counted up to CMM_GEO_COUNT_LIMIT and left out
beyond (OGC allows it), so a filtered page of a big table never costs a full count; the
unfiltered number stays exact, and so do the callers that need it (tiles, downloads)."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geo.ogc.registry import FeatureQuery, registry
from geo.settings import get_settings

ITEMS = "/collections/interventions/items"


@pytest.fixture()
def client(backend):
    old = os.environ.get("CMM_GEO_COUNT_LIMIT")
    os.environ["CMM_GEO_COUNT_LIMIT"] = "5"
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as c:
            yield c
    finally:
        if old is None:
            os.environ.pop("CMM_GEO_COUNT_LIMIT", None)
        else:
            os.environ["CMM_GEO_COUNT_LIMIT"] = old
        get_settings.cache_clear()


def test_filtered_pages_counted_up_to_the_limit(client):
    total = client.get(ITEMS, params={"limit": 1}).json()["numberMatched"]
    assert total > 5  # unfiltered: exact, whatever the limit
    exact = len(registry.get("interventions").query(FeatureQuery(limit=10_000)).features)
    assert total == exact

    many = client.get(ITEMS, params={"filter": "amount_eur >= 0", "limit": 3}).json()
    assert "numberMatched" not in many and many["numberReturned"] == 3
    assert any(link["rel"] == "next" for link in many["links"])  # more than 5 match

    # A filter matching ≤ 5 features keeps its exact number.
    ids = [f["id"] for f in client.get(ITEMS, params={"limit": 4}).json()["features"]]
    flt = "id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    few = client.get(ITEMS, params={"filter": flt, "limit": 2}).json()
    assert few["numberMatched"] == 4 and few["numberReturned"] == 2
    assert any(link["rel"] == "next" for link in few["links"])

    # The page of a capped query that comes up short has no next link.
    n_amount = sum(
        1
        for f in registry.get("interventions").query(FeatureQuery(limit=10_000)).features
        if (f["properties"].get("amount_eur") or -1) >= 0
    )
    last = client.get(
        ITEMS, params={"filter": "amount_eur >= 0", "limit": 10, "offset": n_amount - 3}
    ).json()
    assert last["numberReturned"] == 3 and not any(x["rel"] == "next" for x in last["links"])


def test_html_page_says_more_than(client):
    page = client.get(ITEMS, params={"filter": "amount_eur >= 0", "limit": 3, "f": "html"})
    assert page.status_code == 200 and "di oltre 5 elementi" in page.text
    en = client.get(
        ITEMS,
        params={"filter": "amount_eur >= 0", "limit": 3, "f": "html"},
        headers={"Accept-Language": "en"},
    )
    assert "of more than 5 features" in en.text


def test_providers_count_exactly_unless_asked(backend):
    p = registry.get("interventions")
    q = FeatureQuery(filter=None, bbox=(8.0, 45.0, 10.0, 46.0), limit=1)
    exact = p.query(q).number_matched
    assert exact is not None and exact > 5
    from dataclasses import replace

    assert p.query(replace(q, count_limit=5)).number_matched is None
    assert p.query(replace(q, count_limit=exact)).number_matched == exact
