"""The store: one relational database for everything the service writes.

By default an embedded SQLite file, ``$CMM_GEO_DATA_DIR/cmm_geo.sqlite``, created on
first use (WAL journal, foreign keys on) — nothing to start. When
``CMM_GEO_DATABASE_URL`` points to PostgreSQL + PostGIS
(``postgresql+psycopg://user@host/db``) the same schema lives there. The behaviour is
the same on both backends: geometries are stored as WKB plus bbox columns
(``minx, miny, maxx, maxy``, indexed), and exact spatial predicates are evaluated with
shapely. On PostgreSQL every table with a ``geometry_wkb`` column also gets a generated
``geom geometry(Geometry, 4326)`` column with a GIST index, for QGIS and SQL users.

Usage::

    from geo.store import get_engine, transaction

    engine = get_engine()                # migrated to the latest revision
    with transaction() as conn:          # one transaction: commit, or rollback on error
        conn.execute(sa.text("SELECT 1"))

Schema changes are **alembic migrations** shipped in ``geo/store/migrations/versions``; they run
programmatically on first use of an engine (:func:`migrate`), never as ad-hoc DDL.
To add tables (e.g. green-network layers):

1. add ``geo/store/migrations/versions/NNNN_<what>.py`` with ``revision = "NNNN_<what>"`` and
   ``down_revision`` = the current head (see ``cmm-geo db heads`` or the newest file);
2. write ``upgrade()``/``downgrade()`` with ``op.create_table`` etc.; for a geometry
   table call :func:`geo.store.migrations.helpers.add_postgis_geom` (a no-op on SQLite);
3. describe the table in :data:`metadata` (SQLAlchemy Core) or in your own module.

``store_meta`` holds key/value facts (e.g. seeding markers); :func:`bump_revision` and
:func:`revision` give a change counter per topic, for caches and ETags across processes.

Outages: on PostgreSQL a connection attempt gives up after ``db_connect_timeout_s``, the
server cancels a statement after ``request_timeout_s`` (``statement_timeout``) and the client
drops a connection whose server stays silent longer than that (a hung server never answers
a cancel). After a failure, new connections fail fast for ``db_connect_timeout_s`` instead
of piling up. :func:`get_engine` migrates lazily and retries on the next call, so the
service starts without its database; :func:`unavailable` is the one place that decides
that an error means "the database is unavailable" (a 503 with ``Retry-After``).
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo.errors import ServiceUnavailable
from geo.settings import get_settings

log = logging.getLogger("cmm_geo.store")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

metadata = sa.MetaData()

#: Key/value facts about the store (seeding markers, change counters).
store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Fast JSON for the JSON columns (same text on both backends).
_JSON = {"json_serializer": lambda o: orjson.dumps(o).decode(), "json_deserializer": orjson.loads}

_engines: dict[tuple[str, str | None], Engine] = {}
#: (url, schema) of each engine :func:`get_engine` made, and the replica engines of reads.
_engine_keys: dict[int, tuple[str, str | None]] = {}
_replicas: dict[tuple[str, str | None], Engine] = {}
_migrated: set[tuple[str, str | None]] = set()
_lock = threading.Lock()


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)


def is_postgres(engine: Engine | Connection) -> bool:
    """True when the backend is PostgreSQL."""
    return engine.dialect.name == "postgresql"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for writes: a writer takes the write lock up front and waits for it
    (busy timeout) instead of failing with "database is locked" when it upgrades a read
    lock; other transactions stay deferred so they never wait for writers (WAL). The
    connections of :func:`read_connection` begin none: each statement is its own
    transaction, as in autocommit on PostgreSQL."""
    options = conn.get_execution_options()
    if options.get(READ_OPTION, False):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN")


#: Execution option marking a connection whose transactions write (see :func:`transaction`).
WRITE_OPTION = "cmm_geo_write"
#: Execution option of SQLite's read connections: no BEGIN (see :func:`reading_engine`).
READ_OPTION = "cmm_geo_read"
#: Execution option of a statement PostgreSQL must plan for its values each time, never
#: from a prepared statement's generic plan (see :func:`_plan_per_values`).
PLAN_PER_VALUES = "cmm_geo_plan_per_values"


