"""Modules imported when first used, not when the service starts.

pandas, pyogrio (with GDAL) and geopandas take ~100 MB and ~0.6 s to import, and only file
imports, uploads, exports and prints need them: every worker of a service that mostly
answers queries would carry them for nothing. ``lazy_module(name)`` stands for the module:
the first attribute read imports it (a plain ``import``, so there is one module object in
``sys.modules`` whoever imports it) and later reads go straight to it.

Not a ``sys.modules`` entry of its own (as :class:`importlib.util.LazyLoader` would make):
libraries that probe ``sys.modules`` for pandas at import time (rapidfuzz does) would load
it at once.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Deferred:
    """A module imported on its first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """``import name``, deferred until an attribute of it is used."""
    return _Deferred(name)
