"""Map pages and prints, in process: local assets only, legend, comuni, PNG/PDF, ETags."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from geo import BOUNDARIES_ATTRIBUTION, maps
from geo.maps import printing

RESOURCE = re.compile(r"<(?:script|link)\b[^>]*(?:src|href)=\"([^\"]+)\"", re.I)


def _resources(page: str) -> list[str]:
    return RESOURCE.findall(page)


def _comuni_paths(page: str) -> set[str]:
    return set(re.findall(r"cmm-comune cmm-c-(\d{6})", page))


def test_territory_map_uses_only_local_assets(client, map_assets, territory):
    r = client.get("/maps/territory")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    res = _resources(page)
    assert "/static/vendor/leaflet/leaflet.js" in res
    assert "/static/vendor/leaflet/leaflet.css" in res
    assert not [u for u in res if u.startswith(("http:", "https:", "//"))], res
    assert "cdn" not in " ".join(res)
    assert not re.search(r"https?://[^\"' ]*cdn", page)
    assert _comuni_paths(page) == set(territory.comuni)
    assert "cmm-legend" in page
    for z in territory.zones.values():
        assert z.name in page
    assert "ISTAT" in page and "CC BY 4.0" in page
    assert "L.control.layers" in page


def test_vendored_assets_are_served(client, map_assets):
    for url in (
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/leaflet/leaflet.css",
        "/static/vendor/leaflet.markercluster/leaflet.markercluster.js",
        "/static/vendor/leaflet.markercluster/MarkerCluster.Default.css",
    ):
        r = client.get(url)
        assert r.status_code == 200, url
        assert len(r.content) > 1000, url
    assert b"Leaflet" in client.get("/static/vendor/leaflet/leaflet.js").content


def test_use_local_assets_refuses_unknown_cdn_asset():
    m = maps.base_map([[45.3, 8.8], [45.7, 9.5]], tiles="none")
    m.default_js = [*m.default_js, ("mystery", "https://cdn.example.org/mystery.js")]
    with pytest.raises(ValueError, match="mystery"):
        maps.use_local_assets(m)


def test_notebook_maps_keep_folium_defaults_untouched():
    page = maps.render_page(maps.territory_map(tiles="none"), title="t")
    assert "/static/vendor/leaflet/leaflet.js" in _resources(page)
    # Localising one map must not change the class defaults used by notebooks.
    import folium

    assert any(u.startswith("https://") for _, u in folium.Map.default_js)


def test_tiles_none_and_osm_attribution():
    no_tiles = maps.territory_map(tiles="none").get_root().render()
    assert "L.tileLayer" not in no_tiles
    osm = maps.territory_map(tiles="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    html = osm.get_root().render()
    assert "L.tileLayer" in html
    assert "OpenStreetMap" in html and "contributors" in html


def test_coordinates_are_rounded(territory):
    fc = maps.comuni_collection(["015146"], territory)
    coords = np.asarray(
        [xy for ring in fc["features"][0]["geometry"]["coordinates"][0] for xy in [ring]]
    ).reshape(-1, 2)
    assert np.allclose(coords, np.round(coords, maps.COORD_DECIMALS))


def test_comune_page_has_zone_union_neighbours_and_api_links(client, territory):
    code = "015014"  # Basiano, in the union of Basiano and Masate
    r = client.get(f"/maps/comuni/{code}")
    assert r.status_code == 200
    page = r.text
    expected = {code, *territory.neighbours[code]}
    assert _comuni_paths(page) == expected
    assert "cmm-selected" in page and "cmm-unione" in page and "cmm-zona" in page
    assert f'href="/comuni/{code}"' in page
    assert f'href="/maps/comuni/{code}.png"' in page
    c = territory.comuni[code]
    assert territory.unions[c.unione_id].name in page
    assert territory.zones[c.zona_id].name in page


def test_zone_page_shows_its_comuni_and_context(client, territory):
    zid = "nord-milano"
    page = client.get(f"/maps/zone-omogenee/{zid}").text
    assert _comuni_paths(page) == set(territory.comuni)
    assert page.count("cmm-context") >= len(territory.comuni) - len(territory.zones[zid].comuni)
    for code in territory.zones[zid].comuni:
        assert f'href="/maps/comuni/{code}"' in page


def test_unknown_ids_are_404(client):
    assert client.get("/maps/comuni/999999").status_code == 404
    assert client.get("/maps/comuni/015146.gif").status_code == 404
    assert client.get("/maps/zone-omogenee/atlantide").status_code == 404
    assert client.get("/maps/zone-omogenee/atlantide.png").status_code == 404
    assert client.get("/maps/territory.gif").status_code == 404
    assert client.get("/maps/layers/no-such-layer").status_code == 404


def test_index_links_every_map(client, territory):
    page = client.get("/maps").text
    assert 'href="/maps/territory"' in page
    assert 'href="/maps/territory.pdf"' in page
    for zid in territory.zones:
        assert f'href="/maps/zone-omogenee/{zid}"' in page
    for code in territory.comuni:
        assert f'href="/maps/comuni/{code}"' in page
    if maps.interventions_available():
        assert 'href="/maps/interventions"' in page


def _png_stats(data: bytes) -> tuple[tuple[int, int], float, int]:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    arr = np.asarray(img, dtype=float)
    return img.size, float(arr.std()), len(np.unique(arr.reshape(-1, 3), axis=0))


@pytest.mark.parametrize(
    "url",
    ["/maps/territory.png", "/maps/zone-omogenee/adda-martesana.png", "/maps/comuni/015146.png"],
)
def test_png_prints_have_size_and_content(client, url):
    r = client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    size, std, colours = _png_stats(r.content)
    assert size == printing.PNG_SIZE
    assert std > 20  # not a blank page
    assert colours > 50  # zones, legend, text


@pytest.mark.parametrize(
    "url",
    ["/maps/territory.pdf", "/maps/zone-omogenee/sud-ovest.pdf", "/maps/comuni/015002.pdf"],
)
def test_pdf_prints(client, url):
    r = client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    assert len(r.content) > 10_000


def test_print_draws_the_zone_colours(territory):
    """The territory print shows each zone's colour (the legend and the map)."""
    _size, _std, _n = _png_stats(printing.print_territory("png"))
    img = np.asarray(Image.open(io.BytesIO(printing.print_territory("png"))).convert("RGB"))
    for colour in maps.zone_colours(territory).values():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(img.astype(int) - rgb).sum(axis=2) < 6).sum() > 200, colour


