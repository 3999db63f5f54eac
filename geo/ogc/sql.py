"""Collections answered by the store: CQL2 translated to SQL, and a provider on top.

Two building blocks, in the spirit of tipg's ``PgCollection`` but for both backends
(SQLite and PostgreSQL + PostGIS):

* :class:`SqlFilter` translates the CQL2-JSON tree that :func:`geo.ogc.cql.parse_filter`
  produces into a SQLAlchemy boolean expression with bound parameters, given a resolver
  from property names to :class:`SqlProperty` (a SQL expression and its *kind*).
  The semantics are exactly those of the in-memory evaluation in :mod:`geo.ogc.cql`:
  SQL's three-valued logic is CQL2's (a comparison with a null is unknown, and ``NOT``
  of unknown is unknown, so ``NOT`` never selects nulls), strings compare by code point,
  numbers as floats, instants as instants, LIKE is case-sensitive with CQL2's ``\\``
  escape, a division by zero is null. A part it cannot express exactly raises
  :class:`Unsupported` internally; :meth:`SqlFilter.compile` then leaves that conjunct of
  the top-level AND to be evaluated in Python (see below). A type error (a text compared
  with a number, a list with a value…) is a 400, as in memory.
* :class:`SqlCollection` is a :class:`~geo.ogc.registry.CollectionProvider` whose every
  query runs in the store: bbox, ``?property=value``, datetime and CQL2 in one WHERE,
  ``numberMatched`` by ``COUNT(*)`` with that WHERE, ``ORDER BY`` sortby then id,
  ``LIMIT``/``OFFSET``, and only the page's rows read and turned into features
  (geometries decoded with shapely's vectorised ``from_wkb``).

What runs in Python, and why (bounded by :attr:`SqlCollection.max_python_rows`):

* conjuncts whose exact semantics SQL lacks: ``%``, ``DIV`` and ``^`` (Python's float
  modulo/floor division/power, and its overflow errors), arithmetic with literals beyond
  1e100 (overflow), LIKE on non-text values (matched against Python's ``str()``),
  comparisons of text with instants (parsed row by row), ``CASEI``/``ACCENTI`` on
  PostgreSQL (Python's ``casefold`` and Unicode decomposition; on SQLite they run inside
  the query as user functions). The other conjuncts still filter in SQL; the candidates
  they leave are evaluated with :mod:`geo.ogc.cql` in chunks. More candidates than the
  bound is a 400 asking to narrow the request.
* on SQLite, exact spatial predicates: the R*Tree (or the bbox columns) selects
  candidates, and a user function runs GEOS (shapely) on the candidates only, inside the
  query, so counting and paging stay in SQL.

A filter sent again with other values (``amount_eur > X``) is not translated again: its
count and page statements are compiled once per *shape* and bound to each request's
literals (:mod:`geo.ogc.sql_shapes`, :meth:`SqlCollection._shaped_page`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np
import orjson
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlalchemy.sql.util import ClauseAdapter

from geo.errors import InvalidParameter, quoted
from geo.ogc.cql import (
    GEOMETRY_PROPERTY,
    CqlFilter,
    evaluate,
    fold_accents,
    fold_case,
)
from geo.ogc.geometry import area_of
from geo.ogc.registry import (
    CollectionProvider,
    FeatureQuery,
    GeojsonPage,
    MemoryTable,
    QueryResult,
    plain_ids,
)
from geo.ogc.sql_shapes import (
    Template,
    covers,
    filter_shape,
    has_property,
    probe_tree,
    slot_directions,
)
from geo.settings import get_settings
from geo.store import (
    PLAN_PER_VALUES,
    REVISIONS_SQL,
    WouldBlock,
    aio,
    get_engine,
    read_connection,
    reading_engine,
    remember_revisions,
    revision,
    store_errors,
)

#: Property kinds a resolver may declare.
KINDS = ("text", "number", "date", "timestamp", "list")


class Unsupported(Exception):
    """The translator cannot express this part exactly in SQL (it is evaluated in Python)."""


#: Kinds of operands as an Italian message names them.
_KIND_IT = {
    "text": "un testo", "number": "un numero", "date": "una data", "timestamp": "un istante",
    "instant": "un istante", "list": "una lista", "array": "una lista", "geometry": "una geometria",
    "bool": "un booleano", "null": "NULL",
}  # fmt: skip


def _fail(message: str, it: str | None = None) -> InvalidParameter:
    return InvalidParameter("filter", message, it=it)


@dataclass(frozen=True)
class SqlProperty:
    """How a property reads in SQL.

    ``kind``: ``text``, ``number`` (compared as floats), ``date`` (ISO ``YYYY-MM-DD`` text),
    ``timestamp`` (a timezone-aware DateTime column, served as ISO text) or ``list``.
    Scalars carry ``expr``; a list carries ``any_in(values)`` (some element is one of
    ``values``) and ``all_in(values)`` (every element is one of them), whatever its storage
    (a JSON array column, or rows of a link table), and the kind of its elements.
    ``nullable``: a list whose ``expr`` may be NULL (then ``IS NULL`` holds and the array
    functions are unknown, as in memory); lists are never null by default.
    """

    name: str
    kind: str
    expr: Any = None
    element: str = "text"
    any_in: Callable[[list[Any]], ColumnElement[bool]] | None = None
    all_in: Callable[[list[Any]], ColumnElement[bool]] | None = None
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown property kind {self.kind!r}")


def json_list(
    name: str, column: Any, dialect: str, element: str = "text", nullable: bool = False
) -> SqlProperty:
    """A list property stored as a JSON array column (``json_each`` / ``json_array_elements``)."""

    def elements() -> Any:
        if dialect == "postgresql":
            tv = sa.func.json_array_elements_text(column).table_valued("value").alias()
            value = tv.c.value
            if element == "number":
                value = sa.cast(value, sa.Float)
        else:
            tv = sa.func.json_each(column).table_valued("value").alias()
            value = tv.c.value
        return tv, value

    def any_in(values: list[Any]) -> ColumnElement[bool]:
        if not values:
            return sa.false()
        tv, value = elements()
        return sa.exists(sa.select(sa.literal(1)).select_from(tv).where(value.in_(values)))

    def all_in(values: list[Any]) -> ColumnElement[bool]:
        tv, value = elements()
        return ~sa.exists(sa.select(sa.literal(1)).select_from(tv).where(value.not_in(values)))

    return SqlProperty(name, "list", column, element, any_in, all_in, nullable)


# --- constants ----------------------------------------------------------------------------

_NO = object()


@dataclass
class _Operand:
    """A translated operand: a SQL expression of a kind, or a Python constant."""

    kind: str  # text number bool instant date timestamp list array geometry null
    sql: Any = None
    value: Any = _NO
    prop: SqlProperty | None = None

    @property
    def const(self) -> bool:
        return self.value is not _NO


def _const(value: Any) -> _Operand:
    if value is None:
        return _Operand("null", value=None)
    if isinstance(value, bool):
        return _Operand("bool", value=value)
    if isinstance(value, int | float):
        return _Operand("number", value=float(value))
    if isinstance(value, str):
        return _Operand("text", value=value)
    if isinstance(value, date):  # datetime too
        return _Operand("instant", value=_instant(value))
    if isinstance(value, BaseGeometry):
        return _Operand("geometry", value=value)
    if isinstance(value, list):
        return _Operand("array", value=value)
    raise _fail(f"unexpected value {value!r}", it=f"valore inatteso {quoted(value)}")


def _instant(v: date) -> datetime:
    """A date or datetime as an aware UTC datetime (dates at 00:00 UTC), as geo.ogc.cql does."""
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    return datetime(v.year, v.month, v.day, tzinfo=UTC)


SQL_TRUE: ColumnElement[bool] = sa.true()
SQL_FALSE: ColumnElement[bool] = sa.false()


def sql_null() -> ColumnElement[bool]:
    """A boolean NULL (unknown)."""
    return sa.cast(sa.null(), sa.Boolean)


def false_unless_null(expr: Any) -> ColumnElement[bool]:
    """FALSE for rows where ``expr`` has a value, unknown where it is null."""
    return sa.case((expr.is_(None), sql_null()), else_=sa.false())


def true_unless_null(expr: Any) -> ColumnElement[bool]:
    """TRUE for rows where ``expr`` has a value, unknown where it is null."""
    return sa.case((expr.is_(None), sql_null()), else_=sa.true())


def _fold_boolean(node: Any) -> ColumnElement[bool]:
    """A condition without properties, evaluated once by geo.ogc.cql (true, false or null)."""
    table = MemoryTable({}, np.array([None], dtype=object))
    if evaluate(CqlFilter(tree=node, text=""), table)[0]:
        return SQL_TRUE
    if evaluate(CqlFilter(tree={"op": "not", "args": [node]}, text=""), table)[0]:
        return SQL_FALSE
    return sql_null()


_ARITH = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
    "%": lambda x, y: x % y,
    "div": lambda x, y: x // y,
    "^": lambda x, y: x**y,
}
#: Literals beyond this make an arithmetic conjunct run in Python (float overflow is a 400
#: there, while SQLite would compute infinities).
_ARITH_MAX = 1e100

_SPATIAL = ("intersects", "disjoint", "within", "contains", "touches", "crosses", "overlaps")
_SPATIAL_ALL = (*_SPATIAL, "equals")

_COMPARE = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_SWAP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


# --- spatial ------------------------------------------------------------------------------


#: Parameters of :meth:`Spatial.box_template`: a rectangle's WKB and its bounds.
BOX_WKB = sa.bindparam("box_wkb", None, type_=sa.LargeBinary)
BOX_BOUNDS = tuple(sa.bindparam(f"box_{n}", None, type_=sa.Float) for n in ("x0", "y0", "x1", "y1"))


def box_parameters(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    """The values of :meth:`Spatial.box_template`'s parameters for a rectangle."""
    x0, y0, x1, y1 = bounds
    return {
        "box_wkb": shapely.to_wkb(shapely.box(x0, y0, x1, y1)),
        "box_x0": x0, "box_y0": y0, "box_x1": x1, "box_y1": y1,
    }  # fmt: skip


class Spatial:
    """The collection's geometry in SQL: bbox selection and CQL2 spatial predicates."""

    def bbox(self, area: BaseGeometry) -> ColumnElement[bool]:
        """Rows whose geometry intersects ``area`` (CRS84)."""
        return self.predicate("intersects", area, literal_first=False)

    def box_template(self) -> ColumnElement[bool]:
        """:meth:`bbox` of a rectangle, its values left as parameters (:func:`box_parameters`):
        the same SQL, built and compiled once instead of per request."""
        raise NotImplementedError

    def predicate(self, name: str, literal: BaseGeometry, literal_first: bool) -> Any:
        """``name(geometry, literal)`` (or ``name(literal, geometry)``), never null."""
        raise NotImplementedError

    def is_null(self) -> ColumnElement[bool]:
        """Rows without geometry."""
        raise NotImplementedError


class PostgisSpatial(Spatial):
    """A PostGIS ``geometry(…, 4326)`` column with a GIST index: ``&&`` then ``ST_*``.

    With the table's stored bbox columns (``bounds``), a row whose box lies inside a
    rectangle is known to intersect it without ``ST_Intersects``, as on SQLite: counting
    the matches of a map's box over the whole metropolitan area (10,001 rows at 100 k
    points) took 190–330 ms with the exact test on each row, 25–45 ms so."""

    def __init__(self, geom: Any, bounds: Sequence[Any] | None = None) -> None:
        self.geom = geom
        self.bounds = tuple(bounds) if bounds is not None else None

    def bbox(self, area: BaseGeometry) -> ColumnElement[bool]:
        if self.bounds is None or area.is_empty or shapely.get_num_coordinates(area) != 5:
            return super().bbox(area)
        x0, y0, x1, y1 = area.bounds
        if not area.equals(shapely.box(x0, y0, x1, y1)):
            return super().bbox(area)
        wkb = sa.literal(shapely.to_wkb(area), sa.LargeBinary)
        return self._test("intersects", wkb, (x0, y0, x1, y1), False, rectangle=True)  # type: ignore[no-any-return]

    def predicate(self, name: str, literal: BaseGeometry, literal_first: bool) -> Any:
        if name == "disjoint":  # DE-9IM: disjoint is exactly "not intersects" (index-backed)
            return ~self.predicate("intersects", literal, literal_first)
        wkb = sa.literal(shapely.to_wkb(literal), sa.LargeBinary)
        return self._test(name, wkb, None if literal.is_empty else literal.bounds, literal_first)

    def _test(
        self, name: str, wkb: Any, bounds: Any, literal_first: bool, rectangle: bool = False
    ) -> Any:
        """``name`` of the geometry and the literal, never null; ``rectangle``: the literal
        is the rectangle ``bounds`` (an intersection test may then take the stored box)."""
        lit = sa.func.ST_GeomFromWKB(wkb, 4326)
        args = (lit, self.geom) if literal_first else (self.geom, lit)
        test = sa.func.coalesce(getattr(sa.func, f"ST_{name.capitalize()}")(*args), sa.false())
        if bounds is None:
            return test
        if rectangle and self.bounds is not None:
            x0, y0, x1, y1 = bounds
            minx, miny, maxx, maxy = self.bounds
            inside = sa.and_(minx >= x0, maxx <= x1, miny >= y0, maxy <= y1)
            test = sa.or_(inside, test)
        envelope = sa.func.ST_MakeEnvelope(*bounds, 4326)
        return sa.and_(self.geom.op("&&")(envelope), test)

    def box_template(self) -> ColumnElement[bool]:
        return self._test("intersects", BOX_WKB, BOX_BOUNDS, False, rectangle=True)  # type: ignore[no-any-return]

    def is_null(self) -> ColumnElement[bool]:
        return self.geom.is_(None)


@functools.lru_cache(maxsize=64)
def _literal_geometry(wkb: bytes) -> BaseGeometry:
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


#: Per thread, the answers ``cmm_spatial`` gave for the literal it was last called with
#: (row WKB → 0/1): a page's count and its rows test the same candidates, each of which
#: cost a parse and a predicate (a quarter of a polygon page's Python time).
_TESTED = threading.local()
_TESTED_KEPT = 4096


def _sqlite_spatial(
    name: str, row_wkb: bytes | None, literal_wkb: bytes, literal_first: int
) -> int:
    """The user function ``cmm_spatial``: a shapely predicate, false for a missing geometry."""
    if row_wkb is None:
        return 0
    test = (name, literal_wkb, literal_first)
    memo: list[Any] | None = getattr(_TESTED, "memo", None)
    if memo is None or memo[0] != test or len(memo[1]) >= _TESTED_KEPT:
        # The literal is parsed and prepared once per statement, not once per row.
        memo = _TESTED.memo = [test, {}, None]
    got = memo[1].get(row_wkb)
    if got is None:
        lit = memo[2]
        if lit is None:
            lit = memo[2] = _literal_geometry(literal_wkb)
        geom = shapely.from_wkb(row_wkb)
        func = getattr(shapely, name)
        got = memo[1][row_wkb] = int(bool(func(lit, geom) if literal_first else func(geom, lit)))
    return got  # type: ignore[no-any-return]


def _sqlite_text(func: Callable[[str], str]) -> Callable[[Any], str | None]:
    def call(value: Any) -> str | None:
        return None if value is None else func(str(value))

    return call


def register_sqlite_functions(conn: Connection) -> None:
    """Install the user functions the SQLite translation calls (cheap; per connection)."""
    install_sqlite_functions(conn.connection.dbapi_connection)


def install_sqlite_functions(raw: Any) -> None:
    """:func:`register_sqlite_functions` on a driver connection (also the event loop's
    reader's, ``geo.store.aio.SQLITE_FUNCTIONS``)."""
    raw.create_function("cmm_spatial", 4, _sqlite_spatial, deterministic=True)
    raw.create_function("cmm_casefold", 1, _sqlite_text(fold_case), deterministic=True)
    raw.create_function("cmm_accentfold", 1, _sqlite_text(fold_accents), deterministic=True)
    raw.create_function("cmm_lower", 1, _sqlite_text(str.lower), deterministic=True)


