"""Aggregates of the interventions per comune, zona, unione, programme and mission."""

from __future__ import annotations

import csv
import io

import pytest
import shapely
import shapely.geometry

from geo import interventions as iv
from geo.errors import InvalidParameter
from geo.interventions.sql_collection import InterventionsSqlProvider
from geo.interventions.stats import GROUPINGS, intervention_facets, intervention_stats
from geo.ogc.cql import parse_filter
from geo.ogc.registry import FeatureQuery


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


#: Items queries the map application sends (its filters), and a few beyond them.
QUERIES = [
    {},
    {"properties_eq": {"zona": "sud-ovest"}},
    {"properties_eq": {"comune": "Rho", "amount_min": "100000"}},
    {"properties_eq": {"mission": "M5", "status": "completed"}},
    {"properties_eq": {"text": "parco"}},
    {"properties_eq": {"programme": "nessuno"}},
    {"bbox": (9.10, 45.40, 9.25, 45.52)},
    {"filter": "amount_eur > 1000000 AND NOT (source = 'pnrr')"},
    {"filter": "S_INTERSECTS(geometry, POLYGON((9 45.3, 9.3 45.3, 9.3 45.6, 9 45.6, 9 45.3)))"},
]


def _items(engine, query: FeatureQuery) -> list[dict]:
    """Every feature the items API selects for ``query`` (the reference of the totals)."""
    page = InterventionsSqlProvider(engine).query(
        FeatureQuery(**{**query.__dict__, "limit": 100_000, "count_limit": None})
    )
    return page.features


@pytest.mark.parametrize("spec", QUERIES, ids=lambda q: str(q)[:60])
@pytest.mark.parametrize(
    ("by", "key"),
    [("zona", "zone"), ("comune", "comuni"), ("driver", "drivers"), ("status", "status"),
     ("source", "source")],
)  # fmt: skip
def test_an_items_query_selects_what_the_items_api_pages(engine, spec, by, key):
    """The totals and groups of ``query=`` are those of the features the items API returns
    for the same query: the count, the summed amount, the extent and every group."""
    names = [q.name for q in InterventionsSqlProvider(engine).queryables()] + ["geometry"]
    query = FeatureQuery(
        **{k: v for k, v in spec.items() if k != "filter"},
        filter=parse_filter(spec["filter"], queryables=names) if "filter" in spec else None,
    )
    features = _items(engine, query)
    result = intervention_stats(by, engine, query=query)
    assert result["n_interventions"] == len(features)
    amounts = [f["properties"]["amount_eur"] for f in features]
    assert result["amount_eur"] == pytest.approx(sum(a or 0 for a in amounts), abs=0.01)
    assert result["count_with_amount"] == sum(a is not None for a in amounts)
    if features:
        bounds = shapely.total_bounds([shapely.geometry.shape(f["geometry"]) for f in features])
        assert result["bbox"] == pytest.approx(list(bounds), abs=1e-9)
    else:
        assert result["bbox"] is None
    expected: dict[str, int] = {}
    for f in features:
        value = f["properties"][key]
        for k in value if isinstance(value, list) else [value]:
            if k is not None:
                expected[str(k)] = expected.get(str(k), 0) + 1
    got = {g["id"]: g["count"] for g in result["groups"] if g["count"]}
    assert got == expected


def test_a_filter_the_store_cannot_evaluate_is_a_400(engine):
    """Python's float modulo has no SQL twin: the aggregate says so instead of guessing."""
    names = [q.name for q in InterventionsSqlProvider(engine).queryables()]
    query = FeatureQuery(filter=parse_filter("amount_eur % 7 = 1", queryables=names))
    with pytest.raises(InvalidParameter) as err:
        intervention_stats("zona", engine, query=query)
    assert err.value.parameter == "filter" and "aggregat" in err.value.message


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


