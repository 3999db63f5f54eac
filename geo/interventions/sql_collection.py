"""The ``interventions`` collection answered by the store (no copy of the table in memory).

:class:`InterventionsSqlProvider` is a :class:`geo.ogc.sql.SqlCollection`: every query —
bbox, ``?name=value``, CQL2, sorting, paging, ``numberMatched`` — runs as SQL against
``interventions`` and ``intervention_comuni``; only the page's rows are read, and turned
into features by the same function the snapshot uses (``store._properties``), so a feature
reads the same whichever way it is served. A write is visible to the next read at once
(the version is the store's revision of ``interventions``) and costs no reload.

Properties in SQL:

* scalar columns as they are; ``created``/``updated`` are the timestamp columns;
  ``as_of`` an ISO date text;
* ``missions``, ``objectives``, ``drivers`` (and ``comuni_named``) are JSON arrays;
* ``comuni``, ``comuni_names``, ``zone``, ``unioni`` come from the links of
  ``intervention_comuni``: ``zone = X`` / ``A_CONTAINS(zone, ('X'))`` means "has a link to
  a comune of zone X" (the territory, 133 comuni in memory, maps values to ISTAT codes).

``?name=value`` follows the rules of :mod:`geo.interventions.collection` (aliases,
forgiving comune names, programme aliases, ``amount_min``/``amount_max``), except that a
number compares as a number (``?amount_eur=1000000`` matches 1000000.0; the in-memory
collection compared the text ``"1000000.0"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import orjson
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from geo.errors import InvalidParameter
from geo.interventions.collection import (
    ALIASES,
    COLLECTION_ID,
    LIST_PROPERTIES,
    RANGE,
    TEXT,
    TEXT_FIELDS,
    InterventionsProvider,
    _queryables,
)
from geo.interventions.model import EXTRA_COLUMNS, TOPIC
from geo.interventions.store import (
    _properties,
    get_store,
    interventions_table,
    linked_lists,
    links_table,
)
from geo.ogc.geometry import promote_to_multi
from geo.ogc.registry import Queryable
from geo.ogc.sql import (
    SQL_FALSE,
    SQL_TRUE,
    SqlCollection,
    SqliteGeojson,
    SqlProperty,
    json_list,
    pg_feature,
    pg_geojson_geometry,
    pg_json_number,
    pg_json_timestamp,
    pg_rendered,
    selected,
    sqlite_geojson,
    sqlite_json_timestamp,
    unicode_lower,
)
from geo.plan import PlanCatalogue
from geo.store import get_meta, read_connection, set_meta, transaction
from geo.territory import Territory, get_territory

#: The one geometry type of the collection (points and multi-points; see geo.ogc.geometry).
GEOMETRY_TYPE = "MultiPoint"


def link_list(name: str, values_by_code: Mapping[str, Any]) -> SqlProperty:
    """A list property computed from the intervention's links to comuni.

    ``values_by_code``: the value each comune (ISTAT code) contributes (its zone, union,
    name…); comuni absent from it contribute nothing.
    """
    it, lt = interventions_table, links_table

    def codes(values: list[Any]) -> list[str]:
        wanted = set(values)
        return sorted(c for c, v in values_by_code.items() if v in wanted)

    def linked(cs: list[str]) -> ColumnElement[bool]:
        return sa.exists(
            sa.select(sa.literal(1))
            .select_from(lt)
            .where(lt.c.intervention_id == it.c.id, lt.c.istat_code.in_(cs))
        )

    def any_in(values: list[Any]) -> ColumnElement[bool]:
        cs = codes(values)
        return linked(cs) if cs else SQL_FALSE

    def all_in(values: list[Any]) -> ColumnElement[bool]:
        others = sorted(set(values_by_code) - set(codes(values)))
        return ~linked(others) if others else SQL_TRUE

    return SqlProperty(name, "list", None, "text", any_in, all_in)


def _sql_properties(dialect: str, t: Territory) -> dict[str, SqlProperty]:
    c = interventions_table.c
    text = (
        "id",
        "title",
        "programme",
        "status",
        "period",
        "cup",
        "source_url",
        "reliability",
        "remark",
        "source",
        "precision",
        *(x for x in EXTRA_COLUMNS if x not in ("pnrr_amount_eur", "as_of")),
    )
    props: dict[str, SqlProperty] = {n: SqlProperty(n, "text", c[n]) for n in text}
    props["amount_eur"] = SqlProperty("amount_eur", "number", c.amount_eur)
    props["pnrr_amount_eur"] = SqlProperty("pnrr_amount_eur", "number", c.pnrr_amount_eur)
    props["as_of"] = SqlProperty("as_of", "date", c.as_of)
    props["created"] = SqlProperty("created", "timestamp", c.created_at)
    props["updated"] = SqlProperty("updated", "timestamp", c.updated_at)
    props["precision_note"] = SqlProperty(
        "precision_note",
        "text",
        sa.case(
            (c.precision == "comune", _properties_note("comune")),
            else_=_properties_note("exact"),
        ),
    )
    for name in ("missions", "objectives", "comuni_named"):
        props[name] = json_list(name, c[name], dialect)
    props["drivers"] = json_list("drivers", c.drivers, dialect, element="number")
    comuni = list(t.comuni.values())
    props["comuni"] = link_list("comuni", {x.istat_code: x.istat_code for x in comuni})
    props["comuni_names"] = link_list("comuni_names", {x.istat_code: x.name for x in comuni})
    props["zone"] = link_list("zone", {x.istat_code: x.zona_id for x in comuni})
    props["unioni"] = link_list(
        "unioni", {x.istat_code: x.unione_id for x in comuni if x.unione_id}
    )
    for alias, name in ALIASES.items():
        props[alias] = props[name]
    return props


def _fake_row(precision: str) -> SimpleNamespace:
    """A row with every column, for reading what ``store._properties`` makes of it."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {col.name: None for col in interventions_table.c}
    for name in ("missions", "objectives", "drivers", "comuni", "comuni_named"):
        values[name] = []
    values.update(precision=precision, created_at=now, updated_at=now)
    return SimpleNamespace(**values)


