"""Filters compiled once per shape (geo.ogc.sql_shapes): the same filter with other values
reuses the statements of its first request, and every page it gives is the page the
query builds from scratch (``query``), on both stores, whatever the values, the page, the
order and the count's cap."""

from __future__ import annotations

import random

import pytest

from geo.errors import InvalidParameter
from geo.interventions.sql_collection import InterventionsSqlProvider
from geo.ogc.cql import parse_filter
from geo.ogc.geometry import BBox
from geo.ogc.registry import FeatureQuery
from geo.ogc.sql_shapes import covers, filter_shape, slot_directions


def _tree(text: str):
    return parse_filter(text).tree


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("amount_eur > 5", "amount_eur > 7.5"),
        ("amount_eur BETWEEN 1 AND 2", "amount_eur BETWEEN 10 AND 200000"),
        ("status = 'planned' OR amount_eur < 3", "status = 'x''y' OR amount_eur < -1"),
        ("NOT (title > 'A') AND remark IS NULL", "NOT (title > '') AND remark IS NULL"),
    ],
)
def test_a_filter_with_other_values_has_the_same_shape(a, b):
    (shape_a, values_a), (shape_b, values_b) = filter_shape(_tree(a)), filter_shape(_tree(b))
    assert shape_a == shape_b
    assert values_a != values_b and len(values_a) == len(values_b)


@pytest.mark.parametrize(
    "text",
    [
        "amount_eur > 2 * 3",  # arithmetic: folded from the values
        "amount_eur + 1 > 3",
        "title LIKE 'Parco%'",  # a pattern's translation depends on it
        "status IN ('planned', 'started')",
        "CASEI(title) = 'parco'",
        "5 > 3 AND amount_eur > 1",  # a condition without a property: folded
        "updated > TIMESTAMP('2024-01-01T00:00:00Z')",
        "S_INTERSECTS(geometry, POINT(9.19 45.46))",
        "A_CONTAINS(missions, ('M2'))",
        "remark IS NULL",  # nothing to bind: the tree is its own key
    ],
)
def test_filters_whose_translation_depends_on_their_values_have_no_shape(text):
    assert filter_shape(_tree(text)) is None


def test_the_shape_keeps_nulls_and_booleans_and_orders_the_literals():
    shape, values = filter_shape(
        {"op": "and", "args": [
            {"op": "=", "args": [{"property": "a"}, "x"]},
            {"op": "=", "args": [{"property": "b"}, None]},
            {"op": "<", "args": [3, {"property": "c"}]},
            {"op": "=", "args": [{"property": "d"}, True]},
        ]}
    )  # fmt: skip
    assert values == ("x", 3.0)
    assert "null" in shape and "true" in shape
    assert filter_shape({"op": "=", "args": [{"property": "a", "x": 1}, 1]}) is None


@pytest.fixture(scope="module")
def sql(store_engine):
    return InterventionsSqlProvider(store_engine)


@pytest.fixture(scope="module")
def reference(store_engine):
    """Another provider of the same store, for the pages built from scratch: its own
    memo of counts, so no count the shaped statements memoised can answer for it."""
    return InterventionsSqlProvider(store_engine)


