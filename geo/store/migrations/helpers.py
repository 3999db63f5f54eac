"""Helpers for migrations: the same schema on SQLite and PostgreSQL + PostGIS."""

from __future__ import annotations

from alembic import op


def add_postgis_geom(table: str, wkb_column: str = "geometry_wkb") -> None:
    """On PostgreSQL, add ``geom geometry(Geometry, 4326)`` generated from the WKB, + GIST.

    A no-op on SQLite, where shapely does all spatial work on the WKB.
    """
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute(
        f"ALTER TABLE {table} ADD COLUMN geom geometry(Geometry, 4326) "
        f"GENERATED ALWAYS AS (ST_GeomFromWKB({wkb_column}, 4326)) STORED"
    )
    op.execute(f"CREATE INDEX ix_{table}_geom ON {table} USING GIST (geom)")


def sqlite_rtree_sql(table: str, column: str = "geom") -> list[str]:
    """SQL that (re)creates the R*Tree ``rtree_<table>_<column>`` over the bbox columns.

    GeoPackage-style layout: a virtual table ``rtree_<t>_<c>(id, minx, maxx, miny, maxy)``
    keyed by the table's rowid, triggers ``rtree_<t>_<c>_insert/_update/_delete`` keeping it
    in sync, filled from the existing rows. Idempotent (drops what exists first), so run it
    again after anything that rebuilds the table (an alembic batch alter on SQLite copies
    the table and drops its triggers; ``VACUUM`` may renumber the rowids of a table without
    an INTEGER PRIMARY KEY).
    """
    rt = f"rtree_{table}_{column}"
    values = "NEW.rowid, NEW.minx, NEW.maxx, NEW.miny, NEW.maxy"
    return [
        *(f"DROP TRIGGER IF EXISTS {rt}_{w}" for w in ("insert", "update", "delete")),
        f"DROP TABLE IF EXISTS {rt}",
        f"CREATE VIRTUAL TABLE {rt} USING rtree(id, minx, maxx, miny, maxy)",
        f"INSERT INTO {rt} (id, minx, maxx, miny, maxy) "
        f"SELECT rowid, minx, maxx, miny, maxy FROM {table}",
        f"CREATE TRIGGER {rt}_insert AFTER INSERT ON {table} BEGIN "
        f"INSERT OR REPLACE INTO {rt} VALUES ({values}); END",
        f"CREATE TRIGGER {rt}_update AFTER UPDATE ON {table} BEGIN "
        f"DELETE FROM {rt} WHERE id = OLD.rowid; "
        f"INSERT OR REPLACE INTO {rt} VALUES ({values}); END",
        f"CREATE TRIGGER {rt}_delete AFTER DELETE ON {table} BEGIN "
        f"DELETE FROM {rt} WHERE id = OLD.rowid; END",
    ]


def add_sqlite_rtree(table: str, column: str = "geom") -> None:
    """On SQLite, (re)create the R*Tree of ``table`` (see :func:`sqlite_rtree_sql`).

    A no-op on PostgreSQL, where the GIST index of ``geom`` does this job.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in sqlite_rtree_sql(table, column):
        op.execute(statement)


def drop_sqlite_rtree(table: str, column: str = "geom") -> None:
    """On SQLite, drop the R*Tree of ``table`` and its triggers."""
    if op.get_bind().dialect.name != "sqlite":
        return
    rt = f"rtree_{table}_{column}"
    for w in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {rt}_{w}")
    op.execute(f"DROP TABLE IF EXISTS {rt}")
