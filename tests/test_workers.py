"""Several workers behave as one service (both backends): writes, uploads and deletes made
through one worker are served by every other at once; concurrent writers lose nothing;
ETags agree across workers; a request stuck on the database does not delay ``/lookup``.

Each request below opens a fresh connection, so the kernel spreads them over the workers;
40 of them reach all 4 workers with near certainty (and any that did not would only make a
test pass that should, never fail one that should pass).
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from tests.servers import uvicorn_app

ADMIN = {"Authorization": "Bearer test-admin-token"}
WORKERS = 4
FRESH = 40  # requests on fresh connections per check


@contextlib.contextmanager
def own_schema(postgis_url: str) -> Iterator[str]:
    """A fresh PostGIS schema for a server of its own; yields its database URL, then drops it."""
    schema = f"w_{uuid.uuid4().hex[:10]}"
    db_url = postgis_url + ("&" if "?" in postgis_url else "?")
    db_url += f"options=-csearch_path%3D{schema}%2Cpublic"
    engine = sa.create_engine(postgis_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield db_url
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def service(request, tmp_path_factory):
    """A 4-worker server on a fresh store of each backend; yields (base URL, db URL)."""
    if request.param == "sqlite":
        with uvicorn_app({}, "cmm-geo-workers-", workers=WORKERS) as base:
            yield base, None
        return
    with (
        own_schema(request.getfixturevalue("postgis_url")) as db_url,
        uvicorn_app({}, "cmm-geo-workers-", workers=WORKERS, database_url=db_url) as base,
    ):
        yield base, db_url


def fresh(method: str, url: str, **kw) -> httpx.Response:
    """One request on a new connection (so any worker may answer it)."""
    with httpx.Client(timeout=60) as c:
        return c.request(method, url, **kw)


def statuses(url: str) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fresh("GET", url).status_code, range(FRESH)))


def matched(base: str) -> set[int]:
    url = f"{base}/collections/interventions/items?limit=1"
    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(lambda _: fresh("GET", url).json()["numberMatched"], range(FRESH)))


def feature(fid: str, comune: str = "Rho") -> dict:
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [9.04, 45.53]},
        "properties": {"title": f"Worker test {fid}", "programme": "PINQUA", "comuni": comune},
    }


def test_intervention_written_through_one_worker_is_read_by_all(service):
    base, _ = service
    (before,) = matched(base)  # every worker warmed up, all agree
    fid = "workers-" + uuid.uuid4().hex[:8]
    r = fresh("POST", f"{base}/collections/interventions/items", json=feature(fid), headers=ADMIN)
    assert r.status_code == 201, r.text
    assert statuses(f"{base}/collections/interventions/items/{fid}") == [200] * FRESH
    assert matched(base) == {before + 1}
    r = fresh("DELETE", f"{base}/collections/interventions/items/{fid}", headers=ADMIN)
    assert r.status_code == 204, r.text
    assert statuses(f"{base}/collections/interventions/items/{fid}") == [404] * FRESH
    assert matched(base) == {before}


def test_layer_uploaded_and_deleted_through_one_worker(service):
    base, _ = service
    assert statuses(f"{base}/collections") == [200] * FRESH  # warm every worker
    name = "Parchi " + uuid.uuid4().hex[:6]
    gj = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nome": "Parco"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[9.1, 45.4], [9.2, 45.4], [9.2, 45.5], [9.1, 45.4]]],
                },
            }
        ],
    }
    r = fresh(
        "POST",
        f"{base}/layers",
        files={"file": ("parchi.geojson", json.dumps(gj).encode())},
        data={"name": name},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    assert statuses(f"{base}/collections/{lid}/items") == [200] * FRESH
    with ThreadPoolExecutor(8) as pool:
        listings = list(pool.map(lambda _: fresh("GET", f"{base}/collections"), range(FRESH)))
    assert all(lid in {c["id"] for c in x.json()["collections"]} for x in listings)

    r = fresh("DELETE", f"{base}/layers/{lid}", headers=ADMIN)
    assert r.status_code == 204, r.text
    assert statuses(f"{base}/collections/{lid}/items") == [404] * FRESH
    for path in ("/", "/collections"):
        assert statuses(base + path) == [200] * FRESH
    with ThreadPoolExecutor(8) as pool:
        listings = list(pool.map(lambda _: fresh("GET", f"{base}/collections"), range(FRESH)))
    assert not any(lid in {c["id"] for c in x.json()["collections"]} for x in listings)


def test_etags_agree_across_workers(service):
    base, _ = service
    for path in (
        "/",
        "/collections",
        "/collections/interventions/items?limit=5",
        "/collections/interventions/items/doc-001",
        "/collections/comuni/items?limit=3",
    ):
        with ThreadPoolExecutor(8) as pool:
            urls = [base + path] * FRESH
            tags = set(pool.map(lambda u: fresh("GET", u).headers["etag"], urls))
        assert len(tags) == 1, (path, tags)


def test_concurrent_writers_lose_nothing(service):
    base, _ = service
    (before,) = matched(base)
    run = uuid.uuid4().hex[:6]
    errors: list[str] = []

    def writer(w: int) -> None:
        with httpx.Client(timeout=120) as c:  # one keep-alive connection per writer
            for i in range(50):
                fid = f"cw-{run}-{w}-{i}"
                url = f"{base}/collections/interventions/items"
                r = c.post(url, json=feature(fid), headers=ADMIN)
                if r.status_code != 201:
                    errors.append(f"{fid}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == []
    assert matched(base) == {before + 400}
    # The data version moved with every write: a cached page of before is never served.
    r = fresh("GET", f"{base}/collections/interventions/items?limit=1&filter=id LIKE 'cw-{run}-%'")
    assert r.json()["numberMatched"] == 400


def test_request_stuck_on_the_database_does_not_delay_lookup(postgis_url):
    """One worker; a PostGIS lock holds an items request; /lookup still answers meanwhile."""
    engine = sa.create_engine(postgis_url)
    with (
        own_schema(postgis_url) as db_url,
        uvicorn_app({}, "cmm-geo-stuck-", database_url=db_url) as base,
    ):
        schema = db_url.rsplit("%3D", 1)[1].split("%2C")[0]
        assert fresh("GET", f"{base}/collections/interventions/items?limit=1").is_success
        done = threading.Event()
        with engine.connect() as locker:
            tx = locker.begin()
            locker.exec_driver_sql(
                f'LOCK TABLE "{schema}".store_meta, "{schema}".interventions '
                "IN ACCESS EXCLUSIVE MODE"
            )

            def stuck() -> None:
                fresh("GET", f"{base}/collections/interventions/items?limit=2&offset=1")
                done.set()

            t = threading.Thread(target=stuck)
            t.start()
            assert not done.wait(1.0), "the items request should be waiting on the lock"
            for _ in range(20):
                r = fresh("GET", f"{base}/lookup", params={"lon": 9.19, "lat": 45.46})
                assert r.status_code == 200
                assert r.json()["comune"]["name"] == "Milano"
            assert not done.is_set(), "the lock was released too early for this test"
            tx.rollback()
        t.join(60)
        assert done.is_set()
    engine.dispose()


def test_two_replicas_on_one_postgis_are_one_service(postgis_url):
    """Two separate server processes (replicas behind a load balancer) on one database."""
    with (
        own_schema(postgis_url) as db_url,
        uvicorn_app({}, "cmm-geo-replica-a-", database_url=db_url) as a,
        uvicorn_app({}, "cmm-geo-replica-b-", database_url=db_url) as b,
    ):
        items = "/collections/interventions/items"
        before = fresh("GET", f"{b}{items}?limit=1")
        etag = before.headers["etag"]
        fid = "replica-" + uuid.uuid4().hex[:8]
        assert fresh("POST", a + items, json=feature(fid), headers=ADMIN).status_code == 201
        assert fresh("GET", f"{b}{items}/{fid}").status_code == 200
        after = fresh("GET", f"{b}{items}?limit=1", headers={"If-None-Match": etag})
        assert after.status_code == 200  # not a stale 304
        assert after.json()["numberMatched"] == before.json()["numberMatched"] + 1
        assert fresh("DELETE", f"{b}{items}/{fid}", headers=ADMIN).status_code == 204
        assert fresh("GET", f"{a}{items}/{fid}").status_code == 404


def test_if_match_lets_exactly_one_of_concurrent_writers_through(service):
    """Eight writers in different workers PATCH with the same If-Match: the check runs in
    the write's transaction (row locked), so one wins and seven get 412."""
    base, _ = service
    fid = "ifmatch-" + uuid.uuid4().hex[:8]
    url = f"{base}/collections/interventions/items"
    assert fresh("POST", url, json=feature(fid), headers=ADMIN).status_code == 201
    etag = fresh("GET", f"{url}/{fid}").headers["etag"]
    barrier = threading.Barrier(8)

    def patch(i: int) -> int:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            r = c.patch(
                f"{url}/{fid}",
                json={"properties": {"status": f"writer {i}"}},
                headers={**ADMIN, "If-Match": etag},
            )
            return r.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(patch, range(8)))
    assert codes == [200] + [412] * 7, codes
    assert fresh("DELETE", f"{url}/{fid}", headers={**ADMIN, "If-Match": etag}).status_code == 412
    assert fresh("DELETE", f"{url}/{fid}", headers=ADMIN).status_code == 204


