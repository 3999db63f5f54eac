"""OGC API – Features Part 4 on uploaded layers, over raw HTTP on both backends: create,
replace, merge-patch and delete a feature, seen at once by counts, bbox queries, tiles and
the store's spatial indexes; 401 before the body is read, 403 for an editor of another
comune, 422 naming what is wrong, 412 for a stale If-Match, OPTIONS ``Allow`` per caller."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from asgi_bodies import Body, asgi_call
from fastapi.testclient import TestClient
from layer_builders import MILANO, PERO, RHO, frame, metric, polygons, to_bytes

from geo.crs import CRS84, epsg_uri, transformer_xy

ADMIN = {"Authorization": "Bearer test-admin-token"}
LEGNANO = "015118"
MB = 1024 * 1024

#: A polygon layer whose second feature is a MultiPolygon (it declares MultiPolygon).
MIXED = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"nome": "Bosco A"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[9.0, 45.4], [9.05, 45.4], [9.05, 45.45], [9.0, 45.4]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"nome": "Bosco B"},
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[9.1, 45.5], [9.12, 45.5], [9.12, 45.52], [9.1, 45.5]]],
                    [[[9.2, 45.5], [9.22, 45.5], [9.22, 45.52], [9.2, 45.5]]],
                ],
            },
        },
    ],
}


# ----- helpers ------------------------------------------------------------------------------


def lonlat(g):
    """An EPSG:32632 geometry in CRS84."""
    tx = transformer_xy(epsg_uri(32632), CRS84)
    return shapely.transform(g, lambda xy: np.column_stack(tx.transform(xy[:, 0], xy[:, 1])))


def square(code: str, dx: float = 0.0, size: float = 300.0):
    """A CRS84 square of ``size`` metres inside a comune (its point on surface, moved dx)."""
    p = metric(code).point_on_surface()
    return lonlat(shapely.box(p.x + dx, p.y, p.x + dx + size, p.y + size))


def across_rho_and_pero():
    """A CRS84 square of 100 m on the Rho/Pero border: it lies in those two comuni."""
    border = shapely.intersection(metric(RHO).boundary, metric(PERO).boundary)
    p = shapely.get_parts(border)[0].interpolate(0.5, normalized=True)
    return lonlat(shapely.box(p.x - 50, p.y - 50, p.x + 50, p.y + 50))


def gj(g) -> dict:
    """GeoJSON of a shapely geometry, lists and all (as a client sends it)."""
    return json.loads(json.dumps(shapely.geometry.mapping(g)))


def feat(g, **props) -> dict:
    return {"type": "Feature", "geometry": gj(g), "properties": props}


def items_url(lid: str) -> str:
    return f"/collections/{lid}/items"


def matched(client, lid: str, g=None) -> int:
    params = {"limit": 1}
    if g is not None:
        params["bbox"] = ",".join(f"{v:.7f}" for v in g.bounds)
    r = client.get(items_url(lid), params=params)
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def bbox_ids(client, lid: str, g) -> set[str]:
    """Ids of the features whose geometry meets the bbox of ``g``."""
    r = client.get(items_url(lid), params={"bbox": ",".join(f"{v:.7f}" for v in g.bounds)})
    return {f["id"] for f in r.json()["features"]}


def tile_of(g, z: int = 15) -> tuple[int, int, int]:
    """(z, row, col) of the WebMercatorQuad tile holding the centre of ``g``."""
    c = g.centroid
    n = 2**z
    col = int((c.x + 180.0) / 360.0 * n)
    lat = math.radians(c.y)
    row = int((1.0 - math.log(math.tan(lat) + 1.0 / math.cos(lat)) / math.pi) / 2.0 * n)
    return z, row, col


def store_state(engine, lid: str) -> tuple:
    """The layer's rows, record and the store's revision of ``layers`` (to show nothing
    was written)."""
    from geo.layers.store import features_table, layers_table
    from geo.store import store_meta

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(features_table.c.fid, features_table.c.properties, features_table.c.minx)
            .where(features_table.c.layer_id == lid)
            .order_by(features_table.c.fid)
        ).all()
        rec = conn.execute(
            sa.select(layers_table.c.feature_count, layers_table.c.updated_at).where(
                layers_table.c.id == lid
            )
        ).one()
        rev = conn.execute(
            sa.select(store_meta.c.value).where(store_meta.c.key == "revision:layers")
        ).scalar()
    return [tuple(r) for r in rows], tuple(rec), rev


def upload(client, data: bytes, filename: str) -> str:
    r = client.post(
        "/layers",
        files={"file": (filename, data)},
        data={"name": f"Edit {uuid.uuid4().hex[:8]}"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture()
def layer(client, backend, tmp_path):
    """A fresh polygon layer (three Polygons: two across the Rho/Pero border, one in
    Milano; fields nome, codice, valore, attivo) on the current backend."""
    data, filename = to_bytes(frame(polygons(), "OGC:CRS84"), "geojson", tmp_path, name="aree")
    lid = upload(client, data, filename)
    yield lid
    client.delete(f"/layers/{lid}", headers=ADMIN)


@pytest.fixture()
def mixed(client, backend):
    """A layer declaring MultiPolygon (Polygon and MultiPolygon mixed)."""
    lid = upload(client, json.dumps(MIXED).encode(), "boschi.geojson")
    yield lid
    client.delete(f"/layers/{lid}", headers=ADMIN)


@pytest.fixture()
def editor(backend):
    """``editor("Milano")`` → the Authorization header of a new editor token of a comune."""
    from geo.auth import create_token

    def make(comune: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_token(comune, engine=backend).token}"}

    return make


# ----- create, replace, patch, delete: seen at once everywhere ------------------------------


def test_create_replace_patch_delete_seen_at_once(client, backend, layer):
    from geo.ogc.registry import registry

    lid, items = layer, items_url(layer)
    here = square(MILANO, dx=-3000)
    there = square(MILANO, dx=3000)
    assert matched(client, lid) == 3 and matched(client, lid, here) == 0
    version = registry.get(lid).version()
    coll_etag = client.get(f"/collections/{lid}").headers["etag"]
    items_etag = client.get(items).headers["etag"]
    z, row, col = tile_of(here)
    tile = f"/collections/{lid}/tiles/WebMercatorQuad/{z}/{row}/{col}"
    assert client.get(tile).status_code == 204  # nothing there yet

    # POST (CRS84): 201, Location, the ETag a GET answers; counted, found by bbox at once.
    r = client.post(items, json=feat(here, nome="Nuovo bosco", codice=7.0), headers=ADMIN)
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert r.headers["location"] == f"{items}/{fid}" and fid == "4"
    got = client.get(f"{items}/{fid}")
    assert got.status_code == 200 and got.headers["etag"] == r.headers["etag"]
    assert got.json()["properties"] == {
        "nome": "Nuovo bosco",
        "codice": 7,
        "valore": None,
        "attivo": None,
    }
    assert shapely.geometry.shape(got.json()["geometry"]).equals_exact(here, 1e-6)
    assert matched(client, lid) == 4 and bbox_ids(client, lid, here) == {fid}
    assert client.get(f"/layers/{lid}").json()["feature_count"] == 4
    assert client.get(tile).status_code == 200  # the tile sees it (PostGIS: from geom)
    assert registry.get(lid).version() != version
    assert client.get(f"/collections/{lid}").headers["etag"] != coll_etag
    assert client.get(items).headers["etag"] != items_etag
    _check_spatial_index(backend, lid, int(fid), here)

    # PUT in EPSG:32632: moved, fields not sent are null, the old box is empty at once.
    metres = shapely.transform(
        there,
        lambda xy: np.column_stack(
            transformer_xy(CRS84, epsg_uri(32632)).transform(xy[:, 0], xy[:, 1])
        ),
    )
    version = registry.get(lid).version()
    r = client.put(
        f"{items}/{fid}",
        json=feat(metres, nome="Spostato", attivo=True),
        headers={**ADMIN, "Content-Crs": f"<{epsg_uri(32632)}>"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {
        "nome": "Spostato",
        "codice": None,
        "valore": None,
        "attivo": True,
    }
    assert shapely.geometry.shape(r.json()["geometry"]).equals_exact(there, 1e-7)
    assert bbox_ids(client, lid, here) == set() and bbox_ids(client, lid, there) == {fid}
    assert matched(client, lid) == 4 and registry.get(lid).version() != version
    assert client.get(tile).status_code == 204
    _check_spatial_index(backend, lid, int(fid), there)

    # PATCH: a merge patch of the properties; the geometry stays.
    r = client.patch(
        f"{items}/{fid}", json={"properties": {"valore": 2.5, "nome": None}}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {"nome": None, "codice": None, "valore": 2.5, "attivo": True}
    assert bbox_ids(client, lid, there) == {fid}
    assert r.headers["etag"] == client.get(f"{items}/{fid}").headers["etag"]

    # DELETE: gone from counts, bbox queries, the record; its id is never given again.
    version = registry.get(lid).version()
    assert client.delete(f"{items}/{fid}", headers=ADMIN).status_code == 204
    assert client.get(f"{items}/{fid}").status_code == 404
    assert matched(client, lid) == 3 and bbox_ids(client, lid, there) == set()
    assert client.get(f"/layers/{lid}").json()["feature_count"] == 3
    assert registry.get(lid).version() != version
    assert client.delete(f"{items}/{fid}", headers=ADMIN).status_code == 404
    again = client.post(items, json=feat(here, nome="Dopo"), headers=ADMIN)
    assert again.status_code == 201 and again.json()["id"] == "5"


def _check_spatial_index(engine, lid: str, fid: int, g) -> None:
    """SQLite: the R*Tree holds the row's box (float32, rounded outwards); PostGIS: ``geom``
    is the row's geometry."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            box = conn.exec_driver_sql(
                "SELECT minx, maxx, miny, maxy FROM rtree_layer_features_geom WHERE id = "
                "(SELECT rowid FROM layer_features WHERE layer_id = ? AND fid = ?)",
                (lid, fid),
            ).one()
            minx, miny, maxx, maxy = g.bounds
            assert box[0] <= minx <= box[0] + 1e-5 and box[1] >= maxx >= box[1] - 1e-5
            assert box[2] <= miny <= box[2] + 1e-5 and box[3] >= maxy >= box[3] - 1e-5
        else:
            wkb = conn.execute(
                sa.text(
                    "SELECT ST_AsBinary(geom) FROM layer_features WHERE layer_id = :l AND fid = :f"
                ),
                {"l": lid, "f": fid},
            ).scalar()
            assert shapely.from_wkb(bytes(wkb)).equals_exact(g, 1e-9)


