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
