"""CQL2 filters: parsed by the ``cql2`` package, evaluated column-wise with numpy and shapely.

``parse_filter`` turns CQL2 text or JSON into a :class:`CqlFilter` whose tree is the
CQL2-JSON form, with geometry literals reprojected from ``filter-crs`` to CRS84 shapely
geometries. ``evaluate`` computes a boolean mask over a :class:`Table` (columns of
properties plus a geometry array). Every problem becomes ``InvalidParameter("filter", …)``
saying what is wrong and where, in English and in Italian (``it=``; a syntax error by its
line and column, which the parser's report starts with).

Nothing a stranger sends may crash, stall or overflow the service, so every filter first
passes a budget (:func:`check_budget`: length, nesting depth, number of terms) before the
``cql2`` parser sees it (its recursive-descent parser overflows the native stack on deep
nesting), LIKE matches without a backtracking regular expression, arithmetic overflow is
a 400, and evaluation runs under a deadline (``request_timeout_s``, 503 beyond).

Conformance classes implemented here are listed in :data:`CQL2_CONFORMANCE`.
"""

from __future__ import annotations

import math
import operator
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import cql2
import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import CRS84, parse_crs, to_pyproj, transformer
from geo.errors import InvalidParameter, ServiceUnavailable, quoted
from geo.ogc.params import check_geographic
from geo.settings import get_settings

_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
#: CQL2 conformance classes evaluated by this module (declared in /conformance).
CQL2_CONFORMANCE: tuple[str, ...] = tuple(
    _CQL2 + c
    for c in (
        "cql2-text",
        "cql2-json",
        "basic-cql2",
        "advanced-comparison-operators",
        "case-insensitive-comparison",
        "accent-insensitive-comparison",
        "basic-spatial-functions",
        "basic-spatial-functions-plus",
        "spatial-functions",
        "property-property",
        "arithmetic",
        "array-functions",
    )
)

FILTER_LANGS = ("cql2-text", "cql2-json")
#: Name of the geometry in filters (a queryable of every collection with geometry).
GEOMETRY_PROPERTY = "geometry"


class Table(Protocol):
    """What a filter is evaluated against: named columns and a geometry array."""

    def column(self, name: str) -> np.ndarray:
        """Values of a property (object array, None for null); KeyError if unknown."""
        ...

    def geometry_column(self) -> np.ndarray:
        """Shapely geometries in CRS84 (object array)."""
        ...

    def __len__(self) -> int: ...


@dataclass
class CqlFilter:
    """A parsed filter: its CQL2-JSON tree (geometries as shapely, CRS84) and properties used."""

    tree: Any
    text: str
    properties: set[str] = field(default_factory=set)

    def evaluate(self, table: Table) -> np.ndarray:
        """Boolean mask of the rows of ``table`` matching the filter."""
        return evaluate(self, table)


def _fail(message: str, it: str | None = None) -> InvalidParameter:
    return InvalidParameter("filter", message, it=it)


#: Italian names of the kinds of value a filter compares (``type(v).__name__``).
_KIND_IT = {
    "str": "il testo", "int": "il numero", "float": "il numero", "bool": "il booleano",
    "date": "la data", "datetime": "la data-ora", "list": "la lista", "tuple": "la lista",
    "NoneType": "il valore nullo", "ndarray": "la colonna",
}  # fmt: skip


def _value_it(v: Any) -> str:
    """``il numero «3»``: a value of a filter as an Italian message names it."""
    kind = _KIND_IT.get(type(v).__name__, "il valore")
    return f"{kind} {quoted(v)}"


#: Where the parser's report of a CQL2-text syntax error points: `` --> line:column``.
_WHERE = re.compile(r"\s*-->\s*(\d+):(\d+)")


def _syntax_it(lang: str, raw: str, detail: str) -> str:
    """A syntax error in Italian: where (line, column, the text before) and what."""
    if lang == "cql2-json":
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return f"JSON non valido alla riga {exc.lineno}, colonna {exc.colno}"
        return (
            "il JSON non è un'espressione CQL2 (es. "
            '{"op": "=", "args": [{"property": "nome"}, "Milano"]})'
        )
    where = _WHERE.match(detail)
    if where is None:
        return f"cql2-text non valido: {detail}"
    line, col = int(where[1]), int(where[2])
    lines = raw.splitlines() or [""]
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    before, rest = text[: col - 1].strip()[-40:], text[col - 1 :].strip()[:20]
    at = f"riga {line}, colonna {col}" if len(lines) > 1 else f"colonna {col}"
    if not rest and line >= len(lines):
        return f"cql2-text incompleto: il filtro finisce troppo presto, dopo {quoted(before)}"
    what = f"errore di sintassi cql2-text alla {at}"
    if not before:
        return f"{what}: non si può cominciare con {quoted(rest)}"
    return f"{what}: {quoted(rest)} non può seguire {quoted(before)}"


# --- query budget -------------------------------------------------------------------------

#: Nesting the ``cql2`` parser is known to survive (it segfaults near 2,000 parentheses);
#: the effective depth limit never exceeds this, whatever ``max_filter_depth`` says.
HARD_MAX_DEPTH = 200

#: Most terms the parser and the recursive evaluation are known to handle safely; the
#: effective term limit never exceeds this.
HARD_MAX_TERMS = 1000

#: Words that open a literal in CQL2 text, not a function call (their parentheses hold
#: coordinates, whose signs are not arithmetic).
_LITERAL_WORDS = frozenset(
    {
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
        "bbox",
        "envelope",
        "timestamp",
        "date",
        "interval",
    }
)
#: Keywords of CQL2 text that are one term each (``NOT`` included: it is an operator node).
_TERM_WORDS = frozenset({"like", "between", "in", "is", "not", "div"})
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:")