def create_store_engine(url: str, *, schema: str | None = None) -> Engine:
    """A new engine for ``url`` (not migrated). ``schema``: PostgreSQL schema to work in."""
    engine = _new_engine(url, schema=schema)
    if schema and is_postgres(engine):
        _ensure_schema(engine, schema)
    return engine


def _new_engine(url: str, *, schema: str | None = None) -> Engine:
    """The engine of ``url``, without touching the database (creating it never fails)."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        settings = get_settings()
        # As many pooled connections as requests served at once, as on PostgreSQL: with
        # SQLAlchemy's default (5), the other concurrent reads each opened a connection
        # (4 PRAGMAs and a parse of the schema on its first statement) and closed it again.
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.request_timeout_s,
            **_JSON,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy emit BEGIN itself so transactions are real (pysqlite quirk).
        sa.event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    settings = get_settings()
    options = [
        f"-cstatement_timeout={int(settings.request_timeout_s * 1000)}",
        # Short queries: a parallel worker's start costs more than it saves (see Settings).
        f"-cmax_parallel_workers_per_gather={settings.db_parallel_workers}",
    ]
    if schema:
        options.insert(0, f"-csearch_path={schema},public")
    given = sa.engine.make_url(url).query.get("options")  # e.g. ?options=-csearch_path%3Dx
    if given:  # connect_args would replace it: keep it, ahead of ours
        options[:0] = [given] if isinstance(given, str) else list(given)
    connect_args = {
        "options": " ".join(options),
        # libpq counts whole seconds (and psycopg at least 2).
        "connect_timeout": max(1, math.ceil(settings.db_connect_timeout_s)),
    }
    engine = sa.create_engine(
        url,
        pool_timeout=settings.request_timeout_s,  # waiting for a free connection
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args=connect_args,
        **_JSON,
    )
    engine.__dict__["cmm_connect_args"] = connect_args  # the event loop's reads connect alike
    _ping_when_idle(engine)
    if engine.dialect.driver == "psycopg":
        sa.event.listen(engine, "do_execute", _plan_per_values)
        _install_deadlines(engine, settings.db_connect_timeout_s, settings.request_timeout_s)
    return engine


def _plan_per_values(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
    """Run a statement marked :data:`PLAN_PER_VALUES` unprepared, so PostgreSQL plans it
    for the values it gets. psycopg prepares a statement after five runs, and PostgreSQL
    may then keep a generic plan, made without the values: for a filter's range
    (``amount_eur > X``) it guesses that a third of the table matches, and counts by
    scanning the table, which costs the whole table when X leaves a hundred rows (60-200
    ms under load at 100 k rows, against 0.1 ms through the index). Planning each time
    costs a fraction of a millisecond."""
    if context is None or not context.execution_options.get(PLAN_PER_VALUES, False):
        return None
    cursor.execute(statement, parameters, prepare=False)
    return True


#: A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Replace a connection broken by an outage before it is used, at the cost of a round
    trip only when it sat idle in the pool (``pool_pre_ping`` would ping on every checkout:
    a round trip per request). A connection that breaks within the second after its last
    use fails that one request with a 503 and is discarded (SQLAlchemy invalidates it)."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["cmm_geo_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.get("cmm_geo_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception:  # any failure means "do not use it"
            alive = False
        if not alive:
            raise sa.exc.DisconnectionError("stale connection")


def _ensure_schema(engine: Engine, schema: str) -> None:
    with transaction(engine) as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


# ----- outages: deadlines, fail-fast, and what counts as "unavailable" ----------------------


class _Breaker:
    """Remembers a recent connection failure so that callers fail fast for ``cooldown_s``."""

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.failed_at: float | None = None

    def check(self) -> None:
        """Raise (a DB-API OperationalError) while a recent failure is cooling down."""
        import psycopg

        at = self.failed_at
        if at is not None and time.monotonic() - at < self.cooldown_s:
            raise psycopg.OperationalError(
                "database unavailable: a connection failed moments ago (failing fast)"
            )

    def failed(self) -> None:
        self.failed_at = time.monotonic()

    def ok(self) -> None:
        self.failed_at = None


def _install_deadlines(engine: Engine, connect_s: float, statement_s: float) -> None:
    """Connect with a client-side deadline on every exchange, and fail fast after a failure.

    The server's ``statement_timeout`` covers slow queries; this covers a server that stops
    answering at all (hung, paused, network black hole), where no cancel would arrive.
    """
    import psycopg

    breaker = _Breaker(connect_s)
    idle_s = statement_s + max(1.0, connect_s)  # after the server's own statement_timeout

    class DeadlineConnection(psycopg.Connection):  # type: ignore[type-arg]
        """A psycopg connection that gives up when the server stays silent too long."""

        idle_timeout: float | None = idle_s

        def wait(self, gen, interval=None, timeout=None):  # type: ignore[no-untyped-def]
            if timeout is not None or self.idle_timeout is None:
                kw = {} if interval is None else {"interval": interval}
                return super().wait(gen, timeout=timeout, **kw)
            try:
                return _wait_idle(gen, self.pgconn.socket, self.idle_timeout, self)
            except TimeoutError:
                breaker.failed()
                self.pgconn.finish()  # the protocol state is unknown: never reuse it
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.idle_timeout:g} s"
                ) from None

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):  # type: ignore[no-untyped-def]
        breaker.check()
        try:
            conn = DeadlineConnection.connect(*cargs, **cparams)
        except psycopg.OperationalError:
            breaker.failed()
            raise
        breaker.ok()
        return conn

    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection) -> bool:  # type: ignore[no-untyped-def]
        """A ping waits no longer than a connection attempt would."""
        previous = getattr(dbapi_connection, "idle_timeout", None)
        if previous is not None:
            dbapi_connection.idle_timeout = max(1.0, connect_s)
        try:
            return ping(dbapi_connection)
        finally:
            if previous is not None:
                dbapi_connection.idle_timeout = previous

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


#: Set by whoever started the current request's work when its client has gone
#: (``abandon_on``): the query the thread is waiting for is then cancelled.
_ABANDON: ContextVar[threading.Event | None] = ContextVar("cmm_geo_abandon", default=None)
#: How often a wait looks at the abandon event (only waits that have one).
_ABANDON_CHECK_S = 0.1


@contextmanager
def abandon_on(event: threading.Event) -> Iterator[None]:
    """Within: a PostgreSQL statement still running when ``event`` is set is cancelled (the
    server stops it and it raises ``QueryCanceled``), e.g. when the HTTP client has gone."""
    token = _ABANDON.set(event)
    try:
        yield
    finally:
        _ABANDON.reset(token)


def _wait_idle(gen, fileno: int, idle_s: float, conn=None):  # type: ignore[no-untyped-def]
    """Drive a psycopg generator like ``psycopg.waiting.wait_poll``, but raise TimeoutError
    when the socket stays silent for ``idle_s`` (a total deadline would cut long imports),
    and cancel the statement when the request's abandon event is set (see ``abandon_on``)."""
    from psycopg import OperationalError
    from psycopg.waiting import READY_R, READY_W, WAIT_R, WAIT_W

    poll = select.poll()
    bad = select.POLLERR | select.POLLHUP | select.POLLNVAL
    abandon = _ABANDON.get() if conn is not None else None
    slice_ms = int((_ABANDON_CHECK_S if abandon is not None else idle_s) * 1000)
    try:
        s = next(gen)
        while True:
            mask = (select.POLLIN if s & WAIT_R else 0) | (select.POLLOUT if s & WAIT_W else 0)
            poll.register(fileno, mask)
            silent_since = time.monotonic()
            while True:
                events = poll.poll(slice_ms)
                if events:
                    break
                if abandon is not None and abandon.is_set():
                    abandon = None  # once: then wait for the server's "canceled" answer
                    slice_ms = int(idle_s * 1000)
                    conn.cancel_safe(timeout=max(1.0, min(idle_s, 5.0)))
                if time.monotonic() - silent_since >= idle_s:
                    break
            poll.unregister(fileno)
            if not events:
                raise TimeoutError
            ev = events[0][1]
            ready = (READY_R if ev & select.POLLIN else 0) | (READY_W if ev & select.POLLOUT else 0)
            if not ready:
                if ev & bad:
                    raise OperationalError("connection socket closed")
                continue
            s = gen.send(ready)
    except StopIteration as stop:
        return stop.value


