"""The maps' assets served by the app itself: no CDN, pages work in a closed network.

:func:`use_local_assets` rewrites a Folium map's Leaflet links to ``/static/vendor``;
:func:`render_page` makes a complete HTML page of a map.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

from geo.lazy import lazy_module

folium = lazy_module("folium")  # it imports pandas: on the first map drawn (geo.lazy)


#: What a CSP nonce may be made of (base64 / base64url characters).
NONCE_CHARS = re.compile(r"[A-Za-z0-9+/_=-]{16,128}")

#: Local paths (below the vendor base URL) of the Folium assets the maps use.
LOCAL_ASSETS: dict[str, str] = {
    "leaflet": "leaflet/leaflet.js",
    "leaflet_css": "leaflet/leaflet.css",
    "markerclusterjs": "leaflet.markercluster/leaflet.markercluster.js",
    "markerclustercss": "leaflet.markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "leaflet.markercluster/MarkerCluster.Default.css",
}


#: Folium defaults these maps never need (jQuery, Bootstrap, awesome-markers, icon fonts).
UNUSED_ASSETS = frozenset(
    {
        "jquery",
        "bootstrap",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "awesome_rotate_css",
    }
)


def _elements(root: Any) -> Iterable[Any]:
    yield root
    for child in list(getattr(root, "_children", {}).values()):
        yield from _elements(child)


def use_local_assets(m: folium.Map, base_url: str = "/static/vendor") -> folium.Map:
    """Make ``m`` load Leaflet and its plugins from ``base_url`` instead of CDNs.

    Rewrites the ``default_js``/``default_css`` of the map and of every plugin in it
    (on the instances, so other maps are untouched). Assets the maps never use
    (jQuery, Bootstrap, awesome-markers, icon fonts) are dropped. Raises ValueError for
    an asset with no local copy, so a new plugin cannot slip a CDN link into a page.
    """
    base = base_url.rstrip("/")
    for el in _elements(m):
        for attr in ("default_js", "default_css"):
            assets = getattr(el, attr, None)
            if not assets:
                continue
            local: list[tuple[str, str]] = []
            for name, _url in assets:
                if name in UNUSED_ASSETS:
                    continue
                if name not in LOCAL_ASSETS:
                    raise ValueError(f"no local copy of map asset {name!r} ({_url})")
                local.append((name, f"{base}/{LOCAL_ASSETS[name]}"))
            setattr(el, attr, local)
    return m


def add_nonce(page: str, nonce: str) -> str:
    """``page`` with ``nonce="…"`` in every ``<script`` tag (Folium's own output only)."""
    if not NONCE_CHARS.fullmatch(nonce):
        raise ValueError(f"not a nonce: {nonce!r}")
    return page.replace("<script", f'<script nonce="{nonce}"')


def render_page(
    m: folium.Map,
    *,
    title: str,
    before: str = "",
    after: str = "",
    local_assets: str | None = "/static/vendor",
    nonce: str | None = None,
) -> str:
    """The map as a complete HTML page with a title and HTML before/after the map.

    ``nonce``: written into every ``<script>`` tag Folium generates, for a
    Content-Security-Policy that allows only those scripts. It is added before
    ``before``/``after`` go in, so no script tag in them could ever carry it; the callers
    escape every user string in them anyway.
    """
    if local_assets is not None:
        use_local_assets(m, local_assets)
    page = m.get_root().render()
    if nonce is not None:
        page = add_nonce(page, nonce)
    head = (
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        "<style>body{font-family:sans-serif} .cmm-page{padding:6px 14px}"
        ".cmm-page h1{font-size:20px;margin:6px 0} .cmm-page table{border-collapse:collapse}"
        ".cmm-page td,.cmm-page th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "</style>"
    )
    page = page.replace("<head>", "<head>\n" + head, 1)
    if before:
        page = page.replace("<body>", f'<body>\n<div class="cmm-page">{before}</div>', 1)
    if after:
        page = page.replace("</body>", f'<div class="cmm-page">{after}</div>\n</body>', 1)
    return page