@dataclass(frozen=True)
class Budget:
    """Limits of one filter, from the settings (see README "Security and limits")."""

    max_length: int
    max_depth: int
    max_terms: int

    @classmethod
    def from_settings(cls) -> Budget:
        """The configured limits, capped at :data:`HARD_MAX_DEPTH` and :data:`HARD_MAX_TERMS`."""
        s = get_settings()
        return cls(
            max_length=s.max_filter_length,
            max_depth=min(s.max_filter_depth, HARD_MAX_DEPTH),
            max_terms=min(s.max_filter_terms, HARD_MAX_TERMS),
        )


def _too_long(n: int, budget: Budget) -> InvalidParameter:
    return _fail(
        f"{n} characters long; the limit is {budget.max_length} characters "
        "(setting CMM_GEO_MAX_FILTER_LENGTH)",
        it=f"lungo {n} caratteri; il massimo è {budget.max_length} "
        "(impostazione CMM_GEO_MAX_FILTER_LENGTH)",
    )


def _too_deep(depth: int, budget: Budget) -> InvalidParameter:
    return _fail(
        f"nested {depth} levels deep; the limit is {budget.max_depth} levels of parentheses, "
        "brackets or NOT (setting CMM_GEO_MAX_FILTER_DEPTH)",
        it=f"annidato su {depth} livelli; il massimo è {budget.max_depth} livelli di "
        "parentesi o NOT (impostazione CMM_GEO_MAX_FILTER_DEPTH)",
    )


def _too_many_terms(terms: int, budget: Budget) -> InvalidParameter:
    return _fail(
        f"{terms} terms (comparisons, LIKE, IN, BETWEEN, NOT, functions, arithmetic); "
        f"the limit is {budget.max_terms} terms (setting CMM_GEO_MAX_FILTER_TERMS)",
        it=f"{terms} termini (confronti, LIKE, IN, BETWEEN, NOT, funzioni, operazioni); "
        f"il massimo è {budget.max_terms} (impostazione CMM_GEO_MAX_FILTER_TERMS)",
    )


def _scan_text(raw: str) -> tuple[int, int]:
    """(nesting depth, terms) of CQL2 text in one linear pass that skips quoted strings.

    Depth counts ``(`` and ``[`` plus any run of consecutive NOTs or unary signs (the
    parser recurses on each: 4,000 ``-`` overflow its stack). Terms count comparison and
    arithmetic operators, the keywords LIKE, BETWEEN, IN, IS, NOT, DIV and function calls;
    signs inside geometry literals and unary signs are not terms. It may only over-count
    where the parser builds as many operator nodes, so the exact count after parsing agrees.
    """
    depth = max_depth = terms = run = 0
    literal_depth = -1  # depth at which a geometry/temporal literal opened (-1: none)
    prev = ""  # kind of the previous token: "value", "word", "op" or ""
    word = ""
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch in "'\"":  # a string or a quoted identifier; '' inside is two strings
            end = raw.find(ch, i + 1)
            i = n if end < 0 else end + 1
            prev, run = "value", 0
            continue
        if ch in _WORD_CHARS:
            j = i
            while j < n and raw[j] in _WORD_CHARS:
                j += 1
            if ch.isdigit() or ch == ".":  # a number, maybe with an exponent sign
                while j < n and raw[j - 1] in "eE" and raw[j] in "+-":
                    j += 1
                    while j < n and raw[j] in _WORD_CHARS:
                        j += 1
                prev, run = "value", 0
            else:
                word = raw[i:j].lower()
                if literal_depth < 0 and word in _TERM_WORDS:
                    terms += 1
                    prev = "op"
                    if word == "not":
                        run += 1
                        max_depth = max(max_depth, depth + run)
                else:
                    prev, run = "word", 0
            i = j
            continue
        if ch in "([":
            depth, run = depth + 1, 0
            max_depth = max(max_depth, depth)
            if prev == "word" and literal_depth < 0:
                if word in _LITERAL_WORDS:
                    literal_depth = depth
                else:
                    terms += 1  # a function call
            prev = "op"
        elif ch in ")]":
            if depth == literal_depth:
                literal_depth = -1
            depth = max(depth - 1, 0)
            prev = "value"
        elif literal_depth >= 0 or ch.isspace():
            pass
        elif ch in "<>=!":
            if raw[i + 1 : i + 2] in ("=", ">") and ch in "<>!":
                i += 1  # <=, >=, <>, !=: one operator
            terms += 1
            prev = "op"
        elif ch in "*/%^" or (ch in "+-" and prev in ("value", "word")):
            terms += 1
            prev = "op"
        elif ch in "+-":  # a unary sign: nests like NOT
            run += 1
            max_depth = max(max_depth, depth + run)
            prev = "op"
        else:
            prev = "op"
        i += 1
    return max_depth, terms


def _scan_json(raw: str) -> tuple[int, int]:
    """(nesting depth, terms) of CQL2-JSON in one linear pass that respects strings.

    Each CQL2 level is an object holding an ``args`` array, so depth is the nesting of
    ``{`` and ``[`` halved (rounded up); terms are the ``"op"`` members other than
    ``and``/``or``.
    """
    depth = max_depth = terms = 0
    expect_op = False  # the previous string was the key "op"
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            text = raw[i + 1 : j]
            k = j + 1
            while k < n and raw[k].isspace():
                k += 1
            if k < n and raw[k] == ":":
                expect_op = text == "op"
            elif expect_op:
                expect_op = False
                if text.lower() not in ("and", "or"):
                    terms += 1
            i = j + 1
            continue
        if ch in "{[":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in "}]":
            depth = max(depth - 1, 0)
        i += 1
    return (max_depth + 1) // 2, terms


