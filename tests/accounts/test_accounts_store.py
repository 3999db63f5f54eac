"""Accounts in the store, on both backends: hashes, users, sessions, expiry, rate limit,
change history of interventions, layer owners."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from accounts_helpers import PASSWORD, count

from geo.accounts import passwords, ratelimit, sessions, users
from geo.accounts.config import get_account_settings
from geo.accounts.tables import attempts_table, sessions_table
from geo.errors import Conflict, InvalidParameter, NotFound
from geo.store import utcnow


def test_password_hash_is_argon2id_salted_and_verified():
    h1, h2 = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert h1.startswith("$argon2id$") and h1 != h2  # salted
    assert "m=65536" in h1  # memory-hard: 64 MiB
    assert passwords.verify(h1, PASSWORD)
    assert not passwords.verify(h1, PASSWORD + "x")
    assert not passwords.verify(None, PASSWORD)  # unknown user: same work, always False
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.needs_rehash(h1)


def test_users_create_list_role_disable_delete(backend, make_user):
    name = make_user(comuni=("Rho", "015146", "F205"))  # name, ISTAT, cadastral code
    u = users.get_user(name)
    assert u.comuni == ("015146", "015182") and not u.admin and not u.disabled
    assert u.principal.may_write(["015182", "015146"])
    assert not u.principal.may_write(["015182", "015077"])
    assert name in {x.username for x in users.list_users()}
    with pytest.raises(Conflict):
        users.create_user(name.upper(), PASSWORD, comuni=["Rho"])  # names are lower-cased
    with pytest.raises(InvalidParameter) as bad:
        users.create_user("x", PASSWORD, comuni=["Rho"])
    assert bad.value.extra["reason"] == "username_format"
    with pytest.raises(InvalidParameter) as bad:
        users.create_user("shorty", "short", comuni=["Rho"])
    assert bad.value.extra["parameter"] == "password"
    with pytest.raises(InvalidParameter) as bad:
        users.create_user("no-comune", PASSWORD, comuni=[])
    assert bad.value.extra["reason"] == "comuni_missing"
    with pytest.raises(InvalidParameter) as bad:
        users.create_user("atlantis", PASSWORD, comuni=["Atlantide"])
    assert bad.value.extra["value"] == "Atlantide"
    admin = users.set_role(name, admin=True)
    assert admin.admin and admin.comuni == () and admin.principal.role == "admin"
    users.set_disabled(name)
    assert users.get_user(name).disabled
    users.delete_user(name)
    with pytest.raises(NotFound):
        users.get_user(name)


def test_sign_in_checks_password_and_disabled(backend, make_user):
    name = make_user()
    assert users.sign_in(name.upper(), PASSWORD, client="10.0.0.1").username == name
    with pytest.raises(users.BadCredentials):
        users.sign_in(name, "wrong password!", client="10.0.0.1")
    with pytest.raises(users.BadCredentials):
        users.sign_in("nobody-here", PASSWORD, client="10.0.0.1")
    users.set_disabled(name)
    with pytest.raises(users.BadCredentials):
        users.sign_in(name, PASSWORD, client="10.0.0.1")
    users.set_disabled(name, False)
    assert users.sign_in(name, PASSWORD).username == name


def test_sessions_are_stored_hashed_and_end_at_sign_out(backend, make_user):
    user = users.get_user(make_user())
    s = sessions.create_session(user)
    assert len(s.token) >= 43  # 256 random bits, URL-safe
    with backend.connect() as conn:
        stored = conn.execute(sa.select(sessions_table.c.id_hash)).scalars().all()
    assert s.token not in stored and sessions._hash(s.token) in stored
    found = sessions.resolve_session(s.token)
    assert found is not None and found.user.username == user.username
    assert sessions.csrf_ok(s.token, found.csrf) and not sessions.csrf_ok(s.token, "x" * 43)
    assert sessions.csrf_token(s.token) != sessions.csrf_token(sessions.new_secret())
    assert sessions.resolve_session(s.token + "x") is None
    assert sessions.resolve_session("x" * 1000) is None
    sessions.delete_session(s.token)
    assert sessions.resolve_session(s.token) is None


def _age(engine, token: str, **deltas: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            sessions_table.update()
            .where(sessions_table.c.id_hash == sessions._hash(token))
            .values(**{k: utcnow() - d for k, d in deltas.items()})
        )


def test_sessions_expire_absolutely_and_when_idle(backend, make_user):
    user = users.get_user(make_user())
    s = get_account_settings()
    expired = sessions.create_session(user)
    _age(backend, expired.token, expires_at=timedelta(seconds=1))
    assert sessions.resolve_session(expired.token) is None
    assert count(backend, sessions_table, id_hash=sessions._hash(expired.token)) == 0
    idle = sessions.create_session(user)
    _age(backend, idle.token, last_seen_at=timedelta(minutes=s.session_idle_minutes + 1))
    assert sessions.resolve_session(idle.token) is None
    fresh = sessions.create_session(user)
    _age(backend, fresh.token, last_seen_at=timedelta(minutes=5))
    assert sessions.resolve_session(fresh.token) is not None  # and it is touched
    with backend.connect() as conn:
        seen = conn.execute(
            sa.select(sessions_table.c.last_seen_at).where(
                sessions_table.c.id_hash == sessions._hash(fresh.token)
            )
        ).scalar_one()
    assert utcnow() - ratelimit._aware(seen) < timedelta(minutes=1)


def test_password_change_disable_and_delete_end_sessions(backend, make_user):
    name = make_user()
    user = users.get_user(name)
    a, b = sessions.create_session(user), sessions.create_session(user)
    users.set_password(name, "another long password")
    assert sessions.resolve_session(a.token) is None and sessions.resolve_session(b.token) is None
    c = sessions.create_session(user)
    users.set_disabled(name)
    assert sessions.resolve_session(c.token) is None
    users.set_disabled(name, False)
    d = sessions.create_session(user)
    users.delete_user(name)
    assert sessions.resolve_session(d.token) is None


def test_failed_sign_ins_are_rate_limited_per_user(backend, make_user):
    name = make_user()
    limit = get_account_settings().login_max_failures
    for _ in range(limit):
        with pytest.raises(users.BadCredentials):
            users.sign_in(name, "wrong password!", client="192.0.2.10")
    with pytest.raises(ratelimit.TooManyAttempts) as too_many:
        users.sign_in(name, PASSWORD, client="192.0.2.11")  # right password, other address
    exc = too_many.value
    assert exc.status == 429 and exc.scope == "user"
    window = get_account_settings().login_window_minutes * 60
    assert 0 < int(exc.headers["Retry-After"]) <= window
    # Another user from another address is not affected.
    other = make_user()
    assert users.sign_in(other, PASSWORD, client="192.0.2.12").username == other
    # Once the failures are older than the window, the user may try again.
    with backend.begin() as conn:
        conn.execute(attempts_table.update().values(at=utcnow() - timedelta(seconds=window + 1)))
    assert users.sign_in(name, PASSWORD, client="192.0.2.10").username == name


def test_failed_sign_ins_are_rate_limited_per_address(backend, make_user):
    limit = get_account_settings().login_max_failures_ip
    for i in range(limit):
        with pytest.raises(users.BadCredentials):
            users.sign_in(f"guess-{i}", "wrong password!", client="198.51.100.7")
    victim = make_user()
    with pytest.raises(ratelimit.TooManyAttempts) as too_many:
        users.sign_in(victim, PASSWORD, client="198.51.100.7")
    assert too_many.value.scope == "ip"
    assert users.sign_in(victim, PASSWORD, client="198.51.100.8").username == victim


def test_success_clears_the_users_failures(backend, make_user):
    name = make_user()
    for _ in range(get_account_settings().login_max_failures - 1):
        with pytest.raises(users.BadCredentials):
            users.sign_in(name, "wrong password!", client="203.0.113.1")
    users.sign_in(name, PASSWORD, client="203.0.113.1")
    assert count(backend, attempts_table, kind="user", key=name) == 0
    with pytest.raises(users.BadCredentials):  # a fresh budget, not a 429
        users.sign_in(name, "wrong password!", client="203.0.113.1")
