"""Green-network layers: ``layers`` and their ``layer_features``.

Revision ID: 0002_layers
Revises: 0001_interventions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo.store.migrations.helpers import add_postgis_geom

revision = "0002_layers"
down_revision = "0001_interventions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "layers",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("geometry_type", sa.String(10), nullable=False),
        sa.Column("feature_count", sa.Integer, nullable=False),
        sa.Column("source_crs", sa.String(200), nullable=False),
        sa.Column("minx", sa.Float, nullable=False),
        sa.Column("miny", sa.Float, nullable=False),
        sa.Column("maxx", sa.Float, nullable=False),
        sa.Column("maxy", sa.Float, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "geometry_type IN ('polygon', 'line', 'point')", name="ck_layers_geometry_type"
        ),
    )
    op.create_table(
        "layer_features",
        sa.Column(
            "layer_id",
            sa.String(80),
            sa.ForeignKey("layers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("fid", sa.Integer, primary_key=True),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("geometry_wkb", sa.LargeBinary, nullable=False),
        sa.Column("minx", sa.Float, nullable=False),
        sa.Column("miny", sa.Float, nullable=False),
        sa.Column("maxx", sa.Float, nullable=False),
        sa.Column("maxy", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_layer_features_bbox", "layer_features", ["layer_id", "minx", "miny", "maxx", "maxy"]
    )
    add_postgis_geom("layer_features")


def downgrade() -> None:
    op.drop_table("layer_features")
    op.drop_table("layers")
