"""An R*Tree over ``layer_features``, so every layer query runs in the store.

* SQLite: ``rtree_layer_features_geom(id, minx, maxx, miny, maxy)`` keyed by the table's
  rowid (GeoPackage-style naming), kept in sync by the triggers
  ``rtree_layer_features_geom_insert/_update/_delete`` and filled from the existing rows.
  It holds every layer's boxes: a bbox query takes its candidates from it and keeps the
  layer's own with ``layer_id = :id`` on the rows it joins back to by rowid.
* PostgreSQL: the GIST index of ``layer_features.geom`` (migration 0002) does this job;
  the table's primary key ``(layer_id, fid)`` serves paging and ``count(*)`` per layer.

Revision ID: 0006_layer_features_rtree
Revises: 0005_interventions_query_indexes
"""

from __future__ import annotations

from alembic import op

from geo.store.migrations.helpers import add_sqlite_rtree, drop_sqlite_rtree

revision = "0006_layer_features_rtree"
down_revision = "0005_interventions_query_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_sqlite_rtree("layer_features")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE layer_features")


def downgrade() -> None:
    drop_sqlite_rtree("layer_features")
