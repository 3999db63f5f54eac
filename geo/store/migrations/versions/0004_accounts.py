"""User accounts, their sessions, login attempts, the interventions' change history, and
the owner of each layer.

* ``users``: name, argon2 password hash, admin flag or the comuni (ISTAT codes) the user
  edits, disabled flag;
* ``sessions``: only the SHA-256 of each session id is stored, with its expiry, so any
  worker or replica resolves a cookie the same way and signing out deletes the row;
* ``login_attempts``: failed sign-ins per user name and per client address (rate limit);
* ``intervention_history``: who changed which intervention, when, field by field;
* ``layers.owner``: who uploaded a layer (editors may replace or delete their own).

Revision ID: 0004_accounts
Revises: 0003_pnrr_fields
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_accounts"
down_revision = "0003_pnrr_fields"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("comuni", sa.JSON, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column(
            "username",
            sa.String(64),
            sa.ForeignKey("users.username", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sessions_username", "sessions", ["username"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'ip')", name="ck_login_attempts_kind"),
    )
    op.create_index("ix_login_attempts_key", "login_attempts", ["kind", "key", "at"])
    op.create_table(
        "intervention_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("intervention_id", sa.String(100), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'delete')", name="ck_intervention_history_action"
        ),
    )
    op.create_index(
        "ix_intervention_history_intervention", "intervention_history", ["intervention_id", "id"]
    )
    op.add_column("layers", sa.Column("owner", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("layers") as batch:
        batch.drop_column("owner")
    op.drop_table("intervention_history")
    op.drop_table("login_attempts")
    op.drop_table("sessions")
    op.drop_table("users")