def _properties_note(precision: str) -> str:
    return _properties(_fake_row(precision), get_territory())["precision_note"]


#: The lists computed from an intervention's comuni: (property, column of territory_comuni).
_LINKED = (
    ("comuni", "istat_code"), ("comuni_names", "name"),
    ("zone", "zona_id"), ("unioni", "unione_id"),
)  # fmt: skip


def _linked_aggregate(column: str) -> str:
    """PostgreSQL: the JSON list of ``column`` of the intervention's comuni known to the
    territory (``territory_comuni``, see geo.territory.mirror) — codes and names in the
    stored order, zones and unions sorted and each once, as
    :func:`geo.interventions.store._properties` makes them — an aggregate over
    :data:`_LINKED_FROM`."""
    if column in ("istat_code", "name"):
        agg = f"array_agg(tc.{column} ORDER BY e.ord)"
    else:
        agg = f"array_agg(DISTINCT tc.{column} ORDER BY tc.{column})"
        agg += f" FILTER (WHERE tc.{column} IS NOT NULL)"
    return f"coalesce(array_to_json({agg})::text, '[]')"


#: The rows the lists of :data:`_LINKED` aggregate: the intervention's comuni, in order.
_LINKED_FROM = (
    " FROM json_array_elements_text(interventions.comuni) WITH ORDINALITY AS e(code, ord)"
    " JOIN territory_comuni AS tc ON tc.istat_code = e.code"
)


#: Members of :data:`_LINKED` by (territory version, stored ``comuni`` text): most
#: interventions share a few lists (one comune, mostly); bounded, cleared when full.
_LINKED_MEMO: dict[tuple[str, str], tuple[str, ...]] = {}
_LINKED_MEMO_SIZE = 4096


def _linked_member(index: int) -> Callable[[str], str]:
    """SQLite pages: the formatter of the ``index``-th list of :data:`_LINKED` from the
    stored ``comuni`` JSON text (:func:`geo.interventions.store.linked_lists`)."""

    def member(text: str) -> str:
        t = get_territory()
        key = (t.version, text)
        got = _LINKED_MEMO.get(key)
        if got is None:
            lists = linked_lists(orjson.loads(text), t)
            got = tuple(
                orjson.dumps(name).decode() + ":" + orjson.dumps(values).decode()
                for (name, _), values in zip(_LINKED, lists, strict=True)
            )
            if len(_LINKED_MEMO) >= _LINKED_MEMO_SIZE:
                _LINKED_MEMO.clear()
            _LINKED_MEMO[key] = got
        return got[index]

    return member