def test_print_attribution_is_in_pdf():
    pdf = printing.print_territory("pdf")
    assert pdf.startswith(b"%PDF")
    with pytest.raises(ValueError):
        printing.print_territory("gif")
    assert "openpolis" in BOUNDARIES_ATTRIBUTION


def test_etag_and_304(client):
    from api.routes.maps import cache

    r1 = client.get("/maps/zone-omogenee/milano")
    etag = r1.headers["etag"]
    builds = cache.builds
    r2 = client.get("/maps/zone-omogenee/milano")
    assert r2.headers["etag"] == etag
    assert r2.content == r1.content
    assert cache.builds == builds  # served from the cache, not rebuilt
    r3 = client.get("/maps/zone-omogenee/milano", headers={"If-None-Match": etag})
    assert r3.status_code == 304
    assert r3.content == b""
    other = client.get("/maps/zone-omogenee/sud-est").headers["etag"]
    assert other != etag
    png = client.get("/maps/territory.png")
    assert (
        client.get(
            "/maps/territory.png", headers={"If-None-Match": png.headers["etag"]}
        ).status_code
        == 304
    )


def test_legend_and_popup_escape_html():
    popup = maps.intervention_popup(
        {"title": "<script>x</script>", "amount_eur": 1234567, "status": "started",
         "source_url": "https://example.org/a"}
    )  # fmt: skip
    assert "<script>" not in popup
    assert "€ 1.234.567" in popup
    assert 'href="https://example.org/a"' in popup
    legend = maps.Legend("<b>t</b>", [("#fff", "<i>x</i>", "")])
    assert "<b>t</b>" not in legend.html


def test_interventions_map_counts_and_filters(client):
    assert maps.interventions_available()
    feats = maps.fetch_interventions({})
    assert feats, "the seeded interventions should be there"
    page = client.get("/maps/interventions").text
    assert f'<span class="cmm-count">{len(feats)}</span>' in page
    assert "leaflet.markercluster.js" in page
    assert "cmm-intervention" in page and "cmm-legend" in page
    spugna = maps.fetch_interventions({"programme": "PUI SPUGNA"})
    assert 0 < len(spugna) < len(feats)
    page = client.get("/maps/interventions", params={"programme": "PUI SPUGNA"}).text
    assert f'<span class="cmm-count">{len(spugna)}</span>' in page
    by_mission = client.get("/maps/interventions", params={"colour_by": "mission"}).text
    assert "Interventi per missione" in by_mission
    assert not [u for u in _resources(by_mission) if u.startswith(("http:", "https:"))]


def test_comune_page_lists_its_interventions(client, territory):
    assert maps.interventions_available()
    feats = maps.fetch_interventions({}) or []
    code = next(c for f in feats for c in f["properties"].get("comuni", []))
    mine = maps.fetch_interventions({"comune": code})
    page = client.get(f"/maps/comuni/{code}").text
    assert f"Interventi ({len(mine)})" in page
    assert 'class="cmm-interventions"' in page


def test_layer_map_choropleth(client, territory):
    """A layer registered as a collection gets a choropleth page over the comuni."""
    import shapely

    from geo.ogc.registry import MemoryProvider, registry

    milano = territory.comuni["015146"].geometry
    park = shapely.box(*shapely.bounds(milano.centroid.buffer(0.02)))
    provider = MemoryProvider(
        "test-parchi",
        "Parchi di prova",
        [{"id": "p1", "properties": {"name": "parco"}, "geometry": park}],
        version="v1",
        last_modified=datetime(2025, 1, 1, tzinfo=UTC),
    )
    registry.register("test-parchi", lambda: provider)
    try:
        r = client.get("/maps/layers/test-parchi")
        assert r.status_code == 200
        page = r.text
        assert _comuni_paths(page) == set(territory.comuni)
        assert "cmm-overlay" in page and "Quota coperta (%)" in page
        assert "Parchi di prova" in page
        # The one covered comune gets the darkest class, the others the "0" class.
        milano = re.search(r'cmm-c-015146"[^}]*"fillColor": "(#\w+)"', page).group(1)
        other = re.search(r'cmm-c-015002"[^}]*"fillColor": "(#\w+)"', page).group(1)
        assert milano == maps.CHOROPLETH_PALETTE[-1]
        assert other == maps.CHOROPLETH_PALETTE[0]
        assert 'href="/maps/layers/test-parchi"' in client.get("/maps").text
    finally:
        registry.unregister("test-parchi")


def test_category_colours_are_stable_across_maps():
    programmes = maps.known_categories("programme")
    assert len(programmes) >= 2
    a, b = programmes[0], programmes[-1]
    alone = maps.category_colours([b])
    both = maps.category_colours([a, b])
    assert alone[b] == both[b]
    every = maps.category_colours(programmes)
    assert len(set(every.values())) == len(programmes)  # all distinct
    assert maps.category_label("M2", "mission").startswith("M2 – ")