_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 to answer when ``exc`` means the database is unreachable, hung or too slow.

    The one place that decides it: connection failures, disconnects, statement timeouts
    (``QueryCanceled``), a full pool. None for anything else (e.g. an integrity error, a bug).
    """
    if isinstance(exc, ServiceUnavailable):
        return exc
    orig = getattr(exc, "orig", None)
    invalidated = isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    if not (isinstance(exc, _DOWN) or invalidated or _is_dbapi_down(exc)):
        return None
    settings = get_settings()
    text = str(orig if orig is not None else exc).lower()
    if "canceling statement due to statement timeout" in text or "did not answer" in text:
        why = (
            f"a query took longer than {settings.request_timeout_s:g} s (CMM_GEO_REQUEST_TIMEOUT_S)"
        )
    elif isinstance(exc, sa.exc.TimeoutError):
        why = "every database connection is busy"
    else:
        why = "it cannot be reached"
    _log_outage(str(orig if orig is not None else exc))
    return ServiceUnavailable(
        f"the database is unavailable ({why}); retry later",
        retry_after=max(1, math.ceil(settings.db_connect_timeout_s)),
    )


_last_logged = 0.0


def _log_outage(detail: str) -> None:
    """One warning per 10 s at most: an outage fails every request, the log need not."""
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= 10.0:
        _last_logged = now
        log.warning("database unavailable: %s", detail[:300])


def _is_dbapi_down(exc: BaseException) -> bool:
    """A raw DB-API error (not wrapped by SQLAlchemy) that means the database is down."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class _StoreErrors:
    """:func:`store_errors`: a plain context manager, not a generator's (entered several
    times a request, by every data version and date asked for)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if not isinstance(exc, Exception):
            return False  # none, or not an error (a cancel, an exit): as it is
        err = unavailable(exc)
        if err is None or err is exc:
            return False
        raise err from exc


_STORE_ERRORS = _StoreErrors()


def store_errors() -> _StoreErrors:
    """Turn "the database is unavailable" errors raised inside into :class:`ServiceUnavailable`."""
    return _STORE_ERRORS


def alembic_config(connection: Connection):
    """An alembic Config built in code, bound to ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (idempotent; serialised on PostgreSQL)."""
    from alembic import command

    with transaction(engine) as conn:  # IMMEDIATE on SQLite: workers starting together queue
        if is_postgres(conn):
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(764021)")
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with the package."""
    from alembic.script import ScriptDirectory

    cfg = alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def get_engine(url: str | None = None, *, schema: str | None = None) -> Engine:
    """The migrated engine for ``url`` (default: the settings' database), cached.

    Migrating happens on first successful use: while the database is down this raises
    (a database error, see :func:`unavailable`) and the next call tries again.
    """
    url = url or get_settings().effective_database_url
    key = (url, schema)
    engine = _engines.get(key)  # read several times a request: no lock once migrated
    if engine is not None and key in _migrated:
        return engine
    with _lock:
        engine = _engines.get(key)
        if engine is not None and key in _migrated:
            return engine
        if _ON_THE_LOOP.get():
            raise WouldBlock("migrating the store on the event loop")
        if engine is None:
            engine = _engines[key] = _new_engine(url, schema=schema)
            _engine_keys[id(engine)] = key
        if schema and is_postgres(engine):
            _ensure_schema(engine, schema)
        migrate(engine)
        _migrated.add(key)
    return engine