def _amounts(sql) -> list[float]:
    every = sql.query(FeatureQuery(limit=10_000)).features
    return sorted({f["properties"]["amount_eur"] for f in every if f["properties"]["amount_eur"]})


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: Shapes, each with a way of drawing its values from the stored amounts and some texts.
SHAPES = [
    lambda r, a, t: f"amount_eur > {r.choice(a)}",
    lambda r, a, t: f"amount_eur >= {r.choice(a)} AND amount_eur < {r.choice(a) * 3}",
    lambda r, a, t: f"amount_eur BETWEEN {r.choice(a)} AND {r.choice(a)}",
    lambda r, a, t: f"NOT (amount_eur <= {r.choice(a)}) OR status = {_q(r.choice(t))}",
    lambda r, a, t: f"title > {_q(r.choice(t)[:4])} AND remark IS NULL",
    lambda r, a, t: f"status <> {_q(r.choice(t))} AND amount_eur <> {r.choice(a)}",
]
TEXTS = ["planned", "started", "completed", "O'Brien", "È", "x%_\\", "Parco"]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_pages_of_a_shape_are_the_pages_built_from_scratch(sql, reference, shape):
    rng = random.Random(shape)
    amounts = _amounts(sql)
    sql._shapes._d.clear()
    for n in range(24):
        text = SHAPES[shape](rng, amounts, TEXTS)
        q = FeatureQuery(
            filter=parse_filter(text),
            limit=rng.choice([1, 5, 40]),
            offset=rng.choice([0, 0, 3]),
            sortby=rng.choice([[], [("amount_eur", False)], [("title", True)]]),
            count_limit=rng.choice([3, 10_000]),
        )
        page = sql.query_geojson(q)
        built = reference.query(q)
        assert page is not None, text
        assert page.number_matched == built.number_matched, (n, text)
        assert [fid for fid, _ in page.features] == [str(f["id"]) for f in built.features], (
            n,
            text,
        )
    assert {key[2] for key in sql._shapes._d} == {filter_shape(q.filter.tree)[0]}
    assert all(template is not None for template in sql._shapes._d.values())


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_a_shape_is_compiled_once_per_kind_of_statement(sql, shape):
    """Twenty values of one shape, one page: at most three statements compiled (the
    count, the page walking the table, the page of the matches sorted first)."""
    rng = random.Random(100 + shape)
    amounts = _amounts(sql)
    sql._shapes._d.clear()
    sql._counts._d.clear()  # counted anew (an earlier test memoised some)
    for _ in range(20):
        text = SHAPES[shape](rng, amounts, TEXTS)
        q = FeatureQuery(filter=parse_filter(text), limit=5, count_limit=10_000)
        assert sql.query_geojson(q) is not None
    assert 2 <= len(sql._shapes._d) <= 3
    assert {key[1] for key in sql._shapes._d} <= {"count", "walk", "first"}


def test_a_type_error_stays_a_400_and_a_value_the_store_refuses_too(sql):
    for _ in range(2):  # the first compiles the shape (it has none), the second asks again
        with pytest.raises(InvalidParameter):
            sql.query_geojson(FeatureQuery(filter=parse_filter("title > 5"), limit=5))
    q = FeatureQuery(filter=parse_filter("title = 'Parco'"), limit=5, count_limit=10_000)
    assert sql.query_geojson(q) is not None
    nul = FeatureQuery(filter=parse_filter("title = 'a\x00b'"), limit=5, count_limit=10_000)
    try:
        page = sql.query_geojson(nul)
    except InvalidParameter as err:  # PostgreSQL refuses a NUL in a text: the client's 400
        assert sql.engine().dialect.name == "postgresql" and err.parameter == "filter"
    else:
        assert page is not None and page.features == []


def _boxes(sql, rng: random.Random, n: int) -> list[BBox]:
    """Rectangles around stored features (some holding many, some few or none)."""
    every = sql.query(FeatureQuery(limit=10_000)).features
    points = [f["geometry"].representative_point() for f in every if f["geometry"] is not None]
    out = []
    for _ in range(n):
        p = rng.choice(points)
        w, h = rng.choice([0.001, 0.02, 0.3]), rng.choice([0.001, 0.02, 0.3])
        out.append(BBox((p.x - w, p.y - h, p.x + w, p.y + h)))
    return out


@pytest.mark.parametrize("shape", [0, 3, 5])
def test_a_filtered_box_binds_its_rectangle_too(sql, reference, shape):
    """A GIS client's filtered layer as it pans: the filter's literals and the box's
    bounds are the parameters of one statement per kind, and every page is the page the
    query builds from scratch."""
    rng = random.Random(200 + shape)
    amounts = _amounts(sql)
    sql._shapes._d.clear()
    sql._counts._d.clear()
    for box in _boxes(sql, rng, 20):
        q = FeatureQuery(
            bbox=box,
            filter=parse_filter(SHAPES[shape](rng, amounts, TEXTS)),
            limit=5,
            count_limit=rng.choice([2, 10_000]),
        )
        assert box.rectangle
        page = sql.query_geojson(q)
        built = reference.query(q)
        assert page is not None
        assert page.number_matched == built.number_matched, box
        assert [fid for fid, _ in page.features] == [str(f["id"]) for f in built.features], box
    assert {key[2] for key in sql._shapes._d} == {filter_shape(q.filter.tree)[0] + "|box"}
    assert len(sql._shapes._d) <= 6  # count and pages, per cap


def test_a_box_that_is_not_a_crs84_rectangle_has_no_shape(sql):
    from shapely.geometry import box as rectangle

    area = rectangle(9.0, 45.3, 9.3, 45.6).buffer(0.01)
    odd = BBox(area.bounds, area)  # an area given in another CRS, reprojected
    q = FeatureQuery(bbox=odd, filter=parse_filter("amount_eur > 1"), limit=5)
    assert sql._shape(q) is None
    straight = FeatureQuery(bbox=BBox((9.0, 45.3, 9.3, 45.6)), filter=q.filter, limit=5)
    assert sql._shape(straight) is not None