aio.SQLITE_FUNCTIONS.append(install_sqlite_functions)


def unicode_lower(expr: Any, dialect: str) -> ColumnElement[str]:
    """``expr`` lower-cased as Python's ``str.lower`` does it, in the store: SQLite's own
    ``lower`` and PostgreSQL's under the C locale fold ASCII only ("È" stays), so
    PostgreSQL lowers through ICU and SQLite through a function of ours."""
    if dialect == "postgresql":
        return sa.func.lower(expr.collate("und-x-icu"))
    return sa.func.cmm_lower(expr)


class SqliteRtreeSpatial(Spatial):
    """WKB + exact bbox columns on SQLite, with an R*Tree keyed by the table's rowid.

    The R*Tree (float32 boxes, rounded outwards) selects candidates; the double-precision
    bbox columns make the box test exact; shapely (user function ``cmm_spatial``) decides
    the rest, only for candidates that are neither points nor inside a rectangular area.
    """

    def __init__(
        self,
        table: sa.Table,
        rtree: str,
        wkb: str = "geometry_wkb",
        bounds: tuple[str, str, str, str] = ("minx", "miny", "maxx", "maxy"),
        geometry_type: str | None = "geometry_type",
    ) -> None:
        self.table = table
        self.rtree = sa.table(
            rtree, *(sa.column(c) for c in ("id", "minx", "maxx", "miny", "maxy"))
        )
        self.wkb = table.c[wkb]
        self.bounds = tuple(table.c[b] for b in bounds)
        self.geometry_type = table.c[geometry_type] if geometry_type else None
        self.rowid = sa.literal_column(f"{table.name}.rowid")

    def _candidates(self, x0: Any, y0: Any, x1: Any, y1: Any) -> ColumnElement[bool]:
        r = self.rtree.c
        hits = sa.select(r.id).where(r.maxx >= x0, r.minx <= x1, r.maxy >= y0, r.miny <= y1)
        minx, miny, maxx, maxy = self.bounds
        return sa.and_(
            self.rowid.in_(hits.scalar_subquery()),
            maxx >= x0,
            minx <= x1,
            maxy >= y0,
            miny <= y1,
        )

    def _exact(self, name: str, wkb: Any, literal_first: bool) -> Any:
        return sa.func.cmm_spatial(name, self.wkb, wkb, int(literal_first)) == 1

    def predicate(self, name: str, literal: BaseGeometry, literal_first: bool) -> Any:
        if name == "disjoint":
            return ~self.predicate("intersects", literal, literal_first)
        wkb = sa.literal(shapely.to_wkb(literal), sa.LargeBinary)
        exact = self._exact(name, wkb, literal_first)
        if literal.is_empty:
            return exact
        x0, y0, x1, y1 = literal.bounds
        if name == "intersects" and literal.equals(shapely.box(x0, y0, x1, y1)):
            return self._rectangle((x0, y0, x1, y1), exact)
        return sa.and_(self._candidates(x0, y0, x1, y1), exact)

    def _rectangle(self, bounds: Any, exact: Any) -> Any:
        """A rectangle: a point whose box meets it, a geometry whose box lies inside it, or
        a line or polygon whose box meets it and lies within its width or its height,
        intersects it; the exact test is left for the others (boxes across a corner,
        multi-part geometries).

        Why the third: a line or a polygon (its shell: a valid polygon's holes lie inside
        it) is connected, so its projection on the x axis is its box's whole x range. When
        that range meets the rectangle's and the box's y range lies within the
        rectangle's, some point of the geometry has its x in the rectangle and its y
        within the rectangle's range: it lies in the rectangle. On a 5 km box of
        ~0.6 km polygons this leaves the corners' few candidates to shapely, instead of
        every one across an edge. The type is read from the WKB's first five bytes
        (little-endian, 2D LineString or Polygon: what the service writes)."""
        x0, y0, x1, y1 = bounds
        minx, miny, maxx, maxy = self.bounds
        within_x = sa.and_(minx >= x0, maxx <= x1)
        within_y = sa.and_(miny >= y0, maxy <= y1)
        connected = sa.func.substr(self.wkb, 1, 5).in_(
            [sa.literal_column("x'0102000000'"), sa.literal_column("x'0103000000'")]
        )
        shortcut = [sa.and_(within_x, within_y), sa.and_(sa.or_(within_x, within_y), connected)]
        if self.geometry_type is not None:
            shortcut.insert(0, self.geometry_type == "Point")
        return sa.and_(self._candidates(x0, y0, x1, y1), sa.or_(*shortcut, exact))

    def box_template(self) -> ColumnElement[bool]:
        return self._rectangle(BOX_BOUNDS, self._exact("intersects", BOX_WKB, False))  # type: ignore[no-any-return]

    def is_null(self) -> ColumnElement[bool]:
        return self.wkb.is_(None)


# --- the translator -----------------------------------------------------------------------


class SqlFilter:
    """CQL2 (the tree of :class:`geo.ogc.cql.CqlFilter`) → a SQLAlchemy condition.

    ``properties`` resolves names (aliases included) to :class:`SqlProperty`;
    ``spatial`` handles the geometry; ``dialect`` is ``sqlite`` or ``postgresql``.
    """

    def __init__(
        self, properties: Mapping[str, SqlProperty], spatial: Spatial | None, dialect: str
    ) -> None:
        self.properties = properties
        self.spatial = spatial
        self.dialect = dialect
        self.pg = dialect == "postgresql"

    # -- entry points

    def compile(self, tree: Any) -> tuple[ColumnElement[bool] | None, Any | None]:
        """(the SQL condition, the part left to Python or None).

        The top-level AND is split: every conjunct SQL expresses exactly goes to SQL; the
        others form the residual, evaluated in Python on the rows SQL selected.
        """
        conjuncts = self._conjuncts(tree)
        sql_parts: list[ColumnElement[bool]] = []
        rest: list[Any] = []
        for c in conjuncts:
            try:
                sql_parts.append(self.condition(c))
            except Unsupported:
                rest.append(c)
        where = sa.and_(*sql_parts) if sql_parts else None
        residual = None if not rest else rest[0] if len(rest) == 1 else {"op": "and", "args": rest}
        return where, residual

    @staticmethod
    def _conjuncts(tree: Any) -> list[Any]:
        out, stack = [], [tree]
        while stack:
            n = stack.pop()
            if isinstance(n, dict) and n.get("op") == "and":
                stack.extend(reversed(n["args"]))
            else:
                out.append(n)
        return out

    def condition(self, node: Any) -> ColumnElement[bool]:
        """A boolean node as SQL (raises :class:`Unsupported` or a 400)."""
        if not has_property(node):
            return _fold_boolean(node)
        if not isinstance(node, dict) or "op" not in node:
            raise Unsupported("a value where a condition is expected")
        op, args = node["op"], node["args"]
        if op == "and":
            return sa.and_(*(self.condition(a) for a in args))
        if op == "or":
            return sa.or_(*(self.condition(a) for a in args))
        if op == "not":
            return sa.not_(self.condition(args[0]))
        if op in _COMPARE:
            return self._compare(op, self.operand(args[0]), self.operand(args[1]))
        if op == "isnull":
            return self._is_null(self.operand(args[0]))
        if op == "like":
            return self._like(args)
        if op == "between":
            return self._between(*(self.operand(a) for a in args))
        if op == "in":
            return self._in(args)
        if op.startswith("a_"):
            return self._array(op, args)
        if op.startswith("s_"):
            return self._spatial(op[2:], args)
        # an operand where a condition is expected (e.g. a bare property or arithmetic)
        raise Unsupported(op)

    # -- operands

    def operand(self, node: Any) -> _Operand:
        """A value node: property, literal, arithmetic, CASEI/ACCENTI."""
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            if name == GEOMETRY_PROPERTY:
                return _Operand("geometry")
            prop = self.properties.get(name)
            if prop is None:
                raise _fail(
                    f"unknown property {name!r}", it=f"proprietà sconosciuta {quoted(name)}"
                )
            return _Operand(prop.kind, prop.expr, prop=prop)
        if isinstance(node, dict) and "op" in node:
            op, args = node["op"], node["args"]
            if op in _ARITH:
                return self._arithmetic(op, [self.operand(a) for a in args])
            if op in ("casei", "accenti"):
                return self._fold(op, self.operand(args[0]))
            raise Unsupported(op)  # a condition used as a value
        if isinstance(node, list):
            return _Operand("array", value=[self._literal(v) for v in node])
        return _const(node)

    def _literal(self, node: Any) -> Any:
        """A literal element of a list (constant expressions folded); 400 for properties."""
        if isinstance(node, dict | list) and has_property(node):
            raise _fail(
                "lists may hold literal values only",
                it="le liste possono contenere solo valori costanti",
            )
        v = self.operand(node)
        if not v.const:
            raise Unsupported("non-constant element")
        return v.value

    def _arithmetic(self, op: str, args: list[_Operand]) -> _Operand:
        for a in args:
            if a.kind == "null":
                return _Operand("null", value=None)
            if a.kind in ("text", "date", "timestamp") or (a.kind == "instant" and a.const):
                raise _fail(
                    "arithmetic needs numbers", it="le operazioni aritmetiche vogliono numeri"
                )
            if a.kind in ("list", "array", "geometry", "instant"):
                raise _fail(
                    "cannot apply the operator to " + a.kind,
                    it="l'operatore non si applica a " + _KIND_IT.get(a.kind, a.kind),
                )
            if a.kind == "bool" and not a.const:
                raise Unsupported("boolean arithmetic")
        x, y = args
        if x.const and y.const:
            return _const(self._calc(op, float(x.value), float(y.value)))
        if op in ("%", "div", "^"):
            raise Unsupported(op)  # Python float semantics, see the module docstring
        for a in args:
            if a.const and abs(float(a.value)) > _ARITH_MAX:
                raise Unsupported("overflow-prone literal")

        def sql(a: _Operand) -> Any:
            return sa.literal(float(a.value), sa.Float) if a.const else a.sql

        if op == "/":
            if y.const and float(y.value) == 0.0:
                return _Operand("null", value=None)
            return _Operand("number", sql(x) / sa.func.nullif(sql(y), 0.0))
        expr = {"+": sql(x) + sql(y), "-": sql(x) - sql(y), "*": sql(x) * sql(y)}[op]
        return _Operand("number", expr)

    @staticmethod
    def _calc(op: str, x: float, y: float) -> float | None:
        """Constant arithmetic, as geo.ogc.cql computes it."""
        try:
            result = _ARITH[op](x, y)
        except ZeroDivisionError:
            return None
        except OverflowError:
            result = math.inf
        if isinstance(result, complex) or not math.isfinite(result):
            raise _fail(
                f"arithmetic overflow: {x!r} {op} {y!r} has no finite real result",
                it=f"risultato fuori scala: {x!r} {op} {y!r} non ha un risultato reale finito",
            )
        return result

    def _fold(self, op: str, v: _Operand) -> _Operand:
        func = fold_case if op == "casei" else fold_accents
        if v.const:
            return _const(None if v.value is None else func(str(v.value)))
        if v.kind not in ("text", "date") or self.pg:
            raise Unsupported(op)  # str() of other kinds; PostgreSQL lacks casefold
        name = "cmm_casefold" if op == "casei" else "cmm_accentfold"
        return _Operand("text", getattr(sa.func, name)(v.sql))

    # -- conditions

    def _is_null(self, v: _Operand) -> ColumnElement[bool]:
        if v.kind == "list":
            if v.prop is not None and v.prop.nullable:
                return v.sql.is_(None)
            return SQL_FALSE  # a list is never null (empty at most)
        if v.kind == "geometry":
            if self.spatial is None:
                raise Unsupported("no geometry")
            return self.spatial.is_null()
        return v.sql.is_(None)

    def _text(self, expr: Any) -> Any:
        """Text ordered by code point, as Python compares strings."""
        return expr.collate("C") if self.pg else expr

    def _compare(self, op: str, a: _Operand, b: _Operand) -> ColumnElement[bool]:
        if a.kind == "null" or b.kind == "null":
            return sql_null()
        if a.const and not b.const:
            return self._compare(_SWAP[op], b, a)
        for v in (a, b):
            if v.kind in ("list", "array"):
                raise _fail(
                    "cannot compare a list with a value; use the array functions, "
                    "e.g. A_CONTAINS(missions, ('M2')) or A_OVERLAPS(missions, ('M1', 'M2'))",
                    it="impossibile confrontare una lista con un valore; usare le funzioni sulle "
                    "liste, ad es. A_CONTAINS(missions, ('M2')) o "
                    "A_OVERLAPS(missions, ('M1', 'M2'))",
                )
        ka, kb = a.kind, b.kind
        fn = _COMPARE[op]
        if "bool" in (ka, kb) or "geometry" in (ka, kb):
            raise Unsupported("boolean or geometry comparison")
        if ka == "number" and kb == "number":
            return fn(a.sql, self._value(b, sa.Float))
        if ka == "number" or kb == "number":
            raise _fail(
                f"cannot compare {ka} with {kb}",
                it=f"impossibile confrontare {_KIND_IT.get(ka, ka)} con {_KIND_IT.get(kb, kb)}",
            )
        if kb == "instant":  # b is a constant here
            if ka == "timestamp":
                return fn(a.sql, sa.literal(b.value, sa.DateTime(timezone=True)))
            if ka == "date":
                return self._date_vs_instant(op, a.sql, b.value)
            raise Unsupported("text compared with an instant (parsed row by row)")
        if (ka == "text" and kb == "text") or (ka == "date" and kb in ("text", "date")):
            if op in ("=", "<>"):
                return fn(a.sql, self._value(b, sa.Text))
            return fn(self._text(a.sql), self._value(b, sa.Text))
        if ka == "text" and kb == "date":
            return self._compare(_SWAP[op], b, a)
        raise Unsupported(f"{ka} compared with {kb}")

    @staticmethod
    def _value(v: _Operand, type_: Any) -> Any:
        if v.const:
            return sa.literal(float(v.value) if type_ is sa.Float else v.value, type_)
        return v.sql

    def _date_vs_instant(self, op: str, col: Any, t: datetime) -> ColumnElement[bool]:
        """An ISO date column (its instant is 00:00 UTC) compared with an instant."""
        day = t.date()
        fn = _COMPARE[op]
        if t == datetime(day.year, day.month, day.day, tzinfo=UTC):
            return fn(col, sa.literal(day.isoformat(), sa.Text))
        d = sa.literal(day.isoformat(), sa.Text)  # t lies strictly inside ``day``
        return {
            "<": col <= d,
            "<=": col <= d,
            ">": col > d,
            ">=": col > d,
            "=": false_unless_null(col),
            "<>": true_unless_null(col),
        }[op]

    def _between(self, v: _Operand, lo: _Operand, hi: _Operand) -> ColumnElement[bool]:
        if "null" in (v.kind, lo.kind, hi.kind):
            return sql_null()
        both = sa.and_(self._compare("<=", lo, v), self._compare("<=", v, hi))
        nullable = [o.sql for o in (lo, hi) if not o.const]
        if not nullable:
            return both  # only ``v`` may be null: both sides are unknown together
        # CQL2: unknown when any operand is null (SQL's AND would say false)
        anynull = sa.or_(*(x.is_(None) for x in [v.sql, *nullable] if x is not None))
        return sa.case((anynull, sql_null()), else_=both)

    def _like(self, args: list[Any]) -> ColumnElement[bool]:
        v = self.operand(args[0])
        pattern = self.operand(args[1])
        if not (pattern.const and isinstance(pattern.value, str)):
            raise _fail("LIKE needs a string pattern", it="LIKE vuole un modello di testo")
        if v.kind == "null":
            return sql_null()
        if v.const:
            return _fold_boolean({"op": "like", "args": [v.value, pattern.value]})
        if v.kind not in ("text", "date"):
            raise Unsupported("LIKE on a non-text value")
        tokens = like_tokens(pattern.value)
        if self.pg:
            text = "".join(
                "%" if k == "any" else "_" if k == "one" else ("\\" + c if c in "%_\\" else c)
                for k, c in tokens
            )
            return v.sql.like(sa.literal(text, sa.Text), escape="\\")
        # SQLite's LIKE ignores ASCII case: GLOB is case-sensitive, as CQL2's LIKE is
        glob = "".join(
            "*" if k == "any" else "?" if k == "one" else (f"[{c}]" if c in "*?[" else c)
            for k, c in tokens
        )
        return v.sql.op("GLOB", is_comparison=True)(sa.literal(glob, sa.Text))

    def _in(self, args: list[Any]) -> ColumnElement[bool]:
        v = self.operand(args[0])
        if not isinstance(args[1], list):
            raise _fail("IN needs a list of values", it="IN vuole una lista di valori")
        if any(isinstance(o, dict | list) and has_property(o) for o in args[1]):
            raise _fail("IN accepts literal values only", it="IN accetta solo valori costanti")
        options = [self._literal(o) for o in args[1]]
        if v.kind == "null":
            return sql_null()
        if v.kind in ("list", "array"):
            raise _fail(
                "cannot compare a list with a value; use the array functions",
                it="impossibile confrontare una lista con un valore; usare le funzioni sulle liste",
            )
        if v.kind in ("geometry", "bool"):
            raise Unsupported("IN on geometries or booleans")
        instants = sorted({_instant(o) for o in options if isinstance(o, date)})
        strings = sorted({o for o in options if isinstance(o, str)})
        numbers = sorted(
            {float(o) for o in options if isinstance(o, int | float) and not isinstance(o, bool)}
        )
        col = v.sql
        if v.kind == "number":
            return col.in_(numbers) if numbers else false_unless_null(col)
        if instants:
            if v.kind == "timestamp":
                return col.in_([sa.literal(t, sa.DateTime(timezone=True)) for t in instants])
            if v.kind == "date":
                days = [
                    t.date().isoformat()
                    for t in instants
                    if t == datetime(t.year, t.month, t.day, tzinfo=UTC)
                ]
                return col.in_(days) if days else false_unless_null(col)
            raise Unsupported("text IN instants (parsed row by row)")
        if v.kind == "timestamp":
            raise Unsupported("timestamp IN strings (compared as ISO text)")
        return col.in_(strings) if strings else false_unless_null(col)

    def _array(self, op: str, args: list[Any]) -> ColumnElement[bool]:
        result, prop = self._array_of(op, args)
        if prop is not None and prop.nullable:  # a null array is unknown
            return sa.case((prop.expr.is_(None), sql_null()), else_=result)
        return result

    def _array_of(self, op: str, args: list[Any]) -> tuple[ColumnElement[bool], SqlProperty | None]:
        if op not in ("a_equals", "a_contains", "a_containedby", "a_overlaps"):
            raise Unsupported(op)
        a, b = (self.operand(x) for x in args)
        for v in (a, b):
            if v.kind == "null":
                return sql_null(), None
            if v.kind not in ("list", "array"):
                raise _fail(
                    f"{op.upper()} compares arrays; {v.kind} is not one",
                    it=f"{op.upper()} confronta liste; {_KIND_IT.get(v.kind, v.kind)} non lo è",
                )
        if a.kind == "array" and b.kind == "list":
            flip = {"a_contains": "a_containedby", "a_containedby": "a_contains"}
            a, b, op = b, a, flip.get(op, op)
        if b.kind != "array" or a.prop is None:
            raise Unsupported("array function between two properties")
        prop = a.prop
        lits = b.value
        for x in lits:
            if isinstance(x, list | tuple | dict):
                raise _fail(
                    f"{op.upper()}: nested arrays are not supported",
                    it=f"{op.upper()}: le liste annidate non sono supportate",
                )
            if isinstance(x, bool):
                raise Unsupported("boolean array element")
        if prop.element == "number":
            fits = [float(x) for x in lits if isinstance(x, int | float)]
        else:
            fits = [x for x in lits if isinstance(x, str)]
        fits = sorted(set(fits))
        kinds = (int, float) if prop.element == "number" else (str,)
        misfit = any(not isinstance(x, kinds) for x in lits)
        any_in, all_in = prop.any_in, prop.all_in
        assert any_in is not None and all_in is not None

        def contains() -> ColumnElement[bool]:
            if misfit:
                return SQL_FALSE  # an element of another type is in no list of this one
            return sa.and_(SQL_TRUE, *(any_in([x]) for x in fits))

        if op == "a_contains":
            return contains(), prop
        if op == "a_overlaps":
            return (any_in(fits) if fits else SQL_FALSE), prop
        if op == "a_containedby":
            return all_in(fits), prop
        return sa.and_(all_in(fits), contains()), prop  # a_equals

    def _spatial(self, name: str, args: list[Any]) -> ColumnElement[bool]:
        if name not in _SPATIAL_ALL:
            raise Unsupported(name)
        a, b = (self.operand(x) for x in args)
        for v in (a, b):
            if v.kind != "geometry":
                raise _fail(
                    f"S_{name.upper()} needs geometries, got {v.kind}",
                    it=f"S_{name.upper()} vuole geometrie, non {_KIND_IT.get(v.kind, v.kind)}",
                )
        if self.spatial is None or (not a.const and not b.const):
            raise Unsupported("spatial predicate between two properties")
        literal_first = a.const
        literal = a.value if a.const else b.value
        return self.spatial.predicate(name, literal, literal_first)