def test_record_extent_follows_the_features(client, backend, layer):
    lid, items = layer, items_url(layer)
    before = client.get(f"/layers/{lid}").json()["bbox"]
    far = square(LEGNANO)  # north-west of every feature: the extent grows
    fid = client.post(items, json=feat(far, nome="Legnano"), headers=ADMIN).json()["id"]
    grown = client.get(f"/layers/{lid}").json()["bbox"]
    assert grown[0] == pytest.approx(far.bounds[0]) and grown[3] == pytest.approx(far.bounds[3])
    extent = client.get(f"/collections/{lid}").json()["extent"]["spatial"]["bbox"][0]
    assert extent[0] <= far.bounds[0] and extent[3] >= far.bounds[3]
    assert client.delete(f"{items}/{fid}", headers=ADMIN).status_code == 204
    assert client.get(f"/layers/{lid}").json()["bbox"] == pytest.approx(before)


def test_other_crs_axis_orders(client, backend, layer):
    """EPSG:4326 is latitude first, EPSG:6707 northing first: the same square either way."""
    items = items_url(layer)
    g = square(MILANO, dx=-1000)
    flipped = shapely.transform(g, lambda xy: xy[:, ::-1])
    for crs, geometry in ((epsg_uri(4326), flipped), ("EPSG:6707", None)):
        if geometry is None:
            tx = transformer_xy(CRS84, epsg_uri(6707))
            geometry = shapely.transform(
                g, lambda xy, tx=tx: np.column_stack(tx.transform(xy[:, 0], xy[:, 1]))[:, ::-1]
            )
        r = client.post(items, json=feat(geometry), headers={**ADMIN, "Content-Crs": crs})
        assert r.status_code == 201, (crs, r.text)
        assert shapely.geometry.shape(r.json()["geometry"]).equals_exact(g, 1e-7), crs


