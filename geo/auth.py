"""Bearer tokens for writes: the administrator, and per-comune editors.

* The **admin token** is ``CMM_GEO_ADMIN_TOKEN`` (compared in constant time).
* **Editor tokens** are created with ``cmm-geo tokens create --comune "Rho"``: the token
  is printed once; only its SHA-256 is stored (table ``api_tokens``). An editor may only
  write interventions located in their own comune (every comune the intervention is
  linked to is theirs, before and after the write) — 403 otherwise.
* Reads are public. A write without a token, or with an unknown or revoked one → 401
  with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo.errors import NotFound, Unauthorized
from geo.settings import get_settings
from geo.store import get_engine, metadata, transaction, utcnow
from geo.territory.lookup import find_comune


@dataclass(frozen=True)
class Principal:
    """Who writes: the administrator, or the editor of one or more comuni.

    Tokens give one ``comune``; a signed-in user (``geo.accounts``) may edit several
    (``comuni``) and carries its ``user`` name, which the change history records.
    """

    role: str  # "admin" | "editor"
    comune: str | None = None
    token_id: str | None = None
    comuni: frozenset[str] = frozenset()
    user: str | None = None

    @property
    def editable(self) -> frozenset[str]:
        """ISTAT codes of the comuni this editor may write in (a token's one, a user's many)."""
        return self.comuni | ({self.comune} if self.comune else set())

    @property
    def name(self) -> str:
        """Who this is, as the change history shows it."""
        if self.user:
            return self.user
        if self.token_id:
            return f"token {self.token_id}"
        return "admin" if self.role == "admin" else "editor"

    @property
    def owner(self) -> str:
        """What a layer records as its uploader: ``user:<name>``, ``token:<id>`` or ``admin``."""
        if self.user:
            return f"user:{self.user}"
        if self.token_id:
            return f"token:{self.token_id}"
        return "admin"

    def may_manage(self, owner: str | None) -> bool:
        """Replace or delete a layer: the admin any, an editor those they uploaded."""
        return self.role == "admin" or (owner is not None and owner == self.owner)

    def may_write(self, comuni: list[str]) -> bool:
        """Editors may only write interventions all of whose comuni are theirs."""
        return self.role == "admin" or (bool(comuni) and set(comuni) <= self.editable)


ADMIN = Principal("admin")


TOKEN_PREFIX = "cmmgeo_"

tokens_table = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("comune", sa.String(6)),
    sa.Column("label", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


class BearerRequired(Unauthorized):
    """401 with the ``WWW-Authenticate: Bearer`` challenge."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        challenge = 'Bearer realm="cmm-geo"'
        if error:
            challenge += f', error="{error}"'
        self.headers = {"WWW-Authenticate": challenge}


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (what the store keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    """A new editor token: ``token`` is shown once and never stored."""

    id: str
    token: str
    comune: str
    comune_name: str


def create_token(comune: str, label: str | None = None, engine: Engine | None = None):
    """A new editor token for ``comune`` (name, ISTAT or cadastral code)."""
    c = find_comune(comune)["comune"]
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tid = secrets.token_hex(6)
    with transaction(engine or get_engine()) as conn:
        conn.execute(
            tokens_table.insert().values(
                id=tid,
                token_hash=hash_token(token),
                role="editor",
                comune=c["istat_code"],
                label=label,
                created_at=utcnow(),
            )
        )
    return CreatedToken(tid, token, c["istat_code"], c["name"])


def list_tokens(engine: Engine | None = None) -> list[dict[str, Any]]:
    """Every token (never the secret): id, comune, label, created, revoked."""
    from geo.territory import get_territory

    t = get_territory()
    with (engine or get_engine()).connect() as conn:
        rows = conn.execute(sa.select(tokens_table).order_by(tokens_table.c.created_at)).all()
    return [
        {
            "id": r.id,
            "role": r.role,
            "comune": r.comune,
            "comune_name": t.comuni[r.comune].name if r.comune in t.comuni else None,
            "label": r.label,
            "created_at": r.created_at,
            "revoked_at": r.revoked_at,
        }
        for r in rows
    ]


def revoke_token(token_id: str, engine: Engine | None = None) -> None:
    """Revoke a token by its id (NotFound if unknown)."""
    with transaction(engine or get_engine()) as conn:
        n = conn.execute(
            tokens_table.update()
            .where(tokens_table.c.id == token_id, tokens_table.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
    if not n:
        raise NotFound(f"no active token with id {token_id!r}")


def authenticate(authorization: str | None, engine: Engine | None = None) -> Principal:
    """The principal of an ``Authorization: Bearer …`` header; BearerRequired otherwise."""
    if not authorization:
        raise BearerRequired("this write needs a bearer token (Authorization: Bearer …)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise BearerRequired("use the Bearer scheme: Authorization: Bearer <token>",
                             "invalid_request")  # fmt: skip
    admin = get_settings().admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN
    with (engine or get_engine()).connect() as conn:
        row = conn.execute(
            sa.select(tokens_table).where(
                tokens_table.c.token_hash == hash_token(token), tokens_table.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise BearerRequired("unknown or revoked token", "invalid_token")
    return Principal(row.role, row.comune, row.id)
