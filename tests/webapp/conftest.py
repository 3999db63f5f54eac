"""Fixtures of the map application's tests: Chromium (shared with tests/maps), a server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_MAPS = Path(__file__).resolve().parents[1] / "maps" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_maps_browser_fixtures", _MAPS)
assert _spec is not None and _spec.loader is not None
_maps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_maps)

#: The ``browser`` fixture of tests/maps (one headless Debian Chromium per module).
browser = _maps.browser
