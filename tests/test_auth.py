"""Writes need a bearer token; editors may only write in their own comune; data persist."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from geo import auth
from geo.store import get_engine

ITEMS = "/collections/interventions/items"
ADMIN = {"Authorization": "Bearer test-admin-token"}
ROOT = Path(__file__).resolve().parents[1]


def feature(fid: str, comuni: str, lon: float | None = None, lat: float | None = None) -> dict:
    geom = None if lon is None else {"type": "Point", "coordinates": [lon, lat]}
    return {
        "type": "Feature",
        "id": fid,
        "geometry": geom,
        "properties": {"title": f"Test {fid}", "programme": "PINQUA", "comuni": comuni},
    }


@pytest.fixture(scope="module")
def rho_token() -> str:
    return auth.create_token("Rho", label="tests").token


def test_writes_without_token_are_401(client):
    for method, path in (
        ("POST", ITEMS),
        ("PUT", f"{ITEMS}/doc-001"),
        ("PATCH", f"{ITEMS}/doc-001"),
        ("DELETE", f"{ITEMS}/doc-001"),
    ):
        body = None if method == "DELETE" else feature("x", "Rho")
        r = client.request(method, path, json=body)
        assert r.status_code == 401, (method, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.post(ITEMS, json=feature("x", "Rho"), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_admin_create_put_patch_delete(client):
    r = client.post(ITEMS, json=feature("adm-1", "Milano", 9.19, 45.464), headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith(f"{ITEMS}/adm-1")
    assert r.json()["properties"]["comuni_names"] == ["Milano"]
    assert client.post(ITEMS, json=feature("adm-1", "Milano"), headers=ADMIN).status_code == 409
    put = feature("adm-1", "Rho")
    put["properties"]["amount_eur"] = 12.5
    r = client.put(f"{ITEMS}/adm-1", json=put, headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["properties"]["comuni_names"] == ["Rho"]
    assert r.json()["properties"]["precision"] == "comune"
    r = client.patch(f"{ITEMS}/adm-1", json={"properties": {"status": "done"}}, headers=ADMIN)
    assert r.status_code == 200
    props = r.json()["properties"]
    assert (props["status"], props["amount_eur"], props["comuni_names"]) == ("done", 12.5, ["Rho"])
    bad = client.patch(
        f"{ITEMS}/adm-1", json={"properties": {"comuni": "Atlantide"}}, headers=ADMIN
    )
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "comuni"
    assert client.delete(f"{ITEMS}/adm-1", headers=ADMIN).status_code == 204
    assert client.delete(f"{ITEMS}/adm-1", headers=ADMIN).status_code == 404


def test_editor_only_in_own_comune(client, rho_token):
    rho = {"Authorization": f"Bearer {rho_token}"}
    r = client.post(ITEMS, json=feature("ed-1", "Rho"), headers=rho)
    assert r.status_code == 201, r.text
    # a point inside Milano is Milano's, whatever the comuni claim
    r = client.post(ITEMS, json=feature("ed-2", "Rho", 9.19, 45.464), headers=rho)
    assert r.status_code == 403
    assert client.post(ITEMS, json=feature("ed-3", "Milano"), headers=rho).status_code == 403
    # a documented intervention in Milano (doc-033 spans many comuni) is not theirs
    r = client.patch(f"{ITEMS}/doc-033", json={"properties": {"status": "x"}}, headers=rho)
    assert r.status_code == 403
    assert client.delete(f"{ITEMS}/doc-033", headers=rho).status_code == 403
    # nor may they move their own intervention elsewhere
    r = client.patch(f"{ITEMS}/ed-1", json={"properties": {"comuni": "Milano"}}, headers=rho)
    assert r.status_code == 403
    r = client.patch(f"{ITEMS}/ed-1", json={"properties": {"status": "started"}}, headers=rho)
    assert r.status_code == 200
    assert client.delete(f"{ITEMS}/ed-1", headers=rho).status_code == 204


def test_tokens_stored_hashed_and_revocable(client):
    created = auth.create_token("015182")
    with get_engine().connect() as conn:
        stored = conn.execute(
            sa.select(auth.tokens_table.c.token_hash).where(auth.tokens_table.c.id == created.id)
        ).scalar_one()
        dump = " ".join(str(v) for row in conn.execute(sa.select(auth.tokens_table)) for v in row)
    assert created.token not in dump
    assert stored == auth.hash_token(created.token) and len(stored) == 64
    assert {t["id"] for t in auth.list_tokens()} >= {created.id}
    h = {"Authorization": f"Bearer {created.token}"}
    assert client.post(ITEMS, json=feature("tok-1", "Rho"), headers=h).status_code == 201
    auth.revoke_token(created.id)
    assert client.delete(f"{ITEMS}/tok-1", headers=h).status_code == 401
    assert client.delete(f"{ITEMS}/tok-1", headers=ADMIN).status_code == 204


def test_cli_tokens(data_dir):
    from typer.testing import CliRunner

    from geo.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["tokens", "create", "--comune", "Rho", "--label", "cli"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith(auth.TOKEN_PREFIX)
    assert auth.authenticate(f"Bearer {token}").comune == "015182"
    r = runner.invoke(app, ["tokens", "create", "--comune", "Atlantide"])
    assert r.exit_code == 2
    listed = runner.invoke(app, ["tokens", "list"])
    assert "Rho (015182)" in listed.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CMM_GEO_DATA_DIR": str(data),
        "CMM_GEO_ADMIN_TOKEN": "restart-token",
        "CMM_GEO_TILES_URL": "none",
    }
    env.pop("CMM_GEO_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/plan/missions", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.terminate()
    pytest.fail("uvicorn did not start")


def test_data_survive_a_restart_of_the_service(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": "Bearer restart-token"}
    proc = _serve(tmp_path, port)
    try:
        r = httpx.post(f"{base}{ITEMS}", json=feature("restart-1", "Rho"), headers=h)
        assert r.status_code == 201, r.text
        stats = httpx.get(f"{base}/stats/interventions?by=programme").json()
        assert stats["n_interventions"] == 105
    finally:
        proc.terminate()
        proc.wait(30)
    proc = _serve(tmp_path, port)
    try:
        stats = httpx.get(f"{base}/stats/interventions?by=programme").json()
        assert stats["n_interventions"] == 105  # kept, and the seed was not loaded twice
        r = httpx.patch(
            f"{base}{ITEMS}/restart-1", json={"properties": {"status": "kept"}}, headers=h
        )
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["title"] == "Test restart-1"
    finally:
        proc.terminate()
        proc.wait(30)
