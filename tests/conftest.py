"""Shared fixtures: the territory, an API client, the shared reference folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_dir(tmp_path_factory):
    """Point CMM_GEO_DATA_DIR at a temporary folder so tests never touch a real store."""
    path = tmp_path_factory.mktemp("cmm-geo-data")
    old = os.environ.get("CMM_GEO_DATA_DIR")
    os.environ["CMM_GEO_DATA_DIR"] = str(path)
    from geo.settings import get_settings

    get_settings.cache_clear()
    yield path
    if old is None:
        os.environ.pop("CMM_GEO_DATA_DIR", None)
    else:
        os.environ["CMM_GEO_DATA_DIR"] = old
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def client(_isolated_data_dir):
    """An in-process HTTP client of the app."""
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app) as c:
        yield c
