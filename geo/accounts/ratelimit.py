"""Failed sign-ins counted in the store, per user name and per client address.

In the store (not in memory) so that every worker and replica counts the same failures.
Within ``login_window_minutes``, ``login_max_failures`` failures for a user name, or
``login_max_failures_ip`` from one address, make further attempts answer 429 with
``Retry-After`` — before the password is even checked, so guessing costs the server nothing
more. A successful sign-in clears its user name's failures (not the address's).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from geo.accounts.config import get_account_settings
from geo.accounts.tables import attempts_table
from geo.errors import GeoError
from geo.store import utcnow

MAX_KEY = 200


class TooManyAttempts(GeoError):
    """Too many failed sign-ins (HTTP 429); ``retry_after`` seconds until the next try."""

    status = 429
    code = "TooManyRequests"

    def __init__(self, retry_after: int, *, scope: str) -> None:
        super().__init__(
            f"too many failed sign-ins ({scope}); retry in {retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after
        self.scope = scope
        self.headers = {"Retry-After": str(retry_after)}


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _keys(username: str, client: str | None) -> list[tuple[str, str, int]]:
    s = get_account_settings()
    keys = [("user", username.casefold()[:MAX_KEY], s.login_max_failures)]
    if client:
        keys.append(("ip", client[:MAX_KEY], s.login_max_failures_ip))
    return keys


def check(conn: Connection, username: str, client: str | None) -> None:
    """TooManyAttempts when the user name or the address used up its failures."""
    s = get_account_settings()
    now = utcnow()
    window = timedelta(minutes=s.login_window_minutes)
    t = attempts_table
    for kind, key, limit in _keys(username, client):
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.min(t.c.at)).where(
                t.c.kind == kind, t.c.key == key, t.c.at > now - window
            )
        ).one()
        if row[0] >= limit:
            # Failures beyond the limit keep it closed: wait until enough of them age out.
            ats = conn.execute(
                sa.select(t.c.at)
                .where(t.c.kind == kind, t.c.key == key, t.c.at > now - window)
                .order_by(t.c.at.desc())
                .limit(limit)
            ).scalars()
            oldest_counted = min(_aware(a) for a in ats)
            wait = (oldest_counted + window - now).total_seconds()
            raise TooManyAttempts(max(1, math.ceil(wait)), scope=kind)


def failed(conn: Connection, username: str, client: str | None) -> None:
    """Record a failed sign-in (and forget failures older than the window)."""
    s = get_account_settings()
    now = utcnow()
    t = attempts_table
    rows = [{"kind": kind, "key": key, "at": now} for kind, key, _ in _keys(username, client)]
    conn.execute(t.insert(), rows)
    conn.execute(t.delete().where(t.c.at < now - timedelta(minutes=s.login_window_minutes)))


def succeeded(conn: Connection, username: str) -> None:
    """A correct password clears the user name's failures."""
    t = attempts_table
    conn.execute(t.delete().where(t.c.kind == "user", t.c.key == username.casefold()[:MAX_KEY]))
