"""Shared by the differential tests of the store-backed collections (interventions, layers):
a fresh store per backend, and the check that the SQL provider answers exactly as the
in-memory one it replaced."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import shapely
import shapely.geometry
import sqlalchemy as sa

from geo.errors import InvalidParameter
from geo.ogc.cql import parse_filter
from geo.ogc.encode import encode_geometries
from geo.ogc.registry import FeatureQuery, GeojsonPage
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
    check_encoded(sql, q)
    return got


def check_encoded(sql, q: FeatureQuery) -> None:
    """When the store encodes the page itself (``query_geojson``), it reads as the page the
    service encodes from ``query``: same count, ids, properties (as JSON) and geometries
    (type, and coordinates at the output precision); on SQLite, the same bytes."""
    try:
        page = sql.query_geojson(q)
    except InvalidParameter:
        return
    if page is None:
        return
    r = sql.query(q)
    assert page.number_matched == r.number_matched
    # the response's array (on SQLite written from the rows in one pass) is the array of
    # the features' texts, each with its link
    head = ',"links":[{"rel":"self","type":"application/geo+json","href":"http://t/items/'
    assert page.json_array(head) == GeojsonPage(list(page.features), None).json_array(head)
    assert [fid for fid, _ in page.features] == [str(f["id"]) for f in r.features]
    geoms = encode_geometries([f["geometry"] for f in r.features])
    exact = sql.engine().dialect.name == "sqlite"
    for (_fid, text), f, g in zip(page.features, r.features, geoms, strict=True):
        if exact:  # SQLite + Python write the very bytes the service's encoder writes
            feature = {
                "type": "Feature",
                "id": f["id"],
                "geometry": g,
                "properties": f["properties"],
            }
            assert text == orjson.dumps(feature).decode(), f["id"]
        got = orjson.loads(text)
        assert got["type"] == "Feature" and got["id"] == str(f["id"])
        assert got["properties"] == orjson.loads(orjson.dumps(f["properties"])), f["id"]
        if g is None:
            assert got["geometry"] is None
            continue
        want = orjson.loads(orjson.dumps(g))
        assert got["geometry"]["type"] == want["type"], f["id"]
        a = shapely.geometry.shape(got["geometry"])
        b = shapely.geometry.shape(want)
        assert a.is_valid, f["id"]
        assert shapely.equals_exact(a, b, tolerance=2e-6) or a.equals(b), f["id"]
