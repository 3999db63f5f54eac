"""Users: create, list, change password, disable, delete, sign in.

A user is an **admin**, or an **editor** of one or more comuni (ISTAT codes; names and
cadastral codes are accepted and resolved). There is no default user and no default
password: the first admin is created with ``cmm-geo users create NAME --admin``.
Disabling or deleting a user, or changing their password, ends their sessions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo.accounts import passwords, ratelimit
from geo.accounts.config import get_account_settings
from geo.accounts.tables import sessions_table, users_table
from geo.auth import Principal
from geo.errors import Conflict, InvalidParameter, NotFound, Unauthorized
from geo.store import get_engine, transaction, utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 100


@dataclass(frozen=True)
class User:
    """A user as the pages and the CLI show it (never the hash)."""

    username: str
    display_name: str
    admin: bool
    comuni: tuple[str, ...] = ()
    disabled: bool = False
    created_at: datetime | None = field(default=None, compare=False)

    @property
    def principal(self) -> Principal:
        """The same rights as an API token: admin, or editor of these comuni."""
        if self.admin:
            return Principal("admin", user=self.username)
        return Principal("editor", comuni=frozenset(self.comuni), user=self.username)

    def to_dict(self) -> dict[str, Any]:
        """What ``/app/session`` answers about the user."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "admin": self.admin,
            "comuni": list(self.comuni),
        }


def _user(row: Any) -> User:
    return User(
        row.username,
        row.display_name,
        bool(row.admin),
        tuple(row.comuni or ()),
        bool(row.disabled),
        row.created_at,
    )


class BadCredentials(Unauthorized):
    """Wrong user name or password (one message for both: names are not disclosed)."""

    def __init__(self) -> None:
        super().__init__("wrong user name or password", reason="bad_credentials")


# ----- checks -------------------------------------------------------------------------------


