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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo.settings import get_settings

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


def create_store_engine(url: str, *, schema: str | None = None) -> Engine:
    """A new engine for ``url`` (not migrated). ``schema``: PostgreSQL schema to work in."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **_JSON)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy emit BEGIN itself so transactions are real (pysqlite quirk).
        sa.event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        sa.event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN"))
        return engine
    connect_args = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema},public"
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **_JSON)
    if schema:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return engine


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

    with engine.begin() as conn:
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
    """The migrated engine for ``url`` (default: the settings' database), cached."""
    url = url or get_settings().effective_database_url
    key = (url, schema)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_store_engine(url, schema=schema)
            migrate(engine)
            _engines[key] = engine
    return engine


def dispose_engines() -> None:
    """Close and forget every cached engine (tests, restarts)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Connection]:
    """One transaction on the store: committed on success, rolled back on any error."""
    engine = engine or get_engine()
    with engine.begin() as conn:
        yield conn


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
    """Increment the change counter of ``topic`` inside the caller's transaction."""
    key = f"revision:{topic}"
    current = get_meta(conn, key)
    new = int(current or 0) + 1
    set_meta(conn, key, str(new))
    return new


def revision(engine: Engine, topic: str) -> tuple[int, datetime | None]:
    """The change counter of ``topic`` and when it last changed."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(store_meta.c.value, store_meta.c.updated_at).where(
                store_meta.c.key == f"revision:{topic}"
            )
        ).first()
    if row is None:
        return 0, None
    ts = row.updated_at
    if ts is not None and ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(row.value), ts