def dispose_engines() -> None:
    """Close and forget every cached engine (tests, restarts)."""
    with _lock:
        for engine in [*_engines.values(), *_replicas.values()]:
            engine.dispose()
        _engines.clear()
        _engine_keys.clear()
        _replicas.clear()
        _migrated.clear()


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Connection]:
    """One write transaction on the store: committed on success, rolled back on any error.

    On SQLite it begins IMMEDIATE, so concurrent writers (several workers) queue on the
    busy timeout instead of failing with "database is locked".
    """
    if _ON_THE_LOOP.get():
        raise WouldBlock("a write to the store on the event loop")
    engine = engine or get_engine()
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_connection(engine: Engine | None = None) -> Iterator[Connection]:
    """A connection for reads: on PostgreSQL in autocommit, so a read costs its statements
    alone (no ``BEGIN``/``ROLLBACK`` round trips, and psycopg keeps its prepared statements,
    which a rollback would drop). Statements of one read see no common snapshot; the
    per-request revision (:func:`request_revisions`) is what ties a response to a version.
    """
    if _ON_THE_LOOP.get():
        raise WouldBlock("a read of the store on the event loop")
    engine = reading_engine(engine or get_engine())
    held = _HELD.get()
    if held is None:
        with engine.connect() as conn:
            yield conn
        return
    conn = held.get(id(engine))
    if conn is None or conn.closed or conn.invalidated:
        conn = held[id(engine)] = engine.connect()
    try:
        yield conn
    except BaseException:  # its state is in doubt (a failed statement, a cancel): not reused
        held.pop(id(engine), None)
        conn.close()
        raise


