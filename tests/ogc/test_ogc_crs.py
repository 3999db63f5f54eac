"""OGC API – Features Part 2: crs, bbox-crs, Content-Crs, axis order (EPSG:4326 lat first)."""

from __future__ import annotations

import pytest
import shapely
from pyproj import Transformer

from geo.crs import CRS84, epsg_uri

#: The Duomo di Milano, lon/lat.
DUOMO = (9.1919, 45.4642)
CODES = [4326, 32632, 3003, 7791, 3857]


def _duomo_in(code: int) -> tuple[float, float]:
    """The Duomo in the CRS's own axis order (EPSG:4326: latitude first)."""
    tx = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}", always_xy=False)
    return tx.transform(*DUOMO)


@pytest.mark.parametrize("code", CODES)
def test_output_crs_places_the_duomo_inside_milano(client, code):
    r = client.get(f"/collections/comuni/items/015146?crs=EPSG:{code}")
    assert r.status_code == 200
    assert r.headers["Content-Crs"] == f"<{epsg_uri(code)}>"
    geom = shapely.geometry.shape(r.json()["geometry"])
    a, b = _duomo_in(code)
    assert geom.contains(shapely.Point(a, b))
    # The same point with axes swapped is far outside (catches axis-order mistakes).
    assert not geom.contains(shapely.Point(b, a))


def test_epsg_4326_is_latitude_first(client):
    g = client.get("/collections/comuni/items/015146?crs=EPSG:4326").json()["geometry"]
    first = shapely.geometry.shape(g).bounds
    assert 45 < first[0] < 46 and 9 < first[1] < 9.4


def test_metric_coordinates_rounded_to_centimetres(client):
    g = client.get("/collections/comuni/items/015146?crs=EPSG:32632").json()["geometry"]
    coords = shapely.get_coordinates(shapely.geometry.shape(g))[:100]
    assert abs((coords * 100).round() - coords * 100).max() < 1e-6
    assert 500_000 < coords[0][0] < 530_000


def test_default_crs_is_crs84_with_header(client):
    r = client.get("/collections/comuni/items?limit=1")
    assert r.headers["Content-Crs"] == f"<{CRS84}>"


@pytest.mark.parametrize("code", CODES)
def test_bbox_crs_round_trip(client, code):
    a, b = _duomo_in(code)
    d = 0.0005 if code == 4326 else 50
    bbox = f"{a - d},{b - d},{a + d},{b + d}"
    r = client.get(f"/collections/comuni/items?bbox={bbox}&bbox-crs=EPSG:{code}")
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["features"]] == ["015146"]


def test_unsupported_crs_is_400(client):
    r = client.get("/collections/comuni/items?crs=EPSG:2154")
    assert r.status_code == 400 and r.json()["parameter"] == "crs"
    r = client.get("/collections/comuni/items?bbox=1,2,3,4&bbox-crs=EPSG:9999")
    assert r.status_code == 400 and r.json()["parameter"] == "bbox-crs"


def test_crs_uri_and_urn_forms(client):
    for form in (epsg_uri(32632), "urn:ogc:def:crs:EPSG::32632", "EPSG:32632"):
        r = client.get(
            "/collections/comuni/items/015146", params={"crs": form, "skipGeometry": "true"}
        )
        assert r.headers["Content-Crs"] == f"<{epsg_uri(32632)}>"
