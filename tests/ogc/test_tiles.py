"""OGC API – Tiles: tile matrix sets, tilesets, vector tiles whose content is the bbox query
of the same area, ETags that change only with the data, GDAL's MVT driver reading a tile."""

from __future__ import annotations

import subprocess

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient

from geo.ogc import tiles as T

TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def client():
    from api.main import app

    with TestClient(app) as c:
        yield c


def tile_url(collection: str, z: int, lon: float, lat: float) -> tuple[str, morecantile.Tile]:
    t = TMS.tile(lon, lat, z)
    return f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}", t


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
    assert [s["id"] for s in r.json()["tileMatrixSets"]] == ["WebMercatorQuad"]
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["crs"].endswith("/EPSG/0/3857") and len(tms["tileMatrices"]) == 25
    assert client.get("/tileMatrixSets/Nope").status_code == 404

    sets = client.get("/collections/comuni/tiles").json()["tilesets"]
    assert sets[0]["dataType"] == "vector"
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


@pytest.mark.parametrize("z", [9, 11, 13, 15])
@pytest.mark.parametrize("collection", ["comuni", "zone-omogenee", "unioni"])
def test_tile_holds_what_a_bbox_query_of_its_area_returns(client, collection, z):
    url, t = tile_url(collection, z, 9.19, 45.46)
    r = client.get(url)
    b = TMS.bounds(t)
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


def test_intervention_tiles_change_with_the_data(backend, client):
    """Both backends: a new intervention appears in its tile, with a new ETag."""
    url, _ = tile_url("interventions", 14, 9.2301, 45.4701)
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


def test_gdal_reads_a_tile(tmp_path):
    """ogrinfo with the MVT driver on a tile URL served by a real server."""
    from tests.servers import uvicorn_app

    with uvicorn_app({}, "cmm-geo-tiles-") as base:
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
    import json

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
    headers = {"Authorization": "Bearer test-admin-token"}
    r = client.post(
        "/layers",
        files={"file": ("parchi.geojson", json.dumps({"type": "FeatureCollection",
                                                      "features": feats}).encode())},
        data={"name": "Parchi tile test"},
        headers=headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    try:
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
    finally:
        client.delete(f"/layers/{lid}", headers=headers)
