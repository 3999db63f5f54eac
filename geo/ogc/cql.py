"""CQL2 filters: parsed by the ``cql2`` package, evaluated column-wise with numpy and shapely.

``parse_filter`` turns CQL2 text or JSON into a :class:`CqlFilter` whose tree is the
CQL2-JSON form, with geometry literals reprojected from ``filter-crs`` to CRS84 shapely
geometries. ``evaluate`` computes a boolean mask over a :class:`Table` (columns of
properties plus a geometry array). Every problem becomes ``InvalidParameter("filter", …)``
saying what is wrong and where.

Conformance classes implemented here are listed in :data:`CQL2_CONFORMANCE`.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cql2
import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import CRS84, parse_crs, transformer
from geo.errors import InvalidParameter

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


def _fail(message: str) -> InvalidParameter:
    return InvalidParameter("filter", message)


def parse_filter(
    value: str | dict[str, Any],
    lang: str | None = None,
    filter_crs: str | None = None,
    queryables: Iterable[str] | None = None,
) -> CqlFilter:
    """Parse CQL2 text or JSON; reproject geometry literals from ``filter_crs`` to CRS84.

    ``lang`` defaults to cql2-text for strings not starting with ``{``. When ``queryables``
    is given, properties outside it are rejected.
    """
    crs = parse_crs(filter_crs, "filter-crs")
    if isinstance(value, dict):
        raw = orjson.dumps(value).decode()
        lang = lang or "cql2-json"
    else:
        raw = value.strip()
        if lang is None:
            lang = "cql2-json" if raw.startswith("{") else "cql2-text"
    if lang not in FILTER_LANGS:
        raise InvalidParameter("filter-lang", f"unsupported {lang!r}; use cql2-text or cql2-json")
    if not raw:
        raise _fail("empty filter")
    try:
        expr = cql2.parse_json(raw) if lang == "cql2-json" else cql2.parse_text(raw)
        tree = expr.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        msg = str(exc).strip()
        raise _fail(f"invalid {lang}: {msg}") from None
    used: set[str] = set()
    tree = _prepare(tree, crs, used)
    if queryables is not None:
        known = set(queryables)
        unknown = sorted(used - known)
        if unknown:
            raise _fail(
                f"unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                + ", ".join(repr(u) for u in unknown)
                + "; queryables: "
                + ", ".join(sorted(known))
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
        raise _fail(f"invalid geometry literal {orjson.dumps(node).decode()[:80]}: {exc}") from None
    if crs != CRS84:
        tx = transformer(crs, CRS84)

        def _f(xy: np.ndarray) -> np.ndarray:
            a, b = tx.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([a, b])

        geom = shapely.transform(geom, _f)
    return geom


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
                raise _fail(
                    f"unsupported {kind}operator {node['op']!r}; supported: "
                    + ", ".join(sorted(_OPERATORS))
                )
            args = [_prepare(a, crs, used) for a in node.get("args", [])]
            return {"op": op, "args": args}
        if "type" in node or "bbox" in node:
            return _literal_geometry(node, crs)
        if any(k in node for k in ("timestamp", "date", "interval")):
            raise _fail("temporal literals are not supported by this service")
        raise _fail(f"unexpected element {orjson.dumps(node).decode()[:80]}")
    if isinstance(node, list):
        return [_prepare(a, crs, used) for a in node]
    return node


# --- evaluation -------------------------------------------------------------------------


def evaluate(flt: CqlFilter, table: Table) -> np.ndarray:
    """Boolean mask (length ``len(table)``) of rows matching ``flt``."""
    result = _eval(flt.tree, table)
    return _as_mask(result, len(table))


def _as_mask(value: Any, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return (
            np.array([v is True or v is np.True_ for v in value], dtype=bool)
            if (value.dtype == object)
            else value.astype(bool)
        )
    if isinstance(value, bool):
        return np.full(n, value)
    raise _fail(f"the filter is not a condition (it evaluates to {value!r})")


def _eval(node: Any, table: Table) -> Any:
    if isinstance(node, dict):
        if "property" in node:
            name = node["property"]
            if name == GEOMETRY_PROPERTY:
                return table.geometry_column()
            try:
                return table.column(name)
            except KeyError:
                raise _fail(f"unknown property {name!r}") from None
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
                "cannot apply the operator to " + ", ".join(type(x).__name__ for x in xs)
            ) from None

    if n is None:
        return call(*values)
    cols = [v if isinstance(v, np.ndarray) else [v] * n for v in values]
    out = np.empty(n, dtype=object)
    out[:] = [call(*row) for row in zip(*cols, strict=True)]
    return out


def _comparison(func: Callable[[Any, Any], bool]) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)
        return _elementwise(lambda x, y: bool(func(*_coerce(x, y))), a, b)

    return op


def _coerce(x: Any, y: Any) -> tuple[Any, Any]:
    """Compare numbers with numbers; anything else must share its type."""
    num = (int, float, np.integer, np.floating)
    if isinstance(x, num) and isinstance(y, num) and not isinstance(x, bool | np.bool_):
        return float(x), float(y)
    if isinstance(x, str) != isinstance(y, str):
        raise _fail(f"cannot compare {type(x).__name__} {x!r} with {type(y).__name__} {y!r}")
    return x, y


def _logical(kind: str) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        n = len(table)
        masks = [_as_mask(_eval(a, table), n) for a in args]
        if kind == "not":
            return ~masks[0]
        return np.logical_and.reduce(masks) if kind == "and" else np.logical_or.reduce(masks)

    return op


def _is_null(args: list[Any], table: Table) -> Any:
    v = _eval(args[0], table)
    if isinstance(v, np.ndarray):
        return np.array([x is None for x in v], dtype=bool)
    return v is None


def _like_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _like(args: list[Any], table: Table) -> Any:
    value, pattern = (_eval(x, table) for x in args)
    if not isinstance(pattern, str):
        raise _fail("LIKE needs a string pattern")
    rx = _like_regex(pattern)
    return _elementwise(lambda s: rx.fullmatch(str(s)) is not None, value)


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
        raise _fail("IN needs a list of values")
    if any(isinstance(o, np.ndarray) for o in options):
        raise _fail("IN accepts literal values only")
    numeric = {float(o) for o in options if isinstance(o, int | float) and not isinstance(o, bool)}
    strings = {o for o in options if isinstance(o, str)}

    def member(v: Any) -> bool:
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
                raise _fail(f"S_{name.upper()} needs geometries, got {type(v).__name__}")
        return np.asarray(predicate(a, b), dtype=bool)

    return op


def _arithmetic(func: Callable[[Any, Any], Any]) -> Callable[[list[Any], Table], Any]:
    def op(args: list[Any], table: Table) -> Any:
        a, b = (_eval(x, table) for x in args)

        def calc(x: Any, y: Any) -> Any:
            if isinstance(x, str) or isinstance(y, str):
                raise _fail("arithmetic needs numbers")
            try:
                return func(float(x), float(y))
            except ZeroDivisionError:
                return None

        return _elementwise(calc, a, b)

    return op


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
    "casei": _string_function(fold_case),
    "accenti": _string_function(fold_accents),
    "+": _arithmetic(operator.add),
    "-": _arithmetic(operator.sub),
    "*": _arithmetic(operator.mul),
    "/": _arithmetic(operator.truediv),
    "%": _arithmetic(operator.mod),
    "div": _arithmetic(operator.floordiv),
    "^": _arithmetic(operator.pow),
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