def properties_sql(engine: Engine, names: Sequence[str]) -> str:
    """PostgreSQL: the SQL of an intervention's properties ``names`` as JSON text, as
    :func:`geo.interventions.store._properties` makes them. One row_to_json (escaping and
    joining in C): JSON columns and the values formatted here as JSON text (floats as
    orjson writes them, instants with Z, the lists of the comuni) go in as JSON, the
    others as JSON strings."""
    c = interventions_table.c
    values: dict[str, Any] = {}
    linked = any(name in names for name, _ in _LINKED)
    for name, column in _LINKED:
        values[name] = sa.literal_column(f"({_linked_aggregate(column)})::json")
    for name in ("amount_eur", "pnrr_amount_eur"):
        values[name] = sa.cast(pg_json_number(c[name]), sa.JSON)
    values["created"] = sa.cast(pg_json_timestamp(c.created_at), sa.JSON)
    values["updated"] = sa.cast(pg_json_timestamp(c.updated_at), sa.JSON)
    values["precision_note"] = sa.case(
        (c.precision == "comune", _properties_note("comune")),
        else_=_properties_note("exact"),
    )
    columns = ", ".join(
        f'{pg_rendered(values[n] if n in values else c[n], engine).name} AS "{n}"' for n in names
    )
    # One aggregate over the row's comuni when a list of them is asked for: one
    # subquery per row, evaluated for the page's rows only (after ORDER BY and LIMIT).
    rows = f"SELECT {columns}{_LINKED_FROM if linked else ''}"
    return f"(SELECT row_to_json(p)::text FROM ({rows}) AS p)"


#: ``store_meta``: what the properties kept in ``interventions.properties_json`` were made
#: by (a digest of their SQL and the territory's version).
LAYOUT_KEY = "interventions_properties_layout"
_layouts: set[tuple[int, str]] = set()
_layout_lock = threading.Lock()


def _layout(sql: str) -> str:
    return hashlib.blake2b(f"{sql}\n{get_territory().version}".encode(), digest_size=12).hexdigest()


_kept_sql: dict[tuple[int, str], tuple[str, str]] = {}


#: SQLite: the version of the Python half of a page's properties (``SqliteGeojson``'s
#: members, ``float_member``, ``_linked_member``), part of the layout: change it with them.
SQLITE_RENDER = "sqlite-members-1"


def _kept(engine: Engine) -> tuple[str, str]:
    """(the SQL of all the properties, its layout) for ``engine``, per territory version.
    SQLite: the SQL of the select whose rows Python turns into the properties' text."""
    key = (id(engine), get_territory().version)
    got = _kept_sql.get(key)
    if got is None:
        if engine.dialect.name == "sqlite":
            select = _keeping_spec().select
            sql = f"{select.compile(dialect=engine.dialect)}\n{SQLITE_RENDER}"
        else:
            sql = properties_sql(engine, _all_names())
        got = _kept_sql[key] = (sql, _layout(sql))
    return got


def kept_here(engine: Engine) -> bool:
    """Whether this process checked the layout of the kept properties on ``engine`` (its
    writes then keep texts that its pages send)."""
    return (id(engine), _kept(engine)[1]) in _layouts


def ensure_properties_layout(engine: Engine) -> None:
    """Make ``interventions.properties_json`` (migration 0011) trustworthy for this process.

    PostgreSQL: its texts are written by a trigger (:data:`TRIGGER`, BEFORE INSERT or
    UPDATE of any other column) running the very SQL of a page. SQLite: the write keeps the
    text of each row it wrote (:func:`keep_sqlite_properties`: the page's select and its
    Python half), and a trigger sets it to NULL when anything else updates a row (another
    program editing the file). When that SQL or the territory (names, zones, unions) differs
    from the layout recorded in ``store_meta``, the trigger is replaced and every text set
    to NULL (pages build them, as before, until the rows are written again). Once per
    process and layout; not within a write transaction (it writes on its own connection)."""
    if engine.dialect.name not in ("postgresql", "sqlite"):
        return
    from geo.territory.mirror import ensure_mirror

    sql, layout = _kept(engine)
    key = (id(engine), layout)
    if key in _layouts:
        return
    with _layout_lock:
        if key in _layouts:
            return
        if engine.dialect.name == "postgresql":
            ensure_mirror(engine)
        with read_connection(engine) as conn:
            current = get_meta(conn, LAYOUT_KEY)
        if current != layout:
            c = interventions_table.c
            with transaction(engine) as conn:
                if engine.dialect.name == "postgresql":
                    _install_trigger(conn, sql)
                else:
                    _install_sqlite_trigger(conn)
                conn.execute(  # sets no other column: the trigger does not fire
                    interventions_table.update()
                    .where(c.properties_json.is_not(None))
                    .values(properties_json=None)
                )
                set_meta(conn, LAYOUT_KEY, layout)
        _layouts.add(key)


