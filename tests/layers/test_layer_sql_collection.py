"""Uploaded layers answered by the store (geo.layers.sql_collection, geo.ogc.sql).

A differential test on both backends: two layers uploaded as real GeoJSON files (mixed
Polygon and MultiPolygon, every field type the reader keeps, nulls everywhere, odd texts)
share ``layer_features``; for many queries (``?property`` filters, bbox, sortby, paging,
CQL2 with LIKE/IN/BETWEEN/NOT/nulls/arithmetic/arrays/S_INTERSECTS) the SQL provider
answers exactly what the in-memory provider (the former ``LayerProvider``, a MemoryProvider
over the whole layer) answers: ids, order, numberMatched, properties and geometries. Then:
reading after an upload, a replace and a delete selects no whole layer, and a 20,000-polygon
layer is served without loading it.
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
import sqlalchemy as sa

from geo.errors import NotFound
from geo.layers import collection as lay
from geo.layers.collection import LayerProvider
from geo.layers.reading import read_upload
from geo.layers.sql_collection import LayerSqlProvider
from geo.layers.store import features_table
from geo.ogc import sql as gsql
from geo.ogc.cql import parse_filter
from geo.ogc.registry import FeatureQuery, Registry
from tests.sql_differential import answer, check, fresh_engine

NAMES = ["Parco Nord", "parco nord", "PLIS 50%", "a_b c", "back\\slash", "glob [x]*?",
         "Città", "Ünïcode", "", None]  # fmt: skip
TAGS = [["bosco", "prato"], ["prato"], [], None, ["bosco"], ["zona umida", "bosco"]]
NUMS = [[1, 2], [3], [], None, [2, 5]]


def _polygon(rng: random.Random, i: int) -> dict[str, Any]:
    x, y = rng.uniform(8.8, 9.45), rng.uniform(45.2, 45.62)
    w, h = rng.uniform(0.002, 0.03), rng.uniform(0.002, 0.02)
    box = shapely.box(round(x, 6), round(y, 6), round(x + w, 6), round(y + h, 6))
    if i % 3 == 0:
        other = shapely.box(x + w + 0.01, y, x + 2 * w + 0.01, y + h / 2)
        return shapely.geometry.mapping(shapely.MultiPolygon([box, other]))
    if i % 7 == 0:  # a triangle: its box is not itself
        return shapely.geometry.mapping(shapely.Polygon([(x, y), (x + w, y), (x, y + h)]))
    return shapely.geometry.mapping(box)


def polygons_geojson(n: int, seed: int = 5) -> bytes:
    """``n`` polygons and multipolygons with every field type, nulls and odd texts."""
    rng = random.Random(seed)
    base = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
    feats = []
    for i in range(n):
        when = base + timedelta(days=rng.randrange(300), seconds=rng.randrange(86400))
        props = {
            "nome": rng.choice(NAMES) if i % 5 else f"{rng.choice(NAMES[:8])} {i}",
            "codice": rng.choice([1, 2, 3, 10, 250, -4, None]),
            "valore": rng.choice([0.5, 1.5, 2.25, 1e6, -3.0, None, round(rng.uniform(0, 100), 3)]),
            "attivo": rng.choice([True, False, None]),
            "giorno": rng.choice(["2024-01-15", "2023-12-31", "2024-06-01", None]),
            "quando": rng.choice([when.isoformat().replace("+00:00", "Z"), None]),
            "tags": rng.choice(TAGS),
        }
        feats.append({"type": "Feature", "geometry": _polygon(rng, i), "properties": props})
    return orjson.dumps({"type": "FeatureCollection", "features": feats})


def points_geojson(n: int) -> bytes:
    """A second layer in the same table: points (one multipoint), a field of the same name."""
    feats = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [9.0 + i * 0.004, 45.4 + i * 0.002]}
            if i
            else {"type": "MultiPoint", "coordinates": [[9.1, 45.45], [9.11, 45.46]]},
            "properties": {"nome": f"Parco Nord {i}", "codice": i, "nums": NUMS[i % len(NUMS)]},
        }
        for i in range(n)
    ]
    return orjson.dumps({"type": "FeatureCollection", "features": feats})


def _fresh_engine(kind: str, request, tmp_path_factory):
    """(engine, cleanup) of a new, migrated store of ``kind``."""
    return fresh_engine(kind, request, tmp_path_factory, "lsql")


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def store(request, tmp_path_factory):
    """A store per backend holding the polygon layer and a point layer."""
    engine, drop = _fresh_engine(request.param, request, tmp_path_factory)
    reg = Registry()
    poly = lay.add_layer(read_upload(polygons_geojson(500), "aree.geojson"), "Aree",
                         engine=engine, reg=reg)  # fmt: skip
    pts = lay.add_layer(read_upload(points_geojson(30), "punti.geojson"), "Punti",
                        engine=engine, reg=reg)  # fmt: skip
    yield engine, poly["id"], pts["id"]
    drop()


@pytest.fixture(scope="module")
def providers(store):
    engine, poly, _ = store
    return LayerProvider(poly, engine), LayerSqlProvider(poly, engine)


@pytest.fixture(scope="module")
def point_providers(store):
    engine, _, pts = store
    return LayerProvider(pts, engine), LayerSqlProvider(pts, engine)


# --- the differential comparison ---------------------------------------------------------


def test_the_upload_has_every_kind_of_field(providers):
    _, sql = providers
    types = {f["name"]: f["type"] for f in sql.record()["fields"]}
    assert types == {
        "nome": "string",
        "codice": "integer",
        "valore": "number",
        "attivo": "boolean",
        "giorno": "date",
        "quando": "datetime",
        "tags": "array",
    }


def test_metadata_agrees(providers, point_providers):
    for mem, sql in (providers, point_providers):
        assert sql.property_names() == mem.property_names()
        assert sql.queryables() == mem.queryables()
        assert sql.version() == mem.version()
        assert sql.last_modified() == mem.last_modified()
        assert sql.extent() == pytest.approx(mem.extent(), abs=0)
        assert sql.geometry_type == mem.geometry_type
        attrs = ("title", "description", "keywords", "crs", "source_crs", "license")
        for attr in (*attrs, "translations", "storage_crs", "datetime_property", "attribution"):
            assert getattr(sql, attr) == getattr(mem, attr), attr
        assert sql.localized("en") == mem.localized("en")
        for name in sql.property_names():
            sample = list(sql.property_values(name))
            full = list(mem.property_values(name))
            assert (None in sample) == (None in full), name
            assert all(v in full for v in sample), name
    assert providers[1].geometry_type == "MultiPolygon"  # single and multi mixed
    assert point_providers[1].geometry_type == "MultiPoint"


def test_get_by_id(providers, point_providers):
    mem, sql = providers
    for fid in ("1", "7", "250", "500"):
        a, b = mem.get(fid), sql.get(fid)
        assert a["id"] == b["id"] == fid and a["properties"] == b["properties"]
        assert shapely.equals_exact(a["geometry"], b["geometry"], 0)
    for bad in ("0", "501", "01", "+1", " 1", "1.0", "x", "99999999999", "١", ""):
        assert sql.get(bad) is None and mem.get(bad) is None, bad
    # the point layer's feature 3 is not the polygon layer's
    assert point_providers[1].get("3")["properties"]["nome"] == "Parco Nord 2"


def test_a_feature_by_id_is_encoded_as_its_page_encodes_it(providers, point_providers):
    """``get_geojson``: the page's text of the feature, its ETag the Python path's; the
    ids that name nothing are None before any statement runs."""
    from geo.ogc.http import feature_etag, text_etag

    for mem, sql in (providers, point_providers):
        page = sql.query_geojson(FeatureQuery(limit=50, offset=5))
        assert len(page.features) == min(50, page.number_matched - 5) > 20
        for fid, text in page.features:
            assert sql.get_geojson(fid) == text
            assert text_etag(text) == feature_etag(sql.get(fid)) == feature_etag(mem.get(fid))
        for bad in ("0", "501", "01", "+1", "x", "99999999999", ""):
            assert sql.get_geojson(bad) is None, bad
    assert point_providers[1].get_geojson("3") != providers[1].get_geojson("3")


PROPERTY_FILTERS = [
    {"nome": "Parco Nord"},
    {"nome": ""},
    {"nome": "None"},
    {"nome": "a_b c"},
    {"codice": "2"},
    {"codice": "-4"},
    {"codice": "None"},
    {"codice": "due"},
    {"valore": "1.5"},
    {"valore": "1000000.0"},
    {"valore": "nan"},
    {"valore": "inf"},
    {"attivo": "True"},
    {"attivo": "False"},
    {"attivo": "None"},
    {"giorno": "2024-01-15"},
    {"giorno": "None"},
    {"nessuno": "x"},
    {"nome": "Parco Nord", "attivo": "True"},
]


@pytest.mark.parametrize(
    "eq", PROPERTY_FILTERS, ids=lambda e: "&".join(f"{k}={v}" for k, v in e.items())
)
def test_property_filters(providers, eq):
    check(providers, properties_eq=eq)


def test_property_filters_are_typed(providers, point_providers):
    """Where the in-memory collection compared texts, the store compares typed values."""
    _, sql = providers

    def n(**eq: str) -> int:
        return sql.query(FeatureQuery(properties_eq=eq, limit=0)).number_matched

    assert n(codice="2") == n(codice="2.0") == n(codice="2e0") > 0
    assert n(attivo="true") == n(attivo="TRUE") == n(attivo="True") > 0
    assert n(attivo="yes") == 0
    with_bosco = n(tags="bosco")
    assert 0 < with_bosco < n()  # an array field: membership
    _, pts = point_providers
    assert pts.query(FeatureQuery(properties_eq={"nums": "2"})).number_matched == 12
    assert pts.query(FeatureQuery(properties_eq={"nums": "2.0"})).number_matched == 12


BBOXES = [
    (9.10, 45.40, 9.25, 45.52),
    (8.0, 44.0, 10.0, 46.0),
    (9.3, 45.3, 9.31, 45.31),
    (0.0, 0.0, 1.0, 1.0),
]


@pytest.mark.parametrize("bbox", BBOXES)
def test_bbox(providers, bbox):
    check(providers, bbox=bbox)


@pytest.mark.parametrize(("limit", "offset"), [(7, 0), (7, 5), (3, 10_000)])
def test_bbox_pages(providers, limit, offset):
    """Pages of a plain box (prepared statements, ``+layer_id`` on SQLite)."""
    check(providers, bbox=BBOXES[1], limit=limit, offset=offset)


def test_a_box_is_read_once_for_its_page_and_count_on_the_embedded_store(providers):
    """A box's page and its count are one statement. On SQLite its matches are listed
    once, as rowids in the page's order up to the count's cap: their number is the count,
    and the page's rows are read from them by rowid. On PostGIS each row of the page
    carries the count, read only for a full page (:func:`test_a_short_box_page_is_not_
    counted_on_postgis`). No ``count(*)`` runs alone for a short page or a full one (an
    empty page past the end is counted alone). The numbers and the pages are the
    in-memory ones."""
    mem, sql = providers
    engine = sql.engine()
    few = FeatureQuery(bbox=BBOXES[0], limit=10_000, count_limit=10_000)
    full = FeatureQuery(bbox=BBOXES[0], limit=3, count_limit=10_000)
    past = FeatureQuery(bbox=BBOXES[0], limit=3, offset=10_000, count_limit=10_000)
    for q in (few, full, past):
        counts: list[str] = []

        def record(conn, cursor, statement, parameters, context, executemany, n=counts):
            if statement.lstrip().lower().startswith("select count("):  # a count alone
                n.append(statement)

        sql._counts = type(sql._counts)(sql.count_cache_size)  # nothing counted yet
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            page = sql.query_geojson(q)
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        expected = mem.query(q)
        assert page is not None and page.number_matched == expected.number_matched
        assert [fid for fid, _ in page.features] == [str(f["id"]) for f in expected.features]
        assert len(counts) == (0 if q is not past else 1), (q, counts)


def test_a_short_box_page_is_not_counted_on_postgis(providers):
    """PostGIS: the count in a box page's statement is a CASE branch PostgreSQL runs only
    for a full page (an initplan run when first needed): a short page says how many match
    (offset + its rows), so the map's box of a few features costs one index scan."""
    from geo.ogc.sql import box_parameters
    from geo.store import read_connection, reading_engine

    mem, sql = providers
    engine = sql.engine()
    if engine.dialect.name != "postgresql":
        return  # SQLite: the statement above lists its matches once, a short page or not
    stmt = sql._loop_select(None, False)
    combined = sql._box_counted_statement(reading_engine(engine), stmt, 10_000)
    box = box_parameters(BBOXES[0])
    matches = len(mem.query(FeatureQuery(bbox=BBOXES[0], limit=10_000)).features)
    assert matches > 3
    runs = {}
    for limit in (matches + 1, 3):  # a short page, a full one
        params = {**combined.fixed, **box, "page_limit": limit, "page_offset": 0}
        with read_connection(engine) as conn:
            plan = (
                conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + combined.sql, params
                )
                .scalars()
                .all()
            )
            rows = conn.exec_driver_sql(combined.sql, params).fetchall()
        counts = [i for i, line in enumerate(plan) if re.match(r"\s*InitPlan", line)]
        runs[limit] = ["never executed" in plan[i + 1] for i in counts]
        assert [r[-1] for r in rows] == [None if limit > matches else matches] * len(rows)
    # the page's own count (run), then the box's (run only for the full page)
    assert runs == {matches + 1: [False, True], 3: [False, False]}


