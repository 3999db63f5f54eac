"""The layers' polygons already cut for the tiles of zooms 10–14, kept by PostgreSQL.

``ST_AsMVTGeom`` turns each feature of a tile into tile units: it scales, snaps to the
grid, clips, and — for polygons, as the MVT specification asks — makes the result valid
with GEOS. The last step was ~80 % of a low-zoom tile of a polygon layer (a zoom-10 tile of
the 20,000 benchmark polygons holds 4,533 of them: 101 ms, of which 18 ms were reading and
encoding) and it gives the same answer on every request.

* ``geom_px_z10`` … ``geom_px_z14``: on ``layer_features``, what ``ST_AsMVTGeom`` makes of
  the geometry a tile of that zoom is cut from (``geom_3857_z10`` at 10, ``geom_3857_z12``
  at 11–12, ``geom_3857`` at 13–14: ``tile_geometries`` of the layers' collection) in the
  units of *the whole zoom level*: the world as one tile of ``4096 · 2^z`` units, no
  buffer, no clipping. A tile's units are the same grid shifted by a whole number
  (``col · 4096``, ``row · 4096``), so a feature that lies inside the tile and its buffer is
  the tile's feature translated: the same integers, the same rings, the same bytes
  (compared tile by tile in the tests). Features that cross the buffer's edge are clipped by
  ``ST_AsMVTGeom`` per tile as before (``geo.ogc.sql.SqlCollection._tile_statement``).
  NULL for what is not polygonal (points and lines need no validation: they are cut as
  before) and for a polygon the zoom's grid collapses (``ST_AsMVTGeom`` gives nothing for
  it either).

Generated columns, as those of 0008/0009: every write computes them (~25 µs a polygon and
zoom), no write path changes. One ``ALTER TABLE`` rewrites ``layer_features`` once.
SQLite: nothing (its tiles are encoded in Python).

Revision ID: 0012_layer_tile_pixels
Revises: 0011_interventions_props
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0012_layer_tile_pixels"
down_revision = "0011_interventions_props"
branch_labels = None
depends_on = None

#: Tile units a tile is cut to (``geo.ogc.tiles.EXTENT``): the columns hold this grid.
EXTENT = 4096
#: The zooms that get a column.
ZOOMS = (10, 11, 12, 13, 14)
#: Web Mercator's square, the one tile of zoom 0.
WORLD = (
    "ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, "
    "20037508.342789244, 3857)::box2d"
)


def _sources() -> dict[int, str]:
    """The SQL of the geometry each zoom's tiles are cut from (0008/0009)."""
    v8 = importlib.import_module("geo.store.migrations.versions.0008_web_mercator_geometries")
    v9 = importlib.import_module("geo.store.migrations.versions.0009_layer_tiles_z10")
    z10 = f"ST_SimplifyPreserveTopology({v8.MERCATOR}, {v9.Z10_TOLERANCE!r})"
    z12 = f"ST_SimplifyPreserveTopology({v8.MERCATOR}, {v8.Z12_TOLERANCE!r})"
    return {10: z10, 11: z12, 12: z12, 13: v8.MERCATOR, 14: v8.MERCATOR}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    sources = _sources()
    columns = ", ".join(
        f"ADD COLUMN geom_px_z{z} geometry GENERATED ALWAYS AS (CASE WHEN "
        f"ST_Dimension(ST_GeomFromWKB(geometry_wkb)) = 2 THEN ST_AsMVTGeom({sources[z]}, "
        f"{WORLD}, {EXTENT << z}, 0, false) END) STORED"
        for z in ZOOMS
    )
    op.execute(f"ALTER TABLE layer_features {columns}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE layer_features " + ", ".join(f"DROP COLUMN geom_px_z{z}" for z in ZOOMS)
    )