def _json_depth(value: Any) -> int:
    """Nesting of a decoded JSON value, without recursion (so any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, d)
            items = node.values() if isinstance(node, dict) else node
            stack.extend((v, d + 1) for v in items)
    return deepest


def check_budget(raw: str, lang: str, budget: Budget | None = None) -> None:
    """Reject a filter over its length, depth or term budget before any parser sees it.

    Each violation is a 400 on ``filter`` stating the limit and the setting to change.
    """
    budget = budget or Budget.from_settings()
    if len(raw) > budget.max_length:
        raise _too_long(len(raw), budget)
    depth, terms = _scan_json(raw) if lang == "cql2-json" else _scan_text(raw)
    if depth > budget.max_depth:
        raise _too_deep(depth, budget)
    if terms > budget.max_terms:
        raise _too_many_terms(terms, budget)


def _check_tree(tree: Any, budget: Budget) -> None:
    """The exact budget on the parsed tree, walked without recursion.

    Terms are operator nodes other than AND/OR. Depth counts what nests a condition in
    another (NOT, functions, lists), so a ``NOT NOT … NOT`` chain without parentheses is
    caught here; arithmetic chains are bounded by the term budget. Whatever the settings,
    the tree may not be deeper than :data:`HARD_MAX_DEPTH` nodes, so the recursive
    evaluation stays far from Python's recursion limit.
    """
    terms = deepest = raw_deepest = 0
    stack: list[tuple[Any, int, int]] = [(tree, 0, 0)]
    while stack:
        node, d, raw = stack.pop()
        raw_deepest = max(raw_deepest, raw)
        if isinstance(node, list):
            deepest = max(deepest, d + 1)
            stack.extend((a, d + 1, raw + 1) for a in node)
        elif isinstance(node, dict) and "op" in node:
            op = str(node["op"]).lower()
            terms += op not in ("and", "or")
            nested = d if op in _FLAT_OPS else d + 1
            deepest = max(deepest, nested)
            args = node.get("args", [])
            args = args if isinstance(args, list) else [args]
            stack.extend((a, nested, raw + 1) for a in args)
    if terms > budget.max_terms:
        raise _too_many_terms(terms, budget)
    if deepest > budget.max_depth:
        raise _too_deep(deepest, budget)
    if raw_deepest > HARD_MAX_DEPTH:
        raise _fail(
            f"its expression tree is {raw_deepest} levels deep; the limit is "
            f"{HARD_MAX_DEPTH} (fixed); split long arithmetic or NOT chains",
            it=f"l'espressione è profonda {raw_deepest} livelli; il massimo è "
            f"{HARD_MAX_DEPTH} (fisso); spezzare le lunghe catene di operazioni o di NOT",
        )


#: Operators that combine or compare at the same level: they add no nesting depth
#: (their chains are bounded by the term budget instead).
_FLAT_OPS = frozenset(
    {"and", "or", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isnull"}
    | {"+", "-", "*", "/", "%", "div", "^"}
)


def parse_filter(
    value: str | dict[str, Any],
    lang: str | None = None,
    filter_crs: str | None = None,
    queryables: Iterable[str] | None = None,
    budget: Budget | None = None,
) -> CqlFilter:
    """Parse CQL2 text or JSON; reproject geometry literals from ``filter_crs`` to CRS84.

    ``lang`` defaults to cql2-text for strings not starting with ``{``. When ``queryables``
    is given, properties outside it are rejected. The filter must fit ``budget`` (default:
    the settings), checked before parsing.
    """
    budget = budget or Budget.from_settings()
    if not isinstance(value, str):
        return _parse_filter(value, lang, filter_crs, queryables, budget)
    known = None if queryables is None else tuple(queryables)
    key = (value, lang, filter_crs, known, budget)
    with _parsed_lock:
        got = _parsed.get(key)
    if got is None:
        got = _parse_by_shape(value, lang, filter_crs, known, budget)
        if got is None:
            got = _parse_filter(value, lang, filter_crs, queryables, budget)
        with _parsed_lock:
            _parsed[key] = got
            while len(_parsed) > PARSED_KEPT:
                del _parsed[next(iter(_parsed))]
    return got


#: In CQL2 text, a quoted string or identifier (matched to be skipped), or a number that
#: is a parameter of the filter's shape: up to 15 digits, perhaps a fraction of up to 15,
#: not part of a word, another number or an exponent (each parses as a float, exactly as
#: Python's ``float`` reads it).
_SHAPE_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|(?<![\w.])\d{1,15}(?:\.\d{1,15})?(?![\w.])")
#: Filters of one shape (their text with each number a slot; language, CRS, queryables,
#: budget) → the parsed tree with a :class:`_Slot` for each number and the properties
#: used, or None: the numbers are not plain leaves of the tree (a sign, a geometry).
_shapes: dict[tuple[Any, ...], tuple[Any, frozenset[str]] | None] = {}
SHAPES_KEPT = 256


class _Slot(int):
    """The place of a filter's ``n``-th number in its shape's tree."""


def _shape_of(raw: str) -> tuple[str, list[float]]:
    """(the text with each number a slot, the numbers in order)."""
    numbers: list[float] = []

    def slot(m: re.Match[str]) -> str:
        token = m.group()
        if token[0] in "'\"":
            return token
        numbers.append(float(token))
        return "\0"

    return _SHAPE_TOKENS.sub(slot, raw), numbers


def _parse_by_shape(
    value: str,
    lang: str | None,
    filter_crs: str | None,
    queryables: tuple[str, ...] | None,
    budget: Budget,
) -> CqlFilter | None:
    """A CQL2 text filter parsed as another of its shape was (a dashboard's slider sends
    ``amount_eur > X``, X moving): that one's checked tree with this one's numbers, ~13 →
    ~6 µs. None when the shape is not known (this filter is then parsed, and its shape
    learnt) or cannot be reused."""
    raw = value.strip()
    if lang not in (None, "cql2-text") or (lang is None and raw.startswith("{")):
        return None
    if len(raw) > budget.max_length:
        return None  # the parser's check says so
    shape, numbers = _shape_of(raw)
    if not numbers:
        return None
    key = (shape, filter_crs, queryables, budget)
    with _parsed_lock:
        known = _shapes.get(key, _UNKNOWN)
    if known is None:
        return None
    if known is _UNKNOWN:
        got = _parse_filter(value, lang, filter_crs, queryables, budget)  # may raise
        learnt = _template(got.tree, numbers)
        if learnt is not _UNKNOWN:
            with _parsed_lock:
                _shapes[key] = None if learnt is None else (learnt, frozenset(got.properties))
                while len(_shapes) > SHAPES_KEPT:
                    del _shapes[next(iter(_shapes))]
        return got
    tree, used = known
    return CqlFilter(tree=_filled(tree, numbers), text=raw, properties=set(used))


_UNKNOWN: Any = object()


def _template(tree: Any, numbers: list[float]) -> Any:
    """``tree`` with a :class:`_Slot` in place of each of ``numbers``, when they are its
    numeric leaves, in order (the parser keeps the text's order); None when they are not
    (a sign folded into a number, numbers in a geometry); :data:`_UNKNOWN` when this
    filter cannot tell (two numbers alike: which is which?)."""
    if len(set(numbers)) != len(numbers):
        return _UNKNOWN
    found: list[float] = []

    def slot(leaf: Any) -> Any:
        if isinstance(leaf, float) or (isinstance(leaf, int) and not isinstance(leaf, bool)):
            found.append(leaf)
            return _Slot(len(found) - 1)
        return leaf

    template = _map_leaves(tree, slot)
    return template if found == numbers else None


def _filled(tree: Any, numbers: list[float]) -> Any:
    """A shape's tree with its slots given these numbers (a new tree: the parsed ones are
    shared)."""
    return _map_leaves(tree, lambda leaf: numbers[leaf] if type(leaf) is _Slot else leaf)


def _map_leaves(node: Any, leaf: Callable[[Any], Any]) -> Any:
    """A copy of a filter's tree (its dicts and lists) with ``leaf`` applied to the rest."""
    if isinstance(node, dict):
        return {k: _map_leaves(v, leaf) for k, v in node.items()}
    if isinstance(node, list):
        return [_map_leaves(v, leaf) for v in node]
    return leaf(node)


#: Filters parsed lately (text, language, CRS, queryables, budget → CqlFilter, treated as
#: immutable): a request's filter is parsed once, though read both on the event loop and
#: by the page's code (``api.ogc_lane``).
_parsed: dict[tuple[Any, ...], CqlFilter] = {}
_parsed_lock = threading.Lock()
PARSED_KEPT = 256


def _parse_filter(
    value: str | dict[str, Any],
    lang: str | None,
    filter_crs: str | None,
    queryables: Iterable[str] | None,
    budget: Budget,
) -> CqlFilter:
    crs = parse_crs(filter_crs, "filter-crs")
    if isinstance(value, dict):
        depth = (_json_depth(value) + 1) // 2
        if depth > budget.max_depth:  # before orjson, which refuses deep values itself
            raise _too_deep(depth, budget)
        raw = orjson.dumps(value).decode()
        lang = lang or "cql2-json"
    else:
        raw = value.strip()
        if lang is None:
            lang = "cql2-json" if raw.startswith("{") else "cql2-text"
    if lang not in FILTER_LANGS:
        raise InvalidParameter(
            "filter-lang",
            f"unsupported {lang!r}; use cql2-text or cql2-json",
            it=f"linguaggio {quoted(lang)} non supportato; usare cql2-text o cql2-json",
        )
    if not raw:
        raise _fail("empty filter", it="filtro vuoto")
    check_budget(raw, lang, budget)
    try:
        expr = cql2.parse_json(raw) if lang == "cql2-json" else cql2.parse_text(raw)
        tree = expr.to_json()
    except Exception as exc:  # cql2 also raises bare Exception (e.g. non-finite coordinates)
        msg = str(exc).strip()
        raise _fail(f"invalid {lang}: {msg}", it=_syntax_it(lang, raw, str(exc))) from None
    _check_tree(tree, budget)
    used: set[str] = set()
    tree = _prepare(tree, crs, used)
    if queryables is not None:
        known = set(queryables)
        unknown = sorted(used - known)
        if unknown:
            queryables_text = ", ".join(sorted(known))
            raise _fail(
                f"unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                + ", ".join(repr(u) for u in unknown)
                + "; queryables: "
                + queryables_text,
                it=f"{'proprietà sconosciuta' if len(unknown) == 1 else 'proprietà sconosciute'} "
                + ", ".join(quoted(u) for u in unknown)
                + "; quelle interrogabili sono: "
                + queryables_text,
            )
    return CqlFilter(tree=tree, text=raw, properties=used)


def _literal_geometry(node: dict[str, Any], crs: str) -> BaseGeometry:
    """A GeoJSON or ``{"bbox": [...]}`` literal as a CRS84 shapely geometry."""
    try:
        if "bbox" in node:
            b = [float(v) for v in node["bbox"]]
            if len(b) == 6:
                b = [b[0], b[1], b[3], b[4]]
            if len(b) != 4:
                raise ValueError("a BBOX needs 4 or 6 numbers")
            geom = shapely.box(*b)
        else:
            geom = shapely.geometry.shape(node)
    except Exception as exc:
        literal = orjson.dumps(node).decode()
        reason: object = exc
        if "bbox" in node:  # its own check, or an element that is not a number
            n = len(node["bbox"]) if isinstance(node["bbox"], list) else 0
            reason = "servono 4 o 6 numeri" + (f", ricevuti {n}" if n not in (4, 6) else "")
        raise _fail(
            f"invalid geometry literal {literal[:80]}: {exc}",
            it=f"geometria non valida {quoted(literal)}: {reason}",
        ) from None
    coords = shapely.get_coordinates(geom)
    if crs == CRS84 or to_pyproj(crs).is_geographic:
        lon, lat = (coords[:, 0], coords[:, 1]) if crs == CRS84 else (coords[:, 1], coords[:, 0])
        try:
            check_geographic(lon, lat, "filter")
        except InvalidParameter as exc:
            literal = orjson.dumps(node).decode()
            raise _fail(
                f"geometry literal {literal[:80]}: " + str(exc).removeprefix("filter: "),
                it=f"geometria {quoted(literal)}: " + exc.text("it").removeprefix("filter: "),
            ) from None
    if crs != CRS84:
        tx = transformer(crs, CRS84)

        def _f(xy: np.ndarray) -> np.ndarray:
            a, b = tx.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([a, b])

        geom = shapely.transform(geom, _f)
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        literal = orjson.dumps(node).decode()
        raise _fail(
            f"geometry literal {literal[:80]} has coordinates out of range (in filter-crs)",
            it=f"la geometria {quoted(literal)} ha coordinate fuori dall'area di validità "
            "di filter-crs",
        )
    return geom


def _temporal_literal(node: dict[str, Any]) -> date | datetime:
    """``{"date": "2024-05-01"}`` → a date; ``{"timestamp": "…Z"}`` → an aware datetime."""
    kind = "date" if "date" in node else "timestamp"
    text = node[kind]
    try:
        if kind == "date":
            if not isinstance(text, str) or not _DATE_TEXT.match(text):
                raise ValueError
            return date.fromisoformat(text)
        if not isinstance(text, str) or not _TIMESTAMP_TEXT.match(text):
            raise ValueError
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        example = "2024-05-01" if kind == "date" else "2024-05-01T12:00:00Z"
        raise _fail(
            f"invalid {kind.upper()} literal {text!r}; write e.g. '{example}'",
            it=f"{kind.upper()} non valido: {quoted(text)}; scrivere ad es. '{example}'",
        ) from None
    return t


_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _prepare(node: Any, crs: str, used: set[str]) -> Any:
    """Walk the tree: collect properties, convert geometry literals, check operators."""
    if isinstance(node, dict):
        if "property" in node:
            used.add(str(node["property"]))
            return node
        if "op" in node:
            op = str(node["op"]).lower()
            if op not in _OPERATORS:
                kind = {"t_": "temporal ", "a_": "array "}.get(op[:2], "")
                kind_it = {"t_": " temporale", "a_": " su liste"}.get(op[:2], "")
                supported = ", ".join(sorted(_OPERATORS))
                raise _fail(
                    f"unsupported {kind}operator {node['op']!r}; supported: " + supported,
                    it=f"operatore{kind_it} {quoted(node['op'])} non supportato; quelli "
                    "supportati sono: " + supported,
                )
            args = [_prepare(a, crs, used) for a in node.get("args", [])]
            low, high = _ARITY.get(op, (2, 2))
            if not low <= len(args) <= high:
                wanted = f"at least {low}" if high == _MANY else str(low)
                wanted_it = f"almeno {low}" if high == _MANY else str(low)
                raise _fail(
                    f"{node['op']!r} takes {wanted} argument(s), got {len(args)}",
                    it=f"{quoted(node['op'])} vuole {wanted_it} argomenti, ricevuti {len(args)}",
                )
            return {"op": op, "args": args}
        if "type" in node or "bbox" in node:
            return _literal_geometry(node, crs)
        if "date" in node or "timestamp" in node:
            return _temporal_literal(node)
        if "interval" in node:
            raise _fail(
                "INTERVAL literals are not supported (temporal functions are not); compare "
                "dates with DATE('YYYY-MM-DD') or TIMESTAMP('…Z') and =, <, >, BETWEEN",
                it="INTERVAL non è supportato (le funzioni temporali non lo sono); confrontare "
                "le date con DATE('AAAA-MM-GG') o TIMESTAMP('…Z') e =, <, >, BETWEEN",
            )
        literal = orjson.dumps(node).decode()
        raise _fail(f"unexpected element {literal[:80]}", it=f"elemento inatteso {quoted(literal)}")
    if isinstance(node, list):
        return [_prepare(a, crs, used) for a in node]
    if isinstance(node, float) and not math.isfinite(node):
        raise _fail(
            f"a number is out of range ({node}); numbers must be finite",
            it=f"un numero è fuori scala ({node}); i numeri devono essere finiti",
        )
    return node


# --- evaluation -------------------------------------------------------------------------


#: Monotonic time by which the filter being evaluated must be done (None: no deadline).
_DEADLINE: ContextVar[float | None] = ContextVar("cql_deadline", default=None)
#: Rows evaluated between two looks at the clock.
_CHUNK = 256


def evaluate(flt: CqlFilter, table: Table, timeout_s: float | None = None) -> np.ndarray:
    """Boolean mask (length ``len(table)``) of rows matching ``flt``.

    Evaluation stops with a 503 after ``timeout_s`` seconds (default: the setting
    ``request_timeout_s``), so a slow filter cannot hold a worker forever.
    """
    budget = get_settings().request_timeout_s if timeout_s is None else timeout_s
    token = _DEADLINE.set(time.monotonic() + budget)
    try:
        result = _eval(flt.tree, table)
        return _as_mask(result, len(table))
    finally:
        _DEADLINE.reset(token)


def _check_deadline() -> None:
    """Raise the 503 when the running evaluation is past its deadline."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline:
        budget = get_settings().request_timeout_s
        raise ServiceUnavailable(
            "filter: evaluating it took longer than the time budget of a query "
            f"({budget:g} s, setting CMM_GEO_REQUEST_TIMEOUT_S); simplify it or narrow "
            "the request (bbox, fewer terms)",
            it="filter: la valutazione ha superato il tempo massimo di una richiesta "
            f"({budget:g} s, impostazione CMM_GEO_REQUEST_TIMEOUT_S); semplificare il filtro "
            "o restringere la richiesta (bbox, meno termini)",
            parameter="filter",
        )


def _as_mask(value: Any, n: int) -> np.ndarray:
    """Rows where the condition is true (false and unknown rows are not selected)."""
    return _truth(value, n)[0]


def _eval(node: Any, table: Table) -> Any:
    _check_deadline()
    if isinstance(node, dict):
        if "property" in node:
            name = node["property"]
            if name == GEOMETRY_PROPERTY:
                return table.geometry_column()
            try:
                return table.column(name)
            except KeyError:
                raise _fail(
                    f"unknown property {name!r}", it=f"proprietà sconosciuta {quoted(name)}"
                ) from None
        fn = _OPERATORS[node["op"]]
        return fn(node["args"], table)
    if isinstance(node, list):
        return [_eval(a, table) for a in node]
    return node


def _elementwise(func: Callable[..., Any], *values: Any) -> Any:
    """Apply ``func`` row by row when any value is a column; None propagates as None."""
    n = next((len(v) for v in values if isinstance(v, np.ndarray)), None)

    def call(*xs: Any) -> Any:
        if any(x is None for x in xs):
            return None
        try:
            return func(*xs)
        except TypeError:
            raise _fail(
                "cannot apply the operator to " + ", ".join(type(x).__name__ for x in xs),
                it="l'operatore non si applica a " + ", ".join(_value_it(x) for x in xs),
            ) from None

    if n is None:
        return call(*values)
    cols = [v if isinstance(v, np.ndarray) else [v] * n for v in values]
    out = np.empty(n, dtype=object)
    for start in range(0, n, _CHUNK):
        _check_deadline()
        rows = zip(*(c[start : start + _CHUNK] for c in cols), strict=True)
        out[start : start + _CHUNK] = [call(*row) for row in rows]
    return out


def _comparison(func: Callable[[Any, Any], bool]) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)
        return _elementwise(lambda x, y: bool(func(*_coerce(x, y))), a, b)

    return op


def _coerce(x: Any, y: Any) -> tuple[Any, Any]:
    """Compare numbers with numbers, instants with instants; anything else must share its
    type. A list is never compared with a value: the array functions do that."""
    num = (int, float, np.integer, np.floating)
    if isinstance(x, num) and isinstance(y, num) and not isinstance(x, bool | np.bool_):
        return float(x), float(y)
    for v in (x, y):
        if isinstance(v, list | tuple):
            raise _fail(
                f"cannot compare the list {list(v)!r} with a value; use the array functions, "
                "e.g. A_CONTAINS(missions, ('M2')) or A_OVERLAPS(missions, ('M1', 'M2'))",
                it=f"impossibile confrontare la lista {quoted(list(v))} con un valore; usare "
                "le funzioni su liste, es. A_CONTAINS(missions, ('M2')) o "
                "A_OVERLAPS(missions, ('M1', 'M2'))",
            )
    if isinstance(x, date) or isinstance(y, date):
        return _instant(x), _instant(y)
    if isinstance(x, str) != isinstance(y, str):
        raise _fail(
            f"cannot compare {type(x).__name__} {x!r} with {type(y).__name__} {y!r}",
            it=f"impossibile confrontare {_value_it(x)} con {_value_it(y)}",
        )
    return x, y


def _instant(v: Any) -> datetime:
    """A date, a datetime or an ISO 8601 string as an aware datetime (dates at 00:00 UTC)."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _fail(
                f"cannot compare {v!r} with a date: it is not an ISO 8601 date",
                it=f"impossibile confrontare {quoted(v)} con una data: non è una data ISO 8601",
            ) from None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    raise _fail(
        f"cannot compare {type(v).__name__} {v!r} with a date",
        it=f"impossibile confrontare {_value_it(v)} con una data",
    )


