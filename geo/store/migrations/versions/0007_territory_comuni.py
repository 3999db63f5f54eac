"""The comuni's names, zones and unions mirrored in the store, for joins in SQL.

``territory_comuni(istat_code, name, zona_id, unione_id)``: the 133 comuni as the service's
territory knows them (``geo.territory.mirror`` fills it on first use and whenever the
territory's version changes). PostgreSQL builds the GeoJSON of an interventions page with it
(names, zones and unions of each intervention's comuni) instead of Python. Text in the "C"
collation on PostgreSQL, so lists sort by code point as Python's ``sorted`` does.

Revision ID: 0007_territory_comuni
Revises: 0006_layer_features_rtree
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_territory_comuni"
down_revision = "0006_layer_features_rtree"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    text = sa.Text(collation="C") if pg else sa.Text()
    op.create_table(
        "territory_comuni",
        sa.Column("istat_code", sa.String(6), primary_key=True),
        sa.Column("name", text, nullable=False),
        sa.Column("zona_id", text, nullable=False),
        sa.Column("unione_id", text),
    )


def downgrade() -> None:
    op.drop_table("territory_comuni")
