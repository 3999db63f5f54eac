"""Hostile CQL2 filters: nothing a stranger sends may crash, stall or overflow the service.

Every hostile request must answer a 4xx naming ``filter`` (or a 200) within a generous
bound, never a 5xx or a dead worker: the filter budget (length, depth, terms) is checked
before the ``cql2`` parser sees the text, LIKE matches in linear time, arithmetic
overflow is a 400 and evaluation runs under a deadline (503).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.errors import InvalidParameter, ServiceUnavailable
from geo.ogc.cql import HARD_MAX_DEPTH, Budget, LikePattern, evaluate, parse_filter
from geo.ogc.registry import MemoryTable
from geo.settings import get_settings

COMUNI = "/collections/comuni/items"
INTERVENTIONS = "/collections/interventions/items"
#: A hostile request must be answered well within this (seconds); it bounds, it does not time.
BOUND_S = 5.0

#: The configured depth and term limits, but no length limit: reaches the other checks.
_NO_LENGTH_LIMIT = Budget(
    max_length=10**7,
    max_depth=get_settings().max_filter_depth,
    max_terms=get_settings().max_filter_terms,
)
#: Status codes of every hostile request sent by this module, reported at the end.
TALLY: Counter[str] = Counter()

FUZZ = settings(
    max_examples=40,
    deadline=None,  # the bound is asserted explicitly, generously
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """Print how many hostile inputs were sent and how many got a 4xx (run with -s)."""
    yield
    http = sum(v for k, v in TALLY.items() if k.startswith("HTTP"))
    four = sum(v for k, v in TALLY.items() if k.startswith("HTTP 4"))
    print(
        f"\nhostile filters: {http} over HTTP ({four} got a 4xx), {TALLY['parse']} parsed "
        f"directly ({TALLY['parse 400']} refused); {dict(sorted(TALLY.items()))}"
    )


def _send(client, flt: str, path: str = COMUNI, lang: str | None = None):
    """GET ``path`` with ``filter``; assert no 5xx and an answer within BOUND_S."""
    params = {"filter": flt, "limit": 200}
    if lang:
        params["filter-lang"] = lang
    start = time.monotonic()
    r = client.get(path, params=params)
    elapsed = time.monotonic() - start
    TALLY[f"HTTP {r.status_code}"] += 1
    assert r.status_code < 500, (flt[:200], r.status_code, r.text[:300])
    assert elapsed < BOUND_S, (flt[:200], elapsed)
    if r.status_code == 400:
        assert r.json()["parameter"] == "filter", r.text
    else:  # 200, or 414 when the encoded URL is over CMM_GEO_MAX_URL_LENGTH
        assert r.status_code in (200, 414), r.text
    return r


def _parse(flt: str, lang: str | None = None) -> None:
    """Parse directly, with no length limit (beyond any URL limit): only a 400 may come out."""
    TALLY["parse"] += 1
    try:
        parse_filter(flt, lang, budget=_NO_LENGTH_LIMIT)
    except InvalidParameter as exc:
        TALLY["parse 400"] += 1
        assert exc.parameter == "filter"


def _rejected(client, flt: str, setting: str, limit: int, **kw) -> str:
    """Send ``flt``; it must be a 400 on ``filter`` stating ``limit`` and ``setting``."""
    r = _send(client, flt, **kw)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["parameter"] == "filter"
    assert setting in body["description"] and str(limit) in body["description"], body
    return body["description"]


# --- the budget, one test per limit -------------------------------------------------------


def test_length_limit(client):
    limit = get_settings().max_filter_length
    flt = "name = '" + "x" * limit + "'"
    _rejected(client, flt, "CMM_GEO_MAX_FILTER_LENGTH", limit)
    # just under the limit is accepted (the limit is not off by one)
    ok = "name = '" + "x" * (limit - len("name = ''")) + "'"
    assert len(ok) == limit
    assert _send(client, ok).status_code == 200


def test_depth_limit_text(client):
    limit = get_settings().max_filter_depth
    at = "(" * limit + "name = 'Rho'" + ")" * limit
    assert [f["id"] for f in _send(client, at).json()["features"]] == ["015182"]
    deeper = "(" * (limit + 1) + "name = 'Rho'" + ")" * (limit + 1)
    _rejected(client, deeper, "CMM_GEO_MAX_FILTER_DEPTH", limit)


def test_parser_stack_overflow_is_a_400_and_the_worker_survives(client, monkeypatch):
    """2,000 parentheses used to overflow the native parser's stack (a segfault that
    would kill this very test process); the depth check now runs before the parser."""
    limit = get_settings().max_filter_depth
    for n in (2_000, 5_000, 100_000):
        for flt in ("(" * n + "population > 1" + ")" * n, "name IN " + "(" * n + "'a')"):
            with pytest.raises(InvalidParameter) as err:
                parse_filter(flt, budget=_NO_LENGTH_LIMIT)
            assert f"{n} levels" in err.value.message
            assert f"limit is {limit} levels" in err.value.message
    # over HTTP the URL may be refused first (414); either way a 4xx, and still alive
    assert _send(client, "(" * 2_000 + "population > 1" + ")" * 2_000).status_code in (400, 414)
    # 4,000 unary minuses fit in the length limit and overflowed the parser too
    msg = _rejected(client, "population = " + "-" * 4_000 + "5", "DEPTH", limit)
    assert "4000 levels" in msg
    assert _send(client, "name = 'Rho'").status_code == 200
    # whatever the setting says, the parser never sees more than HARD_MAX_DEPTH levels
    monkeypatch.setenv("CMM_GEO_MAX_FILTER_DEPTH", "1000000")
    monkeypatch.setenv("CMM_GEO_MAX_FILTER_LENGTH", "1000000")
    get_settings.cache_clear()
    try:
        assert Budget.from_settings().max_depth == HARD_MAX_DEPTH
        with pytest.raises(InvalidParameter, match=f"limit is {HARD_MAX_DEPTH} levels"):
            parse_filter("(" * 2_000 + "population > 1" + ")" * 2_000)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_not_chains_and_json_nesting_count_as_depth(client):
    limit = get_settings().max_filter_depth
    # NOT without parentheses nests too (it used to recurse in Python: a 500)
    _rejected(client, "NOT " * 30 + "name = 'Rho'", "CMM_GEO_MAX_FILTER_DEPTH", limit)
    node: dict = {"op": "=", "args": [{"property": "name"}, "Rho"]}
    for _ in range(40):
        node = {"op": "not", "args": [node]}
    msg = _rejected(
        client, orjson.dumps(node).decode(), "CMM_GEO_MAX_FILTER_DEPTH", limit, lang="cql2-json"
    )
    assert "levels deep" in msg
    # a list nested a thousand times in JSON
    _rejected(client, "[" * 1000 + "]" * 1000, "CMM_GEO_MAX_FILTER_DEPTH", limit)


def test_quoted_parentheses_do_not_count(client):
    """The depth scan respects quoted strings ('' escapes a quote) in text and JSON."""
    limit = get_settings().max_filter_depth
    text = "name = 'it''s " + "(" * (limit * 3) + "'"
    assert _send(client, text).json()["numberMatched"] == 0
    expr = {"op": "=", "args": [{"property": "name"}, '\\"' + "[{(" * limit]}
    r = _send(client, orjson.dumps(expr).decode(), lang="cql2-json")
    assert r.status_code == 200 and r.json()["numberMatched"] == 0


def test_terms_limit(client):
    limit = get_settings().max_filter_terms
    names = [f"'n{i}'" for i in range(limit + 1)]
    at = " OR ".join(f"name = {n}" for n in [*names[: limit - 1], "'Rho'"])
    assert _send(client, at).json()["numberMatched"] == 1
    over = " OR ".join(f"name = {n}" for n in names)
    _rejected(client, over, "CMM_GEO_MAX_FILTER_TERMS", limit)
    hundred = " OR ".join(f"population = {i}" for i in range(100))
    _rejected(client, hundred, "CMM_GEO_MAX_FILTER_TERMS", limit)
    # arithmetic chains are terms too (they nest one level per operator)
    chain = "population" + " + 1" * (limit + 1) + " > 0"
    _rejected(client, chain, "CMM_GEO_MAX_FILTER_TERMS", limit)
    expr = {"op": "or", "args": [{"op": "=", "args": [{"property": "id"}, i]} for i in range(65)]}
    _rejected(
        client,
        orjson.dumps(expr).decode(),
        "CMM_GEO_MAX_FILTER_TERMS",
        limit,
        path=INTERVENTIONS,
        lang="cql2-json",
    )


def test_signs_in_geometry_literals_are_not_terms():
    limit = get_settings().max_filter_terms
    coords = ", ".join(f"-{i % 80}.5 -{i % 80}" for i in range(limit * 2)) + ", -0.5 -0"
    flt = parse_filter(f"S_INTERSECTS(geometry, LINESTRING({coords}))")
    assert flt.properties == {"geometry"}


# --- LIKE in linear time ------------------------------------------------------------------


def _like_reference(pattern: str, s: str) -> bool:
    """Plain dynamic-programming LIKE (% any run, _ one char, \\ escapes): the oracle."""
    tokens: list[str | None] = []  # None: %, "\0_": any one char, else a literal char
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i + 1])
            i += 2
            continue
        tokens.append(None if c == "%" else "\0_" if c == "_" else c)
        i += 1
    row = [True] + [False] * len(s)
    for t in tokens:
        new = [row[0] and t is None] + [False] * len(s)
        for j in range(1, len(s) + 1):
            if t is None:
                new[j] = new[j - 1] or row[j]
            else:
                new[j] = row[j - 1] and (t == "\0_" or t == s[j - 1])
        row = new
    return row[len(s)]


LIKE_PATTERNS = [
    "%_%_%_%_%_%#",
    "%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%#",
    "%o%o%",
    "Ce%",
    "%ano",
    "_____",
    "%a_a%",
    "S%S%",
    "%%n%%",
    "B_r%o",
    "%",
    "",
]


@pytest.mark.parametrize("pattern", LIKE_PATTERNS)
def test_like_matches_the_reference_on_comuni_names(client, territory, pattern):
    names = [c.name for c in territory.comuni_list]
    expected = {n for n in names if _like_reference(pattern, n)}
    assert {n for n in names if LikePattern(pattern).matches(n)} == expected
    flt = "name LIKE '" + pattern.replace("'", "''") + "'"
    r = _send(client, flt)
    assert r.status_code == 200, r.text
    assert {f["properties"]["name"] for f in r.json()["features"]} == expected


def test_pathological_like_is_fast_on_long_values():
    """Thirty wildcards against a 20,000-character value: a regex would never finish."""
    pattern = "%_" * 30 + "%#"
    value = "a" * 20_000
    start = time.monotonic()
    assert not LikePattern(pattern).matches(value)
    assert LikePattern(pattern).matches(value + "#")
    assert time.monotonic() - start < BOUND_S


@FUZZ
@given(
    pattern=st.text(alphabet="%_\\ab#", max_size=14),
    value=st.text(alphabet="ab#%_\\", max_size=14),
)
def test_like_agrees_with_the_reference(pattern, value):
    assert LikePattern(pattern).matches(value) == _like_reference(pattern, value)


# --- arithmetic overflow ------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [
        "population ^ 500 > 1",
        "population ^ population > 1",
        "population * 1e308 * 10 > 1",
        "(0 - population) ^ 0.5 > 1",
        "population > 1e400",
        "population > " + "9" * 400,
    ],
)
def test_overflow_is_a_400_naming_the_filter(client, flt):
    r = _send(client, flt)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "filter"
    desc = r.json()["description"]
    assert "overflow" in desc or "out of range" in desc, desc


def test_geometry_literals_out_of_range_are_a_400(client):
    """Coordinates beyond float range, or that reproject to infinity, never reach shapely."""
    r = _send(client, "S_INTERSECTS(geometry, POINT(" + "9" * 400 + " 45))")
    assert r.status_code == 400, r.text  # cql2 itself cannot serialise the infinity
    r = client.get(
        COMUNI,
        params={
            "filter": "S_INTERSECTS(geometry, POINT(1000000000000000000000 45))",
            "filter-crs": "EPSG:32632",
        },
    )
    assert r.status_code == 400, r.text
    assert "out of range" in r.json()["description"]


def test_division_by_zero_is_null_not_an_error(client):
    assert _send(client, "population / 0 > 1").json()["numberMatched"] == 0


# --- the deadline -------------------------------------------------------------------------


def _big_table(rows: int) -> MemoryTable:
    names = np.empty(rows, dtype=object)
    names[:] = [f"comune {i:06d}" for i in range(rows)]
    pops = np.empty(rows, dtype=object)
    pops[:] = list(range(rows))
    return MemoryTable({"name": names, "population": pops}, np.full(rows, None, dtype=object))


def test_deadline_stops_a_slow_evaluation_inside_the_row_loop():
    """64 LIKE terms over 100,000 rows take seconds; a 0.2 s budget stops them early."""
    limit = get_settings().max_filter_terms
    flt = parse_filter(" OR ".join(f"name LIKE '%{i}%x%'" for i in range(limit)))
    table = _big_table(100_000)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable) as err:
        evaluate(flt, table, timeout_s=0.2)
    assert time.monotonic() - start < BOUND_S
    assert err.value.status == 503 and err.value.headers["Retry-After"]
    assert "CMM_GEO_REQUEST_TIMEOUT_S" in err.value.message
    # the same filter without a deadline problem gives the right answer on a small table
    mask = evaluate(flt, _big_table(50), timeout_s=60)
    assert not mask.any()


def test_deadline_is_a_503_over_http(client, monkeypatch):
    monkeypatch.setenv("CMM_GEO_REQUEST_TIMEOUT_S", "0")
    get_settings.cache_clear()
    try:
        r = client.get(COMUNI, params={"filter": "population > 1"})
    finally:
        monkeypatch.delenv("CMM_GEO_REQUEST_TIMEOUT_S")
        get_settings.cache_clear()
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"]
    assert "time budget" in r.json()["description"]
    assert client.get(COMUNI, params={"filter": "population > 1"}).status_code == 200


# --- property-based fuzzing over HTTP -----------------------------------------------------

_PREDICATES = st.sampled_from(
    ["name = 'Rho'", "population > 5000", "name LIKE '%a%'", "istat_code IS NULL"]
)
_COLLECTION = st.sampled_from([COMUNI, INTERVENTIONS])


def _for(path: str, flt: str) -> str:
    """The same shape of filter on the interventions' properties."""
    if path == INTERVENTIONS:
        for a, b in (("name", "title"), ("population", "amount_eur"), ("istat_code", "cup")):
            flt = flt.replace(a, b)
    return flt