def _truth(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(true, unknown) masks of a condition: SQL's three-valued logic, where a comparison
    with a null is *unknown* — neither it nor its negation selects the row."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            true = np.array([v is True or v is np.True_ for v in value], dtype=bool)
            unknown = np.array([v is None for v in value], dtype=bool)
            return true, unknown
        return value.astype(bool), np.zeros(len(value), dtype=bool)
    if value is None:
        return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    if isinstance(value, bool | np.bool_):
        return np.full(n, bool(value)), np.zeros(n, dtype=bool)
    raise _fail(
        f"the filter is not a condition (it evaluates to {value!r})",
        it=f"il filtro non è una condizione (vale {quoted(value)})",
    )


def _tri(true: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """True/False/None per row from (true, unknown) masks."""
    out = np.empty(len(true), dtype=object)
    out[:] = False
    out[true] = True
    out[unknown & ~true] = None
    return out


def _logical(kind: str) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        n = len(table)
        parts = [_truth(_eval(a, table), n) for a in args]
        if kind == "not":
            true, unknown = parts[0]
            return _tri(~true & ~unknown, unknown)
        trues = np.array([t for t, _ in parts])
        unknowns = np.array([u for _, u in parts])
        if kind == "and":
            false = (~trues & ~unknowns).any(axis=0)
            true = trues.all(axis=0)
            return _tri(true, ~true & ~false)
        true = trues.any(axis=0)
        return _tri(true, ~true & unknowns.any(axis=0))

    return op


def _is_null(args: list[Any], table: Table) -> Any:
    v = _eval(args[0], table)
    if isinstance(v, np.ndarray):
        return np.array([x is None for x in v], dtype=bool)
    return v is None


class LikePattern:
    """A CQL2 LIKE pattern matched in linear time, without a backtracking regex.

    ``%`` is any run of characters, ``_`` one character, ``\\`` escapes the next one.
    The pattern is split on ``%`` into segments of fixed length (literals and ``_``);
    the first must match at the start, the last at the end, and the middle ones are
    found leftmost-first in order, which is exact for LIKE (an earlier match never
    leaves less room for the rest). Each segment is found by ``str.find`` or, when it
    holds ``_``, by a quantifier-free regex (literals and ``.`` only), so no input can
    make the matcher backtrack.
    """

    def __init__(self, pattern: str) -> None:
        segments: list[list[str | None]] = [[]]  # None stands for "_"
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern):
                segments[-1].append(pattern[i + 1])
                i += 2
                continue
            if ch == "%":
                segments.append([])
            else:
                segments[-1].append(None if ch == "_" else ch)
            i += 1
        self.exact = len(segments) == 1
        self.first = self._finder(segments[0])
        self.middle = [self._finder(seg) for seg in segments[1:-1] if seg]
        self.last = self._finder(segments[-1])

    @staticmethod
    def _finder(seg: list[str | None]) -> tuple[int, str | re.Pattern[str]]:
        """(length, literal text or a quantifier-free regex) of one segment."""
        if all(c is not None for c in seg):
            return len(seg), "".join(c for c in seg if c is not None)
        rx = "".join("." if c is None else re.escape(c) for c in seg)
        return len(seg), re.compile(rx, re.DOTALL)

    @staticmethod
    def _at(finder: tuple[int, str | re.Pattern[str]], s: str, pos: int) -> bool:
        """Whether the segment matches ``s`` exactly at ``pos``."""
        size, what = finder
        if isinstance(what, str):
            return s.startswith(what, pos)
        return what.match(s, pos, pos + size) is not None

    def matches(self, s: str) -> bool:
        """Whether the whole of ``s`` matches the pattern."""
        first_len, last_len = self.first[0], self.last[0]
        if self.exact:
            return len(s) == first_len and self._at(self.first, s, 0)
        end = len(s) - last_len
        if end < first_len or not self._at(self.first, s, 0) or not self._at(self.last, s, end):
            return False
        pos = first_len
        for size, what in self.middle:
            if isinstance(what, str):
                found = s.find(what, pos, end)
                if found < 0:
                    return False
                pos = found + size
            else:
                m = what.search(s, pos, end)
                if m is None:
                    return False
                pos = m.end()
        return True


def _like(args: list[Any], table: Table) -> Any:
    value, pattern = (_eval(x, table) for x in args)
    if not isinstance(pattern, str):
        raise _fail("LIKE needs a string pattern", it="LIKE vuole un modello di testo")
    like = LikePattern(pattern)
    return _elementwise(lambda s: like.matches(str(s)), value)


def _between(args: list[Any], table: Table) -> Any:
    value, low, high = (_eval(x, table) for x in args)
    return _elementwise(
        lambda v, lo, hi: _coerce(lo, v)[0] <= _coerce(lo, v)[1] <= _coerce(v, hi)[1],
        value,
        low,
        high,
    )


def _in(args: list[Any], table: Table) -> Any:
    value = _eval(args[0], table)
    options = _eval(args[1], table)
    if not isinstance(options, list):
        raise _fail("IN needs a list of values", it="IN vuole una lista di valori")
    if any(isinstance(o, np.ndarray) for o in options):
        raise _fail("IN accepts literal values only", it="IN accetta solo valori costanti")
    numeric = {float(o) for o in options if isinstance(o, int | float) and not isinstance(o, bool)}
    strings = {o for o in options if isinstance(o, str)}
    instants = {_instant(o) for o in options if isinstance(o, date)}

    def member(v: Any) -> bool:
        if isinstance(v, list | tuple):
            _coerce(v, None)  # a list is not a value: points to the array functions
        if instants and isinstance(v, str | date):
            return _instant(v) in instants
        if isinstance(v, str):
            return v in strings
        if isinstance(v, int | float | np.integer | np.floating):
            return float(v) in numeric
        return v in options

    return _elementwise(member, value)


def fold_case(s: str) -> str:
    """CASEI: case folding."""
    return s.casefold()


def fold_accents(s: str) -> str:
    """ACCENTI: strip diacritics (NFD, drop combining marks)."""
    return "".join(ch for ch in unicodedata.normalize("NFD", s) if not unicodedata.combining(ch))


def _string_function(func: Callable[[str], str]) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        v = _eval(args[0], table)
        return _elementwise(lambda s: func(str(s)), v)

    return op


def _spatial(name: str) -> Callable[[list[Any], Table], Any]:
    predicate = getattr(shapely, name)

    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)
        for v in (a, b):
            ok = isinstance(v, BaseGeometry) or (
                isinstance(v, np.ndarray) and (len(v) == 0 or isinstance(v[0], BaseGeometry))
            )
            if not ok:
                article, _, noun = _KIND_IT.get(type(v).__name__, "il valore").partition(" ")
                got_it = ("una " if article == "la" else "un ") + noun
                raise _fail(
                    f"S_{name.upper()} needs geometries, got {type(v).__name__}",
                    it=f"S_{name.upper()} vuole due geometrie, non {got_it}",
                )
        return np.asarray(predicate(a, b), dtype=bool)

    return op


