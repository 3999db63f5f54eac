"""Store meta, interventions (+ their comuni) and API tokens.

Revision ID: 0001_interventions
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo.store.migrations.helpers import add_postgis_geom

revision = "0001_interventions"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "interventions",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("programme", sa.String(200), nullable=False),
        sa.Column("missions", sa.JSON, nullable=False),
        sa.Column("objectives", sa.JSON, nullable=False),
        sa.Column("drivers", sa.JSON, nullable=False),
        sa.Column("comuni", sa.JSON, nullable=False),
        sa.Column("comuni_named", sa.JSON, nullable=False),
        sa.Column("geometry_wkb", sa.LargeBinary, nullable=False),
        sa.Column("geometry_type", sa.String(30), nullable=False),
        sa.Column("precision", sa.String(10), nullable=False),
        sa.Column("minx", sa.Float, nullable=False),
        sa.Column("miny", sa.Float, nullable=False),
        sa.Column("maxx", sa.Float, nullable=False),
        sa.Column("maxy", sa.Float, nullable=False),
        sa.Column("amount_eur", sa.Float),
        sa.Column("status", sa.Text),
        sa.Column("period", sa.Text),
        sa.Column("cup", sa.String(15)),
        sa.Column("source_url", sa.Text),
        sa.Column("reliability", sa.String(1)),
        sa.Column("remark", sa.Text),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("precision IN ('exact', 'comune')", name="ck_interventions_precision"),
        sa.CheckConstraint(
            "reliability IS NULL OR reliability IN ('A', 'B', 'C')",
            name="ck_interventions_reliability",
        ),
    )
    op.create_index("ix_interventions_bbox", "interventions", ["minx", "miny", "maxx", "maxy"])
    op.create_index("ix_interventions_programme", "interventions", ["programme"])
    op.create_index("ix_interventions_cup", "interventions", ["cup"])
    op.create_index("ix_interventions_source", "interventions", ["source"])
    add_postgis_geom("interventions")

    op.create_table(
        "intervention_comuni",
        sa.Column(
            "intervention_id",
            sa.String(100),
            sa.ForeignKey("interventions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("istat_code", sa.String(6), primary_key=True),
        sa.Column("named", sa.Boolean, nullable=False),
        sa.Column("spatial", sa.Boolean, nullable=False),
    )
    op.create_index("ix_intervention_comuni_istat", "intervention_comuni", ["istat_code"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("comune", sa.String(6)),
        sa.Column("label", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role IN ('editor', 'admin')", name="ck_api_tokens_role"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("intervention_comuni")
    op.drop_table("interventions")
    op.drop_table("store_meta")