def _install_sqlite_trigger(conn: Connection) -> None:
    """(Re)create :data:`TRIGGER` on SQLite: an update of any other column of a row that
    keeps a text clears it (the service's own writes clear it themselves, then keep the
    new one)."""
    columns = ", ".join(c.name for c in interventions_table.columns if c.name != "properties_json")
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    conn.exec_driver_sql(
        f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF {columns} ON interventions FOR EACH ROW "
        "WHEN NEW.properties_json IS NOT NULL BEGIN "
        "UPDATE interventions SET properties_json = NULL WHERE rowid = NEW.rowid; END"
    )


def keep_sqlite_properties(conn: Connection, ids: Sequence[str]) -> None:
    """SQLite, in the writing transaction: keep the properties' text of the rows ``ids``
    just written, made by a page's own select and Python half (one read and one update
    per 500 rows), when this process checked the layout (else they stay NULL: built by
    the pages)."""
    if conn.dialect.name != "sqlite" or not ids or not kept_here(conn.engine):
        return
    c = interventions_table.c
    spec = _keeping_spec()
    keep = "UPDATE interventions SET properties_json = ? WHERE id = ?"  # 35 % less than Core's
    for k in range(0, len(ids), 500):
        rows = conn.execute(spec.select.where(c.id.in_(ids[k : k + 500]))).all()
        conn.exec_driver_sql(keep, [(text, fid) for fid, text in spec.properties_texts(rows)])


def keep_all_properties(
    engine: Engine, progress: Callable[[int], None] | None = None, chunk: int = 2_000
) -> int:
    """Keep the properties' text of every intervention that has none (rows written before
    migration 0011 or before this store kept texts, or after the territory changed): pages
    build those per request until then. ``chunk`` rows per transaction, in key order, so
    writers wait at most one chunk; the texts are the bytes a page builds, so no revision
    changes (ETags stay valid). Returns how many rows it wrote."""
    ensure_properties_layout(engine)
    c = interventions_table.c
    last, done = "", 0
    while True:
        with read_connection(engine) as conn:
            ids = list(
                conn.execute(
                    sa.select(c.id)
                    .where(c.properties_json.is_(None), c.id > last)
                    .order_by(c.id)
                    .limit(chunk)
                ).scalars()
            )
        if not ids:
            return done
        with transaction(engine) as conn:
            if conn.dialect.name == "sqlite":
                keep_sqlite_properties(conn, ids)
            else:  # the trigger's SQL over each row; only this column set: it does not fire
                text = sa.literal_column(_kept(engine)[0])
                conn.execute(
                    interventions_table.update()
                    .where(c.id.in_(ids), c.properties_json.is_(None))
                    .values(properties_json=text)
                )
        last, done = ids[-1], done + len(ids)
        if progress:
            progress(len(ids))


#: The trigger (and its function) that keeps ``interventions.properties_json``.
TRIGGER = "cmm_interventions_properties"


def _install_trigger(conn: Connection, sql: str) -> None:
    """(Re)create :data:`TRIGGER` in the store's schema: ``sql`` (the page's properties,
    over ``interventions``) evaluated over the row being written. One row's text costs
    what a page spends on it, once per write instead of once per read; a second UPDATE
    of the written rows instead cost ~180 µs a row (a new version of each, its generated
    geometry columns computed again)."""
    columns = ", ".join(c.name for c in interventions_table.columns if c.name != "properties_json")
    body = (
        f"BEGIN SELECT {sql} INTO NEW.properties_json FROM (SELECT NEW.*) AS interventions; "
        "RETURN NEW; END"
    )
    driver = conn.connection.driver_connection  # no parameters: the SQL's % stay as they are
    driver.execute(  # type: ignore[union-attr]
        f"CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $cmm_geo${body}$cmm_geo$"
    )
    driver.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON interventions")  # type: ignore[union-attr]
    driver.execute(  # type: ignore[union-attr]
        f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OF {columns} ON interventions "
        f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
    )


def _all_names() -> list[str]:
    return list(_properties(_fake_row("exact"), get_territory()))