def _arithmetic(symbol: str, func: Callable[[Any, Any], Any]) -> Callable[[list[Any], Table], Any]:
    """An arithmetic operator; a result that is not a finite real number is a 400."""

    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)

        def calc(x: Any, y: Any) -> Any:
            if isinstance(x, str) or isinstance(y, str):
                raise _fail(
                    "arithmetic needs numbers", it="le operazioni aritmetiche vogliono numeri"
                )
            try:
                result = func(float(x), float(y))
            except ZeroDivisionError:
                return None
            except OverflowError:
                result = math.inf
            if isinstance(result, complex) or not math.isfinite(result):
                raise _fail(
                    f"arithmetic overflow: {x!r} {symbol} {y!r} has no finite real result",
                    it=f"risultato fuori scala: {x!r} {symbol} {y!r} non ha un risultato reale "
                    "finito",
                )
            return result

        return _elementwise(calc, a, b)

    return op


def _array_function(name: str) -> Callable[[list[Any], Table], Any]:
    """A_EQUALS, A_CONTAINS, A_CONTAINEDBY, A_OVERLAPS: both arrays compared as sets (CQL2
    /req/array-functions/array-predicates); a null array is unknown."""
    relation = {
        "a_equals": operator.eq,
        "a_contains": operator.ge,
        "a_containedby": operator.le,
        "a_overlaps": lambda a, b: not a.isdisjoint(b),
    }[name]

    def as_set(v: Any) -> frozenset[Any]:
        if not isinstance(v, list | tuple):
            raise _fail(
                f"{name.upper()} compares arrays; {v!r} is not one (write a list as ('M1', 'M2'))",
                it=f"{name.upper()} confronta liste; {quoted(v)} non lo è (scrivere una lista "
                "così: ('M1', 'M2'))",
            )
        out = set()
        for x in v:
            if isinstance(x, list | tuple | dict):
                raise _fail(
                    f"{name.upper()}: nested arrays are not supported",
                    it=f"{name.upper()}: le liste annidate non sono supportate",
                )
            num = isinstance(x, int | float | np.integer | np.floating)
            out.add(float(x) if num and not isinstance(x, bool) else x)
        return frozenset(out)

    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)
        if isinstance(b, list) and any(isinstance(v, np.ndarray) for v in b):
            raise _fail(
                f"{name.upper()} accepts literal values in its lists only",
                it=f"{name.upper()} accetta solo valori costanti nelle sue liste",
            )
        return _elementwise(lambda x, y: relation(as_set(x), as_set(y)), a, b)

    return op


