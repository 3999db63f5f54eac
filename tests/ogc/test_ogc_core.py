"""OGC API – Features Part 1: landing, conformance, collections, items, paging, HTML, /api."""

from __future__ import annotations

import pytest

from geo.ogc.conformance import CONFORMANCE

GEOJSON = "application/geo+json"


def _rels(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for link in doc["links"]:
        out.setdefault(link["rel"], []).append(link)
    return out


def test_landing_page_links(client):
    r = client.get("/")
    assert r.status_code == 200
    rels = _rels(r.json())
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"][0]["href"].endswith("/api")
    assert rels["data"][0]["href"].endswith("/collections")


def test_conformance_declares_core_and_filter_classes(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert classes == list(CONFORMANCE)
    for needed in (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    ):
        assert needed in classes


def test_collections_list_the_territory(client):
    body = client.get("/collections").json()
    ids = [c["id"] for c in body["collections"]]
    assert {"comuni", "zone-omogenee", "unioni"} <= set(ids)


def test_collection_document(client):
    c = client.get("/collections/comuni").json()
    assert c["itemType"] == "feature"
    assert c["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert "http://www.opengis.net/def/crs/EPSG/0/4326" in c["crs"]
    assert "http://www.opengis.net/def/crs/EPSG/0/3003" in c["crs"]
    minx, miny, maxx, maxy = c["extent"]["spatial"]["bbox"][0]
    assert 8.6 < minx < 8.8 and 45.1 < miny < 45.2 and 9.5 < maxx < 9.6 and 45.6 < maxy < 45.7
    rels = _rels(c)
    assert any(link["type"] == GEOJSON for link in rels["items"])
    assert "http://www.opengis.net/def/rel/ogc/1.0/queryables" in rels


def test_unknown_collection_404(client):
    r = client.get("/collections/nope")
    assert r.status_code == 404
    assert "comuni" in r.json()["description"]


def test_items_paging_links_and_counts(client):
    r = client.get("/collections/comuni/items?limit=50")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(GEOJSON)
    body = r.json()
    assert body["numberMatched"] == 133
    assert body["numberReturned"] == 50 == len(body["features"])
    assert "timeStamp" in body
    rels = _rels(body)
    assert "prev" not in rels
    nxt = rels["next"][0]["href"]
    assert "offset=50" in nxt and "limit=50" in nxt
    seen = [f["id"] for f in body["features"]]
    page = 1
    while nxt:
        body = client.get(nxt.replace("http://testserver", "")).json()
        page += 1
        assert "prev" in _rels(body)
        seen += [f["id"] for f in body["features"]]
        nxt = _rels(body).get("next", [{}])[0].get("href")
    assert page == 3
    assert len(seen) == len(set(seen)) == 133
    assert all(len(s) == 6 and s.isdigit() for s in seen)


def test_items_limit_bounds(client):
    assert client.get("/collections/comuni/items?limit=0").status_code == 400
    capped = client.get("/collections/comuni/items?limit=10001")  # capped, not refused
    assert capped.status_code == 200 and capped.json()["numberReturned"] == 133
    assert client.get("/collections/comuni/items?offset=-1").status_code == 400
    assert len(client.get("/collections/comuni/items").json()["features"]) == 10


def test_unknown_parameter_is_400(client):
    r = client.get("/collections/comuni/items?colour=red")
    assert r.status_code == 400
    assert r.json()["parameter"] == "colour"


def test_bbox_selects_milano(client):
    body = client.get("/collections/comuni/items?bbox=9.18,45.46,9.19,45.47").json()
    assert [f["id"] for f in body["features"]] == ["015146"]
    bad = client.get("/collections/comuni/items?bbox=1,2,3")
    assert bad.status_code == 400 and bad.json()["parameter"] == "bbox"


def test_datetime_is_accepted_and_validated(client):
    ok = client.get("/collections/comuni/items?datetime=2024-01-01T00:00:00Z/..")
    assert ok.status_code == 200 and ok.json()["numberMatched"] == 133
    assert client.get("/collections/comuni/items?datetime=yesterday").status_code == 400


def test_one_item(client):
    f = client.get("/collections/comuni/items/015146").json()
    assert f["type"] == "Feature" and f["id"] == "015146"
    assert f["properties"]["name"] == "Milano"
    assert f["properties"]["zona_omogenea_id"] == "milano"
    assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert client.get("/collections/comuni/items/999999").status_code == 404


def test_zones_and_unions_items(client):
    zones = client.get("/collections/zone-omogenee/items?limit=100").json()
    assert zones["numberMatched"] == 8
    names = {f["properties"]["name"] for f in zones["features"]}
    assert "Alto Milanese" in names and "Milano" in names
    assert sum(f["properties"]["n_comuni"] for f in zones["features"]) == 133
    unions = client.get("/collections/unioni/items?limit=100").json()
    assert unions["numberMatched"] >= 1
    assert all(f["properties"]["n_comuni"] >= 2 for f in unions["features"])


def test_coordinates_rounded_to_6_decimals(client):
    f = client.get("/collections/comuni/items/015146").json()
    ring = f["geometry"]["coordinates"][0]
    ring = ring[0] if f["geometry"]["type"] == "MultiPolygon" else ring
    for x, y in ring[:50]:
        assert round(x, 6) == x and round(y, 6) == y


def test_simplify_reduces_vertices(client):
    def count(q: str) -> int:
        g = client.get(f"/collections/comuni/items/015146{q}").json()["geometry"]
        import shapely

        return shapely.get_num_coordinates(shapely.geometry.shape(g))

    exact, simple = count(""), count("?simplify=100")
    assert simple < exact / 2
    assert client.get("/collections/comuni/items/015146?simplify=-1").status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/?f=html",
        "/collections?f=html",
        "/conformance?f=html",
        "/collections/comuni?f=html",
        "/collections/comuni/queryables?f=html",
        "/collections/comuni/items?f=html&limit=5",
        "/collections/comuni/items/015146?f=html",
    ],
)
def test_html_pages(client, url):
    r = client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text
    if "items" in url or url.startswith("/collections/comuni?"):
        assert 'id="map"' in r.text and "leaflet.js" in r.text


def test_accept_header_negotiation(client):
    html = client.get("/collections/comuni/items/015146", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    assert "Milano" in html.text
    js = client.get("/collections/comuni/items/015146", headers={"Accept": GEOJSON})
    assert js.json()["id"] == "015146"
    assert client.get("/collections?f=xml").status_code == 400


def test_api_is_openapi_30_with_ogc_media_types(client):
    r = client.get("/api")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    items = doc["paths"]["/collections/{collectionId}/items"]["get"]
    assert GEOJSON in items["responses"]["200"]["content"]
    params = {p["name"]: p for p in items["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 10000
    assert {"bbox", "bbox-crs", "crs", "filter", "filter-lang", "sortby"} <= set(params)

    def no_31(node):
        if isinstance(node, dict):
            assert not (node.get("anyOf") and {"type": "null"} in node["anyOf"])
            assert not isinstance(node.get("type"), list)
            for v in node.values():
                no_31(v)
        elif isinstance(node, list):
            for v in node:
                no_31(v)

    no_31(doc)


def test_plain_json_routes_still_work(client):
    assert client.get("/comuni").json()["count"] == 133
    assert client.get("/comuni/015146").json()["name"] == "Milano"
    assert client.get("/zone-omogenee").status_code == 200
