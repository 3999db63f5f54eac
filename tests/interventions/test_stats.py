"""Aggregates of the interventions per comune, zona, unione, programme and mission."""

from __future__ import annotations

import csv
import io

import pytest

from geo import interventions as iv
from geo.interventions.stats import GROUPINGS, intervention_stats


@pytest.fixture(scope="module")
def engine(store_engine):
    """Both backends: the aggregates are SQL (GROUP BY in the store); ``_by_hand`` counts
    the same from the in-memory snapshot, the reference."""
    return store_engine


def _by_hand(engine, key: str) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for p in iv.snapshot(engine).properties:
        for k in p[key] if isinstance(p[key], list) else [p[key]]:
            n, a = out.get(k, (0, 0.0))
            out[k] = (n + 1, a + (p["amount_eur"] or 0.0))
    return out


@pytest.mark.parametrize(
    ("by", "key"),
    [
        ("comune", "comuni"),
        ("zona", "zone"),
        ("unione", "unioni"),
        ("programme", "programme"),
        ("mission", "missions"),
    ],
)
def test_counts_and_amounts(engine, by, key):
    result = intervention_stats(by, engine)
    expected = _by_hand(engine, key)
    got = {g["id"]: (g["count"], g["amount_eur"]) for g in result["groups"] if g["count"]}
    assert got.keys() == expected.keys()
    for k, (n, a) in expected.items():
        assert got[k][0] == n
        assert got[k][1] == pytest.approx(a, abs=0.01)
    assert "do not add them up" in result["note"]


def test_zones_and_per_inhabitant(engine, territory):
    result = intervention_stats("zona", engine)
    assert {g["id"] for g in result["groups"]} == set(territory.zones)
    for g in result["groups"]:
        assert g["population"] == territory.zones[g["id"]].population
        if g["count_with_amount"]:
            assert g["amount_per_inhabitant"] == pytest.approx(
                g["amount_eur"] / g["population"], abs=0.01
            )
    comuni = intervention_stats("comune", engine)["groups"]
    assert len(comuni) == 133
    assert sum(1 for g in comuni if g["count"]) >= 73
    programmes = intervention_stats("programme", engine)["groups"]
    assert (programmes[0]["id"], programmes[0]["count"]) == ("PUI SPUGNA", 31)
    assert programmes[0]["amount_per_inhabitant"] is None


def test_api_json_and_csv(client):
    for by in GROUPINGS:
        r = client.get(f"/stats/interventions?by={by}")
        assert r.status_code == 200
        assert r.json()["by"] == by
    r = client.get("/stats/interventions?by=zona&f=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 8
    assert {"id", "name", "count", "amount_eur", "amount_per_inhabitant"} <= set(rows[0])
    assert client.get("/stats/interventions?by=planet").status_code == 422