# --- GeoJSON encoded by PostgreSQL ----------------------------------------------------------
#
# The texts below are what orjson writes for the same values (compact, floats with a decimal
# point, null for a missing or non-finite number), so a page encoded by PostgreSQL reads as
# the one Python encodes: same keys in the same order, same values.


def pg_json_text(expr: Any) -> ColumnElement[str]:
    """A text/varchar value as a JSON string (``null`` when NULL)."""
    return sa.func.coalesce(sa.cast(sa.func.to_json(expr), sa.Text), "null")


_NON_FINITE = [sa.literal_column(f"'{v}'::float8") for v in ("NaN", "Infinity", "-Infinity")]


def pg_json_number(expr: Any) -> ColumnElement[str]:
    """A float as orjson writes it: ``1000000.0``, ``0.5``, ``null`` for NULL/NaN/±inf."""
    as_text = sa.cast(sa.func.to_json(expr), sa.Text)
    return sa.case(
        (sa.or_(expr.is_(None), expr.in_(_NON_FINITE)), "null"),
        (sa.and_(expr == sa.func.trunc(expr), sa.func.abs(expr) < 1e16), as_text + ".0"),
        else_=as_text,
    )


def pg_json_raw(expr: Any) -> ColumnElement[str]:
    """A JSON column's stored text as it is (the store writes it with orjson)."""
    return sa.func.coalesce(sa.cast(expr, sa.Text), "null")


def pg_json_timestamp(expr: Any) -> ColumnElement[str]:
    """A timestamptz as Python's ``isoformat`` in UTC with ``Z`` (microseconds only when
    there are some), quoted; ``null`` when NULL."""
    utc = sa.func.timezone("UTC", expr)
    micro = sa.cast(sa.func.extract("microseconds", expr), sa.BigInteger) % 1_000_000
    text = (
        sa.literal('"')
        + sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS')
        + sa.case((micro != 0, sa.func.to_char(utc, ".US")), else_="")
        + 'Z"'
    )
    return sa.func.coalesce(text, "null")


def pg_geojson_geometry(
    geom: Any, geometry_type: str | None, stored: Any = None
) -> ColumnElement[str]:
    """``ST_AsGeoJSON`` at the output precision (6 decimals), promoted to the collection's
    Multi* type as :func:`geo.ogc.geometry.promote_to_multi` does; ``null`` when NULL.

    With ``stored`` (the row's ``geometry_json``, written with it: migration 0010) that text
    is sent where it is not NULL — promoted on the text as :func:`geo.ogc.encode.promote_text`
    does — and PostGIS encodes only the rows written before it: on a page of polygons its
    validity check and encoding were three quarters of the database's time."""
    from geo.ogc.encode import DECIMALS_DEGREES, SINGLE_HEADS

    multi = geometry_type in ("MultiPoint", "MultiLineString", "MultiPolygon")

    def promoted(g: Any) -> Any:
        """Only the single form of the Multi* type is promoted (as ``promote`` does)."""
        if not multi:
            return g
        single = sa.func.ST_GeometryType(g) == "ST_" + str(geometry_type)[5:]
        return sa.case((single, sa.func.ST_Multi(g)), else_=g)

    text = sa.func.ST_AsGeoJSON(promoted(geom), DECIMALS_DEGREES)
    if geometry_type not in ("Point", "MultiPoint"):
        # As geo.ogc.geometry.round_valid: what rounding would make invalid is snapped to
        # the same grid by GEOS (ST_ReducePrecision), valid by construction.
        grid = 10.0**-DECIMALS_DEGREES
        snapped = sa.func.ST_ReducePrecision(geom, grid)
        fixed = sa.func.ST_AsGeoJSON(promoted(snapped), DECIMALS_DEGREES)
        text = sa.case((sa.func.ST_IsValid(sa.func.ST_SnapToGrid(geom, grid)), text), else_=fixed)
    if stored is not None:
        kept: Any = stored
        head = SINGLE_HEADS.get(geometry_type or "")
        if head is not None:  # '{"type":"Polygon","coordinates":C}' → MultiPolygon, [C]
            n = len(head)
            body = sa.func.substr(stored, n + 1, sa.func.length(stored) - n - 1)
            whole = sa.literal('{"type":"' + str(geometry_type) + '","coordinates":[', sa.Text)
            end = sa.literal("]}", sa.Text)
            kept = sa.case(
                (sa.func.left(stored, n) == head, pg_concat([whole, body, end])), else_=stored
            )
        text = sa.func.coalesce(kept, text)  # PostgreSQL evaluates no argument past the first
    return sa.func.coalesce(text, "null")


def pg_concat(parts: Sequence[Any]) -> ColumnElement[str]:
    """``concat`` of any number of texts (a function takes at most 100 arguments)."""
    parts = list(parts)
    while len(parts) > 90:
        parts = [sa.func.concat(*parts[i : i + 90]) for i in range(0, len(parts), 90)]
    return sa.func.concat(*parts)


def pg_json_object(pairs: Sequence[tuple[str, Any]]) -> ColumnElement[str]:
    """``{"k":v,…}`` from (key, JSON text) pairs, keys bound as parameters."""
    parts: list[Any] = []
    for i, (key, value) in enumerate(pairs):
        head = ("{" if i == 0 else ",") + orjson.dumps(key).decode() + ":"
        parts += [sa.literal(head, sa.Text), value]
    if not parts:
        return sa.literal("{}", sa.Text)
    parts.append(sa.literal("}", sa.Text))
    return pg_concat(parts)


def pg_feature(
    id_text: Any, geometry: Any, properties: Sequence[tuple[str, Any]] | ColumnElement[str]
) -> ColumnElement[str]:
    """A GeoJSON Feature's text: ``{"type":"Feature","id":…,"geometry":…,"properties":…}``;
    ``properties`` as (key, JSON text) pairs, or one JSON object's text."""
    if not isinstance(properties, ColumnElement):
        properties = pg_json_object(properties)
    return pg_concat(
        [
            sa.literal('{"type":"Feature","id":', sa.Text),
            pg_json_text(id_text),
            sa.literal(',"geometry":', sa.Text),
            geometry,
            sa.literal(',"properties":', sa.Text),
            properties,
            sa.literal("}", sa.Text),
        ]
    )


def pg_rendered(expr: Any, engine: Engine) -> ColumnElement[Any]:
    """``expr`` compiled once into SQL text (its parameters inlined as literals).

    For a big constant expression (a Feature's JSON, dozens of keys): executing it as an
    expression costs SQLAlchemy a cache-key walk and psycopg a parse of every bound key on
    each request; as text it is one short cache key and the statement keeps few parameters.
    """
    return rendered(expr, engine.dialect.name)


