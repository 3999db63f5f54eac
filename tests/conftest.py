"""Shared fixtures: the territory, an API client, the shared reference folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never touch a real store: the data dir is a fresh temporary folder, set before
# any test module imports the app (settings are read at import time).
os.environ["CMM_GEO_DATA_DIR"] = tempfile.mkdtemp(prefix="cmm-geo-test-")
os.environ.pop("CMM_GEO_DATABASE_URL", None)
os.environ.setdefault("CMM_GEO_ADMIN_TOKEN", "test-admin-token")
# The suite sends thousands of filters from one address (fuzzing, differential tests): the
# per-client rate limit has its own tests (tests/test_security_headers.py), which set it.
os.environ["CMM_GEO_FILTER_RATE_PER_CLIENT"] = "0"

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``; tests that need it skip, with the reason, when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"../shared/reference is absent ({REFERENCE}); this test reads it")
    return REFERENCE


@pytest.fixture(scope="session")
def territory():
    """The committed territory, loaded once."""
    from geo.territory import get_territory

    return get_territory()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The temporary CMM_GEO_DATA_DIR of this test session."""
    return Path(os.environ["CMM_GEO_DATA_DIR"])


@pytest.fixture(scope="session")
def client():
    """An in-process HTTP client of the app."""
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def map_assets() -> Path:
    """The vendored map assets (api/static/vendor), installed by scripts/fetch_assets.sh
    when missing (it reads the npm registry once)."""
    import subprocess

    vendor = ROOT / "api" / "static" / "vendor"
    if not (vendor / "leaflet" / "leaflet.js").is_file():
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch_assets.sh")], check=True)
    return vendor


# --- store fixtures (issue 4): both backends ---------------------------------------------


@pytest.fixture(scope="session")
def postgis_url() -> str:
    """CMM_GEO_TEST_DATABASE_URL; fails (never skips) when unset: CI always sets it."""
    url = os.environ.get("CMM_GEO_TEST_DATABASE_URL")
    if not url:
        pytest.fail(
            "CMM_GEO_TEST_DATABASE_URL is not set: run the tests with `bash scripts/test.sh`, "
            "or `source scripts/pg_throwaway.sh && pg_throwaway_start` first"
        )
    return url


@pytest.fixture(scope="session")
def postgis_schema(postgis_url: str):
    """A fresh PostgreSQL schema for this test session, dropped at the end."""
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield schema
    engine = sa.create_engine(postgis_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgis"])
def store_backend(request, tmp_path_factory) -> tuple[str, str | None]:
    """(url, schema) of a fresh store: an SQLite file, or a PostGIS schema."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "cmm_geo.sqlite"
        return f"sqlite:///{path.as_posix()}", None
    return request.getfixturevalue("postgis_url"), request.getfixturevalue("postgis_schema")


@pytest.fixture(scope="session")
def store_engine(store_backend):
    """A migrated, seeded engine on each backend (the 104 documented interventions)."""
    from geo.interventions import get_store
    from geo.store import get_engine

    url, schema = store_backend
    return get_store(get_engine(url, schema=schema))


@pytest.fixture()
def backend(store_backend, store_engine):
    """The app's store switched to ``store_backend`` (SQLite file or a PostGIS schema)."""
    from geo.settings import get_settings

    url, schema = store_backend
    if schema:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}%2Cpublic"
    old = os.environ.get("CMM_GEO_DATABASE_URL")
    os.environ["CMM_GEO_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield store_engine
    finally:
        if old is None:
            os.environ.pop("CMM_GEO_DATABASE_URL", None)
        else:
            os.environ["CMM_GEO_DATABASE_URL"] = old
        get_settings.cache_clear()
