"""Layers over HTTP (upload, list, rename, delete, metrics, OGC collection) and in the store
on both backends (embedded SQLite and PostGIS)."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from fastapi.testclient import TestClient
from layer_builders import (
    CRSS,
    FORMATS,
    MILANO,
    RHO,
    feature,
    frame,
    geojson_bytes,
    lines,
    points,
    polygons,
    to_bytes,
    zip_files,
)

from geo import layers as lay
from geo.errors import NotFound
from geo.layers.reading import read_upload
from geo.ogc.registry import Registry
from geo.settings import Settings

ADMIN = {"Authorization": "Bearer test-admin-token"}


def _ids(client) -> list[str]:
    return [r["id"] for r in client.get("/layers").json()["layers"]]


def _upload(client, data: bytes, filename: str, headers=ADMIN, **form):
    return client.post("/layers", files={"file": (filename, data)}, data=form, headers=headers)


def _expected_cover(territory, geoms) -> dict[str, float]:
    union = shapely.union_all(geoms)
    return {
        str(code): g.intersection(union).area / 1e6
        for code, g in zip(territory.codes, territory.metric_geometries, strict=True)
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("crs", list(CRSS))
def test_upload_every_format_and_crs(client, territory, tmp_path, fmt, crs):
    data, filename = to_bytes(frame(polygons(), CRSS[crs]), fmt, tmp_path, name=f"aree_{crs}")
    r = _upload(client, data, filename, name=f"Aree {fmt} {crs}")
    assert r.status_code == 201, r.text
    body = r.json()
    lid = body["id"]
    assert lid == f"aree-{fmt}-{crs}" and r.headers["location"] == f"/layers/{lid}"
    assert body["feature_count"] == 3 and body["geometry_type"] == "polygon"
    assert body["source_crs"] == ("CRS84" if crs == "crs84" else CRSS[crs])
    assert body["report"]["format"] == {"shpzip": "shapefile"}.get(fmt, fmt)
    try:
        items = client.get(f"/collections/{lid}/items", params={"limit": 10})
        assert items.status_code == 200 and items.json()["numberMatched"] == 3
        assert {f["properties"]["nome"] for f in items.json()["features"]} == {
            "feature 0",
            "feature 1",
            "feature 2",
        }
        m = client.get(f"/layers/{lid}/metrics", params={"by": "comune"}).json()
        rows = {u["id"]: u for u in m["units"]}
        expected = _expected_cover(territory, polygons())
        for code in (RHO, MILANO, "015170"):
            assert rows[code]["covered_km2"] == pytest.approx(expected[code], rel=1e-5)
    finally:
        assert client.delete(f"/layers/{lid}", headers=ADMIN).status_code == 204
    assert lid not in _ids(client)


def test_layer_lifecycle_and_collection(client, tmp_path):
    data, filename = to_bytes(frame(lines(), "EPSG:3003"), "gpkg", tmp_path, name="navigli")
    r = _upload(client, data, filename)
    assert r.status_code == 201
    lid = r.json()["id"]
    assert lid == "navigli" and lid in _ids(client)
    again = _upload(client, data, filename)
    assert again.json()["id"] == "navigli-2"  # ids are unique, never overwritten
    coll = client.get(f"/collections/{lid}").json()
    assert coll["extent"]["spatial"]["bbox"][0] == pytest.approx(r.json()["bbox"], abs=1e-6)
    # Its own CRS list: CRS84 first, then the CRS it was uploaded in (Gauss-Boaga).
    assert coll["crs"][:2] == [
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "http://www.opengis.net/def/crs/EPSG/0/3003",
    ]
    assert client.get("/collections/comuni").json()["crs"][1].endswith("/EPSG/0/4326")
    assert client.get(f"/collections/{lid}/items/1").status_code == 200
    # Rename: admin only; the id (and URLs) stay.
    no = client.patch(f"/layers/{lid}", json={"name": "Navigli"})
    assert no.status_code == 401
    ok = client.patch(f"/layers/{lid}", json={"name": "Navigli lombardi"}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["name"] == "Navigli lombardi"
    assert client.get(f"/collections/{lid}").json()["title"] == "Navigli lombardi"
    bad = client.patch(f"/layers/{lid}", json={"title": "x"}, headers=ADMIN)
    assert bad.status_code == 422
    # Metrics of a line layer, JSON and CSV.
    m = client.get(f"/layers/{lid}/metrics", params={"by": "zona", "within_m": 250}).json()
    assert m["geometry_type"] == "line" and m["within_m"] == 250
    assert sum(u["length_km"] for u in m["units"]) == pytest.approx(
        m["totals"]["in_units_km"], rel=1e-6
    )
    c = client.get(f"/layers/{lid}/metrics", params={"by": "unione", "f": "csv"})
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(c.text)))
    assert len(rows) == 3 and "length_km" in rows[0]
    assert client.get(f"/layers/{lid}/metrics", params={"by": "regione"}).status_code == 422
    assert client.get(f"/layers/{lid}/metrics", params={"within_m": -5}).status_code == 422
    # Delete: admin only, then gone everywhere.
    assert client.delete(f"/layers/{lid}").status_code == 401
    for x in (lid, "navigli-2"):
        assert client.delete(f"/layers/{x}", headers=ADMIN).status_code == 204
    assert client.get(f"/layers/{lid}").status_code == 404
    assert client.get(f"/collections/{lid}").status_code == 404
    assert client.get(f"/layers/{lid}/metrics").status_code == 404
    assert client.delete(f"/layers/{lid}", headers=ADMIN).status_code == 404


def test_upload_needs_a_token(client, tmp_path):
    data, filename = to_bytes(frame(points()), "geojson", tmp_path)
    before = _ids(client)
    r = _upload(client, data, filename, headers={})
    assert r.status_code == 401 and "bearer" in r.json()["description"].lower()
    bad = _upload(client, data, filename, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert _ids(client) == before


def _bad_inputs(tmp_path) -> list[tuple[str, bytes, str, dict, int, str]]:
    """(label, bytes, filename, form, status, text in the description)."""
    shp, _ = to_bytes(frame(polygons(), "EPSG:3003"), "shpzip", tmp_path / "s")
    with zipfile.ZipFile(io.BytesIO(shp)) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    noprj = {n: b for n, b in parts.items() if not n.endswith(".prj")}
    two = tmp_path / "two.gpkg"
    frame(polygons()).to_file(two, layer="a", driver="GPKG")
    frame(points()).to_file(two, layer="b", driver="GPKG")
    poly = {
        "type": "Polygon",
        "coordinates": [[[9.1, 45.5], [9.11, 45.5], [9.11, 45.51], [9.1, 45.5]]],
    }
    line = {"type": "LineString", "coordinates": [[9.1, 45.5], [9.2, 45.5]]}
    return [
        ("no CRS", zip_files(noprj), "gb.zip", {}, 422, "crs=EPSG:3003"),
        ("dotdot", zip_files({**parts, "../x.txt": b"x"}), "e.zip", {}, 422, "'..'"),
        ("absolute", zip_files({**parts, "/tmp/x.shp": b"x"}), "a.zip", {}, 422, "absolute"),
        (
            "entries",
            zip_files({**parts, **{f"{i}.txt": b"" for i in range(101)}}),
            "m.zip",
            {},
            413,
            "entries",
        ),
        ("empty", b"", "empty.geojson", {}, 422, "empty"),
        ("corrupt", b"PK\x03\x04broken" * 10, "c.zip", {}, 422, "corrupt zip"),
        ("garbage", b"\x00\x01\x02garbage", "g.gpkg", {}, 422, "unrecognised format"),
        (
            "mixed",
            geojson_bytes([feature(poly), feature(line)]),
            "mx.geojson",
            {},
            422,
            "mixed geometry types",
        ),
        ("layers", two.read_bytes(), "two.gpkg", {}, 422, "2 layers: a, b"),
        ("bad crs", zip_files(noprj), "gb.zip", {"crs": "EPSG:12"}, 422, "unknown CRS"),
    ]


def test_bad_inputs_are_4xx_and_nothing_is_stored(client, tmp_path, data_dir):
    before = _ids(client)
    for label, data, filename, form, status, text in _bad_inputs(tmp_path):
        r = _upload(client, data, filename, **form)
        assert r.status_code == status, (label, r.text)
        assert text in r.json()["description"], (label, r.json())
        assert _ids(client) == before, label
    # The store holds no orphan features either.
    from geo.store import get_engine

    with get_engine().connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM layer_features")).scalar_one()
        m = conn.execute(sa.text("SELECT sum(feature_count) FROM layers")).scalar() or 0
    assert n == m


@pytest.fixture(scope="module")
def small_client():
    """The app with tiny limits, on the same store."""
    from api.main import create_app

    settings = Settings(
        max_upload_mb=0.02,
        max_features=3,
        max_zip_entries=5,
        max_unzipped_mb=1,
        admin_token="test-admin-token",
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_limits_are_413_and_nothing_is_stored(small_client, tmp_path):
    before = _ids(small_client)
    shp, _ = to_bytes(frame(polygons()), "shpzip", tmp_path / "s")
    with zipfile.ZipFile(io.BytesIO(shp)) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    bomb = zip_files({n: b for n, b in list(parts.items())[:3]} | {"pad.bin": b"\0" * 3_000_000})
    assert len(bomb) < 20_000
    big = geojson_bytes([feature({"type": "Point", "coordinates": [9.1, 45.5]}, t="x" * 30_000)])
    gp, _ = to_bytes(frame(points()), "geojson", tmp_path / "p")
    cases = [
        ("bomb", bomb, "bomb.zip", "expands to"),
        ("oversize", big, "big.geojson", "upload limit"),
        ("features", gp, "pts.geojson", "4 features, more than the limit of 3"),
        ("entries", zip_files({f"{i}.txt": b"" for i in range(6)}), "m.zip", "6 entries"),
    ]
    for label, data, filename, text in cases:
        r = _upload(small_client, data, filename)
        assert r.status_code == 413, (label, r.text)
        assert text in r.json()["description"], label
    assert _ids(small_client) == before


def test_plis_sample_upload_and_membership(client, territory, shared_reference):
    data = (shared_reference / "plis_lombardia_sample.geojson").read_bytes()
    r = _upload(client, data, "plis_lombardia_sample.geojson", name="PLIS (campione)")
    assert r.status_code == 201
    lid = r.json()["id"]
    try:
        assert lid == "plis-campione" and r.json()["feature_count"] == 9
        assert r.json()["report"]["repaired"] == 2  # two self-intersecting rings, as published
        items = client.get(f"/collections/{lid}/items", params={"NOME_PLIS": "Parco dei Mulini"})
        assert items.status_code == 200 and items.json()["numberMatched"] == 1
        m = client.get(f"/layers/{lid}/metrics", params={"by": "zona"}).json()
        zona = {u["id"]: u for u in m["units"]}
        assert zona["alto-milanese"]["covered_km2"] > 10 and zona["milano"]["covered_km2"] == 0
        chk = client.get(f"/layers/{lid}/membership-check", params={"name": "Parco dei Mulini"})
        assert chk.status_code == 200
        body = chk.json()
        assert body["features_used"] == 1 and body["entry"]["status"] == "to be verified"
        listed_touched = {c["name"] for c in body["listed_and_touched"]}
        assert {"Legnano", "Nerviano", "Parabiago", "San Vittore Olona"} <= listed_touched
        everything = {
            c["name"]
            for k in ("listed_and_touched", "listed_not_touched", "touched_not_listed")
            for c in body[k]
        }
        assert "Milano" not in everything
        unknown = client.get(f"/layers/{lid}/membership-check", params={"name": "Parco X"})
        assert unknown.status_code == 404 and "known:" in unknown.json()["description"]
    finally:
        client.delete(f"/layers/{lid}", headers=ADMIN)


def test_green_network_membership_is_served(client):
    body = client.get("/green-network/membership").json()
    assert body["count"] == 24
    rows = {r["name"]: r for r in body["membership"]}
    assert all(
        r["status"] == "to be verified" and r["source"].startswith("http") for r in rows.values()
    )
    nord = rows["Parco Nord Milano"]
    assert {c["istat_code"] for c in nord["comuni"]} >= {"015146"}  # Milano
    ticino = rows["Parco Lombardo della Valle del Ticino"]
    vigevano = next(c for c in ticino["comuni"] if c["name"] == "Vigevano")
    assert vigevano["istat_code"] is None  # outside the metropolitan city


def test_cli_layers_add_list_rm(tmp_path):
    import orjson
    from typer.testing import CliRunner

    from geo.cli import app

    data, filename = to_bytes(frame(points(), "EPSG:7791"), "shpzip", tmp_path, drop_prj=True)
    path = tmp_path / filename
    path.write_bytes(data)
    runner = CliRunner()
    refused = runner.invoke(app, ["layers", "add", str(path)])
    assert refused.exit_code == 2 and "EPSG:32632" in refused.output
    added = runner.invoke(
        app, ["layers", "add", str(path), "--crs", "EPSG:7791", "--name", "Alberi CLI", "--json"]
    )
    assert added.exit_code == 0, added.output
    rec = orjson.loads(added.stdout)
    assert rec["id"] == "alberi-cli" and rec["source_crs"] == "EPSG:7791"
    listed = orjson.loads(runner.invoke(app, ["layers", "list", "--json"]).stdout)
    assert "alberi-cli" in [r["id"] for r in listed]
    assert runner.invoke(app, ["layers", "rm", "alberi-cli"]).exit_code == 0
    gone = runner.invoke(app, ["layers", "rm", "alberi-cli"])
    assert gone.exit_code == 2 and "no layer" in gone.output


# ----- the store on both backends -----------------------------------------------------------


def test_store_round_trip_both_backends(store_engine, territory, tmp_path):
    reg = Registry()
    data = read_upload(*to_bytes(frame(polygons(), "EPSG:3003"), "gpkg", tmp_path))
    rec = lay.add_layer(data, "Aree test", engine=store_engine, reg=reg)
    lid = rec["id"]
    try:
        assert reg.get(lid) is not None and reg.get(lid).title == "Aree test"
        stored = lay.load_layer(lid, engine=store_engine)
        assert shapely.equals_exact(stored.geometries, data.geometries, tolerance=1e-12).all()
        assert stored.properties == data.properties
        m = lay.metrics(lid, "comune", 300, engine=store_engine)
        rows = {u["id"]: u for u in m["units"]}
        expected = _expected_cover(territory, polygons())
        for code, want in expected.items():
            assert rows[code]["covered_km2"] == pytest.approx(want, rel=1e-5, abs=1e-6)
        assert m["interventions_considered"] >= 1
        with store_engine.connect() as conn:
            n = conn.execute(
                sa.text("SELECT count(*) FROM layer_features WHERE layer_id = :l"), {"l": lid}
            ).scalar_one()
            assert n == 3
            if store_engine.dialect.name == "postgresql":
                area = conn.execute(
                    sa.text(
                        "SELECT sum(ST_Area(ST_Transform(geom, 32632))) FROM layer_features "
                        "WHERE layer_id = :l"
                    ),
                    {"l": lid},
                ).scalar_one()
                assert area == pytest.approx(sum(g.area for g in polygons()), rel=1e-5)
        lay.rename_layer(lid, "Aree rinominate", engine=store_engine, reg=reg)
        assert reg.get(lid).title == "Aree rinominate"
    finally:
        lay.delete_layer(lid, engine=store_engine, reg=reg)
    assert lid not in reg
    with pytest.raises(NotFound):
        lay.get_layer(lid, engine=store_engine)
    with store_engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM layer_features WHERE layer_id = :l"), {"l": lid}
        ).scalar_one()
    assert left == 0


def test_same_metrics_on_both_backends(store_backend, tmp_path):
    """Metrics come from the stored WKB: identical numbers whatever the backend."""
    from geo.interventions import get_store
    from geo.store import get_engine

    url, schema = store_backend
    engine = get_store(get_engine(url, schema=schema))
    data = read_upload(*to_bytes(frame(lines(), "EPSG:32632"), "geojson", tmp_path))
    lid = lay.add_layer(data, "Linee", engine=engine, reg=Registry())["id"]
    try:
        got = lay.metrics(lid, "zona", 0, engine=engine)["units"]
        direct = np.array([shapely.length(g) for g in data.metric_geometries]).sum() / 1e3
        assert sum(u["length_km"] for u in got) == pytest.approx(direct, rel=1e-6)
    finally:
        lay.delete_layer(lid, engine=engine, reg=Registry())