def rendered(expr: Any, dialect_name: str) -> ColumnElement[Any]:
    """``expr`` compiled once into SQL text for ``dialect_name`` (see :func:`pg_rendered`)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        # Rendered without paramstyle escaping ("named"): the statement that embeds the
        # text escapes its percent signs for the driver itself.
        dialect: Any = postgresql.dialect(paramstyle="named")
    else:
        from sqlalchemy.dialects import sqlite

        dialect = sqlite.dialect()
    text = expr.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return sa.literal_column(str(text))


#: Formats a column's raw value into members of the properties' JSON (``"k":v,…``), or
#: None for none.
Formatter = Callable[[Any], "str | None"]

#: A property of a SQLite-rendered feature: (key, SQL value, how it goes in) — ``"value"``:
#: a scalar SQLite writes (text, integer, NULL), ``"json"``: JSON text embedded as it is,
#: ``"float"``: a float Python writes (SQLite's printf is not exact beyond 15 digits, and
#: orjson is the service's encoder), or a :data:`Formatter` of the value (its key unused:
#: it writes its members itself).
SqliteMember = tuple[str, Any, "str | Formatter"]


def float_member(key: str) -> Formatter:
    """The formatter of a float property, as orjson writes it."""
    head = orjson.dumps(key).decode() + ":"
    dumps = orjson.dumps

    def member(value: Any) -> str:
        return head + dumps(value).decode()

    return member


@dataclass(frozen=True)
class SqliteGeojson:
    """How a SQLite page is encoded: SQLite builds the properties' JSON (``json_object``:
    strings escaped, lists joined, in C) and Python adds the floats, what it formats
    itself and the geometries (vectorised, as :meth:`geo.ogc.service.OgcService._features`
    would).

    ``select`` gives the feature id as text, then one column per entry of ``members``, then
    the WKB when ``geometry``. A member is None for a JSON object's text whose members go
    in as they are, or the :data:`Formatter` of the column's value. With ``stored``, the
    geometry is two columns: the stored GeoJSON text (``geometry_json``, see migration
    0010), and the WKB only where that is NULL (decoded as before).
    """

    select: sa.Select[Any]
    members: tuple[Formatter | None, ...]
    geometry: bool
    geometry_type: str | None
    stored: bool = False
    #: Column 1 is the properties' text kept with the row (``{…}``, written with it) or
    #: NULL; the members' columns follow, NULL where the text is kept (see sqlite_geojson).
    kept: bool = False
    #: The spec this one slims (:attr:`slim`): it selects no member's column, so it cannot
    #: render a row whose text is not kept (:meth:`renders`).
    full: SqliteGeojson | None = None

    @functools.cached_property
    def slim(self) -> SqliteGeojson:
        """This spec without the members' columns, when the properties' text is kept:
        each of them costs SQLite a CASE and the driver a value per row even where NULL
        (a CQL2 page of 100 interventions: 157 → 100 µs of SQLite). Rows whose text is not
        kept (written by another program, before this store kept texts) need the full one.
        """
        if not self.kept or not self.members:
            return self
        columns = list(self.select.selected_columns)
        first = 2 + len(self.members)
        froms = self.select.get_final_froms()
        select = sa.select(*columns[:2], *columns[first:]).select_from(*froms)
        return dataclasses.replace(self, select=select, members=(), full=self)

    def renders(self, rows: Sequence[Any]) -> bool:
        """Whether this spec can render ``rows``: a slim one, only rows that keep texts."""
        return self.full is None or None not in map(_SECOND, rows)

    def render(self, rows: Sequence[Any]) -> list[tuple[str, str]]:
        """(id, Feature text) per row, the bytes the Python path writes."""
        first = 2 if self.kept else 1
        n = len(self.members)
        geoms: list[str | None] = [None] * len(rows)
        if self.geometry and rows:
            geoms = self._geometries(rows, first + n)
        dumps = orjson.dumps
        out = []
        for r, g in zip(rows, geoms, strict=True):
            kept = r[1] if self.kept else None
            body = kept[1:-1] if kept is not None else self._members(r[first : first + n])
            fid = r[0]
            out.append(
                (
                    fid,
                    '{"type":"Feature","id":' + dumps(fid).decode() + ',"geometry":'
                    + (g if g is not None else "null") + ',"properties":{' + body + "}}",
                )
            )  # fmt: skip
        return out

    def json_array(self, rows: Sequence[Any], head: str) -> str:
        """:meth:`GeojsonPage.json_array` of ``rows``, written in one pass: each Feature's
        pieces (the kept properties' and the geometry's texts as they are) joined once
        with the other features', not a text per feature joined again with its link (a
        CQL2 page of 100 interventions: ~95 → ~25 µs)."""
        if not rows:
            return "[]"
        if not plain_ids("".join([r[0] for r in rows])):
            return GeojsonPage(self.render(rows), None).json_array(head)
        first = 2 if self.kept else 1
        n = len(self.members)
        geoms: list[str | None] = [None] * len(rows)
        if self.geometry:
            geoms = self._geometries(rows, first + n)
        parts: list[str] = []
        add = parts.extend
        sep, end = '[{"type":"Feature","id":"', '"}]}'
        for r, g in zip(rows, geoms, strict=True):
            kept = r[1] if self.kept else None
            props = kept if kept is not None else "{" + self._members(r[first : first + n]) + "}"
            fid = r[0]
            add((sep, fid, '","geometry":', g or "null", ',"properties":', props, head, fid, end))
            sep = ',{"type":"Feature","id":"'
        parts.append("]")
        return "".join(parts)

    def text_size(self, rows: Sequence[Any]) -> int:
        """About how many characters ``rows`` become, without writing them: their kept
        properties' texts and their geometries' (texts and WKB); the members' values, each
        a scalar, left out (a page too big for the event loop is one of big shapes)."""
        if not rows:
            return 0
        first = 2 if self.kept else 1
        big = ([1] if self.kept else []) + list(range(first + len(self.members), len(rows[0])))
        return sum([sum(map(len, filter(None, map(itemgetter(k), rows)))) for k in big])

    def properties_texts(self, rows: Sequence[Any]) -> list[tuple[str, str]]:
        """(id, the properties' JSON text) per row of a select without ``kept``: what a
        row keeps to be sent as it is."""
        n = len(self.members)
        return [(r[0], "{" + self._members(r[1 : n + 1]) + "}") for r in rows]

    def _members(self, values: Sequence[Any]) -> str:
        """The members of a properties object (without braces) from the members' columns."""
        parts = []
        for m, v in zip(self.members, values, strict=True):
            if m is None:
                if len(v) > 2:
                    parts.append(v[1:-1])
            else:
                text = m(v)
                if text:
                    parts.append(text)
        return ",".join(parts)

    def _geometries(self, rows: Sequence[Any], wkb: int) -> list[str | None]:
        """The GeoJSON texts of the rows' geometries (columns from ``wkb``): stored texts
        promoted as the collection asks, the others decoded from WKB, vectorised."""
        from geo.ogc.encode import geometry_texts, promote_texts
        from geo.ogc.geometry import promote_to_multi

        kind = self.geometry_type
        out: list[str | None] = [None] * len(rows)
        if self.stored:
            out = promote_texts([r[wkb] for r in rows], kind)
            wkb += 1
        todo = [k for k, text in enumerate(out) if text is None]
        if todo:
            decoded, _ = promote_to_multi(
                list(shapely.from_wkb([rows[k][wkb] for k in todo])), kind
            )
            for k, text in zip(todo, geometry_texts(decoded), strict=True):
                out[k] = text
        return out


_SECOND = itemgetter(1)


class RowsPage(GeojsonPage):
    """A SQLite page kept as its rows, written by its spec when asked: a response's array
    in one pass (:meth:`SqliteGeojson.json_array`), each feature's own text only for code
    that asks for it (:attr:`features`)."""

    def __init__(self, spec: SqliteGeojson, rows: Sequence[Any], number_matched: int | None):
        self.spec = spec
        self.rows = rows
        self.number_matched = number_matched

    @functools.cached_property
    def features(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return self.spec.render(self.rows)

    @property
    def returned(self) -> int:
        return len(self.rows)

    def json_array(self, head: str) -> str:
        return self.spec.json_array(self.rows, head)


def sqlite_geojson(
    table: Any,
    id_text: Any,
    members: Sequence[SqliteMember],
    geometry: Any | None,
    geometry_type: str | None,
    stored: Any | None = None,
    kept: Any | None = None,
) -> SqliteGeojson:
    """The :class:`SqliteGeojson` of ``members`` (in order) over ``table``; ``geometry``:
    the WKB column, or None to send ``"geometry":null``; ``stored``: the column of the
    geometries' stored GeoJSON texts, used when the collection has one geometry type;
    ``kept``: the column of the properties' texts kept with the rows (the members are then
    evaluated only where it is NULL: SQLite evaluates a CASE lazily)."""
    columns: list[Any] = [id_text]
    kinds: list[Formatter | None] = []
    run: list[Any] = []

    def close_run() -> None:
        if run:
            columns.append(rendered(sa.func.json_object(*run), "sqlite"))
            kinds.append(None)
            run.clear()

    for key, value, how in members:
        if how not in ("value", "json"):
            close_run()
            columns.append(value)
            kinds.append(float_member(key) if how == "float" else how)  # type: ignore[arg-type]
            continue
        if len(run) >= 100:  # SQLite functions take at most 127 arguments
            close_run()
        run += [sa.literal(key, sa.Text), sa.func.json(value) if how == "json" else value]
    close_run()
    if kept is not None:  # the kept text second, each member's column under a CASE on it
        lazy = [sa.case((kept.is_(None), c), else_=sa.null()) for c in columns[1:]]
        columns = [columns[0], kept, *lazy]
    spec = sqlite_spec(table, columns, tuple(kinds), geometry, geometry_type, stored)
    return dataclasses.replace(spec, kept=kept is not None)


def sqlite_spec(
    table: Any,
    columns: list[Any],
    members: tuple[Formatter | None, ...],
    geometry: Any | None,
    geometry_type: str | None,
    stored: Any | None,
) -> SqliteGeojson:
    """The :class:`SqliteGeojson` selecting ``columns`` from ``table``, then the geometry's:
    none, the WKB, or (with a stored text and one geometry type: a page of mixed types
    promotes by what it holds) the text and the WKB only where the text is NULL."""
    use = geometry is not None and stored is not None and geometry_type is not None
    if use:
        columns = [*columns, stored, sa.case((stored.is_(None), geometry), else_=sa.null())]
    elif geometry is not None:
        columns = [*columns, geometry]
    stmt = sa.select(*columns).select_from(table)
    return SqliteGeojson(stmt, members, geometry is not None, geometry_type, use)


def sqlite_json_timestamp(expr: Any) -> ColumnElement[str]:
    """A stored timestamp (SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as Python's
    ``isoformat`` with ``Z``: microseconds only when there are some."""
    whole = sa.func.substr(expr, 1, 19)
    fraction = sa.func.substr(expr, 20)
    text = sa.func.replace(sa.case((fraction.in_(["", ".000000"]), whole), else_=expr), " ", "T")
    return text + "Z"


def selected(names: Sequence[str], properties: list[str] | None) -> list[str]:
    """The properties a ``properties=`` parameter keeps, in its order, each once."""
    if properties is None:
        return list(names)
    known = set(names)
    return [k for k in dict.fromkeys(properties) if k in known]


def like_tokens(pattern: str) -> list[tuple[str, str]]:
    """CQL2 LIKE pattern → [(kind, char)]: ``any`` (%), ``one`` (_), ``lit`` (``\\`` escapes,
    a trailing lone ``\\`` is itself), as :class:`geo.ogc.cql.LikePattern` reads it."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(("lit", pattern[i + 1]))
            i += 2
            continue
        out.append(("any", ch) if ch == "%" else ("one", ch) if ch == "_" else ("lit", ch))
        i += 1
    return out


# --- the provider -------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A statement compiled once into the driver's SQL, run with the values of its named
    parameters: a hot request (a map's bbox) skips building the SQLAlchemy expression,
    its cache key and its compilation, and the driver sees one stable text (psycopg
    prepares it server-side after a few runs)."""

    sql: str
    #: Parameter names in order, for a positional driver (SQLite); None: by name (psycopg).
    order: tuple[str, ...] | None
    fixed: dict[str, Any]

    @classmethod
    def of(cls, stmt: Any, engine: Engine) -> Prepared:
        compiled = stmt.compile(dialect=engine.dialect)
        order = tuple(compiled.positiontup) if compiled.positional else None
        return cls(str(compiled), order, dict(compiled.construct_params()))

    def arguments(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values`` (and the fixed ones): by position or name."""
        params = {**self.fixed, **values}
        return tuple(params[n] for n in self.order) if self.order is not None else params

    def run(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        return conn.exec_driver_sql(self.sql, self.arguments(values))


#: Statements :func:`driver_sql` compiled, by SQLAlchemy's cache key (its structure, not
#: its values): a page's select of GeoJSON takes ~0.2 ms to compile, a lookup ~20 µs.
_LOOP_COMPILED: Any = sa.util.LRUCache(512)


def driver_sql(stmt: Any, engine: Engine) -> tuple[str, dict[str, Any]] | None:
    """``stmt`` as psycopg takes it — the SQL with its named parameters, bound as
    SQLAlchemy's execution binds them (``DefaultExecutionContext._init_compiled``: from
    its compiled cache, lists of ``IN`` expanded, values through their types' processors,
    escaped names) — for a read on the event loop (``geo.store.aio``). None when this
    dialect passes parameters by position."""
    dialect = engine.dialect
    try:  # SQLAlchemy's own cached compilation, as Connection.execute does it
        compiled, extracted, *rest = stmt._compile_w_cache(
            dialect, compiled_cache=_LOOP_COMPILED, column_keys=[]
        )
        collected = {"_collected_params": rest[0]} if len(rest) == 2 and rest[0] else {}
        params = compiled.construct_params(
            extracted_parameters=extracted, escape_names=False, **collected
        )
    except (TypeError, ValueError, AttributeError):  # another SQLAlchemy: compiled each time
        compiled = stmt.compile(dialect=dialect)
        params = compiled.construct_params(escape_names=False)
    if compiled.positional:
        return None
    sql, processors = compiled.string, dict(compiled._bind_processors)
    if compiled.literal_execute_params or compiled.post_compile_params:
        expanded = compiled._process_parameters_for_postcompile(params)
        sql, params = expanded.statement, expanded.parameters
        processors.update(expanded.processors)
    names = compiled.escaped_bind_names or {}
    return sql, {
        names.get(k, k): (processors[k](v) if k in processors else v) for k, v in params.items()
    }


#: Features :meth:`SqlCollection.prefetch_by_id` read for the current request:
#: (id of the collection, primary key) → its text (None: no such feature), and
#: (id of the collection, ("page", the query)) → its GeojsonPage (``prefetch_page``).
_PREFETCHED: ContextVar[dict[tuple[int, Any], Any] | None] = ContextVar(
    "cmm_geo_prefetched", default=None
)


def _read_ahead(key: tuple[int, Any], value: Any) -> None:
    """Keep ``value`` as what the current request reads under ``key`` (see _PREFETCHED)."""
    ahead = _PREFETCHED.get()
    if ahead is None:
        ahead = {}
        _PREFETCHED.set(ahead)
    ahead[key] = value


#: Bigger features are not finished on the event loop (their ETag parses and hashes them).
LOOP_TEXT_LIMIT = 64 * 1024


class _Lru:
    """A small thread-safe LRU map (counts, extents and samples per data revision)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return _NO

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def built(self, key: Any, build: Callable[[], Any]) -> Any:
        """The value of ``key``, built (outside the lock) and kept when missing."""
        got = self.get(key)
        if got is _NO:
            got = build()
            self.put(key, got)
        return got


class SqlCollection(CollectionProvider):
    """A collection whose every query runs in the store (no copy of the table in memory).

    Subclasses set ``table`` (SQLAlchemy Table with an ``id`` primary key, WKB geometry
    and ``minx/miny/maxx/maxy`` bbox columns), ``topic`` (the store revision counter that
    writes bump), ``rtree`` (SQLite R*Tree keyed by rowid) and implement
    :meth:`sql_properties` and :meth:`build_features`.

    ``numberMatched`` stays cheap because it is ``SELECT count(*)`` with the page's own
    WHERE, which the indexes serve (GIST / R*Tree for bbox and spatial predicates, b-trees
    on the filtered columns and the link table), and because counts are memoised per data
    revision: the unfiltered count and the recent filtered ones cost one query per write,
    not one per request (an LRU of :attr:`count_cache_size` entries).
    """

    table: sa.Table
    topic: str
    id_column = "id"
    wkb_column = "geometry_wkb"
    bounds_columns = ("minx", "miny", "maxx", "maxy")
    geometry_type_column: str | None = "geometry_type"
    #: SQLite R*Tree virtual table keyed by the table's rowid (migration helpers).
    rtree: str | None = None
    #: Most candidate rows a filter part evaluated in Python may leave (400 beyond).
    max_python_rows = 100_000
    #: Candidate rows read at a time when a filter part is evaluated in Python.
    python_chunk = 5_000
    #: Rows read to describe property values (schemas): a bounded sample.
    property_sample_size = 1_000
    count_cache_size = 512
    #: Statements of filters kept by their shape (:mod:`geo.ogc.sql_shapes`).
    shape_cache_size = 256

    #: Scalar properties carried in vector tiles (``geo.ogc.tiles``), besides ``id``; both
    #: tile paths (PostGIS ``ST_AsMVT`` and the Python encoder) carry exactly these.
    tile_properties: tuple[str, ...] = ()
    #: Stored EPSG:3857 geometry columns the PostGIS tiles are cut from, as (highest zoom,
    #: column), the first that covers a tile's zoom wins; none: ``geom``, reprojected per
    #: request (migration 0008 adds them to the interventions and the layers).
    tile_geometries: tuple[tuple[int, str], ...] = ()
    #: Stored columns of the polygons already cut for a whole zoom level, by zoom, in
    #: units of tiles of ``tile_pixels_extent`` (migration 0012): a tile translates the
    #: features that lie inside it and its buffer and cuts only those that cross its edge.
    tile_pixels: ClassVar[Mapping[int, str]] = {}
    tile_pixels_extent = 4096

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine
        self._counts = _Lru(self.count_cache_size)
        self._cache = _Lru(32)
        self._shapes = _Lru(self.shape_cache_size)
        self._capped = _Lru(self.shape_cache_size)

    def tile_column(self, name: str, prop: SqlProperty) -> Any:
        """The PostgreSQL expression of a tile property (timestamps as ISO text, numbers as
        doubles); a subclass may type one differently (e.g. booleans)."""
        if prop.kind == "timestamp":
            return sa.func.to_char(sa.func.timezone("UTC", prop.expr), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        if prop.kind == "number":
            return sa.cast(prop.expr, sa.Float)
        return prop.expr

    def postgis_tile(
        self, z: int, col: int, row: int, *, extent: int, buffer: int, limit: int
    ) -> bytes | None:
        """The Mapbox Vector Tile ``z/row/col`` (WebMercatorQuad) encoded by PostGIS, or None
        when empty: ``ST_AsMVTGeom`` clips and quantises, ``ST_AsMVT`` encodes, the GIST index
        on ``geom`` selects. Only on PostgreSQL (NotImplementedError elsewhere)."""
        engine = self.engine()
        if engine.dialect.name != "postgresql":
            raise NotImplementedError("PostGIS tiles need PostgreSQL")
        key = (id(self), ("tile", z, col, row, extent, buffer, limit))
        ahead = _PREFETCHED.get()
        if ahead is not None and key in ahead:
            return ahead[key]  # type: ignore[no-any-return]
        prepared = self._tile_prepared(engine, z, extent, buffer, limit)
        assert prepared is not None

        with store_errors(), read_connection(engine) as conn:
            body = prepared.run(conn, {"tz": z, "tx": col, "ty": row}).scalar()
        return bytes(body) if body else None

    async def prefetch_tile(
        self, z: int, col: int, row: int, *, extent: int, buffer: int, limit: int
    ) -> bool:
        """On the event loop (PostgreSQL): the store's revisions and the tile of
        :meth:`postgis_tile`, in one round trip (``geo.store.aio``), kept for the rest of
        the request, which then reads nothing in a thread (a tile is the database's work:
        the thread hop and the second round trip were a third of a cheap tile's time).
        False when this cannot be done here (SQLite, the statement not yet compiled by a
        first tile, the database in trouble)."""

        engine = self.engine()
        if engine.dialect.name != "postgresql":
            return False
        prepared = self._tile_prepared(engine, z, extent, buffer, limit, build=False)
        if prepared is None:
            return False
        values = {**prepared.fixed, "tz": z, "tx": col, "ty": row}
        got = await aio.fetch_with_revisions(engine, prepared.sql, values, 1)
        if got is None:
            return False
        revisions, rows = got
        remember_revisions(engine, revisions)
        body = rows[0][0] if rows else None
        _read_ahead(
            (id(self), ("tile", z, col, row, extent, buffer, limit)), bytes(body) if body else None
        )
        return True

    def _tile_prepared(
        self, engine: Engine, z: int, extent: int, buffer: int, limit: int, *, build: bool = True
    ) -> Prepared | None:
        """The tile statement of zoom ``z`` compiled for ``engine`` (once: the thread's read
        and the event loop's send the same SQL); None when not yet compiled and ``build``
        is False."""
        source = next((c for top, c in self.tile_geometries if z <= top), None)
        pixels = self.tile_pixels.get(z) if extent == self.tile_pixels_extent else None
        tiles: dict[tuple[Any, ...], Prepared] = self.__dict__.setdefault("_tile_stmts", {})
        key = (id(engine), extent, buffer, limit, source, pixels)
        if key not in tiles and build:
            stmt = self._tile_statement(extent, buffer, limit, source, pixels)
            tiles[key] = Prepared.of(stmt, engine)
        return tiles.get(key)

    def _tile_statement(
        self,
        extent: int,
        buffer: int,
        limit: int,
        source: str | None = None,
        pixels: str | None = None,
    ) -> sa.Select[Any]:
        """The tile query of :meth:`postgis_tile`, its address as parameters ``tz/tx/ty``;
        ``source``: a stored EPSG:3857 column to cut from (else ``geom``, reprojected);
        ``pixels``: the stored column of ``source`` already cut for the tile's zoom
        (:attr:`tile_pixels`), taken translated where it lies inside the tile's buffer."""
        props = self.sql_properties("postgresql")
        t = self.table
        z, col, row = (sa.bindparam(n, None, type_=sa.Integer) for n in ("tz", "tx", "ty"))
        tile = sa.func.ST_TileEnvelope(z, col, row)
        # The same buffer the tile keeps: what lies within it is selected (and clipped).
        margin = sa.func.ST_TileEnvelope(z, col, row, sa.text("margin => :m").bindparams(
            m=buffer / extent))  # fmt: skip
        geom = sa.literal_column(f'"{t.name}".geom')
        columns = [sa.cast(t.c[self.id_column], sa.Text).label("id")]
        for name in self.tile_properties:
            columns.append(self.tile_column(name, props[name]).label(name))
        mercator = (
            sa.literal_column(f'"{t.name}".{source}')
            if source
            else sa.func.ST_Transform(geom, 3857)
        )
        cut = sa.func.ST_AsMVTGeom(mercator, tile, extent, buffer, True)
        if pixels:
            # The zoom's grid shifted by whole tiles is the tile's grid: what lies inside
            # the buffer is already what ST_AsMVTGeom would make of it (migration 0012).
            px = sa.literal_column(f'"{t.name}".{pixels}')
            x0, y0 = col * extent, row * extent
            inside = px.op("@")(
                sa.func.ST_MakeEnvelope(
                    x0 - buffer, y0 - buffer, x0 + (extent + buffer), y0 + (extent + buffer)
                )
            )
            cut = sa.case((inside, sa.func.ST_Translate(px, -x0, -y0)), else_=cut)
        mvt_geom = cut.label("geom")
        inner = (
            sa.select(mvt_geom, *columns)
            .select_from(t)
            .where(geom.op("&&")(sa.func.ST_Transform(margin, 4326)), *self.scope())
            .limit(limit)
            .subquery("q")
        )
        # Features in id order: the same bytes whichever plan the database picks (a
        # prepared statement's generic plan may scan in another order than a custom one).
        mvt = sa.text("ST_AsMVT(q, :layer, :extent, 'geom' ORDER BY q.id)").bindparams(
            layer=self.id, extent=extent
        )
        return sa.select(mvt).select_from(inner)

    # -- hooks

    def engine(self) -> Engine:
        """The engine to read (default: the store's)."""

        return self._engine or get_engine()

    def sql_properties(self, dialect: str) -> dict[str, SqlProperty]:
        """Every filterable property (aliases included) as SQL, for ``dialect``."""
        raise NotImplementedError

    def build_features(
        self, rows: Sequence[Any], properties: list[str] | None, skip_geometry: bool
    ) -> list[dict[str, Any]]:
        """GeoJSON-like features (geometry as shapely, CRS84) of rows of ``table``."""
        raise NotImplementedError

    def scope(self) -> list[Any]:
        """Conditions every statement of this collection carries (default: none), e.g.
        ``layer_id = :id`` when several collections share one table."""
        return []

    def property_condition(
        self, name: str, value: str, props: Mapping[str, SqlProperty]
    ) -> ColumnElement[bool]:
        """``?name=value``: a list holds it; a number equals it; other values equal its text.

        (The literal text ``None`` also matches nulls, as the text of a null did in memory.)
        """
        prop = props.get(name)
        if prop is None:
            return SQL_FALSE
        if prop.kind == "list":
            assert prop.any_in is not None
            if prop.element == "number":
                try:
                    return prop.any_in([float(value)])
                except ValueError:
                    return SQL_FALSE
            return prop.any_in([value])
        col = prop.expr
        nulls = [col.is_(None)] if value == "None" else []
        if prop.kind == "number":
            try:
                number = float(value)
            except ValueError:
                return sa.or_(SQL_FALSE, *nulls)
            return (
                sa.or_(col == number, *nulls)
                if math.isfinite(number)
                else sa.or_(*nulls, SQL_FALSE)
            )
        if prop.kind == "timestamp":
            try:
                t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return sa.or_(SQL_FALSE, *nulls)
            if iso_text(t) != value:  # equality of the served text
                return sa.or_(SQL_FALSE, *nulls)
            return sa.or_(col == sa.literal(_instant(t), sa.DateTime(timezone=True)), *nulls)
        return sa.or_(col == value, *nulls)

    # -- plumbing

    def _dialect(self, engine: Engine) -> str:
        return engine.dialect.name

    def _props(self, dialect: str) -> dict[str, SqlProperty]:
        return self._cache.built(("props", dialect), lambda: self.sql_properties(dialect))  # type: ignore[no-any-return]

    def spatial(self, dialect: str) -> Spatial:
        """The geometry's SQL (PostGIS ``geom`` column, or SQLite R*Tree + WKB)."""
        if dialect == "postgresql":
            geom = sa.literal_column(f"{self.table.name}.geom")
            return PostgisSpatial(geom, [self.table.c[b] for b in self.bounds_columns])
        if self.rtree is None:
            raise NotImplementedError("an SQLite collection needs an R*Tree")
        return SqliteRtreeSpatial(
            self.table, self.rtree, self.wkb_column, self.bounds_columns, self.geometry_type_column
        )

    def revision(self) -> tuple[int, datetime | None]:
        """The store's change counter of ``topic`` (read once per request)."""

        return revision(self.engine(), self.topic)

    def version(self) -> str:
        """Changes with every write (the store's revision of ``topic``)."""

        with store_errors():
            return f"r{self.revision()[0]}"

    def last_modified(self) -> datetime:
        """When ``topic`` last changed (a fixed date before the first write)."""

        with store_errors():
            ts = self.revision()[1]
        return ts or datetime(2025, 1, 1, tzinfo=UTC)

    def bbox_scope(self, dialect: str) -> list[Any]:
        """:meth:`scope` written for a query with a bbox (the spatial index should lead)."""
        return self.scope()

    def where(
        self, q: FeatureQuery, dialect: str, box_template: bool = False
    ) -> tuple[list[Any], Any | None]:
        """(SQL conditions, CQL2 part left to Python) of a query; ``box_template``: its
        bbox, a rectangle, as :meth:`Spatial.box_template` (values as parameters)."""
        props = self._props(dialect)
        conds: list[Any] = list(self.scope() if q.bbox is None else self.bbox_scope(dialect))
        if q.bbox is not None:
            spatial = self.spatial(dialect)
            conds.append(spatial.box_template() if box_template else spatial.bbox(area_of(q.bbox)))
        for name, value in q.properties_eq.items():
            conds.append(self.property_condition(name, value, props))
        if q.datetime_range is not None and self.datetime_property:
            prop = props.get(self.datetime_property)
            if prop is not None:
                start, end = q.datetime_range
                conds.append(prop.expr.is_not(None))
                ts = sa.DateTime(timezone=True)
                if start is not None:
                    conds.append(prop.expr >= sa.literal(_instant(start), ts))
                if end is not None:
                    conds.append(prop.expr <= sa.literal(_instant(end), ts))
        residual = None
        if q.filter is not None:
            translator = SqlFilter(props, self.spatial(dialect), dialect)
            sql, residual = translator.compile(q.filter.tree)
            if sql is not None:
                conds.append(sql)
        return conds, residual

    def order_by(self, q: FeatureQuery, dialect: str, indexed: bool = True) -> list[Any]:
        """ORDER BY sortby (nulls last both ways, text by code point), then id. Not
        ``indexed``: each term behind a unary ``+`` (SQLite: the same value and collation),
        which keeps SQLite's planner from walking an index in this order."""
        props = self._props(dialect)
        plus = (lambda e: e) if indexed else _unary_plus
        out: list[Any] = []
        for name, ascending in q.sortby:
            prop = props.get(name)
            if prop is None or prop.kind == "list":
                continue
            expr = prop.expr
            if dialect == "postgresql" and prop.kind in ("text", "date"):
                expr = expr.collate("C")
            out.append((plus(expr).asc() if ascending else plus(expr).desc()).nulls_last())
        out.append(plus(self.table.c[self.id_column]).asc())
        return out

    @contextmanager
    def _connect(self, engine: Engine) -> Iterator[Connection]:
        with read_connection(engine) as conn:
            if engine.dialect.name == "sqlite":
                register_sqlite_functions(conn)
            yield conn

    def _count(self, conn: Connection, rev: int, q: FeatureQuery, conds: list[Any]) -> int | None:
        """The number of matches; None when a filtered query has more than its
        ``count_limit``: then the store stops counting at ``count_limit + 1`` rows instead
        of visiting every match (a page of a 1 M-row table costs the page, not 1 M rows)."""
        cap = q.count_limit if q.filtered else None
        key = (id(conn.engine), rev, _query_key(q), cap)
        got = self._counts.get(key)
        if got is _NO:
            stmt = self._count_statement(conds, cap)
            n = int(conn.execute(stmt, execution_options=_per_values(q)).scalar_one())
            got = None if cap and n > cap else n
            self._counts.put(key, got)
        return got

    def _count_statement(self, conds: list[Any], cap: int | None) -> sa.Select[Any]:
        """``count(*)`` of the rows matching ``conds``, stopping at ``cap + 1`` when given."""
        if not cap:
            return sa.select(sa.func.count()).select_from(self.table).where(*conds)
        rows = sa.select(sa.literal(1)).select_from(self.table).where(*conds)
        return sa.select(sa.func.count()).select_from(rows.limit(cap + 1).subquery())

    def _columns(self, skip_geometry: bool) -> list[Any]:
        if skip_geometry:
            return [c for c in self.table.c if c.name != self.wkb_column]
        return list(self.table.c)

    def query(self, q: FeatureQuery) -> QueryResult:
        """One page of matching features and the number matched, all from the store."""

        with store_errors(), _filter_errors():
            engine = self.engine()
            rev = self.revision()[0]
            dialect = self._dialect(engine)
            conds, residual = self.where(q, dialect)
            order = self.order_by(q, dialect)
            with self._connect(engine) as conn:
                if residual is not None:
                    return self._query_in_python(conn, q, conds, order, residual)
                stmt = sa.select(*self._columns(q.skip_geometry))
                matched, rows = self._page(conn, rev, q, conds, order, stmt)
        return QueryResult(self.build_features(rows, q.properties, q.skip_geometry), matched)

    def _page(
        self,
        conn: Connection,
        rev: int,
        q: FeatureQuery,
        conds: list[Any],
        order: list[Any],
        stmt: sa.Select[Any],
    ) -> tuple[int | None, list[Any]]:
        """(number matched, the page's rows of ``stmt``) — the count first (it chooses the
        page's plan, :meth:`_matches_first`), and no page query when the page lies beyond
        it."""  # fmt: skip
        matched = self._count(conn, rev, q, conds)
        if (matched is not None and q.offset >= matched) or q.limit <= 0:
            return matched, []
        if self._matches_first(conn, rev, q, matched):
            page = self._sorted_page(stmt, conds, q, conn.dialect.name)
        else:
            page = _paged(stmt.where(*conds).order_by(*order), q, walk=True)
        return matched, conn.execute(page).fetchall()

    #: How much more a match costs found through its filter and sorted than a row visited
    #: in primary-key order, per store, for a filter not all of whose properties are in
    #: :attr:`indexed_properties` (measured with 100 k interventions before migration 0014:
    #: on PostGIS ~1.6 against ~0.4 µs a row; on SQLite the two took as long at ~500
    #: matches of a page of 100). Without an index the matches cost a scan of the table,
    #: so only a few are worth sorting.
    match_cost: ClassVar[Mapping[str, float]] = {"postgresql": 4.0, "sqlite": 40.0}
    #: The same for a CQL2 filter of :attr:`indexed_properties` alone, whose indexes carry
    #: the id (migration 0014): the matches are sorted from the index (:meth:`_sorted_page`).
    #: ``amount_eur > X`` at 100 k: the two plans took as long at ~4,000 matches on PostGIS
    #: (~0.2 µs a match, ~0.4 µs a row walked) and at ~6,500 on SQLite (~0.06 against ~0.3).
    indexed_match_cost: ClassVar[Mapping[str, float]] = {"postgresql": 0.6, "sqlite": 0.25}
    #: Queryables whose column has an index on ``(column, id)``.
    indexed_properties: ClassVar[frozenset[str]] = frozenset()
    #: Per store, :attr:`indexed_properties` whose column also has an index on ``(id,
    #: column)`` (migration 0015): a walk in id order tests the filter in that index and
    #: visits only the page's rows, so sorting the matches first pays off for fewer.
    walked_properties: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: :attr:`indexed_match_cost` for a filter of :attr:`walked_properties` alone:
    #: ``amount_eur > X`` at 100 k on SQLite, the two plans took as long at ~2,200 matches.
    walked_match_cost: ClassVar[Mapping[str, float]] = {"sqlite": 2.0}

    def _match_cost(self, dialect: str, q: FeatureQuery) -> float | None:
        """:attr:`indexed_match_cost` for a CQL2 filter alone whose properties are all
        indexed with the id, else :attr:`match_cost` (None: the store has none)."""
        used = getattr(q.filter, "properties", None)
        indexed = (
            bool(used)
            and used <= self.indexed_properties
            and q.bbox is None
            and not q.properties_eq
            and q.datetime_range is None
        )
        if indexed and used <= self.walked_properties.get(dialect, frozenset()):
            return self.walked_match_cost.get(dialect)
        return (self.indexed_match_cost if indexed else self.match_cost).get(dialect)

    def _matches_first(
        self, conn: Connection, rev: int, q: FeatureQuery, matched: int | None
    ) -> bool:
        """Whether a filtered page costs less when its few matches are found first and then
        sorted than when the table is walked in the page's order.

        PostgreSQL's planner walks the primary key, skipping rows, whenever it guesses the
        matches to be many (a prepared statement's generic plan guesses a third of the
        table for a range), SQLite's whenever the order has an index: 100 matches of
        ``amount_eur > X`` with a high X cost a walk of half the table (25–50 ms at 100 k
        rows on PostGIS, 6–18 ms on SQLite). The count, done first, knows better: walking
        visits about (offset + limit) · total / matched rows, finding the matches first
        visits ``matched``; the cheaper wins. ``matched`` None (more than the count's
        cap): the walk."""
        cost = self._match_cost(conn.dialect.name, q)
        if matched is None or cost is None or not q.filtered:
            return False
        total = self._count(conn, rev, FeatureQuery(), list(self.scope()))
        return _sorting_is_cheaper(cost, q, matched, total)

    def _sorted_page(
        self, stmt: sa.Select[Any], conds: list[Any], q: FeatureQuery, dialect: str
    ) -> Any:
        """``q``'s page of ``stmt`` over the matches of ``conds``, found first and sorted.
        Only the matches' keys are sorted (with the terms of the order), then the page's
        rows are read by key: the filter's index carries the id (migration 0014), so the
        matches are found and sorted without visiting their rows. PostgreSQL sorts ids
        behind a fence (:meth:`_sorted_matches`; ~0.2 against ~1.6 µs a match when the rows
        were visited), SQLite rowids (the terms kept off any index by :meth:`order_by`;
        ~0.06 against ~3 µs, which built each match's GeoJSON before sorting)."""
        order = self.order_by(q, dialect)
        if dialect != "sqlite":
            key = self.table.c[self.id_column]
            ids = self._sorted_matches(sa.select(key), conds, order, dialect)
            picked = _paged(ids, q, walk=False).correlate(None)
            return stmt.where(*self.scope(), key.in_(picked)).order_by(*order)
        rowid = self._rowid()
        picked = (
            sa.select(rowid)
            .select_from(self.table)
            .where(*conds)
            .order_by(*self.order_by(q, dialect, indexed=False))
            .limit(q.limit)
            .offset(q.offset)
            .correlate(None)
        )
        return stmt.where(rowid.in_(picked)).order_by(*order)

    def _sorted_matches(
        self, stmt: sa.Select[Any], conds: list[Any], order: list[Any], dialect: str
    ) -> Any:
        """``stmt`` over the matches of ``conds``, in ``order``: the matches come from a
        subquery that the planner cannot merge (``OFFSET 0``), so no index may walk the
        table in the page's order; it is named as the table, so the select's columns (and
        the literal SQL of its properties) read it unchanged (``geom``, a column PostGIS
        adds to the table, included)."""
        columns: list[Any] = [self.table]
        if dialect == "postgresql":
            columns.append(sa.literal_column(f'"{self.table.name}".geom').label("geom"))
        matches = sa.select(*columns).where(*conds).offset(0).subquery(self.table.name)
        adapter = ClauseAdapter(matches)
        return adapter.traverse(stmt).order_by(*(adapter.traverse(o) for o in order))

    def _box_page(
        self,
        conn: Connection,
        rev: int,
        q: FeatureQuery,
        box: tuple[float, float, float, float],
        stmt: sa.Select[Any],
    ) -> tuple[int | None, list[Any]]:
        """:meth:`_page` of a :func:`plain_box` query, with statements prepared once per
        select (the same SQL :meth:`where` and :meth:`order_by` would build); on SQLite the
        page is read before its count."""
        cap = q.count_limit if q.filtered else None
        key = (id(conn.engine), rev, _query_key(q), cap)
        values = box_parameters(box)

        def count() -> int | None:
            matched = self._counts.get(key)
            if matched is _NO:
                n = int(self._box_statement(conn.engine, None, cap).run(conn, values).scalar_one())
                matched = None if cap and n > cap else n
                self._counts.put(key, matched)
            return matched  # type: ignore[no-any-return]

        def rows() -> list[Any]:
            page = self._box_statement(conn.engine, stmt)
            return page.run(
                conn, {**values, "page_limit": q.limit, "page_offset": q.offset}
            ).fetchall()

        if conn.dialect.name != "postgresql":
            # The page first: one that comes up short says how many match (offset + its
            # rows), so a map's box of a few features costs one statement, not two; only a
            # full page (or an empty one past the start) is counted.
            if q.limit <= 0:
                return count(), []
            known = self._counts.get(key)
            if known is not _NO and known is not None and q.offset >= known:
                return known, []
            if known is _NO and cap:
                got_page = self._box_page_by_rowids(conn, q, key, cap, values, stmt)
                # None: an empty page past the start, whose count is read alone.
                return got_page if got_page is not None else (count(), [])
            got = rows()
            if known is _NO and len(got) < q.limit and (got or q.offset == 0):
                n = q.offset + len(got)
                known = None if cap and n > cap else n
                self._counts.put(key, known)
            return (count() if known is _NO else known), got
        known = self._counts.get(key)
        if known is _NO and q.limit > 0:
            combined = self._box_counted_statement(conn.engine, stmt, cap)
            paged = {**values, "page_limit": q.limit, "page_offset": q.offset}
            got = combined.run(conn, paged).fetchall()
            if got or q.offset == 0:
                matched = _box_matched(got, q, cap)
                self._counts.put(key, matched)
                return matched, [r[:-1] for r in got]
        matched = count()
        if (matched is not None and q.offset >= matched) or q.limit <= 0:
            return matched, []
        return matched, rows()

    def _box_counted_statement(self, engine: Engine, stmt: Any, cap: int | None) -> Prepared:
        """PostgreSQL: ``stmt``'s page of a box, each row followed by the box's count, which
        is read only when the page is full (else NULL: the page says how many match, the
        offset plus its rows). The count is a scalar subquery in the other branch of a
        CASE, an initplan PostgreSQL runs only when that branch is taken, so a map's box of
        a few features costs one index scan, not two. Built once per engine and select."""

        def build() -> Prepared:
            conds = [*self.bbox_scope("postgresql"), self.spatial("postgresql").box_template()]
            limit = sa.bindparam("page_limit", None, type_=sa.Integer)
            named = [c.label(f"cmm_{i}") for i, c in enumerate(stmt.selected_columns)]
            page = (
                stmt.with_only_columns(*named, maintain_column_froms=True)
                .where(*conds)
                .order_by(*self.order_by(FeatureQuery(), "postgresql"))
                .limit(limit)
                .offset(sa.bindparam("page_offset", None, type_=sa.Integer))
                .cte("cmm_page")
                .prefix_with("MATERIALIZED")
            )
            on_page = sa.select(sa.func.count()).select_from(page).scalar_subquery()
            counted = self._count_statement(conds, cap).scalar_subquery()
            matched = sa.case((on_page < limit, sa.null()), else_=counted)
            return Prepared.of(sa.select(*page.c, matched.label("cmm_matched")), engine)

        return self._cache.built(("box counted", id(engine), stmt, cap), build)  # type: ignore[no-any-return]

    def _box_page_by_rowids(
        self,
        conn: Connection,
        q: FeatureQuery,
        key: Any,
        cap: int,
        values: dict[str, Any],
        stmt: sa.Select[Any],
    ) -> tuple[int | None, list[Any]] | None:
        """SQLite's :meth:`_box_page` when the count is not known, in one statement: the
        matches' rowids in the page's order, up to the count's cap, are listed once (the
        sort holds rowids, not the rows' GeoJSON); their number is the count, and the page
        is read from them by rowid. Measured on the 20 k-polygon layer (5 km boxes, full
        pages): the worker's CPU per request 12.7–12.9 → 10.2–11.0 ms; short pages still
        cost one statement.
        None when the page is empty past the start (its count is then read alone)."""
        page = self._box_rowids_statement(conn.engine, stmt)
        rows = page.run(conn, _rowids_values(q, cap, values)).fetchall()
        if not rows and q.offset:
            return None
        matched = _listed_matched(rows, cap)
        self._counts.put(key, matched)
        return matched, [r[:-1] for r in rows]

    def _box_rowids_statement(self, engine: Engine, stmt: Any) -> Prepared:
        """SQLite: ``stmt``'s page of a box over its matches listed once (rowids in the
        page's order, ``reach`` at most), each row followed by how many were listed."""

        def build() -> Prepared:
            order = self.order_by(FeatureQuery(), "sqlite")
            conds = [*self.bbox_scope("sqlite"), self.spatial("sqlite").box_template()]
            key = self.table.c[self.id_column]
            listed = (
                sa.select(self._rowid().label("r"), key.label("k"))
                .where(*conds)
                .order_by(*order)
                .limit(sa.bindparam("reach", None, type_=sa.Integer))
                .cte("listed")
                .prefix_with("MATERIALIZED")
            )
            picked = (
                sa.select(listed.c.r)
                .order_by(listed.c.k)
                .limit(sa.bindparam("page_limit", None, type_=sa.Integer))
                .offset(sa.bindparam("page_offset", None, type_=sa.Integer))
            )
            n = sa.select(sa.func.count()).select_from(listed).scalar_subquery()
            built = (
                stmt.add_columns(n.label("cmm_listed"))
                .where(self._rowid().in_(picked))
                .order_by(*order)
            )
            return Prepared.of(built, engine)

        return self._cache.built(("box rowids", id(engine), stmt), build)  # type: ignore[no-any-return]

    def _rowid(self) -> Any:
        return sa.literal_column(f'"{self.table.name}".rowid')

    def _box_statement(self, engine: Engine, stmt: Any, cap: int | None = None) -> Prepared:
        """The prepared page of the select ``stmt``, or with ``stmt`` None the count (capped
        at ``cap``), over :meth:`Spatial.box_template`; built once per engine and select."""

        def build() -> Prepared:
            dialect = engine.dialect.name
            conds = [*self.bbox_scope(dialect), self.spatial(dialect).box_template()]
            if stmt is not None:
                built = (
                    stmt.where(*conds)
                    .order_by(*self.order_by(FeatureQuery(), dialect))
                    .limit(sa.bindparam("page_limit", None, type_=sa.Integer))
                    .offset(sa.bindparam("page_offset", None, type_=sa.Integer))
                )
            else:
                built = self._count_statement(conds, cap)
            return Prepared.of(built, engine)

        # Keyed by the select itself (not its id, which a collected one could pass on).
        return self._cache.built(("box", id(engine), stmt, cap), build)  # type: ignore[no-any-return]

    def geojson_select(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> sa.Select[Any] | None:
        """PostgreSQL only: a SELECT of (id text, Feature JSON text) per row of ``table``,
        the JSON exactly as :meth:`build_features` + the service's encoder would make it
        (CRS84, 6 decimals, one geometry type); None when the subclass does not provide it."""
        return None

    def sqlite_geojson(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> SqliteGeojson | None:
        """SQLite only: how SQLite and Python encode a page together (:class:`SqliteGeojson`),
        the bytes :meth:`build_features` + the service's encoder would make; None when the
        subclass does not provide it."""
        return None

    def _encoded_select(
        self, engine: Engine, properties: list[str] | None, skip_geometry: bool
    ) -> tuple[Any, SqliteGeojson | None]:
        """(the select of features the store encodes, SQLite's spec to finish them, None on
        PostgreSQL); (None, None) when this collection cannot."""
        if engine.dialect.name == "postgresql":
            return self._loop_select(properties, skip_geometry), None
        spec = self._kept_sqlite_spec(properties, skip_geometry)
        return (spec.select if spec is not None else None), spec

    def query_geojson(self, q: FeatureQuery) -> GeojsonPage | None:
        """The page encoded by the store: by PostgreSQL (``geojson_select``), the rows never
        becoming Python objects, or on SQLite by ``json_object`` plus vectorised geometries
        (``sqlite_geojson``). None without them, or when part of the filter is evaluated in
        Python."""

        ahead = _PREFETCHED.get()
        if ahead is not None:
            page = ahead.get((id(self), _page_key(q)))
            if page is not None:
                return page  # type: ignore[no-any-return]
        with store_errors(), _filter_errors():
            engine = self.engine()
            dialect = engine.dialect.name
            stmt, spec = self._encoded_select(engine, q.properties, q.skip_geometry)
            if stmt is None:
                return None
            rev = self.revision()[0]
            box = plain_box(q)
            if box is not None:
                with self._connect(engine) as conn:
                    matched, rows = self._box_page(conn, rev, q, box, stmt)
            else:
                with self._connect(engine) as conn:
                    shaped = self._shaped_page(conn, rev, q, stmt)
                if shaped is not None:
                    matched, rows = shaped
                else:
                    conds, residual = self.where(q, dialect)
                    if residual is not None:
                        return None
                    order = self.order_by(q, dialect)
                    with self._connect(engine) as conn:
                        matched, rows = self._page(conn, rev, q, conds, order, stmt)
        if spec is not None:
            return RowsPage(spec, rows, matched)
        return GeojsonPage([(r[0], r[1]) for r in rows], matched)

    def _shape(self, q: FeatureQuery) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
        """(shape, literals, other parameters) of a query that is a CQL2 filter, alone or
        with a bbox that is a rectangle in CRS84 (a GIS client's filtered layer as it pans;
        its bounds are parameters too, :func:`box_parameters`), when its filter has a shape
        (:func:`filter_shape`). None for any other query (property or datetime
        parameters, another bbox)."""
        if q.filter is None or q.properties_eq or q.datetime_range is not None:
            return None
        named: dict[str, Any] = {}
        if q.bbox is not None:
            x0, y0, x1, y1 = q.bbox
            if not (getattr(q.bbox, "rectangle", False) and x0 < x1 and y0 < y1):
                return None
            named = box_parameters((x0, y0, x1, y1))
        shaped = filter_shape(q.filter.tree)
        if shaped is None:
            return None
        shape, literals = shaped
        return (shape + "|box" if named else shape), literals, named

    def _template(
        self, engine: Engine, kind: str, q: FeatureQuery, stmt: Any, shape: str
    ) -> Template | None:
        r"""The ``count``, the page that ``walk``\ s the table or the page of the matches
        sorted ``first`` of a query of ``shape``, compiled once per shape and page; None
        when it cannot be (the shape's filter left to Python, a type error, a probe not
        found: the query is then built as any other)."""
        cap = q.count_limit if q.filtered else None
        page = None if kind == "count" else (stmt, q.limit, q.offset, tuple(q.sortby or ()))
        key = (engine.dialect.name, kind, shape, cap, page)
        return self._shapes.built(key, lambda: self._compile_template(engine, kind, q, stmt))  # type: ignore[no-any-return]

    def _compile_template(
        self, engine: Engine, kind: str, q: FeatureQuery, stmt: Any
    ) -> Template | None:
        assert q.filter is not None
        dialect = engine.dialect.name
        shaped = filter_shape(q.filter.tree)
        assert shaped is not None
        kinds = ["text" if type(v) is str else "number" for v in shaped[1]]
        probed = dataclasses.replace(q, filter=CqlFilter(tree=probe_tree(q.filter.tree), text=""))
        try:
            conds, residual = self.where(probed, dialect, box_template=True)
        except InvalidParameter:
            return None
        if residual is not None:
            return None
        if kind == "count":
            built = self._count_statement(conds, q.count_limit if q.filtered else None)
        else:
            order = self.order_by(q, dialect)
            if kind == "walk":
                built = _paged(stmt.where(*conds).order_by(*order), q, walk=True)
            else:
                built = self._sorted_page(stmt, conds, q, dialect)
        rendered = {"render_postcompile": True}  # LIMIT/OFFSET of a walk: in the SQL
        compiled = built.compile(dialect=engine.dialect, compile_kwargs=rendered)
        return Template.of(compiled, kinds)

    def _shaped_page(
        self, conn: Connection, rev: int, q: FeatureQuery, stmt: Any
    ) -> tuple[int | None, list[Any]] | None:
        """:meth:`_page` of a query with a shape, through the statements of its shape: the
        literals bound, nothing built or compiled. None: the query has none."""
        shaped = self._shape(q)
        if shaped is None:
            return None
        shape, literals, named = shaped
        engine = conn.engine
        cap = q.count_limit if q.filtered else None
        key = (id(engine), rev, _query_key(q), cap)
        matched = self._counts.get(key)
        if matched is _NO and self._over_cap(id(engine), shaped, cap) == rev:
            matched = None
        if matched is _NO:
            count = self._template(engine, "count", q, stmt, shape)
            if count is None:
                return None
            n = conn.exec_driver_sql(
                count.sql, count.parameters(literals, named), execution_options=_per_values(q)
            ).scalar_one()
            matched = None if cap and int(n) > cap else int(n)
            self._counts.put(key, matched)
            if matched is None:
                self._note_over_cap(id(engine), rev, q, shaped, cap)
        if (matched is not None and q.offset >= matched) or q.limit <= 0:
            return matched, []
        first = self._matches_first(conn, rev, q, matched)
        page = self._template(engine, "first" if first else "walk", q, stmt, shape)
        if page is None:
            return None
        return matched, conn.exec_driver_sql(page.sql, page.parameters(literals, named)).fetchall()

    def _capped_key(
        self, engine_id: int, shaped: tuple[str, tuple[Any, ...], dict[str, Any]], cap: int
    ) -> tuple[Any, ...]:
        return (engine_id, shaped[0], cap, tuple(sorted(shaped[2].items())))

    def _over_cap(
        self,
        engine_id: int,
        shaped: tuple[str, tuple[Any, ...], dict[str, Any]],
        cap: int | None,
    ) -> int | None:
        """The revision at which a filter of this shape (and box) was counted past the
        ``cap`` while matching only rows this one's literals match too: this one is past
        it as well (:func:`slot_directions`), at that revision, without a count. A
        dashboard's slider (``amount_eur > X``, X moving) or a client paging through
        values then costs its page alone. None when nothing is known."""
        if not cap:
            return None
        entry = self._capped.get(self._capped_key(engine_id, shaped, cap))
        if entry is _NO:
            return None
        rev, directions, seen = entry
        literals = shaped[1]
        return rev if any(covers(directions, literals, old) for old in seen) else None

    def _note_over_cap(
        self,
        engine_id: int,
        rev: int,
        q: FeatureQuery,
        shaped: tuple[str, tuple[Any, ...], dict[str, Any]],
        cap: int | None,
    ) -> None:
        """Remember that ``shaped``'s literals matched more than ``cap`` rows at ``rev``
        (a few such literals per shape: the narrowest, which answer for the most)."""
        if not cap or q.filter is None:
            return
        key = self._capped_key(engine_id, shaped, cap)
        entry = self._capped.get(key)
        if entry is _NO or entry[0] != rev:
            directions = slot_directions(q.filter.tree)
            if not any(directions) or len(directions) != len(shaped[1]):
                return  # equalities only: the page's own count memo serves repeats
            seen: tuple[tuple[Any, ...], ...] = ()
        else:
            _, directions, seen = entry
        new = shaped[1]
        kept = [old for old in seen if not covers(directions, old, new)]
        self._capped.put(key, (rev, directions, (new, *kept[:7])))

    def _query_in_python(
        self, conn: Connection, q: FeatureQuery, conds: list[Any], order: list[Any], residual: Any
    ) -> QueryResult:
        """SQL selects candidates; the residual filter decides, chunk by chunk (bounded)."""
        if conn.dialect.name == "postgresql":
            # Candidates stream through a server-side cursor, which lives in a transaction
            # (reads are in autocommit otherwise): one snapshot for the count and the chunks.
            conn.execution_options(isolation_level="REPEATABLE READ")
        candidates = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(self.table).where(*conds)
            ).scalar_one()
        )
        if candidates > self.max_python_rows:
            raise _fail(
                f"part of this filter is evaluated outside the database ({_describe(residual)}) "
                f"and the rest of the request leaves {candidates} features, more than "
                f"{self.max_python_rows}; narrow it (bbox, more conditions)",
                it=f"una parte di questo filtro si valuta fuori dal database "
                f"({_describe(residual)}) e il resto della richiesta lascia {candidates} "
                f"elementi, più di {self.max_python_rows}; restringerla (bbox, altre "
                "condizioni)",
            )
        flt = CqlFilter(tree=residual, text="")
        used = _properties_of(residual)
        need_geometry = GEOMETRY_PROPERTY in used
        budget = get_settings().request_timeout_s
        deadline = time.monotonic() + budget
        idcol = self.table.c[self.id_column]
        stmt = sa.select(*self._columns(not need_geometry)).where(*conds).order_by(*order)
        matched: list[Any] = []
        result = conn.execution_options(yield_per=self.python_chunk).execute(stmt)
        for chunk in result.partitions():
            feats = self.build_features(chunk, None, not need_geometry)
            columns: dict[str, np.ndarray] = {}
            for name in used - {GEOMETRY_PROPERTY}:
                col = np.empty(len(feats), dtype=object)
                col[:] = [f["properties"].get(self.property_alias(name)) for f in feats]
                columns[name] = col
            geoms = np.empty(len(feats), dtype=object)
            geoms[:] = [f.get("geometry") for f in feats]
            mask = evaluate(flt, MemoryTable(columns, geoms), max(0.0, deadline - time.monotonic()))
            matched.extend(r._mapping[idcol] for r, m in zip(chunk, mask, strict=True) if m)
        page_ids = matched[q.offset : q.offset + q.limit]
        rows: list[Any] = []
        if page_ids:
            got = {
                r._mapping[idcol]: r
                for r in conn.execute(
                    sa.select(*self._columns(q.skip_geometry)).where(
                        *self.scope(), idcol.in_(page_ids)
                    )
                )
            }
            rows = [got[i] for i in page_ids if i in got]
        return QueryResult(self.build_features(rows, q.properties, q.skip_geometry), len(matched))

    def property_alias(self, name: str) -> str:
        """The property a filter name stands for (aliases)."""
        return name

    def feature_key(self, feature_id: str) -> Any | None:
        """The primary key value ``feature_id`` (as served) stands for; None when it can
        name no feature."""
        return feature_id

    def get_geojson(self, feature_id: str) -> str | None:
        """One feature by primary key, encoded by the store as a page's features are
        (``geojson_select`` on PostgreSQL, ``sqlite_geojson`` on SQLite): one prepared
        statement, no SQLAlchemy expression per request, no Python objects on PostgreSQL."""

        key = self.feature_key(feature_id)
        if key is None:
            return None
        ahead = _PREFETCHED.get()
        if ahead is not None and (id(self), key) in ahead:
            return ahead[(id(self), key)]  # type: ignore[no-any-return]
        with store_errors():
            engine = self.engine()
            stmt, spec = self._encoded_select(engine, None, False)
            if stmt is None:
                return super().get_geojson(feature_id)

            def build() -> Prepared:
                idcol = self.table.c[self.id_column]
                by_id = idcol == sa.bindparam("_fid", None, type_=idcol.type)
                return Prepared.of(stmt.where(*self.scope(), by_id), engine)

            prepared = self._cache.built(("by-id", id(engine), stmt), build)
            with read_connection(engine) as conn:
                rows = prepared.run(conn, {"_fid": key}).fetchall()
        if not rows:
            return None
        return spec.render(rows)[0][1] if spec is not None else str(rows[0][1])

    async def prefetch_by_id(self, feature_id: str) -> bool:
        """On the event loop: the store's revisions and the feature of :meth:`get_geojson`,
        in one round trip on PostgreSQL (``geo.store.aio``), on SQLite two indexed reads of
        cached pages (``aio.SqliteReader``; the row then finished by the page's Python
        half), kept for the rest of the request, whose synchronous code then reads nothing
        (``geo.store.on_the_loop``). False when this cannot be done here (the statement not
        yet built by a first read, a feature too big to hash on the loop, the database in
        trouble or, on SQLite, busy)."""

        key = self.feature_key(feature_id)
        if key is None:
            return False
        engine = self.engine()
        spec = None
        if engine.dialect.name == "sqlite":
            spec = self.sqlite_geojson(None, False)
            stmt = spec.select if spec is not None else None
        else:
            stmt = self._loop_select(None, False)
        prepared = self._cache.get(("by-id", id(engine), stmt)) if stmt is not None else _NO
        if prepared is _NO:
            return False
        args = prepared.arguments({"_fid": key})
        got = await aio.fetch_with_revisions(engine, prepared.sql, args, 2)
        if got is None:
            return False
        revisions, rows = got
        remember_revisions(engine, revisions)
        if spec is not None and rows:
            rows = spec.render(rows)
        text = str(rows[0][1]) if rows else None
        if text is not None and len(text) > LOOP_TEXT_LIMIT:
            return False  # its ETag (a parse and a hash) is work for a thread
        _read_ahead((id(self), key), text)
        return True

    def _loop_select(self, properties: list[str] | None, skip_geometry: bool) -> Any:
        """:meth:`geojson_select` as a read on the event loop can have it: the last one built
        when building it would read the store (a layer's geometry type comes from its
        record). Should that have changed since, the registry's check after the prefetch
        reads the store, and the request goes to a thread, which builds it anew."""

        key = _select_key(properties, skip_geometry)
        try:
            stmt = self.geojson_select(properties, skip_geometry)
        except WouldBlock:
            return self.__dict__.get("_loop_selects", {}).get(key)
        self.__dict__.setdefault("_loop_selects", {})[key] = stmt
        return stmt

    def pages_on_the_loop(self) -> bool:
        """Whether :meth:`prefetch_page` can read pages on the event loop: PostgreSQL's
        asynchronous driver, or a SQLite file (``aio.SqliteReader``, within its budget);
        otherwise (SQLite in memory, another store) a request skips parsing its query for
        the loop at all."""
        engine = self.engine()
        if engine.dialect.name == "sqlite":
            return aio.sqlite_file(engine)
        return engine.dialect.name == "postgresql"

    def _kept_sqlite_spec(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> SqliteGeojson | None:
        """:meth:`sqlite_geojson`, kept for :meth:`_loop_sqlite_spec` (as
        :meth:`_loop_select` keeps PostgreSQL's)."""
        spec = self.sqlite_geojson(properties, skip_geometry)
        key = _select_key(properties, skip_geometry)
        self.__dict__.setdefault("_loop_specs", {})[key] = spec
        return spec

    def _loop_sqlite_spec(self, q: FeatureQuery) -> SqliteGeojson | None:
        """:meth:`sqlite_geojson` as a read on the event loop can have it: the last one built
        when building it would read the store (a layer's geometry type comes from its
        record and rows), as :meth:`_loop_select`; None when none was built yet (a thread
        builds it). A layer's write renews every layer's provider (``sync_registry``), so
        a page read on the loop with a spec older than the data is kept under a provider
        the request no longer uses, and a thread reads it anew."""

        try:
            return self._kept_sqlite_spec(q.properties, q.skip_geometry)
        except WouldBlock:
            key = _select_key(q.properties, q.skip_geometry)
            return self.__dict__.get("_loop_specs", {}).get(key)  # type: ignore[no-any-return]

    async def _prefetch_sqlite_box(
        self, q: FeatureQuery, engine: Engine, box: tuple[float, float, float, float]
    ) -> bool:
        """:meth:`prefetch_page` of a box on SQLite: the revisions and
        :meth:`_box_page_by_rowids`'s one statement (the page and the count up to the
        cap), read in one snapshot on the loop, the page finished as its thread would.
        False when this cannot be done here."""

        cap = q.count_limit if q.filtered else None
        spec = self._loop_sqlite_spec(q)
        if not cap or spec is None:
            return False
        reads = id(reading_engine(engine))
        page = self._cache.get(("box rowids", reads, spec.select))
        if page is _NO:
            return False  # built by a first read in a thread
        args = page.arguments(_rowids_values(q, cap, box_parameters(box)))
        got = await aio.fetch(engine, [(REVISIONS_SQL, None), (page.sql, args)])
        if got is None:
            return False
        revisions, rows = got
        if not rows and q.offset:
            return False  # past the end: its count is read alone, in a thread
        remember_revisions(engine, revisions)
        matched = _listed_matched(rows, cap)
        self._counts.put((reads, self.revision()[0], _query_key(q), cap), matched)
        return self._keep_loop_page(q, [r[:-1] for r in rows], matched, spec)

    async def prefetch_page(self, q: FeatureQuery) -> bool:
        """On the event loop: the store's revisions, the count and the page of a
        :func:`plain_box` query (the map's request) in one round trip on PostgreSQL, in
        one read transaction on SQLite (:meth:`_prefetch_sqlite_box`), kept for the rest
        of the request as :meth:`query_geojson`'s answer (see :meth:`prefetch_by_id`).
        ``q`` is the query as the service runs it (its ``count_limit`` set). False when
        this cannot be done here."""

        box = plain_box(q)
        if box is None:
            return await self._prefetch_query(q)
        if q.limit <= 0:
            return False
        engine = self.engine()
        if engine.dialect.name == "sqlite":
            return await self._prefetch_sqlite_box(q, engine, box)
        if engine.dialect.name != "postgresql":
            return False
        stmt = self._loop_select(q.properties, q.skip_geometry)
        cap = q.count_limit if q.filtered else None
        reads = id(reading_engine(engine))  # the statements are kept by the reading engine
        combined = self._cache.get(("box counted", reads, stmt, cap)) if stmt is not None else _NO
        if combined is _NO:
            return False  # built by a first read in a thread
        paged = {**box_parameters(box), "page_limit": q.limit, "page_offset": q.offset}
        got = await aio.fetch(
            engine, [(REVISIONS_SQL, None, True), (combined.sql, {**combined.fixed, **paged})]
        )
        if got is None:
            return False
        revisions, rows = got
        remember_revisions(engine, revisions)
        if not rows and q.offset:
            return False  # past the end: its count is read alone, in a thread
        return self._keep_loop_page(q, rows, _box_matched(rows, q, cap))

    #: After a slim page met a row without its kept text (:meth:`_prefetch_query`), how
    #: many of the collection's next filtered pages on the loop select the full columns
    #: (a store whose rows keep no texts yet pays one extra read in this many).
    SLIM_REST = 64

    async def _prefetch_query(self, q: FeatureQuery) -> bool:
        """:meth:`_prefetch_filtered` with SQLite's slim spec (:attr:`SqliteGeojson.slim`)
        unless one of its pages lately met a row without its text: that page is read again
        at once with the full spec, and so are the next :attr:`SLIM_REST`."""
        rest = self.__dict__.get("_slim_rest", 0)
        if rest > 0:
            self.__dict__["_slim_rest"] = rest - 1
            return await self._prefetch_filtered(q, slim=False)
        try:
            return await self._prefetch_filtered(q, slim=True)
        except _TextsMissing:
            self.__dict__["_slim_rest"] = self.SLIM_REST
            return await self._prefetch_filtered(q, slim=False)

    async def _prefetch_filtered(self, q: FeatureQuery, slim: bool) -> bool:
        """:meth:`prefetch_page` of any other query the store answers whole (a CQL2
        filter, a non-rectangular box…): :meth:`_page` on the event loop, its statements
        built as the threadpool builds them (:meth:`where`, :meth:`order_by`; ~0.1 ms of
        Python for a short filter; those of a filter's shape compiled once,
        :meth:`_template`) and read in two round trips, the revisions with the
        count, then the page the count chose. False when this cannot be done here: part
        of the filter left to Python, the table's count of this revision not yet known
        (:meth:`_matches_first`), a statement the driver cannot take as compiled."""

        engine = self.engine()
        dialect = engine.dialect.name
        if q.limit <= 0 or dialect not in ("postgresql", "sqlite"):
            return False
        spec = self._loop_sqlite_spec(q) if dialect == "sqlite" else None
        if spec is not None and slim:
            spec = spec.slim
        stmt = spec.select if spec is not None else self._loop_select(q.properties, q.skip_geometry)
        if stmt is None:
            return False
        cap = q.count_limit if q.filtered else None
        shaped = self._shape(q)
        if spec is not None and not shaped:
            return False  # SQLite takes a filter's shape (its statements compiled once) only
        reads = reading_engine(engine)
        if shaped:
            known = self._over_cap(id(reads), shaped, cap)
            if known is not None:
                done = await self._prefetch_past_cap(q, engine, stmt, shaped, known, spec)
                if done is not None:
                    return done
        counting = shaped and self._template(engine, "count", q, stmt, shaped[0])
        built: tuple[list[Any], Any] | None = None  # the query's own statements, if needed
        if shaped and counting:
            count_sql = (counting.sql, counting.parameters(shaped[1], shaped[2]))
        elif spec is not None:
            return False
        else:
            built = self.where(q, "postgresql")
            if built[1] is not None:
                return False
            count_sql = driver_sql(self._count_statement(built[0], cap), engine)
            if count_sql is None:
                return False
        # Planned for its values, as _count runs it (geo.store._plan_per_values).
        plan_each_time = None if not q.filtered else False
        got = await aio.fetch_with_revisions(engine, *count_sql, 1, plan_each_time)
        if got is None:
            return False
        revisions, counted = got
        remember_revisions(engine, revisions)
        rev = self.revision()[0]
        n = int(counted[0][0])
        matched = None if cap and n > cap else n
        self._counts.put((id(reads), rev, _query_key(q), cap), matched)
        if matched is None and shaped:
            self._note_over_cap(id(reads), rev, q, shaped, cap)
        rows: list[Any] = []
        if matched is None or q.offset < matched:
            first = self._loop_matches_first(reads, rev, q, matched)
            if first is None:
                return False
            paging = shaped and self._template(
                engine, "first" if first else "walk", q, stmt, shaped[0]
            )
            if shaped and paging:
                page_sql: tuple[str, Any] | None = (
                    paging.sql,
                    paging.parameters(shaped[1], shaped[2]),
                )
            elif spec is not None:
                return False
            else:
                conds, residual = built or self.where(q, "postgresql")
                if residual is not None:
                    return False
                order = self.order_by(q, "postgresql")
                page = (
                    self._sorted_page(stmt, conds, q, "postgresql")
                    if first
                    else _paged(stmt.where(*conds).order_by(*order), q, walk=True)
                )
                page_sql = driver_sql(page, engine)
            if page_sql is None:
                return False
            got = await aio.fetch(engine, [(*page_sql, None)])
            if got is None:
                return False
            rows = got[0]
        return self._keep_loop_page(q, rows, matched, spec)

    async def _prefetch_past_cap(
        self,
        q: FeatureQuery,
        engine: Engine,
        stmt: Any,
        shaped: tuple[str, tuple[Any, ...], dict[str, Any]],
        rev: int,
        spec: SqliteGeojson | None = None,
    ) -> bool | None:
        """:meth:`_prefetch_query` of a filter known to match more than the cap at ``rev``
        (:meth:`_over_cap`): the revisions and the page that walks the table, in one
        round trip, no count. None when the data changed since (it is counted as usual),
        False when the page cannot be read here."""

        paging = self._template(engine, "walk", q, stmt, shaped[0])
        if paging is None:
            return None
        page_sql = (paging.sql, paging.parameters(shaped[1], shaped[2]), None)
        got = await aio.fetch(engine, [(REVISIONS_SQL, None, True), page_sql])
        if got is None:
            return False
        remember_revisions(engine, got[0])
        if self.revision()[0] != rev:
            return None
        cap = q.count_limit if q.filtered else None
        self._counts.put((id(reading_engine(engine)), rev, _query_key(q), cap), None)
        return self._keep_loop_page(q, got[1], None, spec)

    def _keep_loop_page(
        self,
        q: FeatureQuery,
        rows: Sequence[Any],
        matched: int | None,
        spec: SqliteGeojson | None = None,
    ) -> bool:
        """Keep the (id, Feature text) ``rows`` read on the loop as ``q``'s page for the
        rest of the request (on SQLite, ``spec`` finishes them first); False (nothing kept)
        when their text is too big: a page of big shapes is assembled and hashed in a
        thread."""
        # SQLite's rows rendered as (id text, Feature text); PostgreSQL's hold the Feature's
        # text as it wrote it (a box's count may follow)
        if spec is not None and not spec.renders(rows):
            raise _TextsMissing  # read again with the full spec (_prefetch_query)
        if spec is not None and not self._spec_is_current(q, spec):
            return False  # the revisions make another spec: a thread reads anew
        page = (
            RowsPage(spec, rows, matched)
            if spec is not None
            else GeojsonPage([(str(r[0]), r[1]) for r in rows], matched)
        )
        size = (
            spec.text_size(rows)
            if spec is not None
            else sum(map(len, [text for _, text in page.features]))
        )
        if size > LOOP_TEXT_LIMIT * 32:
            return False
        _read_ahead((id(self), _page_key(q)), page)
        return True

    def _spec_is_current(self, q: FeatureQuery, spec: SqliteGeojson) -> bool:
        """Whether ``spec`` (perhaps the last one built, :meth:`_loop_sqlite_spec`) is the
        one the revisions just read make: False when they changed what it depends on (a
        layer's geometry type), or when that cannot be known without reading the store."""
        try:
            return self.sqlite_geojson(q.properties, q.skip_geometry) is (spec.full or spec)
        except WouldBlock:
            return False

    def _loop_matches_first(
        self, reads: Engine, rev: int, q: FeatureQuery, matched: int | None
    ) -> bool | None:
        """:meth:`_matches_first` from what is known without a statement: None when it
        needs the table's count, not yet counted at this revision."""
        if matched is None or not q.filtered:
            return False
        total = self._counts.get((id(reads), rev, _query_key(FeatureQuery()), None))
        if total is _NO:
            return None
        cost = self._match_cost(reads.dialect.name, q)
        return cost is not None and _sorting_is_cheaper(cost, q, matched, total)

    def get(self, feature_id: str) -> dict[str, Any] | None:
        """One feature by primary key."""

        key = self.feature_key(feature_id)
        if key is None:
            return None
        stmt = self.__dict__.get("_get_stmt")
        if stmt is None:  # built once: SQLAlchemy memoises a statement's cache key
            idcol = self.table.c[self.id_column]
            stmt = sa.select(self.table).where(*self.scope(), idcol == sa.bindparam("_fid"))
            self.__dict__["_get_stmt"] = stmt
        with store_errors(), read_connection(self.engine()) as conn:
            row = conn.execute(stmt, {"_fid": key}).first()
        return None if row is None else self.build_features([row], None, False)[0]

    def empty_extent(self) -> tuple[float, float, float, float]:
        """The extent of a collection without features."""
        return (-180.0, -90.0, 180.0, 90.0)

    def extent(self) -> tuple[float, float, float, float]:
        """min/max of the bbox columns, computed once per data revision."""

        with store_errors():
            rev = self.revision()[0]
            key = ("extent", id(self.engine()), rev)
            got = self._cache.get(key)
            if got is _NO:
                minx, miny, maxx, maxy = (self.table.c[c] for c in self.bounds_columns)
                with read_connection(self.engine()) as conn:
                    row = conn.execute(
                        sa.select(
                            sa.func.min(minx),
                            sa.func.min(miny),
                            sa.func.max(maxx),
                            sa.func.max(maxy),
                        ).where(*self.scope())
                    ).one()
                got = self.empty_extent() if row[0] is None else tuple(float(v) for v in row)
                self._cache.put(key, got)
        return got  # type: ignore[no-any-return]

    def property_names(self) -> list[str]:
        """The properties features carry (subclasses list them)."""
        return [q.name for q in self.queryables()]

    def property_values(self, name: str) -> np.ndarray:
        """A bounded sample of a property's values (for describing it in schemas).

        The first :attr:`property_sample_size` features by id, plus a ``None`` when some
        feature beyond the sample lacks the value (so "nullable" stays right); not every
        value of a big table.
        """

        with store_errors():
            rev = self.revision()[0]
            key = ("sample", id(self.engine()), rev)
            sample = self._cache.get(key)
            if sample is _NO:
                idcol = self.table.c[self.id_column]
                with read_connection(self.engine()) as conn:
                    rows = list(
                        conn.execute(
                            sa.select(*self._columns(True))
                            .where(*self.scope())
                            .order_by(idcol)
                            .limit(self.property_sample_size)
                        )
                    )
                    nulls = self._null_columns(conn)
                feats = self.build_features(rows, None, True)
                sample = (feats, nulls)
                self._cache.put(key, sample)
        feats, nulls = sample
        values = [f["properties"].get(name) for f in feats]
        if name in nulls and None not in values:
            values.append(None)
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    def _null_columns(self, conn: Connection) -> set[str]:
        """Names of nullable columns holding a null somewhere (one aggregate query)."""
        cols = [c for c in self.table.c if c.nullable and c.name != self.wkb_column]
        if not cols:
            return set()
        row = conn.execute(
            sa.select(*(sa.func.max(sa.case((c.is_(None), 1), else_=0)) for c in cols)).where(
                *self.scope()
            )
        ).one()
        return {self.column_property(c.name) for c, v in zip(cols, row, strict=True) if v}

    def column_property(self, column: str) -> str:
        """The property a nullable column is served as (for :meth:`property_values`)."""
        return column


def _box_matched(rows: Sequence[Any], q: FeatureQuery, cap: int | None) -> int | None:
    """``numberMatched`` of a box page read with its count (:meth:`SqlCollection.
    _box_counted_statement`, each row ending in the count or NULL): a page that comes up
    short (NULL) holds the last matches, so offset + its rows; none at all at offset 0, 0."""
    n = q.offset + len(rows) if not rows or rows[0][-1] is None else int(rows[0][-1])
    return None if cap and n > cap else n


def _rowids_values(q: FeatureQuery, cap: int, box: dict[str, Any]) -> dict[str, Any]:
    """The values of :meth:`SqlCollection._box_rowids_statement` for ``q``'s page of a box
    (``box``: its :func:`box_parameters`): matches listed up to the cap + 1, or the page."""
    reach = max(cap + 1, q.offset + q.limit)
    return {**box, "reach": reach, "page_limit": q.limit, "page_offset": q.offset}


def _listed_matched(rows: Sequence[Any], cap: int) -> int | None:
    """``numberMatched`` of a page of :meth:`SqlCollection._box_rowids_statement` (each row
    ending in how many were listed): None past the cap."""
    n = int(rows[0][-1]) if rows else 0
    return None if n > cap else n


def _per_values(q: FeatureQuery) -> dict[str, bool]:
    """Execution options of a query's count: a filtered one is planned for its values each
    time (see ``geo.store._plan_per_values``); the unfiltered count and the map's boxes
    keep their prepared plans. (Pages need not: :meth:`SqlCollection._matches_first`
    gives a page of few matches a shape whose generic plan PostgreSQL does not keep.)"""

    return {PLAN_PER_VALUES: True} if q.filtered else {}


def _paged(page: sa.Select[Any], q: FeatureQuery, walk: bool) -> sa.Select[Any]:
    """``page`` limited to ``q``'s page. A page that walks the table in its order has its
    LIMIT and OFFSET written into the SQL: PostgreSQL then costs a prepared statement's
    generic plan by the page it is (a LIMIT parameter it guesses at a tenth of the table,
    so it would plan the whole select again at each request, 0.5–1.7 ms for the
    intervention's properties) and keeps that plan — the walk's, whatever the filter's
    values. A page of few matches sorted first keeps them as parameters: its plan must
    follow the filter's values (see :meth:`SqlCollection._matches_first`)."""
    if walk:
        return page.limit(sa.literal(q.limit, literal_execute=True)).offset(
            sa.literal(q.offset, literal_execute=True)
        )
    return page.limit(q.limit).offset(q.offset)


def _select_key(properties: list[str] | None, skip_geometry: bool) -> tuple[Any, bool]:
    """The key of a page's select (or SQLite spec) kept for the event loop."""
    return (None if properties is None else tuple(properties), skip_geometry)


class _TextsMissing(Exception):
    """A slim page (:attr:`SqliteGeojson.slim`) holds a row without its kept text."""


def _unary_plus(expr: Any) -> Any:
    return UnaryExpression(expr, operator=custom_op("+"))


def _sorting_is_cheaper(cost: float, q: FeatureQuery, matched: int, total: int) -> bool:
    """:meth:`SqlCollection._matches_first`'s rule: visiting ``matched`` rows found through
    the filter (each ``cost`` times a walked row) beats walking ``(offset + limit) ·
    total / matched`` rows in the page's order."""
    return cost * matched * matched < (q.offset + q.limit) * max(total, 1)


def plain_box(q: FeatureQuery) -> tuple[float, float, float, float] | None:
    """The bounds of a query that is a rectangle and nothing else (no filter, no sorting) —
    a web map's request, answered by prepared statements; None for any other query."""
    if q.bbox is None or q.filter is not None or q.properties_eq or q.sortby:
        return None
    if q.datetime_range is not None:
        return None
    if getattr(q.bbox, "rectangle", False):
        x0, y0, x1, y1 = q.bbox
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None
    area = area_of(q.bbox)
    if shapely.get_type_id(area) != 3 or shapely.get_num_coordinates(area) != 5:
        return None
    x0, y0, x1, y1 = area.bounds
    if not (x0 < x1 and y0 < y1) or not area.equals(shapely.box(x0, y0, x1, y1)):
        return None
    return (x0, y0, x1, y1)


def _query_key(q: FeatureQuery) -> tuple[Any, ...]:
    """What selects the features of a query (not its page, order or properties): the key
    of its memoised count."""

    def default(v: Any) -> Any:
        if isinstance(v, BaseGeometry):
            return shapely.to_wkb(v, hex=True)
        raise TypeError

    bbox = None if q.bbox is None else (tuple(q.bbox), shapely.to_wkb(area_of(q.bbox)))
    tree = None if q.filter is None else orjson.dumps(q.filter.tree, default=default)
    return (bbox, tuple(sorted(q.properties_eq.items())), q.datetime_range, tree)


def _page_key(q: FeatureQuery) -> tuple[Any, ...]:
    """What makes a page of a query: its features, their order, the page, the properties."""
    props = None if q.properties is None else tuple(q.properties)
    order = tuple(q.sortby or ())
    return ("page", _query_key(q), order, q.limit, q.offset, props, q.skip_geometry, q.count_limit)


def _properties_of(tree: Any) -> set[str]:
    out: set[str] = set()
    stack = [tree]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if "property" in n:
                out.add(str(n["property"]))
            else:
                stack.extend(n.get("args", []))
        elif isinstance(n, list):
            stack.extend(n)
    return out


def _describe(tree: Any) -> str:
    ops: set[str] = set()
    stack = [tree]
    while stack:
        n = stack.pop()
        if isinstance(n, dict) and "op" in n:
            ops.add(str(n["op"]).upper())
            stack.extend(n.get("args", []))
        elif isinstance(n, list):
            stack.extend(n)
    ops -= {"AND", "OR", "NOT"}
    return ", ".join(sorted(ops)) or "it"


def iso_text(t: datetime) -> str:
    """An instant as the services serve it: ISO 8601 in UTC with ``Z``."""
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _FilterErrors:
    """Errors the database raises while evaluating a filter (overflow, invalid geometry
    literal) become a 400 on ``filter``; outages are left to ``store_errors``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, sa.exc.DataError) or (
            isinstance(exc, sa.exc.InternalError) and "GEOS" in str(exc)
        ):
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
            raise _fail(f"the database cannot evaluate it: {detail}") from exc
        if isinstance(exc, sa.exc.OperationalError) and "user-defined function raised" in str(exc):
            raise _fail("a spatial or text function failed on this filter") from exc
        return False


def _filter_errors() -> _FilterErrors:
    return _FilterErrors()


#: Helpers under public names, for other capabilities that query with the items' filters
#: and keep results per data revision (the interventions' statistics): the LRU, its
#: "missing" marker, a query's key, and the mapping of a filter's database errors to 400s.
Lru, MISSING, query_key, filter_errors = _Lru, _NO, _query_key, _filter_errors