def test_a_page_and_its_count_test_each_candidate_once(providers, monkeypatch):
    """SQLite's exact test of a polygon against the box (``cmm_spatial``, a parse and a
    predicate per candidate the R*Tree gives) remembers its answers for the box: the count
    and the page of one request, and further pages of the same box, parse no candidate
    twice."""
    import geo.ogc.sql as gsql

    mem, sql = providers
    box = (9.12, 45.41, 9.23, 45.51)
    if sql.engine().dialect.name != "sqlite":  # PostGIS tests in the database: the answers
        for offset in (0, 5):
            check(providers, bbox=box, limit=5, offset=offset)
        return
    parsed: list[bytes] = []

    class Counting:
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(shapely, name)

        def from_wkb(self, wkb, *a, **kw):  # type: ignore[no-untyped-def]
            parsed.append(bytes(wkb))
            return shapely.from_wkb(wkb, *a, **kw)

    monkeypatch.setattr(gsql, "shapely", Counting())
    literals: list[bytes] = []
    real_literal = gsql._literal_geometry

    def literal(wkb):  # type: ignore[no-untyped-def]
        literals.append(wkb)
        return real_literal(wkb)

    monkeypatch.setattr(gsql, "_literal_geometry", literal)
    gsql._TESTED.memo = None  # this thread's answers of earlier tests
    sql._counts = type(sql._counts)(sql.count_cache_size)
    first = sql.query_geojson(FeatureQuery(bbox=box, limit=5, count_limit=10_000))
    assert first is not None and first.number_matched and first.number_matched > 5
    assert parsed, "no candidate needed the exact test: a box that tests nothing"
    assert len(parsed) == len(set(parsed))  # the page reused the count's answers
    assert len(literals) == 1  # the box parsed and prepared once, not once per candidate
    before = len(parsed)
    again = sql.query_geojson(FeatureQuery(bbox=box, limit=5, offset=5, count_limit=10_000))
    assert again is not None and len(parsed) == before
    assert again.number_matched == first.number_matched
    expected = mem.query(FeatureQuery(bbox=box, limit=5, offset=5))
    assert [fid for fid, _ in again.features] == [str(f["id"]) for f in expected.features]


