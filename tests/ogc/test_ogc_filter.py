"""OGC API – Features Part 3 and CQL2: queryables, filter (text, JSON), property filters,
sortby, properties, skipGeometry."""

from __future__ import annotations

import orjson
import pytest
from pyproj import Transformer

ITEMS = "/collections/comuni/items"


def _ids(client, **params) -> list[str]:
    r = client.get(ITEMS, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["features"]]


def _names(client, **params) -> set[str]:
    r = client.get(ITEMS, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return {f["properties"]["name"] for f in r.json()["features"]}


def test_queryables_json_schema(client):
    r = client.get("/collections/comuni/queryables")
    assert r.headers["content-type"].startswith("application/schema+json")
    q = r.json()
    assert q["type"] == "object"
    props = q["properties"]
    assert props["population"]["type"] == "integer"
    assert props["name"]["type"] == "string"
    assert props["geometry"]["format"] == "geometry-multipolygon"
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"


# --- basic-cql2 ------------------------------------------------------------------------


def test_basic_cql2_text(client):
    assert _ids(client, filter="istat_code = '015146'") == ["015146"]
    big = _names(client, filter="population > 70000 AND NOT (name = 'Milano')")
    assert "Sesto San Giovanni" in big and "Milano" not in big
    either = _names(client, filter="name = 'Rho' OR name = 'Legnano'")
    assert either == {"Rho", "Legnano"}
    assert (
        len(_ids(client, filter="unione_id IS NULL"))
        + len(_ids(client, filter="unione_id IS NOT NULL"))
        == 133
    )


def test_basic_cql2_json(client, territory):
    expr = {
        "op": "and",
        "args": [
            {"op": ">=", "args": [{"property": "population"}, 70000]},
            {"op": "<>", "args": [{"property": "name"}, "Milano"]},
        ],
    }
    names = _names(client, **{"filter": orjson.dumps(expr).decode(), "filter-lang": "cql2-json"})
    expected = {
        c.name for c in territory.comuni_list if c.population >= 70000 and c.name != "Milano"
    }
    assert names == expected


def test_cql2_json_detected_without_filter_lang(client):
    expr = {"op": "=", "args": [{"property": "name"}, "Rho"]}
    assert _names(client, filter=orjson.dumps(expr).decode()) == {"Rho"}


# --- advanced comparison ------------------------------------------------------------


def test_advanced_comparison_like_in_between(client):
    assert "Cologno Monzese" in _names(client, filter="name LIKE '%Monzese'")
    assert _names(client, filter="istat_code IN ('015146', '015182')") == {"Milano", "Rho"}
    mid = _names(client, filter="population BETWEEN 50000 AND 60000")
    assert mid and all(n != "Milano" for n in mid)
    expr = {"op": "like", "args": [{"property": "name"}, "Mil%"]}
    assert _names(
        client, **{"filter": orjson.dumps(expr).decode(), "filter-lang": "cql2-json"}
    ) == {"Milano"}


def test_case_insensitive_comparison(client):
    assert _names(client, filter="CASEI(name) = casei('mILANO')") == {"Milano"}
    assert "Cologno Monzese" in _names(client, filter="CASEI(name) LIKE casei('%monzese')")


def test_accent_insensitive_comparison(client):
    # No comune name carries an accent here; ACCENTI must still fold the literal.
    assert _names(client, filter="ACCENTI(name) = accenti('Mìlano')") == {"Milano"}


# --- spatial ----------------------------------------------------------------------------


def test_basic_spatial_s_intersects_point_and_bbox(client):
    assert _ids(client, filter="S_INTERSECTS(geometry, POINT(9.1919 45.4642))") == ["015146"]
    near = _ids(client, filter="S_INTERSECTS(geometry, BBOX(9.0, 45.40, 9.30, 45.55))")
    assert "015146" in near and len(near) >= 2


def test_basic_spatial_plus_polygon_and_filter_crs(client):
    x, y = Transformer.from_crs("OGC:CRS84", "EPSG:32632", always_xy=True).transform(
        9.1919, 45.4642
    )
    poly = f"POLYGON(({x - 10} {y - 10}, {x + 10} {y - 10}, {x + 10} {y + 10}, {x - 10} {y - 10}))"
    ids = _ids(client, **{"filter": f"S_INTERSECTS(geometry, {poly})", "filter-crs": "EPSG:32632"})
    assert ids == ["015146"]
    # EPSG:4326 literals are latitude first.
    ids = _ids(
        client,
        **{"filter": "S_INTERSECTS(geometry, POINT(45.4642 9.1919))", "filter-crs": "EPSG:4326"},
    )
    assert ids == ["015146"]


def test_spatial_functions(client):
    point = "POINT(9.1919 45.4642)"
    assert _ids(client, filter=f"S_CONTAINS(geometry, {point})") == ["015146"]
    assert len(_ids(client, filter=f"S_DISJOINT(geometry, {point})")) == 132
    inside = _ids(client, filter="S_WITHIN(geometry, BBOX(8.5, 45.0, 10.0, 46.0))")
    assert len(inside) == 133
    assert _ids(client, filter=f"S_TOUCHES(geometry, {point})") == []


def test_property_property_and_arithmetic(client):
    dense = _names(client, filter="population / area_km2 > 7000")
    assert "Milano" in dense and len(dense) < 20
    assert _ids(client, filter="istat_code = istat_code") == _ids(client)


@pytest.mark.parametrize(
    ("flt", "where"),
    [
        ("name = ", "1:7"),
        ("colour = 'red'", "colour"),
        ("name = 3", "cannot compare"),
        ("T_AFTER(name, TIMESTAMP('2020-01-01T00:00:00Z'))", "temporal"),
    ],
)
def test_filter_errors_say_what_and_where(client, flt, where):
    r = client.get(ITEMS, params={"filter": flt})
    assert r.status_code == 400
    body = r.json()
    assert body["parameter"] == "filter"
    assert where in body["description"]


def test_filter_lang_validated(client):
    r = client.get(ITEMS, params={"filter": "name = 'Rho'", "filter-lang": "ecql"})
    assert r.status_code == 400


# --- property filters, sortby, properties, skipGeometry ------------------------------


def test_property_filters(client):
    assert _ids(client, name="Milano") == ["015146"]
    zone = _ids(client, zona_omogenea_id="alto-milanese")
    assert len(zone) > 10
    assert _ids(client, population="1354196") == ["015146"]


def test_sortby(client):
    desc = client.get(ITEMS, params={"sortby": "-population", "limit": 3}).json()["features"]
    assert desc[0]["properties"]["name"] == "Milano"
    pops = [f["properties"]["population"] for f in desc]
    assert pops == sorted(pops, reverse=True)
    asc = client.get(ITEMS, params={"sortby": "+name", "limit": 133}).json()["features"]
    names = [f["properties"]["name"] for f in asc]
    assert names == sorted(names)
    assert client.get(ITEMS, params={"sortby": "colour"}).status_code == 400


def test_properties_selection_and_skip_geometry(client):
    body = client.get(
        ITEMS, params={"properties": "name,population", "skipGeometry": "true", "limit": 2}
    ).json()
    for f in body["features"]:
        assert set(f["properties"]) == {"name", "population"}
        assert f["geometry"] is None
    assert client.get(ITEMS, params={"properties": "colour"}).status_code == 400
