"""Part 4 on an uploaded layer as a client sees it, against a real 2-worker uvicorn server on
each backend: OWSLib creates, replaces and deletes a feature (a stale ``If-Match`` is 412);
of eight writers racing with one ETag through either worker, exactly one gets through."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import shapely
from layer_builders import MILANO, frame, polygons, to_bytes
from test_layer_editing import ADMIN, gj, square

from tests.servers import uvicorn_app

PART4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"


@pytest.fixture(scope="module")
def server(store_backend, store_engine, tmp_path_factory):
    """(base URL, layer id): two uvicorn workers over the store of ``store_backend``, with a
    polygon layer uploaded through them."""
    url, schema = store_backend
    if schema:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}%2Cpublic"
    with uvicorn_app({}, "cmm-geo-layer-edit-", workers=2, database_url=url) as base:
        data, name = to_bytes(
            frame(polygons(), "OGC:CRS84"), "geojson", tmp_path_factory.mktemp("l"), "aree"
        )
        r = httpx.post(
            f"{base}/layers",
            files={"file": (name, data)},
            data={"name": "Aree modificabili"},
            headers=ADMIN,
            timeout=60,
        )
        assert r.status_code == 201, r.text
        lid = r.json()["id"]
        yield base, lid
        httpx.delete(f"{base}/layers/{lid}", headers=ADMIN, timeout=60)


def fresh(method: str, url: str, **kw) -> httpx.Response:
    """One request on a new connection (so either worker may answer it)."""
    with httpx.Client(timeout=60) as c:
        return c.request(method, url, **kw)


def test_owslib_creates_updates_and_deletes_a_feature(server, backend):
    from owslib.ogcapi.features import Features

    url, lid = server
    reader = Features(url)
    conforms = set(reader.conformance()["conformsTo"])
    assert {
        PART4 + c
        for c in ("create-replace-delete", "update", "optimistic-locking-etags", "features")
    } <= conforms
    before = reader.collection_items(lid, limit=1)["numberMatched"]
    g = square(MILANO, dx=-3000)
    bbox = list(g.bounds)
    writer = Features(url, headers=ADMIN)
    feature = {
        "type": "Feature",
        "geometry": gj(g),
        "properties": {"nome": "Bosco OWSLib", "codice": 42, "attivo": True},
    }
    assert writer.collection_item_create(lid, json.dumps(feature))
    fid = writer.response_headers["Location"].rsplit("/", 1)[1]
    created = reader.collection_item(lid, fid)
    assert created["properties"] == {
        "nome": "Bosco OWSLib",
        "codice": 42,
        "valore": None,
        "attivo": True,
    }
    assert shapely.geometry.shape(created["geometry"]).equals_exact(g, 1e-6)
    etag = reader.response_headers["ETag"]
    assert reader.collection_items(lid, limit=1)["numberMatched"] == before + 1
    assert [f["id"] for f in reader.collection_items(lid, bbox=bbox)["features"]] == [fid]

    # Replace with the current ETag: accepted, and the ETag changes.
    feature["properties"]["nome"] = "Bosco OWSLib (rivisto)"
    writer.headers["If-Match"] = etag
    assert writer.collection_item_update(lid, fid, json.dumps(feature))
    new_etag = writer.response_headers["ETag"]
    assert new_etag != etag
    # The old ETag is stale now: 412, nothing changed.
    feature["properties"]["nome"] = "Sovrascritto"
    with pytest.raises(RuntimeError, match="PreconditionFailed"):
        writer.collection_item_update(lid, fid, json.dumps(feature))
    with pytest.raises(RuntimeError, match="PreconditionFailed"):
        writer.collection_item_delete(lid, fid)
    assert reader.collection_item(lid, fid)["properties"]["nome"] == "Bosco OWSLib (rivisto)"
    assert reader.response_headers["ETag"] == new_etag

    writer.headers["If-Match"] = new_etag
    assert writer.collection_item_delete(lid, fid)
    with pytest.raises(RuntimeError, match="NotFound"):
        reader.collection_item(lid, fid)
    assert reader.collection_items(lid, limit=1)["numberMatched"] == before
    assert reader.collection_items(lid, bbox=bbox)["features"] == []


def test_if_match_lets_exactly_one_of_concurrent_writers_through(server, backend):
    """Eight writers PATCH one feature with the same If-Match through either worker: the
    check runs in the write's transaction with the layer locked, so one wins."""
    url, lid = server
    items = f"{url}/collections/{lid}/items"
    r = fresh(
        "POST",
        items,
        json={
            "type": "Feature",
            "geometry": gj(square(MILANO, dx=500)),
            "properties": {"nome": "corsa"},
        },
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    one = f"{items}/{r.json()['id']}"
    etag = fresh("GET", one).headers["etag"]
    barrier = threading.Barrier(8)

    def patch(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            return c.patch(
                one,
                json={"properties": {"nome": f"writer {i}"}},
                headers={**ADMIN, "If-Match": etag},
            ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(patch, range(8)))
    assert codes == [200] + [412] * 7, codes
    # Every worker reads the winner's version at once.
    names = {fresh("GET", one).json()["properties"]["nome"] for _ in range(10)}
    assert len(names) == 1 and names.pop().startswith("writer ")
    assert fresh("DELETE", one, headers={**ADMIN, "If-Match": etag}).status_code == 412
    assert fresh("DELETE", one, headers=ADMIN).status_code == 204