def test_api_reads_the_items_filters(client):
    """The query parameters of /collections/interventions/items select here too; paging,
    sorting and unknown parameters do not belong here (400s naming them)."""
    params = {"zona": "sud-ovest", "amount_min": "100000", "text": "a"}
    items = client.get("/collections/interventions/items", params={**params, "limit": 1000})
    stats = client.get("/stats/interventions", params={**params, "by": "comune"})
    assert stats.status_code == 200
    features = items.json()["features"]
    assert stats.json()["n_interventions"] == len(features) > 0
    assert stats.json()["amount_eur"] == pytest.approx(
        sum(f["properties"]["amount_eur"] or 0 for f in features), abs=0.01
    )
    cql = client.get(
        "/stats/interventions",
        params={"by": "zona", "filter": "amount_eur > 1000000", "filter-lang": "cql2-text"},
    )
    expected = client.get(
        "/collections/interventions/items", params={"filter": "amount_eur > 1000000", "limit": 1000}
    ).json()["features"]
    assert cql.json()["n_interventions"] == len(expected)
    bad_params = [
        ({"sortby": "title"}, "sortby"),
        ({"nope": "1"}, "nope"),
        ({"filter": "amount_eur >"}, "filter"),
        ({"amount_min": "lots"}, "amount_min"),
        ({"bbox": "1,2,3"}, "bbox"),
    ]
    for bad, name in bad_params:
        r = client.get("/stats/interventions", params={"by": "zona", **bad})
        assert 400 <= r.status_code < 500 and name in r.text, (bad, r.status_code, r.text[:200])


@pytest.mark.parametrize("spec", [{}, {"zona": "sud-ovest"}, {"text": "parco", "mission": "M5"}])
def test_several_groupings_at_once_agree_with_one_at_a_time(engine, spec):
    """``intervention_facets`` (one reading of the selection: one statement on SQLite)
    answers each grouping as ``intervention_stats`` does alone."""
    from geo.interventions.stats import intervention_facets

    query = FeatureQuery(properties_eq=spec)
    many = intervention_facets(GROUPINGS, engine, query=query)
    assert many["by"] == list(GROUPINGS)
    for by in GROUPINGS:
        one = intervention_stats(by, engine, query=query)
        assert many["groupings"][by] == one["groups"], by
        for k in ("n_interventions", "amount_eur", "count_with_amount", "bbox"):
            assert many[k] == one[k], (by, k)


def test_api_several_groupings(client):
    r = client.get("/stats/interventions", params={"by": "zona,comune,zona", "zona": "milano"})
    assert r.status_code == 200
    body = r.json()
    assert body["by"] == ["zona", "comune"] and set(body["groupings"]) == {"zona", "comune"}
    alone = client.get("/stats/interventions", params={"by": "comune", "zona": "milano"}).json()
    assert body["groupings"]["comune"] == alone["groups"]
    assert body["n_interventions"] == alone["n_interventions"] > 0
    for bad in ({"by": "zona,planet"}, {"by": "zona,comune", "f": "csv"}, {"by": ","}):
        r = client.get("/stats/interventions", params=bad)
        assert 400 <= r.status_code < 500, (bad, r.status_code)


@pytest.mark.parametrize("eq", [{"text": "\x00"}, {"status": "a\x00b"}])
def test_values_the_store_rejects_are_400s(engine, eq):
    """A NUL in a text (PostgreSQL refuses it) is the client's error, named, as on the
    items; never a 500. SQLite takes it (and finds nothing)."""
    query = FeatureQuery(properties_eq=eq)
    try:
        result = intervention_stats("zona", engine, query=query)
    except InvalidParameter as err:
        assert engine.dialect.name == "postgresql" and "database cannot evaluate" in err.message
    else:
        assert result["n_interventions"] == 0


def test_the_store_session_keeps_its_settings(postgis_url, postgis_schema):
    """On PostgreSQL the groupings run without JIT (compiling the unnest of the JSON lists
    cost more than it saved) on a read connection in autocommit, where a setting lasts
    for the session: it is reset for the reads that follow on the same connection."""
    from geo.interventions import get_store
    from geo.store import get_engine, held_connections, read_connection

    engine = get_store(get_engine(postgis_url, schema=postgis_schema))
    with held_connections(), read_connection(engine) as conn:
        before = conn.exec_driver_sql("SHOW jit").scalar_one()
        conn.exec_driver_sql("SET jit = on")
        result = intervention_facets(("mission", "driver"), engine, source="documented")
        assert result["n_interventions"] > 0
        with read_connection(engine) as again:
            assert again is conn
            assert again.exec_driver_sql("SHOW jit").scalar_one() == before
