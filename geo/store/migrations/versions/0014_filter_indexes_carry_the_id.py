"""The indexes of the interventions' filterable columns carry the id, too.

A filtered page of few matches is found through its filter's index and sorted by id
(``geo.ogc.sql.SqlCollection._sorted_page``). With an index on the column alone each
match costs a visit to its row to learn the id (~1 µs on SQLite); an index on
``(column, id)`` holds the id beside the value, so the matches are sorted from the index
alone (~0.06 µs each) and only the page's rows are read. Measured on SQLite with 100 k
interventions, ``amount_eur > X`` matching 1,000–3,000: 1.6–2.8 ms → 0.45 ms a page. An
equality filter (``status = 'x'``) now reads its matches in id order straight from the
index, without a sort.

Revision ID: 0014_filter_indexes_carry_the_id
Revises: 0013_geometry_text_guard
"""

from __future__ import annotations

from alembic import op

revision = "0014_filter_indexes_carry_the_id"
down_revision = "0013_geometry_text_guard"
branch_labels = None
depends_on = None

#: The interventions' columns with a b-tree index of their own (0001, 0003, 0005).
COLUMNS = (
    "programme", "cup", "source", "component", "submeasure",
    "amount_eur", "pnrr_amount_eur", "status", "as_of", "created_at", "updated_at",
)  # fmt: skip


def _rebuild(with_id: bool) -> None:
    for column in COLUMNS:
        name = f"ix_interventions_{column}"
        op.drop_index(name, "interventions")
        op.create_index(name, "interventions", [column, "id"] if with_id else [column])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE interventions")


def upgrade() -> None:
    _rebuild(with_id=True)


def downgrade() -> None:
    _rebuild(with_id=False)