#: The read connections held for the rest of the current unit of work (see
#: :func:`held_connections`), by engine.
_HELD: ContextVar[dict[int, Connection] | None] = ContextVar("cmm_geo_held", default=None)


@contextmanager
def held_connections() -> Iterator[None]:
    """Within (one thread's work for one request): every :func:`read_connection` of an
    engine is the same pooled connection, checked out once and returned at the end.

    A request reads the data version and then its rows; checking a connection out of the
    pool and back (with the autocommit switch each way) cost ~150 µs per read, a tenth of
    a feature by id.
    """
    held: dict[int, Connection] = {}
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
        for conn in held.values():
            conn.close()


def reading_engine(engine: Engine) -> Engine:
    """The engine of the connections :func:`read_connection` gives for ``engine`` (its read
    replica's): what statements compiled per engine are kept by. Its statements autocommit
    on both stores: on PostgreSQL in AUTOCOMMIT, on SQLite by beginning no transaction
    (the driver is in autocommit, :func:`_sqlite_begin` skips BEGIN), so a read costs its
    statements alone, and a later read of a request sees what was committed meanwhile."""
    engine = read_engine(engine)
    ac = engine.__dict__.get("_cmm_autocommit")
    if ac is None:  # made once (same pool): building the options per read cost ~60 µs
        if engine.dialect.name == "postgresql":
            ac = engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            ac = engine.execution_options(**{READ_OPTION: True})
        engine.__dict__["_cmm_autocommit"] = ac
    return ac


def read_engine(engine: Engine) -> Engine:
    """Where reads of ``engine`` go: the read replica (``CMM_GEO_READ_DATABASE_URL``, same
    schema) when ``engine`` is the configured PostgreSQL database, else ``engine`` itself.

    The revisions are read there too, so a response's version (ETag, cache key) and its
    data come from the same server and agree, however far the replica lags.
    """
    settings = get_settings()
    if not settings.read_database_url or engine.dialect.name != "postgresql":
        return engine
    key = _engine_keys.get(id(engine))
    if key is None or key[0] != settings.effective_database_url:
        return engine
    replica_key = (settings.read_database_url, key[1])
    with _lock:
        replica = _replicas.get(replica_key)
        if replica is None:  # not migrated: a standby replays the primary's migrations
            replica = _replicas[replica_key] = _new_engine(*replica_key[:1], schema=key[1])
    return replica


def get_meta(conn: Connection, key: str) -> str | None:
    """A value of ``store_meta``, or None."""
    return conn.execute(sa.select(store_meta.c.value).where(store_meta.c.key == key)).scalar()


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Insert or replace a value of ``store_meta``."""
    updated = conn.execute(
        store_meta.update().where(store_meta.c.key == key).values(value=value, updated_at=utcnow())
    ).rowcount
    if not updated:
        conn.execute(store_meta.insert().values(key=key, value=value, updated_at=utcnow()))


def bump_revision(conn: Connection, topic: str) -> int:
    """Increment the change counter of ``topic`` atomically inside the caller's transaction.

    One ``INSERT … ON CONFLICT DO UPDATE SET value = value + 1 RETURNING value``: concurrent
    writers (other workers, other replicas) never lose an increment.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    stmt = insert(store_meta).values(key=f"revision:{topic}", value="1", updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[store_meta.c.key],
        set_={
            "value": sa.cast(sa.cast(store_meta.c.value, sa.BigInteger) + 1, sa.Text),
            "updated_at": now,
        },
    ).returning(store_meta.c.value)
    return int(conn.execute(stmt).scalar_one())