@FUZZ
@given(
    path=_COLLECTION,
    pred=_PREDICATES,
    depth=st.integers(0, 1_200),
    opener=st.sampled_from(["(", "NOT (", "NOT ", "[", "casei("]),
)
def test_fuzz_deep_nesting(client, path, pred, depth, opener):
    closer = {"(": ")", "NOT (": ")", "NOT ": "", "[": "]", "casei(": ")"}[opener]
    _send(client, _for(path, opener * depth + pred + closer * depth), path)


@FUZZ
@given(
    path=_COLLECTION,
    preds=st.lists(_PREDICATES, min_size=1, max_size=400),
    joiner=st.sampled_from([" OR ", " AND ", " OR NOT "]),
)
def test_fuzz_long_chains(client, path, preds, joiner):
    _send(client, _for(path, joiner.join(preds)), path)


@FUZZ
@given(path=_COLLECTION, pattern=st.text(alphabet="%_#'\\aMio", max_size=300))
def test_fuzz_like_patterns(client, path, pattern):
    flt = "name LIKE '" + pattern.replace("'", "''") + "'"
    _send(client, _for(path, flt), path)


_NUMBERS = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-400, 400).map(lambda e: f"1e{e}"),
    st.sampled_from(["0", "-0", "1e308", "1.7976931348623157e308", "4.9e-324"]),
)