def _sqlite_spec(names: list[str], skip_geometry: bool, kept: Any | None = None) -> SqliteGeojson:
    """The SQLite page of the properties ``names`` (see ``sqlite_geojson``)."""
    c = interventions_table.c
    values: dict[str, tuple[Any, Any]] = {}
    for i, (name, _column) in enumerate(_LINKED):
        values[name] = (sa.cast(c.comuni, sa.Text), _linked_member(i))
    for name in ("missions", "objectives", "drivers", "comuni_named"):
        values[name] = (c[name], "json")
    for name in ("amount_eur", "pnrr_amount_eur"):
        values[name] = (c[name], "float")
    values["created"] = (sqlite_json_timestamp(c.created_at), "value")
    values["updated"] = (sqlite_json_timestamp(c.updated_at), "value")
    values["precision_note"] = (
        sa.case(
            (c.precision == "comune", _properties_note("comune")),
            else_=_properties_note("exact"),
        ),
        "value",
    )
    members = [(n, *(values[n] if n in values else (c[n], "value"))) for n in names]
    return sqlite_geojson(
        interventions_table,
        c.id,
        members,
        None if skip_geometry else c.geometry_wkb,
        GEOMETRY_TYPE,
        c.geometry_json,
        kept,
    )


_keeping_specs: dict[str, SqliteGeojson] = {}


def _keeping_spec() -> SqliteGeojson:
    """SQLite: the select and Python half that make the kept properties' text (every
    property, no geometry), built once per territory version, not per write."""
    version = get_territory().version
    spec = _keeping_specs.get(version)
    if spec is None:
        spec = _keeping_specs[version] = _sqlite_spec(_all_names(), skip_geometry=True)
    return spec


def text_condition(value: str, dialect: str) -> ColumnElement[bool]:
    """``?text=``: the title, CUP or implementing body contains ``value`` in any case
    (``instr``/``strpos`` of the lower-cased texts: no LIKE, so ``%`` and ``_`` are plain
    characters); an empty search matches everything, as in memory."""
    needle = value.strip().lower()
    find = sa.func.strpos if dialect == "postgresql" else sa.func.instr
    return sa.or_(
        *(
            find(unicode_lower(interventions_table.c[name], dialect), needle) > 0
            for name in TEXT_FIELDS
        )
    )