def test_bbox_of_another_crs_is_exact(providers):
    from geo.ogc.geometry import BBox

    area = shapely.Polygon([(9.1, 45.4), (9.3, 45.42), (9.28, 45.55), (9.08, 45.53)])
    check(providers, bbox=BBox(area.bounds, area))


def test_bbox_keeps_to_its_layer(point_providers):
    """Both layers lie in the box; each answers with its own features only."""
    check(point_providers, bbox=(8.0, 44.0, 10.0, 46.0))
    _, sql = point_providers
    assert sql.query(FeatureQuery(bbox=(8.0, 44.0, 10.0, 46.0))).number_matched == 30


@pytest.mark.parametrize(
    "sortby",
    [
        [("valore", True)],
        [("valore", False)],
        [("codice", True), ("valore", False)],
        [("nome", False)],
        [("nome", True)],
        [("attivo", True), ("giorno", False)],
        [("quando", False)],
        [("giorno", True)],
    ],
)
def test_sortby(providers, sortby):
    check(providers, sortby=sortby)


@pytest.mark.parametrize(("offset", "limit"), [(0, 10), (10, 10), (495, 10), (499, 5), (800, 10)])
def test_paging(providers, offset, limit):
    check(providers, offset=offset, limit=limit, sortby=[("valore", False)])


