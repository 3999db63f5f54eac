"""CQL2 text filters of one shape (the same text but for its numbers: a dashboard's slider
sends ``amount_eur > X``, X moving) are parsed once; the others take that tree with their
own numbers. Whatever the text, the filter is the one the parser makes of it, and a shape
whose numbers are not plain leaves of the tree (signs, geometries, exponents) is parsed
each time."""

from __future__ import annotations

import random

import pytest

from geo.errors import InvalidParameter
from geo.ogc import cql
from geo.ogc.cql import Budget, _parse_filter, parse_filter

NAMES = ["amount_eur", "title", "drivers", "created", "geometry", "a1", "x2y"]

CORPUS = [
    "amount_eur > 5",
    "amount_eur > 5 AND amount_eur < 7.25",
    "amount_eur BETWEEN 10 AND 20",
    "amount_eur IN (1, 2, 3)",
    "amount_eur > -5",
    "amount_eur > 1e5",
    "title = 'lotto 5'",
    "title = 'it''s 5' AND amount_eur > 6",
    "a1 > 5",
    '"x2y" > 3',
    "amount_eur + 5 > 10",
    "amount_eur * 2 > 5 OR amount_eur < 1",
    "NOT amount_eur > 5",
    "S_INTERSECTS(geometry, POINT(9.1 45.4))",
    "S_INTERSECTS(geometry, BBOX(9.1, 45.4, 9.2, 45.5))",
    "created > TIMESTAMP('2024-01-01T00:00:00Z') AND amount_eur > 7",
    "created > DATE('2024-01-01')",
    "A_CONTAINS(drivers, [1, 2])",
    "amount_eur > 5 AND amount_eur > 5",
    "amount_eur > 1234567890123456789",
    "amount_eur>5.",
]


def _variant(text: str, rng: random.Random) -> str:
    """``text`` with each of its numbers another (an integer or a decimal)."""

    def other(m):
        token = m.group()
        if token[0] in "'\"":
            return token
        n = rng.randint(0, 10**7)
        return str(n) if rng.random() < 0.5 else f"{n}.{rng.randint(0, 99):02d}"

    return cql._SHAPE_TOKENS.sub(other, text)


def _direct(text: str, names=NAMES):
    try:
        return _parse_filter(text, None, None, names, Budget.from_settings())
    except InvalidParameter as exc:
        return exc.args


def _served(text: str, names=NAMES):
    try:
        return parse_filter(text, None, None, names)
    except InvalidParameter as exc:
        return exc.args


@pytest.mark.parametrize("text", CORPUS)
def test_a_filter_of_a_known_shape_is_the_filter_the_parser_makes(text):
    rng = random.Random(text)
    for k in range(6):
        variant = text if k == 0 else _variant(text, rng)
        got, want = _served(variant), _direct(variant)
        if isinstance(want, tuple):
            assert got == want, variant
            continue
        assert (got.tree, got.text, got.properties) == (want.tree, want.text, want.properties)


def test_only_numbers_that_are_leaves_make_a_reusable_shape():
    cql._shapes.clear()
    for text in ("amount_eur BETWEEN 11 AND 12", "amount_eur > -13", "amount_eur IN (14, 15)"):
        parse_filter(text, None, None, NAMES)
    kept = {shape: v is not None for (shape, *_), v in cql._shapes.items()}
    assert kept == {
        "amount_eur BETWEEN \0 AND \0": True,
        "amount_eur > -\0": False,  # the sign is folded into the number: parsed each time
        "amount_eur IN (\0, \0)": True,
    }
    # a reused shape keeps its queryables: a property unknown to another list is refused
    parse_filter("a1 > 16", None, None, NAMES)
    with pytest.raises(InvalidParameter, match="a1"):
        parse_filter("a1 > 17", None, None, ["amount_eur"])


def test_a_longer_number_still_meets_the_length_limit(monkeypatch):
    monkeypatch.setenv("CMM_GEO_MAX_FILTER_LENGTH", "20")
    from geo.settings import get_settings

    get_settings.cache_clear()
    try:
        parse_filter("amount_eur > 18", None, None, NAMES)
        with pytest.raises(InvalidParameter, match="20"):
            parse_filter("amount_eur > 123456789", None, None, NAMES)
    finally:
        monkeypatch.delenv("CMM_GEO_MAX_FILTER_LENGTH")
        get_settings.cache_clear()
