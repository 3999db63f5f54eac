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
