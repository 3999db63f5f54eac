"""To the letter of the standards (issue 14), in process: one geometry type per collection
and valid geometries, Part 5 schemas/sortables, CQL2 null semantics, temporal literals and
array functions, parameter validation, bbox-crs, antimeridian, extents, links, headers.

Collections read from the store are checked on both backends (``backend`` fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geo.crs import epsg_uri
from geo.ogc.conformance import CONFORMANCE

TERRITORY = ("comuni", "zone-omogenee", "unioni")
ADMIN = {"Authorization": "Bearer test-admin-token"}
_C = "http://www.opengis.net/spec/cql2/1.0/conf/"
_S = "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/"


def _features(client, cid: str, **params) -> list[dict]:
    r = client.get(f"/collections/{cid}/items", params={"limit": 10000, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberReturned"] == body["numberMatched"] == len(body["features"])
    return body["features"]


def _count(client, cid: str, **params) -> int:
    r = client.get(f"/collections/{cid}/items", params={"limit": 1, **params})
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


def _upload(client, data: bytes, filename: str, name: str):
    r = client.post("/layers", files={"file": (filename, data)}, data={"name": name}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["id"]


#: A polygon layer mixing Polygon and MultiPolygon, one with a date field.
MIXED_LAYER = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"nome": "A", "istituito": "2019-05-01", "area_ha": 12.5},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[9.0, 45.4], [9.05, 45.4], [9.05, 45.45], [9.0, 45.45], [9.0, 45.4]]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"nome": "B", "istituito": None, "area_ha": None},
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


def _check_one_valid_type(client, cid: str) -> str:
    """Every served feature of ``cid`` has the declared type and is valid (in each output
    CRS, since rounding happens per CRS); returns the type."""
    fmt = client.get(f"/collections/{cid}/schema").json()["properties"]["geometry"]["format"]
    assert fmt.startswith("geometry-") and fmt != "geometry-any"
    for crs in (None, "EPSG:32632", "EPSG:3003", "EPSG:4326", "EPSG:6707"):
        feats = _features(client, cid, **({"crs": crs} if crs else {}))
        geoms = [shapely.geometry.shape(f["geometry"]) for f in feats]
        types = {g.geom_type for g in geoms}
        assert len(types) == 1 and fmt == "geometry-" + types.pop().lower(), (cid, crs)
        invalid = [
            (f["id"], shapely.is_valid_reason(g)) for f, g in zip(feats, geoms, strict=True)
            if not g.is_valid
        ]  # fmt: skip
        assert invalid == [], (cid, crs, invalid)
    queryable = client.get(f"/collections/{cid}/queryables").json()["properties"]["geometry"]
    assert queryable["format"] == fmt
    return fmt


def test_territory_one_geometry_type_and_valid(client):
    for cid in TERRITORY:
        assert _check_one_valid_type(client, cid) == "geometry-multipolygon"


def test_interventions_and_layers_one_type_valid_both_backends(client, backend):
    assert _check_one_valid_type(client, "interventions") == "geometry-multipoint"
    lid = _upload(client, json.dumps(MIXED_LAYER).encode(), "misto.geojson", "Misto standard")
    try:
        assert _check_one_valid_type(client, lid) == "geometry-multipolygon"
        schema = client.get(f"/collections/{lid}/schema").json()["properties"]
        assert schema["istituito"]["format"] == "date"
        assert schema["area_ha"]["type"] == ["number", "null"]
    finally:
        assert client.delete(f"/layers/{lid}", headers=ADMIN).status_code == 204


def test_plis_sample_served_valid_after_repair(client, backend, shared_reference):
    data = (shared_reference / "plis_lombardia_sample.geojson").read_bytes()
    lid = _upload(client, data, "plis_lombardia_sample.geojson", "PLIS standard")
    try:
        # The upload repaired two self-intersecting rings; rounding to 6 decimals folded
        # one of them again (served invalid before): now every CRS serves it valid.
        assert _check_one_valid_type(client, lid) == "geometry-multipolygon"
        assert len(_features(client, lid)) == 9
    finally:
        client.delete(f"/layers/{lid}", headers=ADMIN)


# --- Part 5: schema, queryables, sortables ------------------------------------------------


def test_part5_schema_roles_types_and_links(client, backend):
    doc = client.get("/collections/interventions").json()
    rels = {(link["rel"], link["type"]): link["href"] for link in doc["links"]}
    base = "http://testserver/collections/interventions"
    assert rels[("http://www.opengis.net/def/rel/ogc/1.0/schema", "application/schema+json")] == (
        base + "/schema"
    )
    assert rels[("http://www.opengis.net/def/rel/ogc/1.0/sortables", "application/schema+json")]
    assert rels[("describedBy", "application/schema+json")] == base + "/feature-schema"
    assert rels[("describedby", "application/ld+json")] == base + "/metadata"
    r = client.get("/collections/interventions/schema")
    assert r.headers["content-type"].startswith("application/schema+json")
    s = r.json()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == base + "/schema" and "?" not in s["$id"] and s["type"] == "object"
    props = s["properties"]
    roles = [(k, v["x-ogc-role"]) for k, v in props.items() if "x-ogc-role" in v]
    assert roles == [("id", "id"), ("geometry", "primary-geometry")]
    assert "type" not in props["geometry"] and props["geometry"]["format"] == "geometry-multipoint"
    assert props["amount_eur"]["type"] == ["number", "null"]  # numbers stay numbers
    assert props["pnrr_amount_eur"]["type"] == ["number", "null"]
    assert props["created"]["format"] == "date-time" and props["created"]["readOnly"] is True
    assert props["as_of"]["format"] == "date"
    assert props["missions"]["type"] == "array"
    assert props["missions"]["items"]["enum"] == ["M1", "M2", "M3", "M4", "M5", "M6"]
    assert set(props["reliability"]["enum"]) - {None} == {"A", "B", "C"}
    seq = [v["x-ogc-propertySeq"] for v in props.values()]
    assert seq == list(range(1, len(props) + 1))
    # Every served feature validates against its schema (Part 5 ATS response-1).
    import jsonschema

    validator = jsonschema.Draft202012Validator(s)
    for f in _features(client, "interventions"):
        validator.validate({"id": f["id"], **f["properties"]})
    # Consistent with the queryables (same types) and the sortables (no lists, no geometry).
    q = client.get("/collections/interventions/queryables").json()["properties"]
    for name in ("amount_eur", "status", "missions", "drivers"):
        base_type = props[name]["type"]
        base_type = (
            next(t for t in base_type if t != "null") if isinstance(base_type, list) else base_type
        )
        assert q[name]["type"] == base_type, name
    srt = client.get("/collections/interventions/sortables").json()
    assert srt["$id"].endswith("/sortables")
    assert "amount_eur" in srt["properties"] and "missions" not in srt["properties"]
    assert all(v["type"] not in ("array", "object") for v in srt["properties"].values())
    assert "geometry" not in srt["properties"]
    bad = client.get("/collections/interventions/items", params={"sortby": "missions"})
    assert bad.status_code == 400 and "sortables" in bad.json()["description"]
    ok = _features(client, "interventions", sortby="-amount_eur")
    amounts = [f["properties"]["amount_eur"] for f in ok if f["properties"]["amount_eur"]]
    assert amounts == sorted(amounts, reverse=True)


def test_part5_schema_of_the_territory_and_html(client):
    s = client.get("/collections/comuni/schema").json()
    assert s["properties"]["population"]["type"] == "integer"
    assert s["properties"]["area_km2"]["type"] == "number"
    assert "population" in s["required"]
    html = client.get("/collections/comuni/schema", params={"f": "html"})
    assert html.status_code == 200 and "integer" in html.text


def test_feature_schema_is_what_gdal_reads(client, backend):
    s = client.get("/collections/interventions/feature-schema").json()
    fields = s["properties"]["properties"]["properties"]
    assert fields["amount_eur"]["type"] == "number"  # GDAL: Real
    assert fields["missions"]["type"] == "string"  # lists as text: kept by Shapefile
    assert "id" not in fields  # GDAL takes "id" from the features
    geom = s["properties"]["geometry"]["properties"]["type"]["enum"]
    assert geom == ["MultiPoint"]


def test_conformance_declares_part5_and_array_functions(client):
    declared = client.get("/conformance").json()["conformsTo"]
    for cls in ("schemas", "advanced-property-roles", "returnables-and-receivables",
                "queryables", "sortables"):  # fmt: skip
        assert _S + cls in declared
    assert _C + "array-functions" in declared
    assert declared == list(CONFORMANCE)


# --- CQL2 ------------------------------------------------------------------------------


def test_not_never_selects_nulls(client, backend):
    total = _count(client, "interventions")
    nulls = _count(client, "interventions", filter="amount_eur IS NULL")
    assert 0 < nulls < total
    big = _count(client, "interventions", filter="amount_eur > 1000000")
    not_big = _count(client, "interventions", filter="NOT (amount_eur > 1000000)")
    assert big + not_big + nulls == total  # NOT of unknown is unknown
    inside = _count(client, "interventions", filter="amount_eur BETWEEN 100000 AND 5000000")
    outside = _count(client, "interventions", filter="amount_eur NOT BETWEEN 100000 AND 5000000")
    assert inside + outside + nulls == total
    for f in _features(client, "interventions", filter="amount_eur NOT BETWEEN 1 AND 2"):
        assert f["properties"]["amount_eur"] is not None
    either = _count(client, "interventions", filter="NOT (amount_eur > 1000000 AND cup IS NULL)")
    assert either <= total - nulls + _count(
        client, "interventions", filter="amount_eur IS NULL AND cup IS NOT NULL"
    )


def test_date_and_timestamp_literals(client, backend):
    total = _count(client, "interventions")
    assert (
        _count(client, "interventions", filter="created > TIMESTAMP('2000-01-01T00:00:00Z')")
        == total
    )
    assert _count(client, "interventions", filter="created < DATE('2000-01-01')") == 0
    between = "created BETWEEN DATE('2000-01-01') AND TIMESTAMP('2999-12-31T23:59:59Z')"
    assert _count(client, "interventions", filter=between) == total
    as_json = {"op": ">", "args": [{"property": "created"}, {"timestamp": "2000-01-01T00:00:00Z"}]}
    assert _count(client, "interventions", filter=json.dumps(as_json)) == total
    for bad in ("created > DATE('2024-02-30')", "created > TIMESTAMP('yesterday')",
                "T_AFTER(created, DATE('2020-01-01'))"):  # fmt: skip
        r = client.get("/collections/interventions/items", params={"filter": bad})
        assert r.status_code == 400, bad
        assert r.json()["parameter"] == "filter"


def test_array_functions_one_filter_for_a_mission(client, backend):
    by_param = {f["id"] for f in _features(client, "interventions", missions="M2")}
    assert by_param
    by_cql = {
        f["id"] for f in _features(client, "interventions", filter="A_CONTAINS(missions, ('M2'))")
    }
    assert by_cql == by_param
    for f in _features(client, "interventions", filter="A_OVERLAPS(missions, ('M1', 'M5'))"):
        assert {"M1", "M5"} & set(f["properties"]["missions"])
    for f in _features(client, "interventions", filter="A_CONTAINEDBY(missions, ('M2', 'M5'))"):
        assert set(f["properties"]["missions"]) <= {"M2", "M5"}
    only = _features(client, "interventions", filter="A_EQUALS(missions, ('M2'))")
    assert only and all(f["properties"]["missions"] == ["M2"] for f in only)
    as_json = {"op": "a_containedBy", "args": [{"property": "missions"}, ["M2", "M5"]]}
    assert _count(client, "interventions", filter=json.dumps(as_json)) >= len(only)
    r = client.get("/collections/interventions/items", params={"filter": "missions = 'M2'"})
    assert r.status_code == 400 and "A_CONTAINS" in r.json()["description"]


# --- parameters ------------------------------------------------------------------------


def test_coordinates_validated(client):
    for params in ({"bbox": "9,180,10,181"}, {"bbox": "180,9,181,10", "bbox-crs": "EPSG:4326"},
                   {"bbox": "190,45,191,46"},
                   {"filter": "S_INTERSECTS(geometry, POINT(9 180))"}):  # fmt: skip
        r = client.get("/collections/comuni/items", params=params)
        assert r.status_code == 400, params
        assert "out of range" in r.json()["description"]


def test_antimeridian_bbox(client):
    west = {f["id"] for f in _features(client, "comuni", bbox="-180,45,9.0,46")}
    across = {f["id"] for f in _features(client, "comuni", bbox="170,45,9.0,46")}
    assert west and across == west
    assert _features(client, "comuni", bbox="170,45,-170,46") == []


def test_limit_above_the_maximum_is_capped(client):
    r = client.get("/collections/comuni/items", params={"limit": 100000})
    assert r.status_code == 200 and r.json()["numberReturned"] == 133
    assert client.get("/collections/comuni/items", params={"limit": 0}).status_code in (400, 422)


def test_extent_rounded_outward_contains_every_feature(client, backend):
    for cid in (*TERRITORY, "interventions"):
        x0, y0, x1, y1 = client.get(f"/collections/{cid}").json()["extent"]["spatial"]["bbox"][0]
        geoms = [shapely.geometry.shape(f["geometry"]) for f in _features(client, cid)]
        coords = shapely.get_coordinates(geoms)
        assert coords[:, 0].min() >= x0 and coords[:, 0].max() <= x1, cid
        assert coords[:, 1].min() >= y0 and coords[:, 1].max() <= y1, cid


@pytest.mark.parametrize("code", [32632, 3003, 6707])
def test_bbox_crs_selects_the_box_not_its_envelope(client, territory, code):
    tx = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}", always_xy=True)
    # A box around Milano's northern border, in metres of the CRS.
    e, n = tx.transform(9.19, 45.53)
    box = shapely.box(e - 6000, n - 6000, e + 6000, n + 6000)
    first_north = code == 6707
    bbox = (n - 6000, e - 6000, n + 6000, e + 6000) if first_north else box.bounds
    got = {f["id"] for f in _features(client, "comuni", bbox=",".join(map(str, bbox)),
                                       **{"bbox-crs": f"EPSG:{code}"})}  # fmt: skip
    metric = shapely.transform(
        territory.geometries, lambda xy: np.column_stack(tx.transform(xy[:, 0], xy[:, 1]))
    )
    expected = {c for c, g in zip(territory.codes, metric, strict=True) if g.intersects(box)}
    assert got == expected and len(expected) > 3


def test_epsg_6707_is_northing_first(client):
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:6707", always_xy=False)
    north, east = tx.transform(9.1919, 45.4642)  # the Duomo
    assert north > 5_000_000 and east < 1_000_000
    r = client.get("/collections/comuni/items/015146", params={"crs": "EPSG:6707"})
    assert r.headers["Content-Crs"] == f"<{epsg_uri(6707)}>"
    geom = shapely.geometry.shape(r.json()["geometry"])
    assert geom.contains(shapely.Point(north, east)) and not geom.contains(
        shapely.Point(east, north)
    )
    assert epsg_uri(6707) in client.get("/collections/comuni").json()["crs"]
    point = f"S_INTERSECTS(geometry, POINT({north} {east}))"
    hit = client.get(
        "/collections/comuni/items", params={"filter": point, "filter-crs": "EPSG:6707"}
    )
    assert [f["id"] for f in hit.json()["features"]] == ["015146"]


def test_property_filters_are_typed(client):
    for params, name in (({"population": "abc"}, "population"), ({"area_km2": "1,5"}, "area_km2"),
                         ({"population": "12.5"}, "population")):  # fmt: skip
        r = client.get("/collections/comuni/items", params=params)
        assert r.status_code == 400 and r.json()["parameter"] == name, params
    assert _count(client, "comuni", name="Rho") == 1


# --- links, headers, metadata ---------------------------------------------------------


def test_license_and_dcat_metadata_record(client):
    doc = client.get("/collections/comuni").json()
    lic = [link for link in doc["links"] if link["rel"] == "license"]
    assert lic and lic[0]["href"] == "https://creativecommons.org/licenses/by/4.0/"
    r = client.get("/collections/comuni/metadata")
    assert r.headers["content-type"].startswith("application/ld+json")
    rec = r.json()
    assert "dcat:Dataset" in rec["@type"] and "dcatapit:Dataset" in rec["@type"]
    dist = rec["dcat:distribution"][0]
    assert dist["dct:license"]["@id"] == "https://creativecommons.org/licenses/by/4.0/"
    assert dist["dcat:accessURL"]["@id"] == "http://testserver/collections/comuni/items"
    assert rec["dct:spatial"]["dcat:bbox"]["@value"].startswith("POLYGON")


def test_head_answers_carry_link_headers(client):
    r = client.head("/collections/comuni/items", params={"limit": 5})
    assert r.status_code == 200 and r.content == b""
    link = r.headers["Link"]
    assert 'rel="next"' in link and 'rel="self"' in link and "offset=5" in link
    coll = client.head("/collections/comuni").headers["Link"]
    assert 'rel="license"' in coll


def test_accept_language_titles_and_content_language(client, backend):
    it = client.get("/collections/interventions", headers={"Accept-Language": "it"})
    en = client.get("/collections/interventions", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert it.headers["Content-Language"] == "it" and en.headers["Content-Language"] == "en"
    assert it.json()["title"] == "Interventi del Piano strategico"
    assert en.json()["title"] == "Interventions of the strategic plan"
    assert "Accept-Language" in en.headers["Vary"]
    # Italian by default, also for languages not offered; the cache keeps them apart.
    de = client.get("/collections/comuni", headers={"Accept-Language": "de"})
    assert de.headers["Content-Language"] == "it"
    listing = client.get("/collections", headers={"Accept-Language": "en"}).json()
    titles = {c["id"]: c["title"] for c in listing["collections"]}
    assert titles["unioni"] == "Unions of comuni"
    again = client.get("/collections", headers={"Accept-Language": "it"}).json()
    assert {c["id"]: c["title"] for c in again["collections"]}["unioni"] == "Unioni di comuni"


def test_errors_in_html_when_html_was_asked_for(client):
    r = client.get("/collections/comuni/items", params={"population": "<b>x</b>", "f": "html"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;x&lt;/b&gt;" in r.text and "<b>x</b>" not in r.text
    browser = client.get("/collections/nessuna", headers={"Accept": "text/html"})
    assert browser.status_code == 404 and browser.headers["content-type"].startswith("text/html")
    api = client.get("/collections/nessuna")
    assert api.status_code == 404 and api.json()["code"] == "NotFound"
