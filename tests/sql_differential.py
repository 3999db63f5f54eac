"""Shared by the differential tests of the store-backed collections (interventions, layers):
a fresh store per backend, and the check that the SQL provider answers exactly as the
in-memory one it replaced."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import shapely
import sqlalchemy as sa

from geo.errors import InvalidParameter
from geo.ogc.cql import parse_filter
from geo.ogc.registry import FeatureQuery
from geo.store import get_engine


def fresh_engine(kind: str, request, tmp_path_factory, prefix: str) -> tuple[Any, Callable]:
    """(engine, cleanup) of a new, migrated store of ``kind`` (an SQLite file or a PostGIS
    schema named after ``prefix``)."""
    if kind == "sqlite":
        path = tmp_path_factory.mktemp(prefix) / "cmm_geo.sqlite"
        return get_engine(f"sqlite:///{path.as_posix()}"), lambda: None
    url = request.getfixturevalue("postgis_url")
    schema = f"t_{prefix}_{uuid.uuid4().hex[:8]}"
    engine = get_engine(url, schema=schema)

    def drop() -> None:
        engine.dispose()
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()

    return engine, drop


def answer(provider, q: FeatureQuery) -> Any:
    """What a provider answers to ``q``: counts, ids, properties, geometries (or the error)."""
    try:
        r = provider.query(q)
    except InvalidParameter as exc:
        return ("error", exc.parameter)
    return (
        r.number_matched,
        [f["id"] for f in r.features],
        [f["properties"] for f in r.features],
        [None if f["geometry"] is None else shapely.to_wkb(f["geometry"]) for f in r.features],
    )


def check(providers, *, cql: str | None = None, **kw: Any) -> Any:
    """The SQL provider answers exactly as the in-memory one; returns that answer."""
    mem, sql = providers
    names = [q.name for q in sql.queryables()] + ["geometry"]
    kw.setdefault("limit", 2000)
    q = FeatureQuery(filter=parse_filter(cql, queryables=names) if cql else None, **kw)
    expected, got = answer(mem, q), answer(sql, q)
    assert got[:2] == expected[:2], (cql, kw)
    assert got == expected, (cql, kw)
    return got
