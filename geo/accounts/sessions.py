"""Sessions in the store: any worker or replica resolves a cookie the same way.

* The session id is 256 random bits (``secrets.token_urlsafe(32)``), given to the browser
  once in the cookie; the store keeps only its SHA-256, so a copy of the database does not
  let anyone in.
* It ends ``session_hours`` after sign-in, or after ``session_idle_minutes`` unused, or at
  sign-out (the row is deleted), or when the user is disabled, deleted or changes password.
* Its **CSRF token** is an HMAC of the session id (:func:`csrf_token`): bound to the
  session, stored nowhere, and useless without the cookie. Before sign-in, the login form
  uses the same construction over a random pre-session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo.accounts.config import get_account_settings
from geo.accounts.tables import sessions_table, users_table
from geo.accounts.users import User, _user
from geo.store import get_engine, utcnow

#: Longest cookie value looked up (a session id is 43 characters).
MAX_TOKEN = 128
#: How stale ``last_seen_at`` may get before a request refreshes it (fewer writes).
TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def new_secret() -> str:
    """256 random bits, URL-safe (a session id or a pre-session secret)."""
    return secrets.token_urlsafe(32)


def csrf_token(secret: str) -> str:
    """The CSRF token bound to a session id (or to a pre-session secret)."""
    mac = hmac.new(secret.encode(), b"cmm-geo csrf v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_ok(secret: str | None, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token of ``secret`` (constant time)."""
    if not secret or not token or len(token) > MAX_TOKEN:
        return False
    return hmac.compare_digest(csrf_token(secret).encode(), token.encode())


@dataclass(frozen=True)
class Session:
    """A signed-in user's session: who, until when, and the CSRF token of its forms."""

    token: str = field(repr=False)
    user: User
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def principal(self):  # -> geo.auth.Principal
        return self.user.principal


def create_session(user: User, *, engine: Engine | None = None) -> Session:
    """A new session for ``user`` (already authenticated); its token goes in the cookie."""
    s = get_account_settings()
    token = new_secret()
    now = utcnow()
    expires = now + timedelta(hours=s.session_hours)
    with (engine or get_engine()).begin() as conn:
        conn.execute(sessions_table.delete().where(sessions_table.c.expires_at < now))
        conn.execute(
            sessions_table.insert().values(
                id_hash=_hash(token),
                username=user.username,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
            )
        )
    return Session(token, user, expires)


def resolve_session(token: str | None, *, engine: Engine | None = None) -> Session | None:
    """The live session of a cookie value, or None (unknown, expired, idle, user disabled)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    s = get_account_settings()
    now = utcnow()
    st, ut = sessions_table, users_table
    engine = engine or get_engine()
    key = _hash(token)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(st.c.expires_at, st.c.last_seen_at, ut)
            .join(ut, ut.c.username == st.c.username)
            .where(st.c.id_hash == key)
        ).first()
    if row is None or row.disabled:
        return None
    expires, seen = _aware(row.expires_at), _aware(row.last_seen_at)
    if now >= expires or now - seen >= timedelta(minutes=s.session_idle_minutes):
        delete_session(token, engine=engine)
        return None
    if now - seen >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(st.update().where(st.c.id_hash == key).values(last_seen_at=now))
    return Session(token, _user(row), expires)


def delete_session(token: str | None, *, engine: Engine | None = None) -> None:
    """Sign out: the session's row is deleted (a no-op for an unknown token)."""
    if not token or len(token) > MAX_TOKEN:
        return
    with (engine or get_engine()).begin() as conn:
        conn.execute(sessions_table.delete().where(sessions_table.c.id_hash == _hash(token)))
