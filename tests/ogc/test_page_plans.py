"""A filtered page that walks the table in its order (many matches) carries its LIMIT and
OFFSET as written in its SQL: PostgreSQL then keeps one plan for the page's statement
whatever the filter's values, instead of planning the whole select at every request (a
LIMIT parameter makes it cost a generic plan at a tenth of the table, so it never keeps
one). The pages stay what the filter selects, on both stores."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.main import create_app
from geo.ogc.cql import parse_filter
from geo.ogc.registry import FeatureQuery, registry
from geo.store import get_engine, held_connections, read_connection


def test_a_walked_page_keeps_one_plan_whatever_its_filters_values(backend):
    with TestClient(create_app()):
        provider = registry.get("interventions")
        every = provider.query(FeatureQuery(limit=10_000)).features
    amounts = sorted({f["properties"]["amount_eur"] or 0 for f in every})
    quarter = amounts[len(amounts) // 4]  # each value keeps most of the table: a walk
    low = [quarter * k / 14 for k in range(14)]
    engine = get_engine()
    with held_connections():
        pages = []
        for value in low:  # psycopg prepares at the 6th, PostgreSQL plans 5 for values
            q = FeatureQuery(
                filter=parse_filter(f"amount_eur > {value}"),
                limit=3,
                offset=1,
                count_limit=10_000,
            )
            page = provider.query_geojson(q)
            assert page is not None
            pages.append((value, [fid for fid, _ in page.features]))
        if engine.dialect.name == "postgresql":
            with read_connection(engine) as conn:
                plans = conn.execute(
                    sa.text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE '%LIMIT 3 OFFSET 1%'"
                    )
                ).all()
            assert len(plans) == 1, plans  # one statement for every value
            generic, custom = plans[0]
            assert generic >= 3 and custom <= 5, plans  # kept its plan after the first few
    ids = sorted(f["id"] for f in every)
    amount = {f["id"]: f["properties"]["amount_eur"] for f in every}
    for value, got in pages:
        want = [i for i in ids if amount[i] is not None and amount[i] > value][1:4]
        assert got == want, value
