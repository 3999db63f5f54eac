"""``cmm-geo users …``: create (hidden prompt or --password-stdin, never a default
password), list, set-password, disable, delete — on both backends."""

from __future__ import annotations

import pytest
from accounts_helpers import PASSWORD
from typer.testing import CliRunner

from geo.accounts import sessions, users
from geo.cli import app
from geo.errors import NotFound

runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["users", *args], input=stdin, env={"COLUMNS": "200"})


def test_first_admin_from_stdin_then_list(backend, monkeypatch):
    from geo.terminal import console

    monkeypatch.setattr(console, "width", 200)  # the table on one line per user
    r = run("create", "First.Admin", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert "created first.admin (admin)" in r.output
    assert users.sign_in("first.admin", PASSWORD).admin
    r = run(
        "create",
        "rho-uff",
        "--comune",
        "Rho",
        "--comune",
        "015146",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    assert users.get_user("rho-uff").comuni == ("015146", "015182")
    r = run("list")
    assert r.exit_code == 0
    assert "first.admin" in r.output and "Rho (015182)" in r.output


def test_no_default_password(backend):
    # Without --password-stdin the password is prompted on a terminal only: no fallback.
    r = run("create", "nopass-user", "--admin")
    assert r.exit_code == 2
    assert "--password-stdin" in r.output
    r = run("create", "nopass-user", "--admin", "--password-stdin", stdin="\n")
    assert r.exit_code == 2 and "no password" in r.output
    r = run("create", "nopass-user", "--admin", "--password-stdin", stdin="short\n")
    assert r.exit_code == 2 and "at least" in r.output
    with pytest.raises(NotFound):
        users.get_user("nopass-user")


def test_bad_comune_and_bad_name_are_refused(backend):
    r = run(
        "create", "atl-user", "--comune", "Atlantide", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert r.exit_code == 2 and "Atlantide" in r.output
    r = run("create", "<b>", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.exit_code == 2 and "3 to 64 characters" in r.output


def test_set_password_disable_enable_delete(backend, make_user):
    name = make_user()
    session = sessions.create_session(users.get_user(name))
    r = run("set-password", name, "--password-stdin", stdin="a brand new password\n")
    assert r.exit_code == 0, r.output
    assert sessions.resolve_session(session.token) is None
    assert users.sign_in(name, "a brand new password").username == name
    assert run("disable", name).exit_code == 0
    assert users.get_user(name).disabled
    assert run("disable", name, "--enable").exit_code == 0
    assert not users.get_user(name).disabled
    assert run("delete", name, "--yes").exit_code == 0
    with pytest.raises(NotFound):
        users.get_user(name)
    r = run("delete", name, "--yes")
    assert r.exit_code == 2 and "no user" in r.output