@pytest.mark.parametrize(
    ("text", "directions"),
    [
        ("amount_eur > 5", (-1,)),
        ("amount_eur <= 5", (1,)),
        ("5 < amount_eur", (-1,)),  # the property on the right: the same as amount_eur > 5
        ("amount_eur BETWEEN 1 AND 9", (-1, 1)),
        ("NOT (amount_eur BETWEEN 1 AND 9)", (1, -1)),
        ("NOT (amount_eur < 3 OR amount_eur >= 7)", (-1, 1)),
        ("amount_eur >= 1 AND status = 'planned'", (-1, 0)),
        ("status <> 'x' OR amount_eur = 4", (0, 0)),
        ("title > 'A'", (0,)),  # a string: the store's collation, not Python's, orders it
    ],
)
def test_each_slot_says_which_way_its_literal_moves_the_matches(text, directions):
    tree = _tree(text)
    assert slot_directions(tree) == directions
    assert len(directions) == len(filter_shape(tree)[1])


def test_covers_reads_the_directions():
    assert covers((-1, 1), (2.0, 9.0), (3.0, 8.0))  # a wider BETWEEN
    assert not covers((-1, 1), (4.0, 9.0), (3.0, 8.0))
    assert covers((0, -1), ("a", 1.0), ("a", 2.0)) and not covers((0, -1), ("b", 1.0), ("a", 2.0))
    assert not covers((-1,), (float("nan"),), (1.0,))


MONOTONE = [
    lambda r, a: f"amount_eur > {r.choice(a)}",
    lambda r, a: f"{r.choice(a)} >= amount_eur",
    lambda r, a: (
        f"amount_eur BETWEEN {r.choice(a)} AND {r.choice(a)} OR amount_eur < {r.choice(a)}"
    ),
    lambda r, a: f"NOT (amount_eur <= {r.choice(a)} AND amount_eur > {r.choice(a)})",
]


@pytest.mark.parametrize("shape", range(len(MONOTONE)))
def test_literals_that_cover_others_match_every_row_those_match(reference, shape):
    """What the count's shortcut relies on, checked against the store: when ``covers``
    says a filter's literals are wider than another's, its matches include the other's."""
    rng = random.Random(300 + shape)
    amounts = _amounts(reference)
    directions = None
    wider_pairs = 0
    for _ in range(30):
        a, b = (parse_filter(MONOTONE[shape](rng, amounts)) for _ in range(2))
        directions = slot_directions(a.tree)
        la, lb = filter_shape(a.tree)[1], filter_shape(b.tree)[1]
        if not covers(directions, la, lb):
            continue
        wider_pairs += 1
        ids = [
            {f["id"] for f in reference.query(FeatureQuery(filter=f, limit=10_000)).features}
            for f in (a, b)
        ]
        assert ids[0] >= ids[1], (a.text, b.text)
    assert wider_pairs >= 3 and all(directions)


def _counts_run(engine, run) -> int:
    """How many count statements ``run()`` sends to ``engine``."""
    import sqlalchemy as sa

    seen: list[str] = []

    def spy(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    return sum("count(" in s.lower() for s in seen)


def test_a_count_past_the_cap_answers_for_wider_filters_until_a_write(sql, reference):
    """A slider: ``amount_eur > X`` counted past the cap answers for every smaller X
    without a count (the page is still read, and is the page built from scratch); a
    larger X is counted; a write makes every X counted again."""
    from geo.interventions.store import TOPIC
    from geo.store import bump_revision, transaction

    amounts = _amounts(sql)
    low, mid, high = amounts[2], amounts[len(amounts) // 2], amounts[-12]
    engine = sql.engine()
    sql._counts._d.clear()
    sql._capped._d.clear()

    def page(x: float):  # type: ignore[no-untyped-def]
        q = FeatureQuery(filter=parse_filter(f"amount_eur > {x}"), limit=4, count_limit=5)
        got: list[object] = []
        counted = _counts_run(engine, lambda: got.append(sql.query_geojson(q)))
        built = reference.query(q)
        assert got[0].number_matched is None and built.number_matched is None
        assert [fid for fid, _ in got[0].features] == [str(f["id"]) for f in built.features]
        return counted

    assert page(mid) == 1
    assert page(low) == 0  # wider: past the cap too
    assert page(high) == 1  # narrower: counted (still past the cap here)
    assert page(mid) == 0  # its own count
    with transaction(engine) as conn:
        bump_revision(conn, TOPIC)
    assert page(low) == 1  # another revision: nothing known