def test_a_burst_of_first_requests_is_answered(backend_url_for_burst):
    """A fresh server (fresh store) hit by more concurrent first requests than it has pooled
    connections answers them all: what the store needs once (the documented interventions
    seeded, the comuni mirrored) is done at start-up, not by the first request while the
    others hold the pool waiting for it (which ended in 503s after the pool's timeout)."""
    env = {"CMM_GEO_DB_POOL_SIZE": "4", "CMM_GEO_DB_MAX_OVERFLOW": "0"}
    with uvicorn_app(
        env, "cmm-geo-burst-", database_url=backend_url_for_burst, ready_path="/app/static/app.css"
    ) as base:
        urls = [
            f"{base}/collections/interventions/items?limit=3&bbox={8.8 + i / 100},45.2,9.6,45.7"
            for i in range(40)
        ]
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(lambda u: httpx.get(u, timeout=60), urls))
    assert [r.status_code for r in answers] == [200] * 40
    assert all(r.json()["numberReturned"] == 3 for r in answers)


@pytest.fixture(params=["sqlite", "postgis"])
def backend_url_for_burst(request) -> Iterator[str | None]:
    """None (the embedded store of a fresh data dir) or a fresh PostGIS schema."""
    if request.param == "sqlite":
        yield None
        return
    with own_schema(request.getfixturevalue("postgis_url")) as url:
        yield url
