"""OGC API – Tiles: tile matrix sets, tilesets, vector tiles whose content is the bbox query
of the same area, ETags that change only with the data, GDAL's MVT driver reading a tile,
GDAL's OGCAPI driver reading a collection's tiles (and what Debian 12's GDAL 3.6 can do)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.request

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient

from geo.ogc import tiles as T

TMS = morecantile.tms.get("WebMercatorQuad")
TMS_IDS = ("WebMercatorQuad", "WorldCRS84Quad")
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def client():
    from api.main import app

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, access log) of a real uvicorn server, for the GDAL tests."""
    from tests.servers import uvicorn_app

    log = tmp_path_factory.mktemp("tiles-server") / "access.log"
    with uvicorn_app({}, "cmm-geo-tiles-", access_log=log) as base:
        yield base, log


def tile_url(
    collection: str, z: int, lon: float, lat: float, tms_id: str = "WebMercatorQuad"
) -> tuple[str, morecantile.Tile]:
    t = morecantile.tms.get(tms_id).tile(lon, lat, z)
    return f"/collections/{collection}/tiles/{tms_id}/{z}/{t.y}/{t.x}", t


def decoded_ids(body: bytes, layer: str) -> set[str]:
    d = mapbox_vector_tile.decode(body)
    return {f["properties"]["id"] for f in d.get(layer, {}).get("features", [])}


def bbox_ids(client, collection: str, bounds: tuple[float, float, float, float]) -> set[str]:
    bbox = ",".join(f"{v:.9f}" for v in bounds)
    r = client.get(f"/collections/{collection}/items", params={"bbox": bbox, "limit": 10000})
    assert r.status_code == 200, r.text
    return {str(f["id"]) for f in r.json()["features"]}