class WouldBlock(Exception):
    """A read or write of the store asked for on the event loop (see :func:`on_the_loop`):
    the caller does the work in a thread instead."""


_ON_THE_LOOP: ContextVar[bool] = ContextVar("cmm_geo_on_the_loop", default=False)


@contextmanager
def on_the_loop() -> Iterator[None]:
    """Within: domain code runs on the event loop with what was read asynchronously
    (``geo.store.aio``) and must not wait for the database; any statement it would run
    raises :class:`WouldBlock` before touching a connection."""
    token = _ON_THE_LOOP.set(True)
    try:
        yield
    finally:
        _ON_THE_LOOP.reset(token)


def remember_revisions(engine: Engine, rows: Iterable[tuple[Any, Any, Any]]) -> None:
    """Keep ``rows`` of ``store_meta``'s revisions (as :data:`REVISIONS_SQL` selects them,
    read by other means) as the current request's revisions of ``engine``."""
    memo = _REQUEST_REVISIONS.get()
    if memo is not None:
        memo[id(engine)] = _revisions_of(rows)


#: Revisions already read during the current request (see :func:`request_revisions`).
#: Keyed by an engine's id; other keys (tuples) mark work done once per request.
_REQUEST_REVISIONS: ContextVar[dict[Any, Any] | None] = ContextVar(
    "cmm_geo_request_revisions", default=None
)


@contextmanager
def request_revisions() -> Iterator[None]:
    """Within: the store's revisions are read once and reused (one read per request).

    Reads of one request then agree on one data version (ETag, cache key, body), and a
    request costs one round trip for all its version checks however many it makes. The
    memo is copied into the threadpool with the context, so sync handlers share it.
    """
    token = _REQUEST_REVISIONS.set({})
    try:
        yield
    finally:
        _REQUEST_REVISIONS.reset(token)


#: Every topic's change counter (``geo.store.aio`` reads it on the event loop too).
REVISIONS_SQL = "SELECT key, value, updated_at FROM store_meta WHERE key LIKE 'revision:%'"


def request_memo() -> dict[Any, Any] | None:
    """The current request's memo (:func:`request_revisions`), or None outside one: work
    that depends only on the revisions (the registry's refresh) is done once per request
    by marking it here under a key of its own (a tuple, never an engine's id)."""
    return _REQUEST_REVISIONS.get()


def revisions(engine: Engine) -> dict[str, tuple[int, datetime | None]]:
    """Every topic's change counter and when it last changed, in one query."""
    memo = _REQUEST_REVISIONS.get()
    if memo is not None and id(engine) in memo:
        return memo[id(engine)]
    with read_connection(engine) as conn:
        # The driver's cursor, a prepared statement: read on every request, it cost
        # ~350 µs through SQLAlchemy's execution machinery and ~100 µs this way.
        dbapi = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            cur = dbapi.cursor()
            cur.execute(REVISIONS_SQL, prepare=True)  # type: ignore[union-attr]
        else:
            cur = dbapi.cursor()  # type: ignore[union-attr]
            cur.execute(REVISIONS_SQL)
        rows = cur.fetchall()
    out = _revisions_of(rows)
    if memo is not None:
        memo[id(engine)] = out
    return out


def _revisions_of(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, tuple[int, datetime | None]]:
    out: dict[str, tuple[int, datetime | None]] = {}
    for key, value, ts in rows:
        if isinstance(ts, str):  # SQLite stores DateTime as ISO text
            ts = datetime.fromisoformat(ts)
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        out[key.removeprefix("revision:")] = (int(value), ts)
    return out


def revision(engine: Engine, topic: str) -> tuple[int, datetime | None]:
    """The change counter of ``topic`` and when it last changed."""
    return revisions(engine).get(topic, (0, None))
