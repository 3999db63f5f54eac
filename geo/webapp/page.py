"""The application page: one server-rendered HTML shell; the ES modules do the rest.

The page carries no user data: only the UI strings of its language, the base-map setting
and the asset URLs, all escaped by Jinja. Every script is an external file from the app
itself (no inline script), so the default Content-Security-Policy holds.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geo import BOUNDARIES_ATTRIBUTION
from geo.webapp.i18n import LANGS, MESSAGES

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_URL = "/app/static"
VENDOR_URL = "/static/vendor"
LEAFLET_URL = VENDOR_URL + "/leaflet"
OSM_ATTRIBUTION = "© OpenStreetMap contributors"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@lru_cache(maxsize=1)
def static_version() -> str:
    """Digest of the static files, appended to their URLs so browsers never run stale code."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def tiles_enabled(tiles_url: str) -> bool:
    """Whether a base map is configured (``CMM_GEO_TILES_URL=none`` turns it off)."""
    return bool(tiles_url.strip()) and tiles_url.strip().lower() != "none"


def render_app(lang: str, tiles_url: str) -> str:
    """The application page in ``lang`` (``it``/``en``)."""
    messages = MESSAGES[lang]
    tiles = tiles_url.strip() if tiles_enabled(tiles_url) else ""
    config = {
        "lang": lang,
        "tiles": tiles,
        "tilesAttribution": OSM_ATTRIBUTION if tiles else "",
        "attribution": BOUNDARIES_ATTRIBUTION,
        "messages": messages,
    }
    return _env.get_template("app.html").render(
        lang=lang,
        other_lang=next(x for x in LANGS if x != lang),
        m=messages,
        config=orjson.dumps(config).decode(),
        static=STATIC_URL,
        leaflet=LEAFLET_URL,
        vendor=VENDOR_URL,
        v=static_version(),
    )
