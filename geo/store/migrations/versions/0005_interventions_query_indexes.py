"""Indexes for answering every interventions query in the store.

* SQLite: an R*Tree ``rtree_interventions_geom`` over the bbox columns, keyed by the
  table's rowid and kept in sync by triggers (GeoPackage-style naming), filled from the
  existing rows; PostgreSQL already has the GIST index of ``geom`` (migration 0001).
* Both: b-tree indexes on the columns filters and sorts use (``amount_eur``,
  ``pnrr_amount_eur``, ``status``, ``as_of``, ``created_at``, ``updated_at``); ``programme``,
  ``source``, ``cup``, ``component``, ``submeasure`` and ``intervention_comuni(istat_code)``
  are indexed since 0001/0003.

Revision ID: 0005_interventions_query_indexes
Revises: 0004_accounts
"""

from __future__ import annotations

from alembic import op

from geo.store.migrations.helpers import add_sqlite_rtree, drop_sqlite_rtree

revision = "0005_interventions_query_indexes"
down_revision = "0004_accounts"
branch_labels = None
depends_on = None

INDEXED = ("amount_eur", "pnrr_amount_eur", "status", "as_of", "created_at", "updated_at")


def upgrade() -> None:
    for column in INDEXED:
        op.create_index(f"ix_interventions_{column}", "interventions", [column])
    add_sqlite_rtree("interventions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE interventions")
        op.execute("ANALYZE intervention_comuni")


def downgrade() -> None:
    drop_sqlite_rtree("interventions")
    for column in reversed(INDEXED):
        op.drop_index(f"ix_interventions_{column}", "interventions")