class InterventionsSqlProvider(SqlCollection):
    """Interventions from the store, every query run there (see the module docstring)."""

    id = COLLECTION_ID
    title = InterventionsProvider.title
    description = InterventionsProvider.description
    keywords = InterventionsProvider.keywords
    translations = InterventionsProvider.translations
    geometry_type = GEOMETRY_TYPE
    license = None
    table = interventions_table
    topic = TOPIC
    rtree = "rtree_interventions_geom"
    extra_parameters = InterventionsProvider.extra_parameters
    #: Their columns' indexes carry the id (migration 0014).
    indexed_properties = frozenset(
        {"programme", "cup", "source", "component", "submeasure", "status", "amount_eur",
         "pnrr_amount_eur", "as_of", "created", "updated"}
    )  # fmt: skip
    #: … and on ``(id, column)`` too, on SQLite (migration 0015).
    walked_properties: ClassVar[Mapping[str, frozenset[str]]] = {
        "sqlite": frozenset({"amount_eur", "pnrr_amount_eur"})
    }

    #: What vector tiles carry (styling and identify; the API has the rest).
    tile_geometries = ((99, "geom_3857"),)  # points: nothing to simplify
    tile_properties = (
        "title", "programme", "status", "amount_eur", "pnrr_amount_eur", "source",
        "precision", "cup", "reliability", "period",
    )  # fmt: skip

    def __init__(self, engine: Engine | None = None) -> None:
        super().__init__(engine)

    def engine(self) -> Engine:
        """The store, with the documented interventions seeded once."""
        return get_store(self._engine)

    def sql_properties(self, dialect: str) -> dict[str, SqlProperty]:
        """Columns, JSON lists and link-derived lists (aliases included)."""
        return _sql_properties(dialect, get_territory())

    def property_alias(self, name: str) -> str:
        """``comune`` → ``comuni`` and the other singular aliases."""
        return ALIASES.get(name, name)

    def queryables(self) -> list[Queryable]:
        """As the in-memory collection declares them (geo.interventions.collection)."""
        return _queryables()

    def property_names(self) -> list[str]:
        """The properties every feature carries, in order."""
        return _all_names()

    def version(self) -> str:
        """The store's revision of the interventions, and the territory's version."""
        return f"{super().version()}-{get_territory().version}"

    def empty_extent(self) -> tuple[float, float, float, float]:
        """The metropolitan city, while there are no interventions."""
        return tuple(float(v) for v in shapely.total_bounds(get_territory().geometries))  # type: ignore[return-value]

    def property_condition(
        self, name: str, value: str, props: Mapping[str, SqlProperty]
    ) -> ColumnElement[bool]:
        """``?name=value`` (rules in geo.interventions.collection)."""
        key = name
        name = ALIASES.get(name, name)
        if name == TEXT:
            return text_condition(value, self.engine().dialect.name)
        if name in RANGE:
            try:
                limit = float(value)
            except ValueError:
                raise InvalidParameter(key, f"not a number: {value!r}") from None
            if limit != limit:  # NaN: no amount compares with it
                return SQL_FALSE
            amount = interventions_table.c.amount_eur
            return amount >= limit if name == "amount_min" else amount <= limit
        if name in LIST_PROPERTIES:
            wanted = InterventionsProvider._normalise(name, value)
            prop = props[name]
            assert prop.any_in is not None
            if prop.element == "number":
                return prop.any_in([float(wanted)]) if isinstance(wanted, int) else SQL_FALSE
            return prop.any_in([wanted]) if isinstance(wanted, str) else SQL_FALSE
        if name == "programme":
            with contextlib.suppress(KeyError):
                value = PlanCatalogue.load().programme(value).name
        return super().property_condition(name, value, props)

    def geojson_select(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> sa.Select[Any] | None:
        """(id, Feature text) per row, encoded by PostgreSQL: the stored columns as they are,
        ``comuni``/``comuni_names``/``zone``/``unioni`` from the comuni mirrored in the store
        (``geo.territory.mirror``), as :func:`geo.interventions.store._properties` makes
        them (unknown codes dropped, zones and unions sorted, each once)."""
        ensure_properties_layout(self.engine())  # and the comuni mirrored for the joins
        key = ("geojson", tuple(properties) if properties is not None else None, skip_geometry)
        return self._cache.built(key, lambda: self._geojson_select(properties, skip_geometry))  # type: ignore[no-any-return]

    def _geojson_select(self, properties: list[str] | None, skip_geometry: bool) -> sa.Select[Any]:
        engine = self.engine()
        c = interventions_table.c
        if properties is None:  # all of them: kept with the row since its last write
            sql = _kept(engine)[0]
            props: Any = sa.func.coalesce(c.properties_json, sa.literal_column(sql))
        else:
            names = selected(self.property_names(), properties)
            props = sa.literal_column(properties_sql(engine, names))
        geometry = (
            sa.literal("null", sa.Text)
            if skip_geometry
            else pg_geojson_geometry(
                sa.literal_column("interventions.geom"), GEOMETRY_TYPE, c.geometry_json
            )
        )
        feature = pg_rendered(pg_feature(c.id, geometry, props), engine)
        return sa.select(c.id, feature).select_from(interventions_table)

    def sqlite_geojson(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> SqliteGeojson | None:
        """The page encoded by SQLite (``json_object``) and Python (floats, geometries, the
        lists of the comuni: :func:`_linked_member`), as
        :func:`geo.interventions.store._properties` makes the properties."""
        ensure_properties_layout(self.engine())
        key = ("sqlite", tuple(properties) if properties is not None else None, skip_geometry)
        return self._cache.built(key, lambda: self._sqlite_geojson(properties, skip_geometry))  # type: ignore[no-any-return]

    def _sqlite_geojson(self, properties: list[str] | None, skip_geometry: bool) -> SqliteGeojson:
        names = selected(self.property_names(), properties)
        # All of them: the text kept with the row since its last write, where there is one.
        kept = interventions_table.c.properties_json if properties is None else None
        return _sqlite_spec(names, skip_geometry, kept)

    def build_features(
        self, rows: Sequence[Any], properties: list[str] | None, skip_geometry: bool
    ) -> list[dict[str, Any]]:
        """Features of rows of ``interventions`` (properties as the snapshot makes them)."""
        t = get_territory()
        if skip_geometry or not rows:
            geoms = np.full(len(rows), None, dtype=object)
        else:
            decoded = shapely.from_wkb([r.geometry_wkb for r in rows])
            geoms, _ = promote_to_multi(list(decoded), GEOMETRY_TYPE)
        out = []
        for r, g in zip(rows, geoms, strict=True):
            props = _properties(r, t)
            if properties is not None:
                props = {k: props[k] for k in properties if k in props}
            out.append({"type": "Feature", "id": r.id, "geometry": g, "properties": props})
        return out