def test_properties_and_skip_geometry(providers):
    check(providers, properties=["nome", "tags", "valore"], skip_geometry=True, limit=50)


CQL = [
    "valore > 1.5",
    "valore >= 0.5 AND valore <= 2.25",
    "NOT (valore > 1.5)",
    "codice = 2 OR codice = -4",
    "codice <> 2",
    "NOT (nome = 'Parco Nord')",
    "nome < 'P'",
    "nome IS NULL",
    "NOT (nome IS NULL)",
    "valore IS NULL OR codice IS NULL",
    "nome LIKE '%Nord%'",
    "nome LIKE 'parco%'",
    "nome LIKE '%\\%%'",
    "nome LIKE '%a\\_b%'",
    "nome LIKE '%[x]*?%'",
    "nome LIKE 'back\\\\slash%'",
    "nome LIKE '_arco%'",
    "NOT (nome LIKE 'P%')",
    "nome IN ('Parco Nord', 'Città')",
    "NOT (nome IN ('Parco Nord', 'Città'))",
    "codice IN (1, 2.0, 250)",
    "NOT (codice IN (1, 2))",
    "nome IN (1, 2)",
    "valore BETWEEN 0.5 AND 2.25",
    "NOT (valore BETWEEN 0.5 AND 2.25)",
    "valore BETWEEN codice AND 100",
    "NOT (valore BETWEEN codice AND 100)",
    "nome BETWEEN 'C' AND 'P'",
    "valore * 2 > 3",
    "valore - codice > 0",
    "NOT (valore / 0 > 1)",
    "valore / 2 = 0.75",
    "codice + 1 > 2 OR valore % 2 = 1.5",
    "codice div 2 = 1",
    "attivo = TRUE",
    "NOT (attivo = FALSE)",
    "attivo = 1",
    "attivo > 0 AND valore > 1",
    "attivo IS NULL",
    "attivo IN (1)",
    "giorno = DATE('2024-01-15')",
    "giorno > DATE('2024-01-01')",
    "giorno < TIMESTAMP('2024-01-15T12:00:00Z')",
    "giorno BETWEEN DATE('2023-12-31') AND DATE('2024-01-15')",
    "giorno >= '2024'",
    "quando > TIMESTAMP('2024-06-01T00:00:00Z')",
    "quando < DATE('2024-05-01') AND valore > 1",
    "quando >= '2024-09'",
    "CASEI(nome) = CASEI('PARCO NORD')",
    "ACCENTI(CASEI(nome)) LIKE '%citta%'",
    "NOT (CASEI(nome) LIKE 'parco%')",
    "A_CONTAINS(tags, ('bosco'))",
    "A_CONTAINS(tags, ('bosco', 'prato'))",
    "A_OVERLAPS(tags, ('prato', 'zona umida'))",
    "A_CONTAINEDBY(tags, ('bosco', 'prato'))",
    "NOT A_CONTAINEDBY(tags, ('bosco', 'prato'))",
    "A_EQUALS(tags, ('bosco'))",
    "NOT A_CONTAINS(tags, ('bosco'))",
    "tags IS NULL",
    "NOT (tags IS NULL) AND codice = 2",
    "S_INTERSECTS(geometry, BBOX(9.1, 45.4, 9.25, 45.52))",
    "NOT S_INTERSECTS(geometry, BBOX(9.1, 45.4, 9.25, 45.52))",
    "S_INTERSECTS(geometry, POLYGON((9.1 45.4, 9.3 45.42, 9.28 45.55, 9.1 45.4)))",
    "S_WITHIN(geometry, POLYGON((8.9 45.3, 9.4 45.3, 9.4 45.6, 8.9 45.6, 8.9 45.3)))",
    "S_CONTAINS(geometry, POINT(9.2 45.45))",
    "S_DISJOINT(geometry, BBOX(9.0, 45.3, 9.2, 45.5))",
    "S_CROSSES(geometry, LINESTRING(9.0 45.3, 9.3 45.5))",
    "S_INTERSECTS(geometry, POINT(9.19 45.46)) OR valore > 90",
    "S_INTERSECTS(geometry, BBOX(9.0, 45.3, 9.3, 45.5)) AND NOT (nome LIKE 'P%') AND codice > 1",
    "(nome = 'Parco Nord' OR nome IS NULL) AND NOT (valore < 1)",
    # type errors are 400s on both
    "nome = 5",
    "valore = 'x'",
    "tags = 'bosco'",
    "valore + nome > 1",
    "A_CONTAINS(nome, ('x'))",
    "S_INTERSECTS(nome, POINT(9 45))",
    "1 = 1",
    "1 = 2 OR valore > 1",
]