@FUZZ
@given(
    path=_COLLECTION,
    numbers=st.lists(_NUMBERS, min_size=1, max_size=8),
    ops=st.lists(st.sampled_from(["^", "*", "/", "+", "-", "%", " div "]), min_size=8),
    cmp=st.sampled_from([">", "<", "=", "<>", ">="]),
)
def test_fuzz_huge_numbers_and_exponent_chains(client, path, numbers, ops, cmp):
    expr = "population"
    for n, op in zip(numbers, ops, strict=False):
        expr += f" {op} {n}"
    _send(client, _for(path, f"{expr} {cmp} 1"), path)


_TOKENS = st.sampled_from(
    [
        "(",
        ")",
        "[",
        "]",
        "NOT",
        "AND",
        "OR",
        "LIKE",
        "IN",
        "BETWEEN",
        "IS",
        "NULL",
        "=",
        "<>",
        "<",
        ">=",
        "^",
        "-",
        "+",
        "*",
        "/",
        "name",
        "population",
        "'%_'",
        "'",
        "''",
        '"',
        "1e309",
        "-9",
        "casei(",
        "S_INTERSECTS(",
        "POINT(",
        "BBOX(",
        ",",
        "\\",
        "geometry",
        "{",
        "}",
        '"op"',
        ":",
    ]
)


