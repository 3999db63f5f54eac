"""What desktop GIS clients see (issue 14), against a real uvicorn server: GDAL exports every
collection to Shapefile and GeoPackage whole and with one geometry type, types fields from
the schema (amounts Real), pushes a ``-where`` down as a query parameter (seen in the
server's access log); the OpenAPI document validates; OWSLib creates, replaces and deletes
an intervention, and a stale ``If-Match`` gets 412; OPTIONS answers ``Allow``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"

pytestmark = pytest.mark.clients

#: A polygon layer whose second feature is a MultiPolygon (the layer mixes both).
LAYER = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"nome": "Bosco A", "area_ha": 12.5},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[9.0, 45.4], [9.05, 45.4], [9.05, 45.45], [9.0, 45.4]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"nome": "Bosco B", "area_ha": None},
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, access log path) of a uvicorn server over a fresh embedded store, with one
    uploaded layer mixing Polygon and MultiPolygon."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("desktop")
    log_path = data_dir / "access.log"
    env = {**os.environ, "CMM_GEO_DATA_DIR": str(data_dir), "CMM_GEO_ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("CMM_GEO_DATABASE_URL", None)
    env.pop("CMM_GEO_BASE_URL", None)
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/conformance", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"uvicorn exited: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        else:
            pytest.fail("uvicorn did not start within 60 s")
        _upload_layer(url)
        yield url, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _upload_layer(url: str) -> None:
    boundary = "----cmmgeo"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nBoschi misti\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="boschi.geojson"\r\nContent-Type: application/geo+json\r\n\r\n'
        ).encode()
        + json.dumps(LAYER).encode()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url + "/layers",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 201
        assert json.loads(r.read())["id"] == "boschi-misti"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed: bash scripts/test.sh installs gdal-bin")
    return path


def _run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


#: Collection → (feature count, OGR geometry type in GeoPackage, in Shapefile). Shapefile has
#: one shape type for polygons and multipolygons, reported as Polygon.
EXPECTED = {
    "comuni": (133, "Multi Polygon", "Polygon"),
    "zone-omogenee": (8, "Multi Polygon", "Polygon"),
    "unioni": (3, "Multi Polygon", "Polygon"),
    "interventions": (104, "Multi Point", "Multi Point"),
    "boschi-misti": (2, "Multi Polygon", "Polygon"),
}


@pytest.mark.parametrize("cid", list(EXPECTED))
def test_ogr2ogr_exports_every_collection_whole(server, tmp_path, cid):
    url, _ = server
    count, gpkg_type, shp_type = EXPECTED[cid]
    summary = _run(_tool("ogrinfo"), "-ro", "-so", f"OAPIF:{url}", cid)
    assert f"Geometry: {gpkg_type}" in summary  # the declared type, not "Unknown (any)"
    for fmt, ext, geom in (("GPKG", "gpkg", gpkg_type), ("ESRI Shapefile", "shp", shp_type)):
        out = tmp_path / f"{cid}.{ext}"
        _run(_tool("ogr2ogr"), "-f", fmt, str(out), f"OAPIF:{url}", cid)
        info = _run(_tool("ogrinfo"), "-ro", "-so", str(out), out.stem)
        assert f"Feature Count: {count}" in info, (fmt, info)
        assert f"Geometry: {geom}" in info, (fmt, info)


def test_gdal_types_fields_from_the_schema(server, tmp_path):
    url, _ = server
    summary = _run(_tool("ogrinfo"), "-ro", "-so", f"OAPIF:{url}", "interventions")
    assert "amount_eur: Real" in summary and "pnrr_amount_eur: Real" in summary
    assert "created: DateTime" in summary
    layer = _run(_tool("ogrinfo"), "-ro", "-so", f"OAPIF:{url}", "boschi-misti")
    assert "area_ha: Real" in layer
    # Lists survive a Shapefile export, as text.
    out = tmp_path / "interventions.shp"
    _run(_tool("ogr2ogr"), "-f", "ESRI Shapefile", str(out), f"OAPIF:{url}", "interventions")
    import pyogrio

    df = pyogrio.read_dataframe(out)
    assert len(df) == 104
    assert df["missions"].str.contains("M2").any()
    assert df["amount_eur"].dtype.kind == "f"


def test_where_reaches_the_server_as_a_filter(server):
    url, log_path = server
    out = _run(
        _tool("ogrinfo"), "-ro", "-q", "-geom=NO", f"OAPIF:{url}", "comuni",
        "-where", "name = 'Rho'",
    )  # fmt: skip
    assert out.count("OGRFeature(comuni)") == 1 and "Rho" in out
    time.sleep(0.5)  # the access log is written after the answer
    requests = [
        line for line in log_path.read_text().splitlines() if "/collections/comuni/items" in line
    ]
    assert any("name=Rho" in line for line in requests), requests[-5:]


def test_openapi_document_is_valid_and_lists_collections(server):
    from openapi_spec_validator import validate

    url, _ = server
    with urllib.request.urlopen(url + "/api", timeout=30) as r:
        doc = json.loads(r.read())
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    items = doc["paths"]["/collections/interventions/items"]
    assert {"get", "post"} <= set(items)
    assert items["post"]["security"] == [
        {"bearerAuth": []},
        {"sessionCookie": [], "csrfHeader": []},
    ]
    assert doc["components"]["securitySchemes"]["sessionCookie"]["in"] == "cookie"
    names = {p["name"] for p in items["get"]["parameters"]}
    assert {"missions", "programme", "amount_eur", "bbox", "filter", "limit"} <= names
    comuni = {p["name"]: p for p in doc["paths"]["/collections/comuni/items"]["get"]["parameters"]}
    assert comuni["population"]["schema"]["type"] == "integer"
    assert comuni["bbox"]["schema"]["type"] == "array" and comuni["bbox"]["explode"] is False
    assert comuni["crs"]["schema"]["format"] == "uri"
    assert comuni["filter-lang"]["schema"]["default"] == "cql2-text"
    assert "/collections/boschi-misti/items" in doc["paths"]
    one = doc["paths"]["/collections/interventions/items/{feature_id}"]
    assert {"get", "put", "patch", "delete"} <= set(one)
    assert "412" in one["put"]["responses"]
    for path in ("/comuni", "/plan", "/stats/interventions", "/layers"):
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert schema["schema"].get("type") == "object", path


def _request(url: str, method: str, headers: dict[str, str] | None = None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_owslib_creates_updates_deletes_and_stale_if_match_is_412(server):
    from owslib.ogcapi.features import Features

    url, _ = server
    assert {
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    } <= set(Features(url).conformance()["conformsTo"])
    writer = Features(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    feature = {
        "type": "Feature",
        "id": "owslib-1",
        "geometry": {"type": "Point", "coordinates": [9.1919, 45.4642]},
        "properties": {"title": "Prova OWSLib", "programme": "Biciplan", "status": "planned",
                       "source_url": "https://example.org/prova", "reliability": "C"},
    }  # fmt: skip
    assert writer.collection_item_create("interventions", json.dumps(feature))
    created = writer.collection_item("interventions", "owslib-1")
    assert created["properties"]["title"] == "Prova OWSLib"
    assert created["geometry"]["type"] == "MultiPoint"  # promoted, like every intervention
    etag = writer.response_headers["ETag"]
    # Replace with the current ETag: accepted, and the ETag changes.
    feature["properties"]["title"] = "Prova OWSLib (rivista)"
    writer.headers["If-Match"] = etag
    assert writer.collection_item_update("interventions", "owslib-1", json.dumps(feature))
    new_etag = writer.response_headers["ETag"]
    assert new_etag != etag
    # The old ETag is stale now: 412, nothing changed.
    feature["properties"]["title"] = "Sovrascritto"
    with pytest.raises(RuntimeError, match="PreconditionFailed"):
        writer.collection_item_update("interventions", "owslib-1", json.dumps(feature))
    assert Features(url).collection_item("interventions", "owslib-1")["properties"]["title"] == (
        "Prova OWSLib (rivista)"
    )
    status, _, _ = _request(
        f"{url}/collections/interventions/items/owslib-1", "DELETE",
        {"Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": etag},
    )  # fmt: skip
    assert status == 412
    # PATCH with the current ETag, raw HTTP.
    status, headers, _ = _request(
        f"{url}/collections/interventions/items/owslib-1", "PATCH",
        {"Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": new_etag,
         "Content-Type": "application/merge-patch+json"},
        json.dumps({"properties": {"status": "started"}}).encode(),
    )  # fmt: skip
    assert status == 200 and headers["ETag"] not in (etag, new_etag)
    writer.headers["If-Match"] = headers["ETag"]
    assert writer.collection_item_delete("interventions", "owslib-1")
    status, _, _ = _request(f"{url}/collections/interventions/items/owslib-1", "GET")
    assert status == 404


def test_options_answers_allow_by_caller(server):
    url, _ = server
    items = f"{url}/collections/interventions/items"
    status, headers, _ = _request(items, "OPTIONS")
    assert status == 204 and headers["Allow"] == "GET, HEAD, OPTIONS"
    status, headers, _ = _request(items, "OPTIONS", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    one = items + "/" + json.loads(urllib.request.urlopen(items + "?limit=1").read())[
        "features"][0]["id"]  # fmt: skip
    status, headers, _ = _request(one, "OPTIONS")
    assert status == 204 and "PUT" not in headers["Allow"]
    status, headers, _ = _request(one, "OPTIONS", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert headers["Allow"] == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    assert _request(items + "/nope", "OPTIONS")[0] == 404