@pytest.mark.parametrize("cql", CQL)
def test_cql2(providers, cql):
    check(providers, cql=cql)


@pytest.mark.parametrize(
    "cql",
    [
        "A_CONTAINS(nums, (2))",
        "A_OVERLAPS(nums, (3, 5.0))",
        "NOT A_CONTAINS(nums, ('2'))",
        "A_CONTAINEDBY(nums, (1, 2, 3, 'x'))",
        "NOT A_EQUALS(nums, (2, 1))",
        "nums IS NULL OR codice < 3",
        "codice > 25 AND S_INTERSECTS(geometry, BBOX(9.0, 45.3, 9.3, 45.5))",
    ],
)
def test_cql2_number_arrays_and_points(point_providers, cql):
    check(point_providers, cql=cql)


def test_cql2_page_and_sort(providers):
    check(
        providers,
        cql="NOT (nome = 'Parco Nord') AND valore > 1",
        sortby=[("valore", False)],
        offset=20,
        limit=15,
    )
    check(providers, cql="CASEI(nome) LIKE '%parco%'", sortby=[("nome", True)], offset=3, limit=4)
    check(providers, cql="attivo = TRUE", bbox=(9.0, 45.3, 9.3, 45.5), sortby=[("codice", True)])


# --- writes and size ------------------------------------------------------------------------

