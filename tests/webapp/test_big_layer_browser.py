"""A 20,000-polygon layer in the app: drawn from vector tiles (OGC API – Tiles), never
downloaded whole, still identifiable by a click; panning keeps the page responsive.

Times (first render, longest main-thread task while panning) are recorded in
``test-output/webapp-big-layer.txt`` for the notes; nothing asserts on them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from tests.servers import uvicorn_app
from tests.webapp.test_app_browser import SHOTS, App

TOKEN = "big-layer-admin-token"
N = 20_000
OUT = Path(__file__).resolve().parents[2] / "test-output" / "webapp-big-layer.txt"
LONGTASKS = """
window.__longest = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: "longtask", buffered: true });
"""


def polygons(n: int) -> dict:
    """``n`` small 12-sided polygons on a grid over the metropolitan area."""
    cols = 200
    rows = -(-n // cols)
    xs = np.linspace(8.72, 9.55, cols)
    ys = np.linspace(45.18, 45.62, rows)
    angles = np.linspace(0, 2 * np.pi, 13)
    ring = np.column_stack([np.cos(angles) * 0.0012, np.sin(angles) * 0.0008])
    feats = []
    for k in range(n):
        cx, cy = xs[k % cols], ys[k // cols]
        coords = np.round(ring + np.array([cx, cy]), 6).tolist()
        coords[-1] = coords[0]
        feats.append(
            {"type": "Feature", "properties": {"n": k, "nome": f"Area {k}"},
             "geometry": {"type": "Polygon", "coordinates": [coords]}}
        )  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}


@pytest.fixture(scope="module")
def big(map_assets) -> Iterator[tuple[str, str]]:
    env = {"CMM_GEO_TILES_URL": "none", "CMM_GEO_ADMIN_TOKEN": TOKEN}
    with uvicorn_app(env, "cmm-geo-big-") as base:
        r = httpx.post(
            f"{base}/layers",
            files={"file": ("aree.geojson", json.dumps(polygons(N)).encode())},
            data={"name": "Aree di prova"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=600,
        )
        assert r.status_code == 201, r.text[:500]
        yield base, r.json()["id"]


def test_big_layer_is_drawn_from_tiles_and_stays_identifiable(browser, big):
    base, lid = big
    app = App(browser, base)
    requests: list[str] = []
    app.page.on("request", lambda req: requests.append(req.url))
    app.context.add_init_script(LONGTASKS)
    first_render = longest = ready = float("nan")
    try:
        t0 = time.perf_counter()
        pg = app.open(f"/?layer={lid}")
        ready = time.perf_counter() - t0  # the app, the layer's metrics per comune included
        pane_tiles = f".tiled-{lid}.leaflet-tile-loaded, .tiled-{lid} .leaflet-tile-loaded"
        pg.wait_for_function(
            "(sel) => document.querySelectorAll(sel).length > 0", arg=pane_tiles, timeout=60_000
        )
        first_render = time.perf_counter() - t0
        pg.wait_for_timeout(500)
        app.shot("12-big-layer-tiles")

        items = [u for u in requests if f"/collections/{lid}/items" in u]
        assert all("limit=1&" in u or u.endswith("limit=1") for u in items), items
        tiles = [u for u in requests if f"/collections/{lid}/tiles/WebMercatorQuad/" in u]
        assert len(tiles) >= 4

        # Pan around with the keyboard (Leaflet's map keyboard handler) and by dragging.
        pg.locator("#map").focus()
        box = pg.locator("#map").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        for dx, dy in ((300, 0), (0, 200), (-300, 0), (0, -200), (250, 150)):
            pg.mouse.move(cx, cy)
            pg.mouse.down()
            pg.mouse.move(cx + dx, cy + dy, steps=8)
            pg.mouse.up()
        pg.keyboard.press("ArrowRight")
        pg.keyboard.press("+")
        pg.wait_for_timeout(800)
        longest = pg.evaluate("window.__longest")
        more = [u for u in requests if f"/collections/{lid}/tiles/WebMercatorQuad/" in u]
        assert len(more) > len(tiles)  # panning fetched further tiles
        assert not any(f"/collections/{lid}/items?limit=10000" in u for u in requests)

        # Identify still works: a click on a polygon lists it under the layer.
        pg.evaluate("() => window.scrollTo(0, 0)")
        feature_url = f"{base}/collections/{lid}/items?limit=1&filter=n=10100"
        f = httpx.get(feature_url, timeout=60).json()["features"][0]
        ring = f["geometry"]["coordinates"][0]
        lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        pg.goto(f"{base}/?layer={lid}&lon={lon}&lat={lat}", wait_until="load")
        pg.wait_for_selector("body[data-ready='true']", state="attached", timeout=60_000)
        found = pg.locator(f"#identify details[data-layer='{lid}']")
        found.first.wait_for(state="attached", timeout=30_000)
        # The click box is a few pixels wide: the polygon clicked is among those listed.
        assert "Area 10100" in (pg.locator("#identify").text_content() or "")
        pg.get_by_role("tab", name="Luogo").click()
        app.shot("13-big-layer-identify")
        assert app.errors == [], app.errors
        assert app.blocked == []
        assert {urlparse(u).hostname for u in requests} <= {"127.0.0.1", "localhost"}
    finally:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(
            f"{N} polygons; app ready (with the layer's metrics) {ready:.2f} s, first tiles "
            f"rendered {first_render:.2f} s after navigation; "
            f"longest main-thread task while panning {longest} ms\n"
        )
        app.close()
    assert SHOTS.is_dir()
