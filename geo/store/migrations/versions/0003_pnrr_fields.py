"""PNRR open-data fields on ``interventions`` (all nullable) and a text ``programme``.

Component, sub-measure, summary, implementing body (+ codice fiscale), PNRR amount and
the extraction date of the Italia Domani files (see ``geo.interventions.pnrr``).
``programme`` becomes unbounded text on PostgreSQL: PNRR sub-measure descriptions exceed
200 characters (SQLite does not enforce lengths).

Revision ID: 0003_pnrr_fields
Revises: 0002_layers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_pnrr_fields"
down_revision = "0002_layers"
branch_labels = None
depends_on = None

COLUMNS = (
    ("component", sa.String(20)),
    ("component_title", sa.Text),
    ("submeasure", sa.String(40)),
    ("summary", sa.Text),
    ("implementing_body", sa.Text),
    ("implementing_body_cf", sa.String(20)),
    ("pnrr_amount_eur", sa.Float),
    ("as_of", sa.String(10)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("interventions", sa.Column(name, type_, nullable=True))
    op.create_index("ix_interventions_component", "interventions", ["component"])
    op.create_index("ix_interventions_submeasure", "interventions", ["submeasure"])
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("interventions", "programme", type_=sa.Text, existing_type=sa.String(200))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("interventions", "programme", type_=sa.String(200), existing_type=sa.Text)
    op.drop_index("ix_interventions_submeasure", "interventions")
    op.drop_index("ix_interventions_component", "interventions")
    with op.batch_alter_table("interventions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
