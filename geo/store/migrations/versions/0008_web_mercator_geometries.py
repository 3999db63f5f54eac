"""Web Mercator copies of the geometries, kept by PostgreSQL, for the vector tiles.

Every vector tile of a stored collection is cut from EPSG:3857 geometries. Reprojecting each
feature on every tile request cost PostGIS more than clipping and encoding it; at low zooms
it also clipped and encoded every vertex of shapes whose detail no tile unit can show.

* ``geom_3857``: ``geom`` in EPSG:3857, on ``interventions`` and ``layer_features``
  (tiles from zoom 13 on, and the points at every zoom). Latitudes beyond Web Mercator's
  ±85.06° are clipped first (the projection has no value at the poles, and a generated
  column that fails would refuse the row).
* ``geom_3857_z12``: on ``layer_features``, the same simplified (topology kept) to a quarter
  pixel of a zoom-12 tile, 9.55 m: the tolerance the Python tile encoder uses at zoom 12
  (``geo.ogc.tiles.SIMPLIFY_PX``), so tiles up to zoom 12 carry no invisible vertices.

Generated columns: every insert and update computes them in its own statement, so no write
path changes and none can forget them. No index: the tiles select features with the GIST
index on ``geom``. SQLite: nothing (its tiles are encoded in Python).

Revision ID: 0008_web_mercator_geometries
Revises: 0007_territory_comuni
"""

from __future__ import annotations

from alembic import op

revision = "0008_web_mercator_geometries"
down_revision = "0007_territory_comuni"
branch_labels = None
depends_on = None

#: ``geom`` inside Web Mercator's latitudes, in EPSG:3857 (from the WKB: a generated column
#: cannot read another).
MERCATOR = (
    "ST_Transform(ST_ClipByBox2D(ST_GeomFromWKB(geometry_wkb, 4326), ST_MakeEnvelope(-180, "
    "-85.0511287798, 180, 85.0511287798, 4326)), 3857)"
)
#: A quarter pixel of a 256-pixel tile at zoom 12, in EPSG:3857 metres.
Z12_TOLERANCE = 40075016.685578488 / 2**12 / 256 / 4


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("interventions", "layer_features"):
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN geom_3857 geometry "
            f"GENERATED ALWAYS AS ({MERCATOR}) STORED"
        )
    op.execute(
        "ALTER TABLE layer_features ADD COLUMN geom_3857_z12 geometry GENERATED ALWAYS AS "
        f"(ST_SimplifyPreserveTopology({MERCATOR}, {Z12_TOLERANCE!r})) STORED"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE layer_features DROP COLUMN geom_3857_z12")
    for table in ("interventions", "layer_features"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN geom_3857")