def test_tile_matrix_sets_and_tilesets(client):
    r = client.get("/tileMatrixSets")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()["tileMatrixSets"]] == list(TMS_IDS)
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["crs"].endswith("/EPSG/0/3857") and len(tms["tileMatrices"]) == 25
    crs84 = client.get("/tileMatrixSets/WorldCRS84Quad").json()
    assert crs84["crs"] == crs84["supportedCRS"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert crs84["tileMatrices"][0]["matrixWidth"] == 2  # two tiles of 180° at zoom 0
    assert client.get("/tileMatrixSets/Nope").status_code == 404

    sets = client.get("/collections/comuni/tiles").json()["tilesets"]
    assert [s["dataType"] for s in sets] == ["vector", "vector"]
    assert [s["tileMatrixSetURI"].rsplit("/", 1)[1] for s in sets] == list(TMS_IDS)
    ts84 = client.get("/collections/comuni/tiles/WorldCRS84Quad").json()
    assert len(ts84["tileMatrixSetLimits"]) == T.MAX_ZOOM + 1
    z12 = next(lim for lim in ts84["tileMatrixSetLimits"] if lim["tileMatrix"] == "12")
    milano84 = morecantile.tms.get("WorldCRS84Quad").tile(9.19, 45.46, 12)
    assert z12["minTileCol"] <= milano84.x <= z12["maxTileCol"]
    assert z12["minTileRow"] <= milano84.y <= z12["maxTileRow"]
    ts = client.get("/collections/comuni/tiles/WebMercatorQuad").json()
    item = next(link for link in ts["links"] if link["rel"] == "item")
    assert item["type"] == MVT and "{tileMatrix}/{tileRow}/{tileCol}" in item["href"]
    z12 = next(lim for lim in ts["tileMatrixSetLimits"] if lim["tileMatrix"] == "12")
    milano = TMS.tile(9.19, 45.46, 12)
    assert z12["minTileCol"] <= milano.x <= z12["maxTileCol"]
    assert z12["minTileRow"] <= milano.y <= z12["maxTileRow"]
    # Linked from the collection, the landing page; declared in /conformance.
    rels = {link["rel"] for link in client.get("/collections/comuni").json()["links"]}
    assert T.REL_TILESETS_VECTOR in rels
    landing = {link["rel"] for link in client.get("/?f=json").json()["links"]}
    assert T.REL_TILING_SCHEMES in landing
    declared = set(client.get("/conformance").json()["conformsTo"])
    assert set(T.CONFORMANCE) <= declared


@pytest.mark.parametrize("tms_id", TMS_IDS)
@pytest.mark.parametrize("z", [9, 11, 13, 15])
@pytest.mark.parametrize("collection", ["comuni", "zone-omogenee", "unioni"])
def test_tile_holds_what_a_bbox_query_of_its_area_returns(client, collection, z, tms_id):
    url, t = tile_url(collection, z, 9.19, 45.46, tms_id)
    r = client.get(url)
    b = morecantile.tms.get(tms_id).bounds(t)
    inside = bbox_ids(client, collection, (b.left, b.bottom, b.right, b.top))
    if not inside:
        assert r.status_code == 204
        return
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    got = decoded_ids(r.content, collection)
    # The tile keeps a buffer of BUFFER/EXTENT of its width on each side.
    pad_x = (b.right - b.left) * T.BUFFER / T.EXTENT * 2
    pad_y = (b.top - b.bottom) * T.BUFFER / T.EXTENT * 2
    around = bbox_ids(
        client, collection, (b.left - pad_x, b.bottom - pad_y, b.right + pad_x, b.top + pad_y)
    )
    assert inside <= got <= around


def test_tile_properties_and_geometry(client):
    url, _ = tile_url("comuni", 12, 9.19, 45.46)
    d = mapbox_vector_tile.decode(client.get(url).content)
    feats = d["comuni"]["features"]
    milano = next(f for f in feats if f["properties"]["istat_code"] == "015146")
    assert milano["properties"]["name"] == "Milano"
    assert isinstance(milano["properties"]["population"], int)
    assert milano["id"] == 15146
    assert shapely.geometry.shape(milano["geometry"]).area > 0


def test_empty_bad_and_out_of_range_tiles(client):
    r = client.get("/collections/comuni/tiles/WebMercatorQuad/10/0/0")
    assert r.status_code == 204 and "etag" in r.headers
    assert client.get("/collections/comuni/tiles/WebMercatorQuad/x/1/1").status_code == 400
    assert client.get("/collections/comuni/tiles/WebMercatorQuad/-1/1/1").status_code == 400
    r = client.get("/collections/comuni/tiles/WebMercatorQuad/3/8/1")
    assert r.status_code == 404 and r.json()["parameter"] == "tileRow"
    assert client.get("/collections/comuni/tiles/WebMercatorQuad/23/1/1").status_code == 404
    assert client.get("/collections/nope/tiles/WebMercatorQuad/3/1/1").status_code == 404
    assert client.get("/collections/comuni/tiles/Nope/3/1/1").status_code == 404


def test_etag_and_304(client):
    url, _ = tile_url("comuni", 11, 9.19, 45.46)
    r = client.get(url)
    etag = r.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other, _ = tile_url("comuni", 11, 9.5, 45.3)
    assert client.get(other).headers["etag"] != etag


@pytest.mark.parametrize("tms_id", TMS_IDS)
def test_intervention_tiles_change_with_the_data(backend, client, tms_id):
    """Both backends, both tile matrix sets (on PostGIS, WorldCRS84Quad tiles are encoded
    in Python): a new intervention appears in its tile, with a new ETag."""
    url, _ = tile_url("interventions", 14, 9.2301, 45.4701, tms_id)
    before = client.get(url)
    assert before.status_code in (200, 204)
    feature = {
        "type": "Feature",
        "id": "tile-test-1",
        "geometry": {"type": "Point", "coordinates": [9.2301, 45.4701]},
        "properties": {"title": "Tile test", "programme": "PINQUA", "comuni": "Milano"},
    }
    headers = {"Authorization": "Bearer test-admin-token"}
    r = client.post("/collections/interventions/items", json=feature, headers=headers)
    assert r.status_code == 201, r.text
    try:
        after = client.get(url)
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert "tile-test-1" in decoded_ids(after.content, "interventions")
    finally:
        client.delete("/collections/interventions/items/tile-test-1", headers=headers)
    assert "tile-test-1" not in decoded_ids(client.get(url).content or b"", "interventions")


def test_gdal_reads_a_tile(server):
    """ogrinfo with the MVT driver on a tile URL served by a real server."""
    base, _ = server
    t = TMS.tile(9.19, 45.46, 12)
    url = f"{base}/collections/comuni/tiles/WebMercatorQuad/12/{t.y}/{t.x}.pbf"
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", f"/vsicurl/{url}",
         "-oo", "Z=12", "-oo", f"X={t.x}", "-oo", f"Y={t.y}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Layer name: comuni" in out.stdout
    assert "name (String) = Milano" in out.stdout
    # GDAL places the tile where the address says: Milano's features are around 9.19 E.
    extent = next(line for line in out.stdout.splitlines() if line.startswith("Extent:"))
    x0 = float(extent.split("(")[1].split(",")[0])
    assert 1_000_000 < x0 < 1_030_000  # EPSG:3857 metres near Milano


def test_openapi_documents_the_tiles(client):
    paths = client.get("/api?f=json").json()["paths"]
    tile_path = (
        "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
    )
    assert tile_path in paths
    assert (
        "application/vnd.mapbox-vector-tile"
        in paths[tile_path]["get"]["responses"]["200"]["content"]
    )
    for p in ("/tileMatrixSets", "/collections/{collectionId}/tiles"):
        assert p in paths


def test_postgis_and_python_encode_the_same_tiles(backend, client):
    """On PostGIS the database encodes (ST_AsMVT); the Python encoder gives the same
    features and values for the same tiles (both backends: on SQLite both are Python)."""
    from geo.ogc.registry import registry

    p = registry.get("interventions")
    compared = 0
    for lon, lat in ((9.19, 45.466), (9.2301, 45.4701), (9.04, 45.53), (9.45, 45.55)):
        for z in (10, 12, 14):
            tile = TMS.tile(lon, lat, z)
            address = T.TileAddress.parse("WebMercatorQuad", str(z), str(tile.y), str(tile.x))
            native = T.render_tile(p, address)
            python = T.render_tile(p, address, native=False)
            assert (native is None) == (python is None)
            if native is None:
                continue
            if p.engine().dialect.name == "postgresql":  # really encoded by the database
                kw = {"extent": T.EXTENT, "buffer": T.BUFFER, "limit": T.MAX_FEATURES}
                assert p.postgis_tile(z, tile.x, tile.y, **kw) == native
                assert native != python
            a = mapbox_vector_tile.decode(native)["interventions"]["features"]
            b = mapbox_vector_tile.decode(python)["interventions"]["features"]
            props_a = {f["properties"]["id"]: f["properties"] for f in a}
            props_b = {f["properties"]["id"]: f["properties"] for f in b}
            assert props_a.keys() == props_b.keys()
            for fid, pa in props_a.items():
                pb = props_b[fid]
                assert pa.keys() == pb.keys(), fid
                for k, v in pa.items():
                    if isinstance(v, float):
                        assert v == pytest.approx(pb[k]), (fid, k)
                    else:
                        assert v == pb[k], (fid, k)
            compared += len(props_a)
    assert compared > 10


def test_layer_tiles_same_on_both_encoders(backend, client):
    """An uploaded layer: PostGIS-encoded tiles hold the features and values the Python
    encoder gives (strings, numbers, booleans, nulls dropped)."""

    from geo.ogc.registry import registry

    x, y = 9.15, 45.45
    feats = [
        {
            "type": "Feature",
            "properties": {"nome": f"Parco {i}", "ettari": 1.5 * i, "n": i, "aperto": i % 2 == 0,
                           "nota": None if i % 3 else "ok"},
            "geometry": {"type": "Polygon", "coordinates": [[
                [x + i * 0.01, y], [x + i * 0.01 + 0.005, y], [x + i * 0.01 + 0.005, y + 0.005],
                [x + i * 0.01, y]]]},
        }
        for i in range(8)
    ]  # fmt: skip
    with _uploaded_layer(client, "Parchi tile test", feats) as lid:
        p = registry.get(lid)
        assert set(p.tile_properties) == {"nome", "ettari", "n", "aperto", "nota"}
        for z in (12, 14):
            tile = TMS.tile(x + 0.02, y + 0.002, z)
            address = T.TileAddress.parse("WebMercatorQuad", str(z), str(tile.y), str(tile.x))
            a = mapbox_vector_tile.decode(T.render_tile(p, address))[lid]["features"]
            b = mapbox_vector_tile.decode(T.render_tile(p, address, native=False))[lid]["features"]
            pa = {f["properties"]["id"]: f["properties"] for f in a}
            pb = {f["properties"]["id"]: f["properties"] for f in b}
            assert pa.keys() == pb.keys() and len(pa) >= 2
            for fid in pa:
                assert pa[fid].keys() == pb[fid].keys()
                for k, v in pa[fid].items():
                    w = pb[fid][k]
                    assert v == pytest.approx(w) if isinstance(v, float) else v == w, (k, v, w)


def _items_ids(base: str, collection: str, bbox: tuple[float, ...]) -> set[str]:
    query = f"limit=10000&bbox={','.join(map(str, bbox))}"
    with urllib.request.urlopen(f"{base}/collections/{collection}/items?{query}") as r:
        return {str(f["id"]) for f in json.loads(r.read())["features"]}


def test_gdal_ogcapi_driver_reads_the_vector_tiles(server):
    """GDAL's OGCAPI driver, given only the collection's URL, follows our links
    (collection → ``tilesets-vector`` → tileset → ``tiling-scheme``), picks WorldCRS84Quad
    and exposes one layer per zoom level, read from the MVT tiles; the comuni it finds in
    an area are those a bbox query of the same area returns.

    GDAL ≥ 3.7 is needed (pyogrio's wheel bundles one): Debian 12's GDAL 3.6.2 was built
    without the driver's vector-tile code (its ``OGR_ENABLE_DRIVER_GML`` guard was not set
    by CMake; fixed in 3.7.1 by GDAL pull request 7993), so there ``OGCAPI:`` on a
    collection with tiles fails without a message, whatever the server sends."""
    import pyogrio

    assert pyogrio.__gdal_version__ >= (3, 7, 1), pyogrio.__gdal_version_string__
    base, log = server
    source = f"OGCAPI:{base}/collections/comuni"
    layers = pyogrio.list_layers(source)[:, 0].tolist()
    assert layers == [f"Zoom level {z}" for z in range(T.MAX_ZOOM + 1)]
    box = (9.0, 45.40, 9.30, 45.55)  # Milano and the comuni around it
    for z in (10, 12):
        df = pyogrio.read_dataframe(source, layer=f"Zoom level {z}", bbox=box)
        assert df.crs.to_string() == "OGC:CRS84"
        # A comune cut by tile edges comes once per tile: compare the distinct ids.
        got = set(df["id"])
        assert len(got) > 10 and got == _items_ids(base, "comuni", box), z
        assert "Milano" in set(df["name"]) and df["population"].dtype.kind == "i"
    whole = pyogrio.read_dataframe(source, layer="Zoom level 9", columns=["id"])
    assert set(whole["id"]) == _items_ids(base, "comuni", (8.5, 45.0, 9.8, 45.8))
    tiles = re.findall(r"GET /collections/comuni/tiles/(\w+)/(\d+)/\d+/\d+ ", log.read_text())
    assert {tms for tms, _ in tiles} == {"WorldCRS84Quad"} and {"9", "10", "12"} <= {
        z for _, z in tiles
    }


def test_gdal_3_6_lists_collections_and_reads_items_through_ogcapi(server):
    """Debian 12's ogrinfo (GDAL 3.6) with the OGCAPI driver: the landing page lists every
    collection; a collection opens with ``-oo API=ITEMS`` (the driver hands it to OAPIF).
    Without it the driver chooses the tiles, which this build cannot read."""
    base, _ = server
    listing = subprocess.run(
        ["ogrinfo", "-ro", f"OGCAPI:{base}/"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    for cid in ("comuni", "zone-omogenee", "unioni", "interventions"):
        assert f"NAME=OGCAPI:{base}/collections/{cid}" in listing.stdout, cid
    items = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OGCAPI:{base}/collections/comuni", "-oo", "API=ITEMS",
         "comuni"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert items.returncode == 0, items.stderr
    assert "Feature Count: 133" in items.stdout and "Geometry: Multi Polygon" in items.stdout


@contextlib.contextmanager
def _uploaded_layer(client, name: str, feats: list[dict]):  # type: ignore[no-untyped-def]
    """The id of a layer uploaded (as GeoJSON) for the duration of the block."""
    headers = {"Authorization": "Bearer test-admin-token"}
    body = json.dumps({"type": "FeatureCollection", "features": feats}).encode()
    r = client.post(
        "/layers", files={"file": ("layer.geojson", body)}, data={"name": name}, headers=headers
    )
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    try:
        yield lid
    finally:
        client.delete(f"/layers/{lid}", headers=headers)


def _vertices(body: bytes, layer: str) -> int:
    feats = mapbox_vector_tile.decode(body)[layer]["features"]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in feats]
    return int(shapely.get_num_coordinates(shapes).sum())


def test_low_zoom_tiles_carry_no_invisible_vertices(backend, client):
    """A 600-vertex toothed ring (radius ~300 m, teeth of 6 m): up to zoom 12 a tile carries
    the shape simplified to a quarter pixel (on PostGIS from the stored simplified copies of
    migrations 0008 and 0009), as the Python encoder does; from zoom 13 on, the full detail a tile
    unit can hold."""
    import math

    from geo.ogc.registry import registry

    x, y, r = 9.3, 45.52, 0.0038
    jag = [r * (1.02 if i % 2 else 1.0) for i in range(600)]  # 6 m teeth: visible from z14
    ring = [
        [x + j * math.cos(2 * math.pi * i / 600), y + 0.7 * j * math.sin(2 * math.pi * i / 600)]
        for i, j in enumerate(jag)
    ]
    feats = [
        {"type": "Feature", "properties": {"nome": "anello"},
         "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}},
    ]  # fmt: skip
    with _uploaded_layer(client, "Anello", feats) as lid:
        p = registry.get(lid)
        counts = {}
        for z in (10, 11, 12, 14):
            t = TMS.tile(x, y, z)
            address = T.TileAddress.parse("WebMercatorQuad", str(z), str(t.y), str(t.x))
            native = T.render_tile(p, address)
            python = T.render_tile(p, address, native=False)
            assert native is not None and python is not None
            counts[z] = (_vertices(native, lid), _vertices(python, lid))
        for z in (10, 11, 12):
            native, python = counts[z]
            assert native <= 1.5 * python + 8, counts  # simplified like the Python encoder
            assert native < 150, counts  # not 600 vertices snapped to the grid
        assert counts[10][0] < counts[12][0], counts  # zoom 10: coarser still (0009)
        assert counts[14][0] > 2 * counts[12][0], counts  # full detail where it shows
        r = client.get(f"/collections/{lid}/items", params={"limit": 10})
        assert r.json()["numberMatched"] == 1


@pytest.mark.parametrize("store_backend", ["postgis"], indirect=True)
def test_polygons_cut_ahead_for_their_zoom_give_the_bytes_cut_per_tile(backend, client):
    """PostGIS tiles of zooms 10–14 translate the polygons already cut for their zoom
    (migration 0012) and cut per tile only those crossing the tile's buffer: the tiles are
    the bytes ``ST_AsMVTGeom`` makes of every feature per tile — for shapes inside, across
    tile edges, with holes, in parts, too small for a zoom's grid; and lines, which have no
    stored cut, are cut per tile as before."""
    x0, y0 = 9.16, 45.44  # ~3 zoom-12 tiles wide
    polygons = _random_polygons(x0, y0)
    lines = [
        {"type": "Feature", "properties": {"n": i}, "geometry": {"type": "LineString",
         "coordinates": [[x0 + 0.01 * i, y0], [x0 + 0.01 * i + 0.2, y0 + 0.1]]}}
        for i in range(20)
    ]  # fmt: skip
    with _uploaded_layer(client, "Poligoni tagliati", polygons) as lid:
        compared, cut_ahead = _tiles_cut_both_ways(lid, x0, y0)
        assert compared >= 15
        assert 200 < cut_ahead < 5 * 240  # polygons carry their cut; 1 m shapes collapse at 10
    with _uploaded_layer(client, "Linee tagliate", lines) as lid:
        compared, cut_ahead = _tiles_cut_both_ways(lid, x0, y0)
        assert compared >= 10 and cut_ahead == 0


def _random_polygons(x0: float, y0: float) -> list[dict]:
    """240 polygons east and north of (x0, y0): 1 m (they collapse at low zooms) to 1.6 km
    wide, every 7th with a hole, every 11th in two parts."""
    import numpy as np

    rng = np.random.default_rng(12)
    polygons = []
    for i in range(240):
        cx, cy = x0 + rng.uniform(0, 0.25), y0 + rng.uniform(0, 0.17)
        r = rng.choice([0.00001, 0.0005, 0.003, 0.02])  # 1 m (collapses) … 1.6 km
        k = int(rng.integers(5, 40))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = r * rng.uniform(0.5, 1.0, k)
        xs, ys = cx + radii * np.cos(angles), cy + 0.7 * radii * np.sin(angles)
        ring = [[float(a), float(b)] for a, b in zip(xs, ys, strict=True)]
        coords = [[*ring, ring[0]]]
        if i % 7 == 0:  # a hole
            hole = [[cx + 0.2 * r * np.cos(t), cy + 0.14 * r * np.sin(t)] for t in angles[::-1]]
            coords.append([*hole, hole[0]])
        geometry = {"type": "Polygon", "coordinates": coords}
        if i % 11 == 0:  # two parts
            far = [[[p[0] + 3 * r, p[1]] for p in coords[0]]]
            geometry = {"type": "MultiPolygon", "coordinates": [coords, far]}
        polygons.append({"type": "Feature", "properties": {"n": i}, "geometry": geometry})
    return polygons


def test_python_tiles_are_the_bytes_of_the_encoders_own_winding_check(backend, client, monkeypatch):
    """The Python encoder rounds and orients every polygon at once (``_to_tile_grid``) and
    skips mapbox-vector-tile's per-feature check: its tiles are byte for byte those the
    check makes of the unrounded shapes — holes, parts, shapes collapsing to the grid."""
    from geo.ogc.registry import registry

    x0, y0 = 9.16, 45.44
    with _uploaded_layer(client, "Poligoni orientati", _random_polygons(x0, y0)) as lid:
        p = registry.get(lid)
        addresses = []
        for z in (9, 11, 12, 13, 15):
            for t in {TMS.tile(x0 + dx, y0 + dy, z) for dx in (0, 0.1, 0.2) for dy in (0, 0.1)}:
                addresses.append(T.TileAddress.parse("WebMercatorQuad", str(z), str(t.y), str(t.x)))
        fast = [T.render_tile(p, a, native=False) for a in addresses]
        monkeypatch.setattr(
            T,
            "_to_tile_grid",
            lambda g, origin, scale: shapely.transform(g, lambda c: (c - origin) * scale),
        )
        monkeypatch.setattr(T, "ENCODE_OPTIONS", {**T.ENCODE_OPTIONS, "check_winding_order": True})
        checked = [T.render_tile(p, a, native=False) for a in addresses]
    assert sum(b is not None for b in fast) >= 10
    assert fast == checked


def _tiles_cut_both_ways(lid: str, x0: float, y0: float) -> tuple[int, int]:
    """(tiles compared, stored cuts) of layer ``lid``: zooms 10–14 around (x0, y0), each
    tile by the statement that reads the stored cuts and by the one that cuts every feature,
    asserted the same bytes."""
    from geo.ogc.registry import registry
    from geo.ogc.sql import Prepared
    from geo.store import read_connection

    p = registry.get(lid)
    engine = p.engine()
    kw = {"extent": T.EXTENT, "buffer": T.BUFFER, "limit": T.MAX_FEATURES}
    compared = cut_ahead = 0
    with read_connection(engine) as conn:
        for z in (10, 11, 12, 13, 14):
            column = p.tile_pixels[z]
            ahead = p._tile_prepared(engine, z, **kw)
            assert column in ahead.sql
            source = next(c for top, c in p.tile_geometries if z <= top)
            plain = Prepared.of(p._tile_statement(**kw, source=source), engine)
            assert column not in plain.sql
            tiles = {TMS.tile(x0 + dx, y0 + dy, z) for dx in (0, 0.1, 0.2) for dy in (0, 0.1)}
            for t in tiles:
                at = {"tz": z, "tx": t.x, "ty": t.y}
                got = ahead.run(conn, at).scalar()
                assert got == plain.run(conn, at).scalar(), (z, t)
                compared += got is not None
            cut_ahead += conn.exec_driver_sql(
                f"SELECT count({column}) FROM layer_features WHERE layer_id = %(l)s", {"l": lid}
            ).scalar()
    return compared, cut_ahead
