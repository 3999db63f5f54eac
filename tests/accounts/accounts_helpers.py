"""Helpers of the accounts tests: sign in through the form, read CSRF tokens, count rows."""

from __future__ import annotations

import re

import sqlalchemy as sa

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """The CSRF token of the first form of a page."""
    m = CSRF_RE.search(html)
    assert m, "no csrf_token in the page"
    return m.group(1)


def new_client(app=None, base_url: str = "http://testserver"):
    """A fresh in-process client (its own cookies)."""
    from fastapi.testclient import TestClient

    if app is None:
        from api.main import app
    return TestClient(app, base_url=base_url, follow_redirects=False)


def sign_in(client, username: str, password: str = PASSWORD, next_url: str = "/"):
    """Sign in through the login form; the response of the POST."""
    page = client.get("/app/login", params={"next": next_url})
    assert page.status_code == 200
    return client.post(
        "/app/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_in(page.text),
            "next": next_url,
        },
    )


def count(engine, table, **where) -> int:
    with engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(table)
        for k, v in where.items():
            q = q.where(table.c[k] == v)
        return int(conn.execute(q).scalar_one())
