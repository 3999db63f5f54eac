"""Each geometry's GeoJSON text, written with the row, for pages the embedded store encodes.

On SQLite a page's geometries were decoded from WKB, rounded and written as GeoJSON by
shapely on every read: a quarter of a worker's time under the GIL on a feature by id, over
a third on a page of polygons. ``geometry_json`` holds that text (CRS84, 6 decimals, the
stored type: a page promotes ``Point`` to ``MultiPoint`` and the like on the text), written
by every write path (``geo.ogc.encode.stored_geometry_texts``).

NULL where there is none to trust: rows written before this revision, geometries that the
rounding makes invalid (the page snaps them as before), empty ones, and every row on
PostgreSQL, where PostGIS writes the GeoJSON itself. A NULL is encoded from the WKB on
read, as before: same bytes, so no backfill is needed (a rewritten row gets its text).

Revision ID: 0010_sqlite_geometry_texts
Revises: 0009_layer_tiles_z10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_sqlite_geometry_texts"
down_revision = "0009_layer_tiles_z10"
branch_labels = None
depends_on = None

TABLES = ("interventions", "layer_features")


def upgrade() -> None:
    for table in TABLES:  # nullable, no default: instant on both stores
        op.add_column(table, sa.Column("geometry_json", sa.Text, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("geometry_json")