_FROM_FEATURES = re.compile(r"\bFROM\s+(\S+\.)?\"?layer_features\"?(\s|$)", re.IGNORECASE)


class Statements:
    """SQL statements an engine runs while listening."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def whole_layer_reads(self) -> list[str]:
        """SELECTs of rows of ``layer_features`` restricted by nothing but the layer (no
        other condition, no LIMIT, no aggregate): what loading a layer looks like."""
        out = []
        for s in self.seen:
            flat = " ".join(s.split())
            if not flat.upper().startswith("SELECT") or not _FROM_FEATURES.search(flat):
                continue
            head = flat.upper().split(" FROM ")[0]
            aggregate = any(f in head for f in ("COUNT(", "MIN(", "MAX(", "DISTINCT"))
            if " LIMIT " in flat.upper() or aggregate:
                continue
            where = re.split(r"\bWHERE\b", flat, maxsplit=1, flags=re.IGNORECASE)[1:]
            rest = re.split(r"\bORDER BY\b", where[0], flags=re.IGNORECASE)[0] if where else ""
            if re.fullmatch(r"\s*(\S+\.)?\"?layer_id\"? = \S+\s*", rest) or not rest.strip():
                out.append(flat)
        return out


ADMIN = {"Authorization": "Bearer test-admin-token"}


def test_reads_after_upload_replace_delete_load_nothing_whole(backend, client):
    """Upload, read, replace, read, delete through the API: no statement of the reads (nor
    of the writes) selects every row of a layer; each read sees the write at once."""
    from geo.store import get_engine as app_engine

    engine = app_engine()
    name = f"Aree {uuid.uuid4().hex[:6]}"
    with Statements(engine) as s:
        r = client.post(
            "/layers",
            files={"file": ("aree.geojson", polygons_geojson(120, seed=9))},
            data={"name": name},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        lid = r.json()["id"]
        items = client.get(f"/collections/{lid}/items", params={"limit": 5})
        assert items.status_code == 200 and items.json()["numberMatched"] == 120
        one = client.get(f"/collections/{lid}/items/7")
        assert one.status_code == 200 and one.json()["id"] == "7"
        flt = client.get(
            f"/collections/{lid}/items", params={"filter": "valore > 1 AND attivo = 1"}
        )
        assert flt.status_code == 200
        tile = client.get(f"/collections/{lid}/tiles/WebMercatorQuad/10/545/366")
        assert tile.status_code in (200, 204)
        # a replace (the app's upload form does this when the name is taken)
        lay.replace_layer(lid, read_upload(polygons_geojson(60, seed=10), "a.geojson"))
        items = client.get(f"/collections/{lid}/items", params={"limit": 5})
        assert items.json()["numberMatched"] == 60
        assert client.get(f"/collections/{lid}/items/61").status_code == 404
        assert client.delete(f"/layers/{lid}", headers=ADMIN).status_code in (200, 204)
        assert client.get(f"/collections/{lid}/items").status_code == 404
        assert client.get(f"/collections/{lid}/items/7").status_code == 404
    assert any("layer_features" in q for q in s.seen), "the reads ran no SQL on the layer?"
    assert s.whole_layer_reads() == []


def test_a_deleted_layer_is_not_found(store):
    engine, _, _ = store
    rec = lay.add_layer(read_upload(points_geojson(3), "p.geojson"), "Via", engine=engine,
                        reg=Registry())  # fmt: skip
    sql = LayerSqlProvider(rec["id"], engine)
    assert sql.query(FeatureQuery()).number_matched == 3
    lay.delete_layer(rec["id"], engine=engine, reg=Registry())
    with pytest.raises(NotFound):
        sql.query(FeatureQuery())
    with pytest.raises(NotFound):
        LayerSqlProvider(rec["id"], engine)


def test_a_replace_changes_fields_and_type(store):
    """A provider held across a replace serves the new fields and geometry type."""
    engine, _, _ = store
    reg = Registry()
    rec = lay.add_layer(read_upload(points_geojson(4), "p.geojson"), "Cambia", engine=engine,
                        reg=reg)  # fmt: skip
    sql = LayerSqlProvider(rec["id"], engine)
    assert sql.geometry_type == "MultiPoint" and sql.property_names() == ["nome", "codice", "nums"]
    v = sql.version()
    lay.replace_layer(rec["id"], read_upload(polygons_geojson(9), "a.geojson"), engine=engine,
                      reg=reg)  # fmt: skip
    assert sql.version() != v and sql.geometry_type == "MultiPolygon"
    assert "tags" in sql.property_names()
    got = sql.query(FeatureQuery(filter=parse_filter("A_CONTAINS(tags, ('bosco'))")))
    assert (
        got.number_matched
        == LayerProvider(rec["id"], engine)
        .query(FeatureQuery(filter=parse_filter("A_CONTAINS(tags, ('bosco'))")))
        .number_matched
    )
    lay.delete_layer(rec["id"], engine=engine, reg=reg)


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def big_layer(request, tmp_path_factory):
    """A store holding one 20,000-polygon layer."""
    engine, drop = _fresh_engine(request.param, request, tmp_path_factory)
    rec = lay.add_layer(read_upload(polygons_geojson(20_000, seed=11), "big.geojson"), "Big",
                        engine=engine, reg=Registry())  # fmt: skip
    yield engine, rec["id"]
    drop()


def test_twenty_thousand_polygons_without_loading_them(big_layer):
    engine, lid = big_layer
    sql = LayerSqlProvider(lid, engine)
    names = [q.name for q in sql.queryables()] + ["geometry"]
    with engine.connect() as conn:
        values = np.array(
            [
                np.nan if p.get("valore") is None else p["valore"]
                for p in conn.execute(
                    sa.select(features_table.c.properties).where(features_table.c.layer_id == lid)
                ).scalars()
            ]
        )
    box5km = (9.15, 45.44, 9.2138, 45.485)  # about 5 km across
    with Statements(engine) as s:
        everything = sql.query(FeatureQuery(limit=10))
        cql = sql.query(
            FeatureQuery(
                filter=parse_filter("valore > 1.5 AND NOT (nome = 'Parco Nord')", queryables=names),
                sortby=[("valore", False)],
                limit=100,
            )
        )
        box = sql.query(FeatureQuery(bbox=box5km, limit=100))
        tile = sql.query(FeatureQuery(bbox=box5km, limit=20_000))
        one = sql.get("12345")
        extent = sql.extent()
        schema_sample = sql.property_values("valore")
        gtype = sql.geometry_type
    assert everything.number_matched == 20_000 and len(everything.features) == 10
    with np.errstate(invalid="ignore"):
        assert 0 < cql.number_matched < int((values > 1.5).sum())
    got = [f["properties"]["valore"] for f in cql.features]
    assert len(got) == 100 and got == sorted(got, reverse=True) and got[0] == np.nanmax(values)
    assert 0 < box.number_matched < 20_000 and len(box.features) == min(100, box.number_matched)
    assert len(tile.features) == tile.number_matched == box.number_matched
    area = shapely.box(*box5km)
    assert all(shapely.intersects(f["geometry"], area) for f in tile.features)
    assert one is not None and one["id"] == "12345"
    assert extent[0] < 8.85 and extent[3] > 45.6
    assert len(schema_sample) <= 1001 and gtype == "MultiPolygon"
    assert s.whole_layer_reads() == []
    # the same answers as the in-memory collection built from every row
    with Statements(engine) as full:
        mem = LayerProvider(lid, engine)
    assert full.whole_layer_reads(), "the detector misses a whole-layer load"
    for q in (
        FeatureQuery(bbox=box5km, limit=100, offset=5),
        FeatureQuery(properties_eq={"codice": "250"}, offset=500, limit=20),
        FeatureQuery(filter=parse_filter("A_CONTAINS(tags, ('bosco')) AND valore < 2")),
    ):
        assert answer(sql, q) == answer(mem, q)


@pytest.mark.parametrize("cap", [2, 5, 10_000])
def test_box_pages_under_a_small_count_cap_are_the_reference_pages(providers, cap):
    """Pages of a box when the count stops at ``cap`` (SQLite lists at most ``cap + 1``
    rowids, or as many as the page needs past it): the same features as the in-memory
    reference, page after page, and the count left out exactly when more than ``cap``
    match."""
    mem, sql = providers
    for offset in (0, 1, 3, 6, 9):
        sql._counts = type(sql._counts)(sql.count_cache_size)  # each page counts afresh
        q = FeatureQuery(bbox=BBOXES[0], limit=3, offset=offset, count_limit=cap)
        page = sql.query_geojson(q)
        everything = mem.query(FeatureQuery(bbox=BBOXES[0], limit=10_000)).features
        expected = mem.query(q).features
        assert page is not None
        assert [fid for fid, _ in page.features] == [str(f["id"]) for f in expected]
        n = len(everything)
        assert n > 6  # the box holds several pages
        assert page.number_matched == (None if n > cap else n), (offset, cap)


def _props(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else orjson.loads(value)


def test_a_rectangle_takes_a_box_inside_it_and_tests_the_others(store):
    """A rectangle's rows whose stored box lies inside it need no exact test (both
    stores); every other row still gets one. Geometries chosen to tell them apart: inside,
    crossing the edge, around the rectangle, beside it within its box (an L and a ring),
    a multipoint straddling it with no point inside, a point on its edge, and far away.
    A line or polygon whose box crosses one edge only, within the rectangle's width or
    height, intersects it (it is connected) and needs no exact test either (SQLite: the
    shapes shapely tested are those across a corner); a multi-part shape does (two parts,
    one on each side, miss it).
    The page, the count and the filtered page are the in-memory layer's."""
    engine, _, _ = store
    x0, y0, x1, y1 = 9.10, 45.40, 9.20, 45.50
    polygons = {
        "inside": shapely.box(9.12, 45.42, 9.14, 45.44),
        "crossing": shapely.box(9.19, 45.45, 9.25, 45.47),
        "hooked": shapely.Polygon(  # a U across the west edge, its box within the height
            [
                (9.05, 45.42),
                (9.15, 45.42),
                (9.15, 45.44),
                (9.07, 45.44),
                (9.07, 45.46),
                (9.15, 45.46),
                (9.15, 45.48),
                (9.05, 45.48),
            ]
        ),
        "around": shapely.box(9.0, 45.3, 9.3, 45.6),
        "ring": shapely.box(9.0, 45.3, 9.3, 45.6).difference(shapely.box(9.05, 45.35, 9.25, 45.55)),
        "ell": shapely.Polygon(
            [(9.21, 45.3), (9.3, 45.3), (9.3, 45.6), (9.0, 45.6), (9.0, 45.51), (9.21, 45.51)]
        ),
        "far": shapely.box(8.7, 45.1, 8.8, 45.2),
    }
    points = {
        "straddling": shapely.MultiPoint([(9.05, 45.45), (9.25, 45.45)]),
        "on the edge": shapely.MultiPoint([(9.20, 45.45)]),
        "both inside": shapely.MultiPoint([(9.11, 45.41), (9.19, 45.49)]),
        "one inside": shapely.MultiPoint([(9.15, 45.45), (9.35, 45.45)]),
    }
    parts = {
        "two parts": shapely.MultiPolygon(
            [shapely.box(9.05, 45.44, 9.08, 45.46), shapely.box(9.22, 45.44, 9.25, 45.46)]
        ),
        "one part across": shapely.MultiPolygon([shapely.box(9.15, 45.45, 9.25, 45.46)]),
    }
    lines = {
        "two lines": shapely.MultiLineString(
            [[(9.0, 45.41), (9.09, 45.49)], [(9.21, 45.45), (9.3, 45.45)]]
        ),
        "across": shapely.LineString([(9.15, 45.45), (9.3, 45.46)]),
    }
    box = (x0, y0, x1, y1)
    reg = Registry()
    for name, shapes, expected in [
        ("Rettangolo aree", polygons, {"inside", "crossing", "hooked", "around"}),
        ("Rettangolo punti", points, {"on the edge", "both inside", "one inside"}),
        ("Rettangolo parti", parts, {"one part across"}),
        ("Rettangolo linee", lines, {"across"}),
    ]:
        features = [
            {"type": "Feature", "geometry": shapely.geometry.mapping(g), "properties": {"nome": n}}
            for n, g in shapes.items()
        ]
        body = orjson.dumps({"type": "FeatureCollection", "features": features})
        layer = lay.add_layer(read_upload(body, "rettangolo.geojson"), name,
                              engine=engine, reg=reg)  # fmt: skip
        pair = (LayerProvider(layer["id"], engine), LayerSqlProvider(layer["id"], engine))
        gsql._TESTED.memo = None  # cmm_spatial's memo: which shapes shapely tests (SQLite)
        got = check(pair, bbox=box)
        assert {p["nome"] for p in got[2]} == expected, name
        if engine.dialect.name == "sqlite":
            memo = getattr(gsql._TESTED, "memo", None)
            tested = set(memo[1]) if memo else set()
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.select(features_table.c.properties, features_table.c.geometry_wkb).where(
                        features_table.c.layer_id == layer["id"]
                    )
                ).all()
            names = {_props(p)["nome"] for p, wkb in stored if wkb in tested}
            assert (
                names
                == {
                    "Rettangolo aree": {"around", "ring", "ell"},  # their boxes hold a corner
                    "Rettangolo punti": {"straddling", "one inside"},  # two points each
                    "Rettangolo parti": set(parts),
                    "Rettangolo linee": {"two lines"},
                }[name]
            ), name
        check(pair, bbox=box, limit=2, offset=1)
        check(pair, bbox=box, cql="nome <> 'inside'")
        check(pair, bbox=box, sortby=[("nome", False)])
