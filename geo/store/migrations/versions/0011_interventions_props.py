"""Each intervention's properties as the JSON text a page sends, kept by PostgreSQL.

A PostGIS page built every row's properties on every read: one ``row_to_json`` over thirty
columns, instants and floats formatted, the names, zones and unions of its comuni joined
from ``territory_comuni``: 80 % of the database's time for a page of 100 interventions
(2.0 ms of 2.4). ``properties_json`` keeps that text, written with the row by a trigger
running the very same SQL (installed and replaced at run time, with the layout, by
``geo.interventions.sql_collection.ensure_properties_layout``), and a page sends
``coalesce(properties_json, <that SQL>)``.

NULL where it is not kept: rows written before this revision, every row on SQLite (its
pages build the properties with ``json_object`` and Python), and all rows after the
properties' SQL or the territory changed (``ensure_properties_layout`` compares a digest
of both with ``store_meta``). A NULL is built by the page as before: same bytes.

Revision ID: 0011_interventions_props
Revises: 0010_sqlite_geometry_texts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_interventions_props"
down_revision = "0010_sqlite_geometry_texts"
branch_labels = None
depends_on = None


def upgrade() -> None:  # nullable, no default: instant on both stores
    op.add_column("interventions", sa.Column("properties_json", sa.Text, nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # what writes the column goes first
        op.execute("DROP TRIGGER IF EXISTS cmm_interventions_properties ON interventions")
        op.execute("DROP FUNCTION IF EXISTS cmm_interventions_properties()")
    with op.batch_alter_table("interventions") as batch:
        batch.drop_column("properties_json")
