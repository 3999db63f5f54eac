"""Territory and lookup over HTTP: answers, and a clear 4xx for every bad input."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from pyproj import Transformer


def test_root_answers(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "CC BY 4.0" in r.text
    links = r.json()["links"]
    paths = {link["href"].split("testserver", 1)[1] for link in links}
    assert {"/maps", "/collections", "/conformance", "/lookup?q=Milano"} <= paths
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_comuni_list_and_one(client):
    body = client.get("/comuni").json()
    assert body["count"] == 133 == len(body["comuni"])
    rho = client.get("/comuni/015182").json()
    assert rho["name"] == "Rho"
    assert rho["zona_omogenea"]["id"] == "nord-ovest"
    assert any(n["name"] == "Milano" for n in rho["neighbours"])


def test_zones_and_unions(client):
    zones = client.get("/zone-omogenee").json()
    assert zones["count"] == 8
    assert sum(z["n_comuni"] for z in zones["zone_omogenee"]) == 133
    sud_ovest = client.get("/zone-omogenee/sud-ovest").json()
    assert sud_ovest["official_area_km2"] == pytest.approx(179.95)
    unions = client.get("/unioni").json()
    assert unions["count"] == 3
    f = client.get("/unioni/uc-dei-fontanili").json()
    assert f["n_comuni"] == 9 and f["zone_omogenee"] == ["magentino-e-abbiatense", "sud-ovest"]


def test_lookup_by_name_and_code(client):
    r = client.get("/lookup", params={"q": "cassano d’adda"})
    assert r.status_code == 200
    c = r.json()["comune"]
    assert c["name"] == "Cassano d'Adda" and c["zona_omogenea"]["name"] == "Adda Martesana"
    assert client.get("/lookup", params={"q": "C003"}).json()["comune"]["name"] == "Cassano d'Adda"


def test_lookup_miss_is_404_with_suggestions(client):
    r = client.get("/lookup", params={"q": "Cassano dAda"})
    assert r.status_code == 404
    assert r.json()["suggestions"][0]["name"] == "Cassano d'Adda"


@pytest.mark.parametrize("epsg", [32632, 3003, 7791, 3857])
def test_lookup_by_projected_point(client, epsg):
    x, y = Transformer.from_crs("OGC:CRS84", f"EPSG:{epsg}", always_xy=True).transform(9.04, 45.531)
    r = client.get("/lookup", params={"x": x, "y": y, "crs": f"EPSG:{epsg}"})
    assert r.status_code == 200, r.text
    assert r.json()["comune"]["name"] == "Rho"


def test_lookup_lonlat_and_4326(client):
    assert client.get("/lookup?lon=9.19&lat=45.464").json()["comune"]["name"] == "Milano"
    r = client.get("/lookup?x=45.464&y=9.19&crs=EPSG:4326")
    assert r.json()["comune"]["name"] == "Milano"


def test_point_outside_is_404_with_nearest(client):
    r = client.get("/lookup?lon=7.68&lat=45.07")  # Torino
    assert r.status_code == 404
    body = r.json()
    assert body["nearest"]["distance_m"] > 50_000
    assert body["point"]["lon"] == 7.68


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/lookup", "q"),
        ("/lookup?lon=9.19", "lat"),
        ("/lookup?lat=45.4", "lon"),
        ("/lookup?lon=abc&lat=45", "lon"),
        ("/lookup?lon=500&lat=45", "lon"),
        ("/lookup?x=1&y=2", "crs"),
        ("/lookup?x=1", "y"),
        ("/lookup?x=1&y=2&crs=EPSG:9999", "crs"),
        ("/lookup?q=Rho&lon=9&lat=45", "q"),
        ("/lookup?lon=9.19&lat=45.46&x=1", "x"),
        ("/lookup?q=", "q"),
        ("/comuni/15146", "istat_code"),
        ("/lookup?x=9.19&y=45.46&crs=EPSG:4326", "coordinates"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(client, url, parameter):
    r = client.get(url)
    assert r.status_code == 422, r.text
    assert r.json()["parameter"] == parameter


@pytest.mark.parametrize("url", ["/comuni/099999", "/zone-omogenee/atlantide", "/unioni/nessuna"])
def test_unknown_ids_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


def test_batch_csv_and_csv_output(client):
    lines = ["id,lon,lat"] + [f"p{i},{9.0 + i * 0.01},{45.45}" for i in range(2000)]
    body = "\n".join(lines).encode()
    r = client.post("/lookup", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    res = r.json()
    assert res["count"] == 2000 and res["matched"] + res["outside"] == 2000
    assert res["results"][0]["id"] == "p0"
    r = client.post("/lookup?f=csv", content=body, headers={"content-type": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2000 and rows[19]["name"] == res["results"][19]["name"]


def test_batch_geojson_multipart_with_crs(client):
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:32632", always_xy=True)
    feats = [
        {
            "type": "Feature",
            "id": n,
            "properties": {},
            "geometry": {"type": "Point", "coordinates": list(tx.transform(lon, lat))},
        }
        for n, (lon, lat) in {"duomo": (9.1916, 45.4642), "rho": (9.04, 45.531)}.items()
    ]
    gj = orjson.dumps({"type": "FeatureCollection", "features": feats})
    r = client.post(
        "/lookup?crs=EPSG:32632",
        files={"file": ("pts.geojson", gj, "application/geo+json")},
    )
    assert r.status_code == 200, r.text
    assert [x["name"] for x in r.json()["results"]] == ["Milano", "Rho"]


@pytest.mark.parametrize(
    ("body", "ctype", "parameter"),
    [
        (b"", "text/csv", "body"),
        (b"lon,lat\n9,abc\n", "text/csv", "file"),
        (b'{"type":"Feature"}', "application/geo+json", "file"),
        (b"lon,lat\n9.1,45.4\n", "text/csv", "crs"),
    ],
)
def test_batch_errors_are_422(client, body, ctype, parameter):
    url = "/lookup?crs=EPSG:1" if parameter == "crs" else "/lookup"
    r = client.post(url, content=body, headers={"content-type": ctype})
    assert r.status_code == 422, r.text
    assert r.json()["parameter"] == parameter