@FUZZ
@given(path=_COLLECTION, tokens=st.lists(_TOKENS, max_size=200))
def test_fuzz_token_soup(client, path, tokens):
    flt = " ".join(tokens) or "x"
    _send(client, _for(path, flt), path)


_JSON_LEAF = st.one_of(
    st.builds(lambda v: {"op": "=", "args": [{"property": "name"}, v]}, st.text(max_size=5)),
    st.builds(
        lambda v: {"op": "^", "args": [{"property": "population"}, v]},
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.just({"op": "like", "args": [{"property": "name"}, "%_%_%_%_%_%_%#"]}),
)


@FUZZ
@given(
    expr=st.recursive(
        _JSON_LEAF,
        lambda kids: st.one_of(
            st.builds(lambda a: {"op": "not", "args": [a]}, kids),
            st.builds(lambda a: {"op": "or", "args": a}, st.lists(kids, min_size=1, max_size=30)),
            st.builds(lambda a: {"op": "and", "args": a}, st.lists(kids, min_size=1, max_size=5)),
        ),
        max_leaves=300,
    )
)
def test_fuzz_cql2_json(client, expr):
    _send(client, orjson.dumps(expr).decode(), COMUNI, lang="cql2-json")


@FUZZ
@given(
    depth=st.integers(0, 20_000),
    opener=st.sampled_from(["(", "NOT (", "NOT ", "[", "casei(", "- ", "a IN ("]),
    tokens=st.lists(_TOKENS, max_size=50),
)
def test_fuzz_parser_never_sees_deep_input(depth, opener, tokens):
    """No URL limit in the way: only a 400 (or a filter) may come out, never a crash."""
    closer = {"(": ")", "NOT (": ")", "[": "]", "casei(": ")", "a IN (": ")"}.get(opener, "")
    _parse(opener * depth + " ".join(tokens) + closer * depth)
    _parse(opener * depth + "population > 1" + closer * depth)
    _parse("[" * depth + "{" + '"op":' * min(depth, 5) + "]" * depth, "cql2-json")


@pytest.mark.parametrize(
    "flt", ["CASEI() = 'a'", "ACCENTI() = 'a'", "S_INTERSECTS()", "S_INTERSECTS(geometry)"]
)
def test_operator_with_wrong_number_of_arguments_is_400(client, flt):
    """Found by the token-soup fuzzer: these were 500s (IndexError / unpacking)."""
    r = client.get("/collections/comuni/items", params={"filter": flt})
    assert r.status_code == 400, r.text
    assert "argument" in r.json()["description"]