def test_geometry_takes_the_declared_type(client, backend, layer, mixed):
    # A layer of Polygons: a one-part MultiPolygon is served as a Polygon, two parts refused.
    items = items_url(layer)
    one = shapely.MultiPolygon([square(MILANO, dx=-2000)])
    r = client.post(items, json=feat(one), headers=ADMIN)
    assert r.status_code == 201 and r.json()["geometry"]["type"] == "Polygon"
    two = shapely.MultiPolygon([square(MILANO, dx=-2000), square(MILANO, dx=-1000)])
    r = client.post(items, json=feat(two), headers=ADMIN)
    assert r.status_code == 422 and "declares Polygon" in r.json()["description"]
    # A layer declaring MultiPolygon: a Polygon and a collection of polygons are promoted.
    items = items_url(mixed)
    r = client.post(items, json=feat(square(MILANO)), headers=ADMIN)
    assert r.status_code == 201 and r.json()["geometry"]["type"] == "MultiPolygon"
    assert client.get(f"{items}/{r.json()['id']}").json()["geometry"]["type"] == "MultiPolygon"
    gc = shapely.GeometryCollection([square(MILANO, dx=500), square(MILANO, dx=1000)])
    r = client.post(items, json=feat(gc), headers=ADMIN)
    assert r.status_code == 201 and len(r.json()["geometry"]["coordinates"]) == 2
    # An invalid polygon (a bow tie) is repaired, as an upload's would be.
    x0, y0, x1, y1 = square(MILANO, dx=2000).bounds
    bow = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]]}
    r = client.post(
        items, json={"type": "Feature", "geometry": bow, "properties": {}}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    assert shapely.geometry.shape(r.json()["geometry"]).is_valid
    types = {f["geometry"]["type"] for f in client.get(items).json()["features"]}
    assert types == {"MultiPolygon"}


def test_each_write_keeps_the_geometrys_text_the_pages_send(client, backend, mixed):
    """An upload, a create, a replaced geometry and a properties-only patch keep each
    geometry's GeoJSON text with its row (migration 0010); pages promote it (Polygon →
    MultiPolygon: in SQL on PostgreSQL) into what they write from the WKB without it — the
    same bytes on SQLite, the same GeoJSON on PostgreSQL, where PostGIS writes it."""
    from geo.layers.store import TOPIC, features_table
    from geo.ogc.encode import stored_geometry_texts
    from geo.store import bump_revision, transaction

    items = items_url(mixed)
    made = client.post(items, json=feat(square(MILANO), nome="Nuovo"), headers=ADMIN)
    fid = made.json()["id"]
    r = client.patch(f"{items}/{fid}", json={"geometry": gj(square(MILANO, dx=700))}, headers=ADMIN)
    assert made.status_code == 201 and r.status_code == 200, r.text
    r = client.patch(f"{items}/1", json={"properties": {"nome": "Bosco A2"}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    c = features_table.c
    with backend.connect() as conn:
        rows = conn.execute(
            sa.select(c.fid, c.geometry_wkb, c.geometry_json).where(c.layer_id == mixed)
        ).all()
    assert len(rows) == 3
    wkb = shapely.from_wkb([r.geometry_wkb for r in rows])
    assert [r.geometry_json for r in rows] == stored_geometry_texts(wkb)
    assert {r.geometry_json.split(",")[0] for r in rows} == {
        '{"type":"Polygon"',  # the upload's Polygon and the posted ones, stored as sent
        '{"type":"MultiPolygon"',
    }
    urls = [f"{items}?f=json", f"{items}/{fid}?f=json", f"{items}/1?f=json"]
    before = [client.get(u) for u in urls]
    with transaction(backend) as conn:
        conn.execute(features_table.update().where(c.layer_id == mixed).values(geometry_json=None))
        bump_revision(conn, TOPIC)
    after = [client.get(u) for u in urls]
    assert [r.status_code for r in before + after] == [200] * 6
    assert before[0].json()["features"] == after[0].json()["features"]
    assert [b.json() for b in before[1:]] == [a.json() for a in after[1:]]
    if backend.dialect.name == "sqlite":
        assert [b.content for b in before[1:]] == [a.content for a in after[1:]]
    types = {f["geometry"]["type"] for f in before[0].json()["features"]}
    assert types == {"MultiPolygon"}


# ----- who may write --------------------------------------------------------------------------


def test_unauthenticated_is_401_before_reading_and_stores_nothing(client, backend, layer):
    from api.main import app

    before = store_state(backend, layer)
    for method, path in (
        ("POST", items_url(layer)),
        ("PUT", f"{items_url(layer)}/1"),
        ("PATCH", f"{items_url(layer)}/1"),
    ):
        for auth in (None, "Bearer nope"):
            body = Body(iter([b'{"type": "Feature"', b" " * MB] * 30))
            headers = {"Content-Type": "application/geo+json"}
            if auth:
                headers["Authorization"] = auth
            status, got, hdrs = asgi_call(app, method, path, body, headers)
            assert status == 401, (method, got)
            assert hdrs["www-authenticate"].startswith("Bearer")
            assert body.read == 0  # not one byte of the 30 MB was pulled
    assert client.delete(f"{items_url(layer)}/1").status_code == 401
    assert store_state(backend, layer) == before


def test_editor_writes_only_where_the_feature_lies(client, backend, layer, editor):
    from geo.layers.editing import comuni_of

    items = items_url(layer)
    feats = {f["id"]: f for f in client.get(items).json()["features"]}
    where = {i: set(comuni_of(shapely.geometry.shape(f["geometry"]))) for i, f in feats.items()}
    in_milano = next(i for i, c in where.items() if c == {MILANO})
    border = client.post(items, json=feat(across_rho_and_pero()), headers=ADMIN)
    on_border = border.json()["id"]
    milano, legnano, rho = editor("Milano"), editor("Legnano"), editor("Rho")
    before = store_state(backend, layer)

    # Another comune's editor: 403 for a new feature in Milano and for Milano's feature.
    r = client.post(items, json=feat(square(MILANO), nome="x"), headers=legnano)
    assert r.status_code == 403 and "Milano" in r.json()["description"]
    for method in ("put", "patch"):
        r = getattr(client, method)(
            f"{items}/{in_milano}", json=feat(square(MILANO)), headers=legnano
        )
        assert r.status_code == 403, r.text
    assert client.delete(f"{items}/{in_milano}", headers=legnano).status_code == 403
    # An editor of one of two comuni a feature lies in: 403 (every comune must be theirs).
    assert (
        client.patch(
            f"{items}/{on_border}", json={"properties": {"nome": "x"}}, headers=rho
        ).status_code
        == 403
    )
    # Milano's editor may not move Milano's feature into Legnano, nor write outside the 133.
    r = client.patch(f"{items}/{in_milano}", json={"geometry": gj(square(LEGNANO))}, headers=milano)
    assert r.status_code == 403 and "Legnano" in r.json()["description"]
    monza = shapely.box(9.27, 45.58, 9.28, 45.59)  # Monza, outside the Città metropolitana
    r = client.post(items, json=feat(monza), headers=milano)
    assert r.status_code == 403 and "outside the 133 comuni" in r.json()["description"]
    assert store_state(backend, layer) == before  # nothing was written

    # Milano's editor writes Milano's feature; the admin writes anywhere.
    r = client.patch(f"{items}/{in_milano}", json={"properties": {"nome": "Parco"}}, headers=milano)
    assert r.status_code == 200 and r.json()["properties"]["nome"] == "Parco"
    r = client.post(items, json=feat(square(MILANO, dx=500)), headers=milano)
    assert r.status_code == 201
    assert client.delete(f"{items}/{r.json()['id']}", headers=milano).status_code == 204
    r = client.post(items, json=feat(monza), headers=ADMIN)
    assert r.status_code == 201


def test_signed_in_editor_of_two_comuni_writes_through_the_session(backend, layer, client):
    """A user editing Rho and Pero (session cookie + X-CSRF-Token) writes a feature across
    their border; without the CSRF header the cookie alone is refused."""
    import re

    from api.main import app
    from geo.accounts import users

    name = f"ed-{uuid.uuid4().hex[:8]}"
    users.create_user(name, "correct horse battery", comuni=("Rho", "Pero"))
    c = TestClient(app, follow_redirects=False)
    page = c.get("/app/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post(
        "/app/login",
        data={
            "username": name,
            "password": "correct horse battery",
            "csrf_token": csrf,
            "next": "/",
        },
    )
    assert r.status_code == 303, r.text
    token = c.get("/app/session").json()["csrf_token"]
    items = items_url(layer)
    on_border = client.post(items, json=feat(across_rho_and_pero()), headers=ADMIN).json()["id"]
    assert c.patch(f"{items}/{on_border}", json={"properties": {"nome": "x"}}).status_code == 403
    r = c.patch(
        f"{items}/{on_border}",
        json={"properties": {"nome": "Confine"}},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json()["properties"]["nome"] == "Confine"
    allow = c.options(f"{items}/{on_border}", headers={"X-CSRF-Token": token}).headers["allow"]
    assert allow == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"


def test_options_allow_per_caller(client, backend, layer, editor):
    from geo.layers.editing import comuni_of

    items = items_url(layer)
    in_milano = next(
        f["id"]
        for f in client.get(items).json()["features"]
        if comuni_of(shapely.geometry.shape(f["geometry"])) == [MILANO]
    )
    read, write = "GET, HEAD, OPTIONS", "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    cases = [
        (None, read, read),
        (ADMIN, read + ", POST", write),
        (editor("Milano"), read + ", POST", write),
        (editor("Legnano"), read + ", POST", read),
        ({"Authorization": "Bearer nope"}, read, read),
    ]
    for headers, on_items, on_item in cases:
        r = client.options(items, headers=headers or {})
        assert r.status_code == 204 and r.headers["allow"] == on_items, headers
        r = client.options(f"{items}/{in_milano}", headers=headers or {})
        assert r.status_code == 204 and r.headers["allow"] == on_item, headers
    assert client.options(f"{items}/999", headers=ADMIN).status_code == 404
    assert client.options(f"{items}/abc").status_code == 404
    assert client.options("/collections/nope/items").status_code == 404
    # The territory stays read-only: OPTIONS says so, writes are 405 with Allow.
    assert client.options("/collections/comuni/items", headers=ADMIN).headers["allow"] == read
    assert client.options("/collections/comuni/items/015146").headers["allow"] == read
    r = client.post("/collections/comuni/items", json=feat(square(MILANO)), headers=ADMIN)
    assert r.status_code == 405 and r.headers["allow"] == read
    assert client.delete("/collections/comuni/items/015146", headers=ADMIN).status_code == 405


# ----- what is refused ------------------------------------------------------------------------


BAD = [
    (
        "unknown property",
        {"properties": {"nome": "x", "colore": "verde", "altezza": 3}},
        None,
        "properties.colore",
        "unknown field 'colore'",
    ),
    ("wrong type", {"properties": {"codice": "tre"}}, None, "properties.codice", "integer"),
    ("bool for number", {"properties": {"valore": True}}, None, "properties.valore", "number"),
    ("object for text", {"properties": {"nome": {"it": "x"}}}, None, "properties.nome", "text"),
    ("NUL in text", {"properties": {"nome": "a\x00b"}}, None, "properties.nome", "text"),
    (
        "not GeoJSON",
        {"geometry": {"type": "Polygon", "coordinates": [[[9, 45]]]}},
        None,
        "geometry",
        "not a GeoJSON geometry",
    ),
    ("empty", {"geometry": {"type": "Polygon", "coordinates": []}}, None, "geometry", "empty"),
    ("no geometry", {"geometry": None}, None, "geometry", "needs a geometry"),
    (
        "a line",
        {"geometry": {"type": "LineString", "coordinates": [[9.19, 45.46], [9.2, 45.47]]}},
        None,
        "geometry",
        "holds polygons",
    ),
    (
        "UTM without Content-Crs",
        {
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[515000, 5035000], [515300, 5035000], [515300, 5035300], [515000, 5035000]]
                ],
            }
        },
        None,
        "geometry",
        "Content-Crs: <http://www.opengis.net/def/crs/EPSG/0/32632>",
    ),
    ("degrees as UTM", {}, f"<{epsg_uri(32632)}>", "geometry", "do not fall in northern Italy"),
    ("unsupported CRS", {}, "EPSG:2154", "Content-Crs", "unsupported CRS"),
    ("top-level member", {"nome": "x"}, None, "nome", 'put nome inside "properties"'),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_write_is_422_naming_it_and_stores_nothing(client, backend, layer, case):
    label, change, crs, param, text = case
    body = {**feat(square(MILANO), nome="ok"), **change}
    if "properties" in change:
        body["properties"] = change["properties"]
    headers = {**ADMIN, **({"Content-Crs": crs} if crs else {})}
    before = store_state(backend, layer)
    for method, path in (("post", items_url(layer)), ("put", f"{items_url(layer)}/3")):
        r = getattr(client, method)(path, json=body, headers=headers)
        assert r.status_code == 422, (label, method, r.text)
        got = r.json()
        assert got["parameter"] == param, (label, got)
        assert text in got["description"], (label, got)
    if label == "unknown property":  # every unknown field is named
        assert {d["field"] for d in got["details"]} == {"properties.colore", "properties.altezza"}
    assert store_state(backend, layer) == before, label


def test_stale_if_match_is_412_and_changes_nothing(client, backend, layer):
    one = f"{items_url(layer)}/1"
    etag = client.get(one).headers["etag"]
    r = client.patch(
        one, json={"properties": {"nome": "primo"}}, headers={**ADMIN, "If-Match": etag}
    )
    assert r.status_code == 200 and r.headers["etag"] != etag
    before = store_state(backend, layer)
    for method, kw in (
        ("put", {"json": client.get(one).json()}),
        ("patch", {"json": {"properties": {"nome": "secondo"}}}),
        ("delete", {}),
    ):
        r = getattr(client, method)(one, headers={**ADMIN, "If-Match": etag}, **kw)
        assert r.status_code == 412, (method, r.text)
        assert r.json()["code"] == "PreconditionFailed"
    assert store_state(backend, layer) == before
    # The current ETag (or *) lets the write through.
    current = client.get(one).headers["etag"]
    r = client.put(one, json=client.get(one).json(), headers={**ADMIN, "If-Match": current})
    assert r.status_code == 200, r.text
    assert client.delete(one, headers={**ADMIN, "If-Match": "*"}).status_code == 204


def test_unknown_feature_and_layer_are_404(client, backend, layer):
    items = items_url(layer)
    for fid in ("999", "0", "-1", "01", "abc", "99999999999"):
        assert (
            client.patch(f"{items}/{fid}", json={"properties": {}}, headers=ADMIN).status_code
            == 404
        )
        assert client.delete(f"{items}/{fid}", headers=ADMIN).status_code == 404
    r = client.post("/collections/no-such-layer/items", json=feat(square(MILANO)), headers=ADMIN)
    assert r.status_code == 404


# ----- the checks, in the domain ----------------------------------------------------------------


def test_properties_typed_as_the_layer_declares():
    from geo.errors import ValidationFailed
    from geo.layers.editing import check_properties

    fields = [
        {"name": n, "type": t}
        for n, t in (
            ("i", "integer"),
            ("x", "number"),
            ("b", "boolean"),
            ("s", "string"),
            ("d", "date"),
            ("t", "datetime"),
            ("h", "time"),
            ("a", "array"),
        )
    ]
    ok = check_properties(
        {
            "i": 3.0,
            "x": 2,
            "b": False,
            "s": "è",
            "d": "2024-05-01",
            "t": "2024-05-01T10:30:00Z",
            "h": "10:30",
            "a": ["x", 1, None],
        },
        fields,
        "l",
    )
    assert ok == {
        "i": 3,
        "x": 2,
        "b": False,
        "s": "è",
        "d": "2024-05-01",
        "t": "2024-05-01T10:30:00+00:00",
        "h": "10:30:00",
        "a": ["x", 1, None],
    }
    assert check_properties({k: None for k in "ixbsdtha"}, fields, "l") == dict.fromkeys("ixbsdtha")
    for name, value in (
        ("i", 3.5),
        ("i", True),
        ("x", "1"),
        ("b", 1),
        ("s", 5),
        ("d", "1 May"),
        ("t", "ieri"),
        ("h", "25:00"),
        ("a", [[1]]),
        ("a", "x"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            check_properties({name: value}, fields, "l")
        assert exc.value.extra["parameter"] == f"properties.{name}", (name, value)