def clean_username(username: str) -> str:
    """Lower-case user name: 3–64 of a-z, 0-9, ``.``, ``_``, ``-``."""
    name = (username or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidParameter(
            "username",
            "3 to 64 characters: lower-case letters, digits, . _ - (starting with a letter "
            "or digit)",
            reason="username_format",
        )
    return name


def check_password(password: str, username: str = "") -> None:
    """Long enough, not absurdly long, not the user name."""
    s = get_account_settings()
    if not isinstance(password, str) or len(password) < s.min_password_length:
        raise InvalidParameter(
            "password",
            f"at least {s.min_password_length} characters",
            reason="password_short",
            min_length=s.min_password_length,
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidParameter(
            "password", f"at most {MAX_PASSWORD} characters", reason="password_long"
        )
    if username and password.strip().lower() == username.lower():
        raise InvalidParameter(
            "password", "must not be the user name", reason="password_is_username"
        )


def _display_name(value: str | None, username: str) -> str:
    text = (value or "").strip() or username
    if len(text) > MAX_DISPLAY_NAME or not text.isprintable():
        raise InvalidParameter(
            "display_name",
            f"at most {MAX_DISPLAY_NAME} printable characters",
            reason="display_name_format",
        )
    return text


def resolve_comuni(values: Iterable[str]) -> tuple[str, ...]:
    """ISTAT codes of comuni given as names or codes (InvalidParameter naming the bad one)."""
    from geo.interventions.validation import resolve_comune
    from geo.territory import get_territory

    t = get_territory()
    codes: list[str] = []
    for v in values:
        v = v.strip()
        if not v:
            continue
        code = resolve_comune(v, t)
        if code is None:
            raise InvalidParameter(
                "comuni", f"unknown comune {v!r}", reason="unknown_comune", value=v
            )
        if code not in codes:
            codes.append(code)
    return tuple(sorted(codes))


# ----- writes -------------------------------------------------------------------------------


def create_user(
    username: str,
    password: str,
    *,
    admin: bool = False,
    comuni: Iterable[str] = (),
    display_name: str | None = None,
    engine: Engine | None = None,
) -> User:
    """A new user (Conflict if the name is taken). Editors need at least one comune."""
    name = clean_username(username)
    check_password(password, name)
    codes = () if admin else resolve_comuni(comuni)
    if not admin and not codes:
        raise InvalidParameter(
            "comuni", "an editor needs at least one comune", reason="comuni_missing"
        )
    label = _display_name(display_name, name)
    now = utcnow()
    hashed = passwords.hash_password(password)
    with (engine or get_engine()).begin() as conn:
        if conn.execute(
            sa.select(users_table.c.username).where(users_table.c.username == name)
        ).first():
            raise Conflict(f"user {name!r} exists", reason="username_taken", parameter="username")
        conn.execute(
            users_table.insert().values(
                username=name,
                display_name=label,
                password_hash=hashed,
                admin=admin,
                comuni=list(codes),
                disabled=False,
                created_at=now,
                updated_at=now,
                password_changed_at=now,
            )
        )
    return User(name, label, admin, codes, False, now)


def _update(conn: Connection, username: str, **values: Any) -> None:
    n = conn.execute(
        users_table.update()
        .where(users_table.c.username == username.strip().lower())
        .values(**values, updated_at=utcnow())
    ).rowcount
    if not n:
        raise NotFound(f"no user {username!r}", reason="no_user")


class LastAdmin(Conflict):
    """The change would leave no enabled administrator (nobody could manage users)."""

    def __init__(self, username: str) -> None:
        super().__init__(
            f"{username} is the only enabled administrator: make another user an "
            "administrator first",
            reason="last_admin",
            username=username,
        )


def _keep_an_admin(conn: Connection, username: str) -> None:
    """LastAdmin if ``username`` is the only enabled admin (checked before it loses that).

    The enabled admins' rows are locked (``FOR UPDATE`` on PostgreSQL; SQLite's write
    transaction is exclusive already), so two admins demoting each other at the same time
    cannot both pass the check.
    """
    admins = (
        conn.execute(
            sa.select(users_table.c.username)
            .where(users_table.c.admin.is_(True), users_table.c.disabled.is_(False))
            .order_by(users_table.c.username)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if list(admins) == [username.strip().lower()]:
        raise LastAdmin(username.strip().lower())


def _end_sessions(conn: Connection, username: str) -> None:
    conn.execute(
        sessions_table.delete().where(sessions_table.c.username == username.strip().lower())
    )


def set_password(username: str, password: str, *, engine: Engine | None = None) -> None:
    """Change a password; the user's sessions end."""
    check_password(password, username)
    hashed = passwords.hash_password(password)
    with (engine or get_engine()).begin() as conn:
        _update(conn, username, password_hash=hashed, password_changed_at=utcnow())
        _end_sessions(conn, username)


def set_disabled(
    username: str,
    disabled: bool = True,
    *,
    keep_an_admin: bool = False,
    engine: Engine | None = None,
) -> None:
    """Disable (or enable again) a user; disabling ends their sessions.

    ``keep_an_admin`` (the web app): refuse to disable the last enabled admin (LastAdmin).
    """
    with transaction(engine) as conn:
        if disabled and keep_an_admin:
            _keep_an_admin(conn, username)
        _update(conn, username, disabled=disabled)
        if disabled:
            _end_sessions(conn, username)


def set_role(
    username: str,
    *,
    admin: bool,
    comuni: Iterable[str] = (),
    keep_an_admin: bool = False,
    engine: Engine | None = None,
) -> User:
    """Make a user admin, or editor of ``comuni`` (rights change at their next request).

    ``keep_an_admin`` (the web app): refuse to demote the last enabled admin (LastAdmin).
    """
    codes = () if admin else resolve_comuni(comuni)
    if not admin and not codes:
        raise InvalidParameter(
            "comuni", "an editor needs at least one comune", reason="comuni_missing"
        )
    with transaction(engine) as conn:
        if not admin and keep_an_admin:
            _keep_an_admin(conn, username)
        _update(conn, username, admin=admin, comuni=list(codes))
    return get_user(username, engine=engine)


def delete_user(
    username: str, *, keep_an_admin: bool = False, engine: Engine | None = None
) -> None:
    """Delete a user and their sessions (their names stay in the change history).

    ``keep_an_admin`` (the web app): refuse to delete the last enabled admin (LastAdmin).
    """
    with transaction(engine) as conn:
        if keep_an_admin:
            _keep_an_admin(conn, username)
        _end_sessions(conn, username)
        n = conn.execute(
            users_table.delete().where(users_table.c.username == username.strip().lower())
        ).rowcount
        if not n:
            raise NotFound(f"no user {username!r}", reason="no_user")


# ----- reads and sign-in --------------------------------------------------------------------


def get_user(username: str, *, engine: Engine | None = None) -> User:
    """One user (NotFound otherwise)."""
    with (engine or get_engine()).connect() as conn:
        row = conn.execute(
            sa.select(users_table).where(users_table.c.username == username.strip().lower())
        ).first()
    if row is None:
        raise NotFound(f"no user {username!r}", reason="no_user")
    return _user(row)


def list_users(*, engine: Engine | None = None) -> list[User]:
    """Every user, by name."""
    with (engine or get_engine()).connect() as conn:
        rows = conn.execute(sa.select(users_table).order_by(users_table.c.username)).all()
    return [_user(r) for r in rows]


def count_admins(*, engine: Engine | None = None) -> int:
    """Enabled admins (the last one may not be disabled or deleted from the app)."""
    with (engine or get_engine()).connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    users_table.c.admin.is_(True), users_table.c.disabled.is_(False)
                )
            ).scalar_one()
        )


def sign_in(
    username: str, password: str, *, client: str | None = None, engine: Engine | None = None
) -> User:
    """The user whose password this is; BadCredentials or TooManyAttempts otherwise.

    Rate-limited per user name and per ``client`` address before the password is checked;
    a disabled user fails like a wrong password.
    """
    engine = engine or get_engine()
    typed = (username or "").strip().lower()[:64]
    password = password if isinstance(password, str) else ""
    with engine.begin() as conn:
        ratelimit.check(conn, typed, client)
        row = conn.execute(sa.select(users_table).where(users_table.c.username == typed)).first()
    stored = row.password_hash if row is not None else None
    ok = passwords.verify(stored, password[:MAX_PASSWORD]) and not row.disabled
    with engine.begin() as conn:  # the failure is committed before answering
        if not ok:
            ratelimit.failed(conn, typed, client)
        else:
            ratelimit.succeeded(conn, typed)
            if passwords.needs_rehash(row.password_hash):
                _update(conn, typed, password_hash=passwords.hash_password(password))
    if not ok:
        raise BadCredentials()
    return _user(row)
