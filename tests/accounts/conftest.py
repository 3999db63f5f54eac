"""Fixtures of the accounts tests: users on both backends, signed-in HTTP clients."""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from accounts_helpers import PASSWORD, new_client, sign_in

_MAPS = Path(__file__).resolve().parents[1] / "maps" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_maps_browser_fixtures_accounts", _MAPS)
assert _spec is not None and _spec.loader is not None
_maps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_maps)

#: The ``browser`` fixture of tests/maps (one headless Debian Chromium per module).
browser = _maps.browser


@pytest.fixture(autouse=True)
def _clean_attempts(request):
    """Failed sign-ins of one test never rate-limit the next (same client address)."""
    if "backend" not in request.fixturenames:
        yield
        return
    engine = request.getfixturevalue("backend")
    from geo.accounts.tables import attempts_table

    with engine.begin() as conn:
        conn.execute(attempts_table.delete())
    yield


@pytest.fixture(autouse=True)
def _drop_created_interventions(request):
    """The shared store keeps its 104 seeded interventions: what a test adds, it removes."""
    if "backend" not in request.fixturenames:
        yield
        return
    engine = request.getfixturevalue("backend")
    from geo import interventions as iv

    before = set(iv.snapshot(engine).ids)
    yield
    for fid in set(iv.snapshot(engine).ids) - before:
        iv.delete(fid, engine=engine)


@pytest.fixture()
def make_user(backend) -> Callable[..., str]:
    """Create a user with a unique name on the current backend; returns the name."""
    from geo.accounts import users

    def make(prefix: str = "u", *, admin: bool = False, comuni=("Rho",), **kw) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        users.create_user(name, PASSWORD, admin=admin, comuni=() if admin else comuni, **kw)
        return name

    return make


@pytest.fixture()
def signed_in(backend, make_user):
    """``signed_in(admin=…, comuni=…)`` → (client, username, csrf token of the session)."""

    def make(**kw):
        name = make_user(**kw)
        c = new_client()
        r = sign_in(c, name)
        assert r.status_code == 303, r.text
        token = c.get("/app/session").json()["csrf_token"]
        return c, name, token

    return make