_MANY = 1 << 30
#: Arguments each operator takes (min, max), checked once when the filter is prepared;
#: every other operator takes two.
_ARITY: dict[str, tuple[int, int]] = {
    "and": (2, _MANY),
    "or": (2, _MANY),
    "not": (1, 1),
    "isnull": (1, 1),
    "casei": (1, 1),
    "accenti": (1, 1),
    "between": (3, 3),
}

_OPERATORS: dict[str, Callable[[list[Any], Table], Any]] = {
    "and": _logical("and"),
    "or": _logical("or"),
    "not": _logical("not"),
    "=": _comparison(operator.eq),
    "<>": _comparison(operator.ne),
    "<": _comparison(operator.lt),
    "<=": _comparison(operator.le),
    ">": _comparison(operator.gt),
    ">=": _comparison(operator.ge),
    "isnull": _is_null,
    "like": _like,
    "between": _between,
    "in": _in,
    **{f: _array_function(f) for f in ("a_equals", "a_contains", "a_containedby", "a_overlaps")},
    "casei": _string_function(fold_case),
    "accenti": _string_function(fold_accents),
    "+": _arithmetic("+", operator.add),
    "-": _arithmetic("-", operator.sub),
    "*": _arithmetic("*", operator.mul),
    "/": _arithmetic("/", operator.truediv),
    "%": _arithmetic("%", operator.mod),
    "div": _arithmetic("div", operator.floordiv),
    "^": _arithmetic("^", operator.pow),
    **{
        f"s_{p}": _spatial(p)
        for p in (
            "intersects",
            "disjoint",
            "within",
            "contains",
            "touches",
            "crosses",
            "overlaps",
            "equals",
        )
    },
}
