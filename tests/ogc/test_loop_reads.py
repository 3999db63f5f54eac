"""Features by id, the map's pages, filtered pages and tiles read on the event loop
(``geo.store.aio``: PostgreSQL, and on SQLite features by id, boxes and filters of a shape,
each within a budget of CPU time).

The same answer as from the threadpool — body, ETag, every header — on both stores; a
write, an upload and a delete are seen by the next read at once (the registry refresh they
need is not done on the loop: the read goes to a thread); a database that fails the loop's
read leaves the answer to the threadpool; and no statement of the synchronous store code
ever runs under ``on_the_loop``.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from fastapi.testclient import TestClient

import geo.store.aio as aio
from api.main import create_app
from geo.settings import get_settings
from geo.store import WouldBlock, get_engine, on_the_loop, read_connection, transaction

ADMIN = {"Authorization": "Bearer test-admin-token"}
VOLATILE = {"date", "server"}


@pytest.fixture
def loop_reads(monkeypatch):
    """Rows read on the event loop, one entry per statement that answered."""
    answered: list[int] = []
    real = aio.fetch

    async def spy(engine, statements):  # type: ignore[no-untyped-def]
        got = await real(engine, statements)
        if got is not None:
            answered.append(len(statements))
        return got

    monkeypatch.setattr(aio, "fetch", spy)
    return answered


@pytest.fixture
def threads_only(monkeypatch):
    """Settings with the event loop's reads turned off (``CMM_GEO_ASYNC_READS=false``)."""

    def switch(off: bool) -> None:
        if off:
            monkeypatch.setenv("CMM_GEO_ASYNC_READS", "false")
        else:
            monkeypatch.delenv("CMM_GEO_ASYNC_READS", raising=False)
        get_settings.cache_clear()

    yield switch
    os.environ.pop("CMM_GEO_ASYNC_READS", None)
    get_settings.cache_clear()


def _headers(r) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v for k, v in r.headers.items() if k not in VOLATILE}


def _answered_alike_from_threads(urls, loop, threads_only) -> None:  # type: ignore[no-untyped-def]
    """``urls`` answered from the threadpool (the loop's reads off) as ``loop`` answered
    them: status, body and every header."""
    threads_only(True)
    with TestClient(create_app()) as c:
        thread = [c.get(u) for u in urls]
    for url, a, b in zip(urls, loop, thread, strict=True):
        assert (a.status_code, a.content) == (b.status_code, b.content), url
        assert _headers(a) == _headers(b), url


def test_a_feature_by_id_is_the_same_read_on_the_loop(
    backend, loop_reads, threads_only, monkeypatch
):
    postgis = get_engine().dialect.name == "postgresql"
    closed: list[int] = []
    real_close = aio.AsyncReader.close

    async def close(self):  # type: ignore[no-untyped-def]
        closed.append(len(self._idle))
        await real_close(self)

    monkeypatch.setattr(aio.AsyncReader, "close", close)
    with TestClient(create_app()) as c:
        ids = [
            f["id"] for f in c.get("/collections/interventions/items?limit=9").json()["features"]
        ]
        c.get(f"/collections/interventions/items/{ids[0]}")  # the statement, built in a thread
        before = len(loop_reads)
        loop = [c.get(f"/collections/interventions/items/{i}") for i in [*ids[1:], "nope-0"]]
    assert len(loop_reads) - before == len(loop)  # on both stores
    assert (sum(closed) >= 1) == postgis  # the loop's connections closed with the app
    before = len(loop_reads)
    threads_only(True)
    with TestClient(create_app()) as c:
        thread = [c.get(f"/collections/interventions/items/{i}") for i in [*ids[1:], "nope-0"]]
    assert len(loop_reads) == before  # none more
    for a, b in zip(loop, thread, strict=True):
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert _headers(a) == _headers(b)
    assert [r.status_code for r in loop] == [200] * (len(ids) - 1) + [404]


BOXES = [
    "/collections/interventions/items?bbox=9.0,45.3,9.4,45.6&limit=7",
    "/collections/interventions/items?bbox=9.0,45.3,9.4,45.6&limit=7&offset=5",
    "/collections/interventions/items?f=json&bbox=9.0,45.3,9.4,45.6&limit=3&offset=100000",
    "/collections/interventions/items?bbox=9.1,45.4,9.2,45.5",
    "/collections/interventions/items?bbox=7.0,44.0,7.1,44.1&limit=5",  # nothing there
    "/collections/interventions/items?bbox=9.0,45.3,9.4,45.6&limit=5000",  # over the maximum
]


def test_a_map_box_is_the_same_page_read_on_the_loop(backend, loop_reads, threads_only):
    """The web map's request (a box, a page, nothing else): count and page on the loop,
    on both stores (on SQLite the revisions and the one statement of page and count, in
    one snapshot)."""
    with TestClient(create_app()) as c:
        c.get("/collections/interventions/items?bbox=9.0,45.0,9.9,45.9&limit=2")  # built
        before = len(loop_reads)
        loop = [c.get(u) for u in BOXES]
    assert len(loop_reads) - before == len(BOXES)
    _answered_alike_from_threads(BOXES, loop, threads_only)
    pages = [r.json() for r in loop]
    assert [len(p["features"]) for p in pages[:3]] == [7, 7, 0]
    assert pages[4]["numberMatched"] == 0 and pages[0]["numberMatched"] > 7


def test_a_layers_box_is_the_same_page_read_on_the_loop(backend, loop_reads, threads_only):
    """An uploaded polygon layer's map boxes: on the loop too, on both stores, with the
    statements (and on SQLite the page's encoding) the first page built in a thread, as
    the threads answer them. The encoding kept for the loop is used only while the store's
    revisions, read with the page, still make it (on SQLite: a provider that has not read
    the layer's record at those revisions cannot tell, and the request goes to a thread)."""
    from geo.layers.sql_collection import LayerSqlProvider
    from geo.ogc.registry import FeatureQuery

    squares = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[x, 45.4], [x + 0.02, 45.4], [x + 0.02, 45.42], [x, 45.42], [x, 45.4]]
                ],
            },
            "properties": {"nome": f"Area {i}"},
        }
        for i, x in enumerate([9.05, 9.09, 9.13, 9.19, 9.3])
    ]
    fc = {"type": "FeatureCollection", "features": squares}
    with TestClient(create_app()) as c:
        files = {"file": ("aree.geojson", json.dumps(fc).encode())}
        r = c.post("/layers", files=files, data={"name": "Aree loop"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        layer = r.json()["id"]
        items = f"/collections/{layer}/items"
        urls = [  # across an edge, inside, a corner, past the end, nothing there
            f"{items}?bbox=9.1,45.39,9.2,45.43&limit=2",
            f"{items}?bbox=9.0,45.3,9.4,45.6",
            f"{items}?bbox=9.1,45.41,9.2,45.5&limit=1&offset=1",
            f"{items}?bbox=9.0,45.3,9.4,45.6&limit=2&offset=10",
            f"{items}?bbox=7.0,44.0,7.1,44.1",
        ]
        c.get(f"{items}?bbox=9.0,45.0,9.9,45.9&limit=1")  # the statements built
        before = len(loop_reads)
        loop = [c.get(u) for u in urls]
        read_on_the_loop = len(loop_reads) - before
    assert read_on_the_loop >= len(urls) - 1  # the page past the end: its count, in a thread
    assert [len(r.json()["features"]) for r in loop] == [2, 5, 1, 0, 0]
    assert loop[0].json()["numberMatched"] == 3
    _answered_alike_from_threads(urls, loop, threads_only)
    if get_engine().dialect.name == "sqlite":
        q = FeatureQuery(bbox=(9.0, 45.3, 9.4, 45.6), limit=2)
        built = LayerSqlProvider(layer, get_engine())
        spec = built._kept_sqlite_spec(None, False)
        assert spec is not None and built._spec_is_current(q, spec)
        fresh = LayerSqlProvider(layer, get_engine())
        with on_the_loop():
            assert fresh._loop_sqlite_spec(q) is None  # none built: building would read
            assert not fresh._spec_is_current(q, spec)  # the record unread at these revisions
            assert built._loop_sqlite_spec(q) is spec


ITEMS = "/collections/interventions/items"
FILTERS = [
    f"{ITEMS}?filter=amount_eur%20%3E%20100000&limit=5",
    f"{ITEMS}?f=json&filter=amount_eur%20%3E%20100000&limit=5&offset=3",
    f"{ITEMS}?filter=amount_eur%20%3E%2010000000&limit=3",  # few: found first, then sorted
    f"{ITEMS}?filter=amount_eur%20%3E%201e15",  # none
    f"{ITEMS}?filter=amount_eur%20%3E%201000&limit=2&offset=100000",  # past the end
    f"{ITEMS}?filter=programme%20IN%20('PUI%20CAMBIO','Forestazione')&limit=4",
    f"{ITEMS}?filter=title%20LIKE%20'%25a%25'%20AND%20amount_eur%20IS%20NOT%20NULL&limit=3",
    f"{ITEMS}?filter-lang=cql2-text&filter=S_INTERSECTS(geometry,"
    "POLYGON((9%2045.3,9.4%2045.3,9.4%2045.6,9%2045.6,9%2045.3)))&limit=6",
    f"{ITEMS}?bbox=9.0,45.3,9.4,45.6&filter=amount_eur%20%3E%201000&limit=4",
    f"{ITEMS}?filter-lang=cql2-json&filter="
    '{"op":">","args":[{"property":"amount_eur"},500000]}&limit=2',
    f"{ITEMS}?filter=A_CONTAINS(missions,('M2'))&limit=3",
]
#: Refused while parsed: the loop leaves them to a thread, which answers the 400.
REFUSED = [f"{ITEMS}?filter=nope%20%3E%201", f"{ITEMS}?filter=amount_eur%20%3E%20'x'"]


def test_a_filtered_page_is_the_same_read_on_the_loop(backend, loop_reads, threads_only):
    """A short CQL2 filter's page (with or without a box): its statements built on the loop
    and read there, count then page, as the threadpool reads them."""
    postgis = get_engine().dialect.name == "postgresql"
    with TestClient(create_app()) as c:
        c.get(f"{ITEMS}?filter=amount_eur%20%3E%201&limit=1")  # the table counted, in a thread
        before = len(loop_reads)
        loop = [c.get(u) for u in FILTERS + REFUSED]
    on_the_loop = len(loop_reads) - before
    # count and page (2), or the count alone when nothing matches or the page lies past the
    # end (1); on SQLite only the filters of a shape, their statements compiled once (the
    # seven on amount_eur), the others in a thread
    shaped = len(FILTERS) if postgis else 7
    assert on_the_loop == 2 * shaped - 2
    _answered_alike_from_threads(FILTERS + REFUSED, loop, threads_only)
    pages = [r.json() for r in loop[: len(FILTERS)]]
    assert [r.status_code for r in loop] == [200] * len(FILTERS) + [400] * len(REFUSED)
    assert len(pages[0]["features"]) == 5 and pages[0]["numberMatched"] > 5
    assert pages[3]["numberMatched"] == 0 and pages[4]["features"] == []
    assert all(f["properties"]["amount_eur"] > 10_000_000 for f in pages[2]["features"])


def test_a_filtered_page_reads_only_kept_texts_on_the_loop(backend, threads_only, at_the_door):
    """On SQLite the loop's filtered page selects each row's kept properties text and not
    the columns it is made of. A row whose text another program cleared (the trigger of
    ``ensure_properties_layout``: any other update of the row) cannot be sent from it: that
    page is read again at once with the columns (and so are the collection's next
    ``SLIM_REST`` pages). Both pages are the threads' pages, both sent from the loop."""
    from geo.interventions.sql_collection import keep_all_properties
    from geo.ogc.registry import registry

    engine = get_engine()
    sqlite = engine.dialect.name == "sqlite"
    keep_all_properties(engine)
    kept = f"{ITEMS}?filter=amount_eur%20%3E%201&limit=5"
    cleared = f"{ITEMS}?filter=amount_eur%20%3E%201&limit=6"
    with TestClient(create_app()) as c:
        c.get(f"{ITEMS}?filter=amount_eur%20%3E%202&limit=1")  # the table counted, in a thread
        registry.peek("interventions").__dict__.pop("_slim_rest", None)  # type: ignore[union-attr]
        first = c.get(kept)
        fid = first.json()["features"][0]["id"]
        with transaction(engine) as conn:  # another program's edit: the text is cleared
            conn.exec_driver_sql("UPDATE interventions SET remark = remark WHERE id = ?"
                                 if sqlite else
                                 "UPDATE interventions SET remark = remark WHERE id = %(id)s",
                                 (fid,) if sqlite else {"id": fid})  # fmt: skip
            texts = conn.exec_driver_sql(
                "SELECT count(*) FROM interventions WHERE properties_json IS NULL"
            ).scalar_one()
        assert texts == (1 if sqlite else 0)  # (PostgreSQL's trigger writes it anew)
        second = c.get(cleared)
        rest = registry.peek("interventions").__dict__.get("_slim_rest", 0)  # type: ignore[union-attr]
    assert kept in at_the_door and cleared in at_the_door
    assert rest == (type(registry.peek("interventions")).SLIM_REST if sqlite else 0)
    assert second.json()["features"][0] == {**first.json()["features"][0]}
    _answered_alike_from_threads([kept, cleared], [first, second], threads_only)


def test_a_filter_wider_than_one_past_the_cap_is_read_without_a_count(
    backend, monkeypatch, threads_only
):
    """A slider: ``amount_eur > X`` counted past the cap (``CMM_GEO_COUNT_LIMIT``), then
    smaller X. On PostgreSQL each is read on the loop in one round trip, the revisions
    and the page, no count; the answers are the threadpool's."""
    monkeypatch.setenv("CMM_GEO_COUNT_LIMIT", "5")
    get_settings.cache_clear()
    sent: list[list[str]] = []
    real = aio.fetch

    async def spy(engine, statements):  # type: ignore[no-untyped-def]
        got = await real(engine, statements)
        if got is not None:
            sent.append([st[0] for st in statements])
        return got

    monkeypatch.setattr(aio, "fetch", spy)
    urls = [f"{ITEMS}?filter=amount_eur%20%3E%20{x}&limit=3" for x in (100000, 1000, 50000)]
    with TestClient(create_app()) as c:
        c.get(f"{ITEMS}?filter=amount_eur%20%3E%201e15&limit=1")  # the table counted
        counted = c.get(urls[0])
        before = len(sent)
        loop = [c.get(u) for u in urls[1:]]
    wider = sent[before:]
    assert len(wider) == 2, wider  # on both stores
    assert all(len(st) == 2 and not any("count(" in x for x in st) for st in wider)
    assert [r.status_code for r in (counted, *loop)] == [200] * 3
    assert all("numberMatched" not in r.json() for r in (counted, *loop))
    assert all(len(r.json()["features"]) == 3 for r in loop)
    _answered_alike_from_threads(urls[1:], loop, threads_only)


def test_a_statement_refusing_its_values_leaves_the_loop_on(backend):
    """The database refusing what a statement was given (here a division by zero, as a
    filter's value out of range would be) fails that read alone: the loop's path does
    not rest, as it does when the database is in trouble."""
    import asyncio

    engine = get_engine()

    async def read() -> tuple[object, object, object]:
        try:
            failed = await aio.fetch(engine, [("SELECT 1 / %(zero)s", {"zero": 0})])
            return failed, aio.reader(engine), await aio.fetch(engine, [("SELECT 2", None)])
        finally:
            await aio.close_loop_readers()

    failed, reader, fine = asyncio.run(read())
    if engine.dialect.name != "postgresql":
        assert (failed, reader, fine) == (None, None, None)
        return
    assert failed is None and reader is not None and fine == [[(2,)]]


def test_a_tile_is_the_same_read_on_the_loop(backend, loop_reads, threads_only):
    """A tile PostGIS encodes (``ST_AsMVT``) is read on the event loop with the store's
    revisions, in one round trip: the same status, bytes and headers as from a thread, and
    its ETag revalidates (304)."""
    import morecantile

    postgis = get_engine().dialect.name == "postgresql"
    tms = morecantile.tms.get("WebMercatorQuad")
    with TestClient(create_app()) as c:
        x, y = c.get("/collections/interventions/items?limit=1").json()["features"][0]["geometry"][
            "coordinates"
        ][0]
        tiles = [tms.tile(x, y, z) for z in (10, 12, 15)]
        urls = [
            f"/collections/interventions/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for t in tiles
        ]
        urls += [
            "/collections/interventions/tiles/WebMercatorQuad/12/0/0",  # nothing there: 204
            urls[1] + ".pbf?x=1",
        ]
        c.get(urls[0] + "?first=1")  # the statement, compiled in a thread
        before = len(loop_reads)
        loop = [c.get(u) for u in urls]
        revalidated = c.get(urls[0], headers={"If-None-Match": loop[0].headers["etag"]})
    assert len(loop_reads) - before == (len(urls) + 1 if postgis else 0)  # + the 304's
    assert revalidated.status_code == 304
    _answered_alike_from_threads(urls, loop, threads_only)
    assert [r.status_code for r in loop] == [200, 200, 200, 204, 200]
    assert loop[0].headers["content-type"] == "application/vnd.mapbox-vector-tile"


def test_writes_uploads_and_deletes_are_read_at_once(backend, loop_reads):
    """Through the loop's path: a new intervention, its change and its deletion; a new
    layer's feature (the registry must first learn the layer: done in a thread) and the
    404 once the layer is deleted."""
    with TestClient(create_app()) as c:
        first = c.get("/collections/interventions/items?limit=1").json()["features"][0]["id"]
        c.get(f"/collections/interventions/items/{first}")
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [9.19, 45.465]},
            "properties": {"title": f"Loop {uuid.uuid4().hex[:6]}", "programme": "Forestazione"},
        }
        r = c.post("/collections/interventions/items", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
        got = c.get(url)
        assert (
            got.status_code == 200
            and got.json()["properties"]["title"] == body["properties"]["title"]
        )
        etag = got.headers["ETag"]
        changed = {"properties": {"title": "Cambiato"}}
        r = c.patch(url, json=changed, headers={**ADMIN, "If-Match": etag})
        assert r.status_code == 200, r.text
        got = c.get(url)
        assert got.json()["properties"]["title"] == "Cambiato"
        assert got.headers["ETag"] == r.headers["ETag"] != etag  # the write's ETag, read back
        assert c.delete(url, headers={**ADMIN, "If-Match": got.headers["ETag"]}).status_code == 204
        assert c.get(url).status_code == 404

        fc = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [9.1 + i / 100, 45.45]},
                    "properties": {"nome": f"Punto {i}"},
                }
                for i in range(3)
            ],
        }
        files = {"file": ("punti.geojson", json.dumps(fc).encode())}
        r = c.post("/layers", files=files, data={"name": "Punti loop"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        layer = r.json()["id"]
        one = f"/collections/{layer}/items/1"
        assert c.get(one).status_code == 200  # the registry learns the layer (a thread)
        again = c.get(f"/collections/{layer}/items/2")
        assert again.status_code == 200 and again.json()["properties"]["nome"] == "Punto 1"
        box = f"/collections/{layer}/items?bbox=9.0,45.4,9.2,45.5&limit=2"
        pages = [c.get(box).json() for _ in range(2)]  # the statements built, then the loop
        assert pages[0] == pages[1] and pages[1]["numberMatched"] == 3
        assert c.delete(f"/layers/{layer}", headers=ADMIN).status_code == 204
        assert c.get(f"/collections/{layer}/items/2").status_code == 404
        assert c.get(one).status_code == 404
    if get_engine().dialect.name == "postgresql":
        assert len(loop_reads) >= 5


def test_a_failing_loop_read_is_answered_from_a_thread(backend, loop_reads, monkeypatch):
    """The loop's connection cannot be opened (a wrong port): the threadpool answers, and
    the loop's path rests instead of failing every request; on SQLite, a file that
    cannot be opened likewise."""
    real_init = aio.AsyncReader.__init__
    attempts: list[int] = []

    def broken(self, *a, **kw):  # type: ignore[no-untyped-def]
        real_init(self, *a, **kw)
        self.params = {**self.params, "port": 1}

    real_connect = aio.AsyncReader._connect

    async def counted(self):  # type: ignore[no-untyped-def]
        attempts.append(1)
        return await real_connect(self)

    real_sqlite = aio.SqliteReader.__init__

    def unreachable(self, path):  # type: ignore[no-untyped-def]
        attempts.append(1)
        real_sqlite(self, "/nonexistent-cmm-geo/dir/store.sqlite")

    monkeypatch.setattr(aio.AsyncReader, "__init__", broken)
    monkeypatch.setattr(aio.AsyncReader, "_connect", counted)
    monkeypatch.setattr(aio.SqliteReader, "__init__", unreachable)
    with TestClient(create_app()) as c:
        ids = [
            f["id"] for f in c.get("/collections/interventions/items?limit=6").json()["features"]
        ]
        answers = [c.get(f"/collections/interventions/items/{i}") for i in ids]
    assert [r.status_code for r in answers] == [200] * len(ids)
    assert loop_reads == [] and len(attempts) == 1  # once, then resting


def test_no_statement_runs_on_the_loop(backend):
    engine = get_engine()
    with on_the_loop():
        with pytest.raises(WouldBlock), read_connection(engine):
            pass
        with pytest.raises(WouldBlock), transaction(engine):
            pass
    with read_connection(engine) as conn:  # and outside, as ever
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_the_services_connections_start_no_parallel_workers(backend):
    """An API's queries are short: PostgreSQL's parallel workers (~15 ms to start) are off
    on every connection of the service, threads' and the event loop's alike."""
    import asyncio

    engine = get_engine()
    show = "SHOW max_parallel_workers_per_gather"

    async def read() -> object:
        try:
            return await aio.fetch(engine, [(show, None)])
        finally:
            await aio.close_loop_readers()

    got = asyncio.run(read())
    if engine.dialect.name != "postgresql":
        assert got is None  # SQLite has no such setting (nor parallel workers)
        return
    assert got == [[("0",)]]
    with read_connection(engine) as conn:
        assert conn.exec_driver_sql(show).scalar() == "0"
    with transaction(engine) as conn:
        assert conn.exec_driver_sql(show).scalar() == "0"


def test_a_locked_sqlite_file_is_not_waited_for_on_the_loop(tmp_path):
    """SQLite: a read on the loop never waits for a lock (``busy_timeout`` 0). While
    another program holds the file exclusively, the loop's read fails at once (its
    request then goes to a thread, which waits: ``test_a_failing_loop_read…``), and the
    loop's path does not rest for it: the next read, the lock released, is its own."""
    import asyncio
    import sqlite3
    import time

    from geo.store import REVISIONS_SQL

    path = tmp_path / "store.sqlite"
    engine = _sqlite_store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")

    async def read() -> tuple[object, float, bool, object]:
        try:
            t0 = time.monotonic()
            locked = await aio.fetch(engine, [(REVISIONS_SQL, None)])
            waited = time.monotonic() - t0
            resting = aio.reader(engine) is None
            other.execute("COMMIT")
            other.close()
            return locked, waited, resting, await aio.fetch(engine, [(REVISIONS_SQL, None)])
        finally:
            await aio.close_loop_readers()

    locked, waited, resting, fine = asyncio.run(read())
    assert locked is None and waited < 1.0 and not resting
    assert fine == [[("revision:interventions", "7", None)]]


def _sqlite_store(path) -> object:  # type: ignore[no-untyped-def]
    """A SQLite file of its own with the revisions' table (no other connection holds it)."""
    import sqlite3

    import sqlalchemy as sa

    with sqlite3.connect(path, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE store_meta (key TEXT, value TEXT, updated_at TEXT)")
        setup.execute("INSERT INTO store_meta VALUES ('revision:interventions', '7', NULL)")
    setup.close()
    return sa.create_engine(f"sqlite:///{path}")


#: Two million steps of SQLite's VM loop: far more CPU than a read on the loop may take.
LONG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
    "SELECT count(*) FROM c"
)


def test_a_long_sqlite_read_is_stopped_on_the_loop_and_left_to_threads_a_while(
    tmp_path, monkeypatch
):
    """SQLite: a read on the loop that outlasts its budget (``SQLITE_LOOP_BUDGET_S`` of
    CPU) is interrupted, the caller told to read in a thread (None), and the same read is
    then sent straight to a thread ``SQLITE_OVERRUN_SKIP - 1`` times before it is tried on
    the loop again. Nothing rests: other reads go on on the loop, the connection is out of
    any transaction (one interrupted inside the revisions' snapshot included)."""
    import asyncio

    from geo.store import REVISIONS_SQL

    engine = _sqlite_store(tmp_path / "store.sqlite")
    monkeypatch.setattr(aio, "SQLITE_OVERRUN_SKIP", 3)
    revisions = [[("revision:interventions", "7", None)]]

    async def reads() -> list[object]:
        try:
            got = [await aio.fetch(engine, [(LONG, None)])]  # interrupted
            got.append(await aio.fetch(engine, [(REVISIONS_SQL, None), (LONG, None)]))
            got.append(await aio.fetch(engine, [(REVISIONS_SQL, None)]))  # another read: on
            got.append(aio.reader(engine).conn.in_transaction)  # type: ignore[union-attr]
            monkeypatch.setattr(aio, "SQLITE_LOOP_BUDGET_S", 60.0)  # it would now finish…
            got += [await aio.fetch(engine, [(LONG, None)]) for _ in range(3)]  # …skipped twice
            got.append(aio.reader(engine) is None)
            return got
        finally:
            await aio.close_loop_readers()

    got = asyncio.run(reads())
    assert got[:4] == [None, None, revisions, False]
    assert got[4:7] == [None, None, [[(2000000,)]]]  # tried again on the third
    assert got[7] is False  # the loop's reads never rested


def test_pages_stopped_on_the_loop_are_the_threads_pages(loop_reads, threads_only, monkeypatch):
    """SQLite (the default store): with every read on the loop over its budget at once
    (progress checked at each step, a budget already spent), the map's boxes and the
    filtered pages are all answered from threads, as when the loop's reads are off."""
    monkeypatch.setattr(aio, "SQLITE_PROGRESS_STEPS", 1)
    monkeypatch.setattr(aio, "SQLITE_LOOP_BUDGET_S", -1.0)
    urls = BOXES + FILTERS[:5]
    with TestClient(create_app()) as c:
        assert get_engine().dialect.name == "sqlite"
        c.get(f"{ITEMS}?filter=amount_eur%20%3E%201&limit=1")  # the statements built
        c.get(f"{ITEMS}?bbox=9.0,45.0,9.9,45.9&limit=2")
        c.get(f"{ITEMS}/{c.get(f'{ITEMS}?limit=1').json()['features'][0]['id']}")
        before = len(loop_reads)
        loop = [c.get(u) for u in urls]
    assert len(loop_reads) == before == 0  # not one answered on the loop
    assert [r.status_code for r in loop] == [200] * len(urls)
    _answered_alike_from_threads(urls, loop, threads_only)


@pytest.fixture
def at_the_door(monkeypatch):
    """The URLs the front door answered (``api.ogc_cache.FrontDoor``), in order."""
    from api.ogc_cache import FrontDoor

    answered: list[str] = []
    original = FrontDoor.answered

    async def spy(self, scope, send):  # type: ignore[no-untyped-def]
        done = await original(self, scope, send)
        if done:
            answered.append(
                scope["path"]
                + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
            )
        return done

    monkeypatch.setattr(FrontDoor, "answered", spy)
    return answered


def test_a_200_read_on_the_loop_is_sent_at_the_front_door(backend, at_the_door, threads_only):
    """A feature by id (both stores) and a map's box (PostgreSQL) read on the loop are sent
    before the middleware stack, with every header the stack sends (security ones too);
    a 404, a conditional request's 304 and what the loop cannot read go through the stack
    or, for the 304, the door's own check. With the loop's reads off, the door sends none."""
    postgis = get_engine().dialect.name == "postgresql"
    with TestClient(create_app()) as c:
        ids = [f["id"] for f in c.get(f"{ITEMS}?limit=4").json()["features"]]
        c.get(f"{ITEMS}/{ids[0]}")  # the statement, built in a thread
        c.get(f"{ITEMS}?bbox=9.0,45.0,9.9,45.9&limit=2")  # built
        del at_the_door[:]
        urls = [f"{ITEMS}/{i}" for i in ids[1:]] + [BOXES[0], BOXES[3], f"{ITEMS}/nope-0"]
        loop = [c.get(u) for u in urls]
        again = c.get(urls[0], headers={"If-None-Match": loop[0].headers["ETag"]})
        head = c.head(urls[0])
    expected = [f"{ITEMS}/{i}" for i in ids[1:]]
    if postgis:
        expected += [BOXES[0], BOXES[3]]
    assert at_the_door[: len(expected)] == expected
    assert f"{ITEMS}/nope-0" not in at_the_door  # a 404: from the stack
    assert again.status_code == 304 and head.status_code == 200 and head.content == b""
    assert all(r.headers["content-security-policy"] for r in loop[:-1])
    assert [r.status_code for r in loop] == [200] * (len(urls) - 1) + [404]
    del at_the_door[:]
    _answered_alike_from_threads(urls, loop, threads_only)  # status, bytes, every header
    assert at_the_door == []


def test_a_filtered_page_is_sent_at_the_front_door_within_its_budget_and_rate(
    backend, at_the_door, monkeypatch
):
    """A short filter's page read on the loop is sent at the front door too; the budget and
    the client's rate hold there as in the security layer: a filter over its budget is that
    layer's 400, each filtered request counts once against its client's rate (1 a second:
    a burst of 2, then 429s; a request the door passes on to the stack is not counted
    twice), and a language asked for through escapes (``l%61ng=en``) goes through the page
    language layer."""
    monkeypatch.setenv("CMM_GEO_FILTER_RATE_PER_CLIENT", "1")
    get_settings.cache_clear()
    try:
        app = create_app()
    finally:
        monkeypatch.delenv("CMM_GEO_FILTER_RATE_PER_CLIENT")
        get_settings.cache_clear()
    gt = f"{ITEMS}?limit=2&filter=amount_eur%20%3E%20"
    with TestClient(app) as c:
        c.get(f"{ITEMS}?limit=1")  # no filter: not counted
        # the first two pages read on the loop; with sortby, read in a thread (the door
        # counts it and passes it on to the stack, which does not count it again)
        first = [c.get(f"{gt}{v}") for v in (1, 2)] + [c.get(f"{gt}3&sortby=title")]
        time.sleep(2.1)
        passed = [c.get(f"{gt}{v}&sortby=title") for v in (1, 2, 3)]
        door = list(at_the_door)
        time.sleep(2.1)  # the bucket full again
        deep = "(" * 40 + "amount_eur > 1" + ")" * 40
        over = c.get(f"{ITEMS}", params={"filter": deep})
        english = c.get(f"{gt}5&l%61ng=en")
        time.sleep(2.1)
        after = [c.get(f"{gt}{v}") for v in (6, 7, 8)]
    assert [r.status_code for r in first] == [200, 200, 429]
    assert [r.status_code for r in passed] == [200, 200, 429]
    assert door == [f"{gt}1", f"{gt}2"]
    assert over.status_code == 400 and "levels" in over.json()["description"]
    assert english.status_code == 200 and english.headers["content-language"] == "en"
    assert f"{gt}5&l%61ng=en" not in at_the_door
    assert [r.status_code for r in after] == [200, 200, 429]
    assert [u for u in at_the_door if u.endswith(("6", "7", "8"))] == [f"{gt}6", f"{gt}7"]


def test_a_request_refreshes_the_registry_once(backend, threads_only):
    """The registry's refreshers (the stored layers' sync) depend on the store's revisions
    alone, which a request reads once: however many times a request looks a collection up,
    they run once for it, on the loop's path and on the threadpool's."""
    from geo.ogc.registry import registry

    calls: list[int] = []

    def refresher() -> None:
        calls.append(1)

    registry.add_refresher(refresher)
    try:
        for off in (False, True):
            threads_only(off)
            with TestClient(create_app()) as c:
                ids = [f["id"] for f in c.get(f"{ITEMS}?limit=3").json()["features"]]
                urls = [
                    f"{ITEMS}/{ids[1]}",
                    f"{ITEMS}?bbox=9.0,45.3,9.4,45.6&limit=2",
                    f"{ITEMS}?filter=amount_eur%20%3E%201&limit=2",
                    "/collections",
                ]
                for url in urls:
                    del calls[:]
                    assert c.get(url).status_code == 200
                    assert len(calls) == 1, (url, off, len(calls))
    finally:
        registry._refreshers.remove(refresher)


def test_a_filter_is_parsed_once_per_request(backend, monkeypatch):
    """A filtered page's parameters are read for the event loop where the loop can read its
    page (then once more by the page's code, from the parsed filters kept); where it cannot
    (SQLite in memory) the thread's reading is the only one."""
    import api.ogc_lane as lane

    parsed: list[str] = []
    real = lane.cql_filter

    def spy(provider, text, *args):  # type: ignore[no-untyped-def]
        parsed.append(text)
        return real(provider, text, *args)

    monkeypatch.setattr(lane, "cql_filter", spy)
    with TestClient(create_app()) as c:
        c.get(f"{ITEMS}?filter=amount_eur%20%3E%201&limit=1")  # the table counted, in a thread
        for url in FILTERS[:3]:
            del parsed[:]
            assert c.get(url).status_code == 200
            assert len(parsed) == 2, url


def test_the_loops_pipeline_keeps_a_bounded_set_of_prepared_statements(postgis_url, monkeypatch):
    """The loop's connections are driven through libpq's pipeline (``aio._Pipe``): each
    statement answers with its own rows, typed as a cursor types them; one prepared at once
    (``prepare`` True), after a few runs (None) or never (False); a value of a wider type
    gets a statement of its own; and at most ``PREPARED_MAX`` stay prepared per connection,
    the least recently used deallocated first."""
    import asyncio
    from datetime import datetime

    engine = get_engine(postgis_url)  # the loop's pipeline is PostgreSQL's
    monkeypatch.setattr(aio, "PREPARED_MAX", 3)
    mine = "SELECT name FROM pg_prepared_statements WHERE name LIKE 'cmm%' ORDER BY name"

    async def read() -> list[object]:
        reader = aio.AsyncReader(engine, 1, 10.0)
        try:
            out: list[object] = []
            typed = await reader.fetch(
                [("SELECT 1::int, now(), 'a'::text", None), ("SELECT %(x)s + 1", {"x": 41})]
            )
            out.append(typed)
            fixed = "SELECT 7 AS seven"  # no parameters: prepared only when asked
            asked = [(fixed, None, True), (mine, None, False)]
            unasked = [("SELECT 8 AS eight", None), (mine, None, False)]
            out.append([await reader.fetch(asked), await reader.fetch(unasked)])
            for n in range(4):  # four shapes prepared at once: the first one deallocated
                sql = f"SELECT %(x)s * {n + 2}"
                out.append(await reader.fetch([(sql, {"x": 10}), (mine, None, False)]))
            for _ in range(aio.PREPARE_THRESHOLD):  # prepared on its fifth run only
                out.append(
                    await reader.fetch([("SELECT %(x)s - 1", {"x": 3}, None), (mine, None, False)])
                )
            wide = await reader.fetch([("SELECT %(x)s + 1", {"x": 2**40})])
            out.append(wide)
            return out
        finally:
            await reader.close()

    got = asyncio.run(read())
    asked, unasked = got.pop(1)
    assert asked[0] == [(7,)] and unasked[0] == [(8,)]
    assert len(asked[1]) == 2 and unasked[1] == asked[1]  # + the one asked for, kept
    ((one, now, text),) = got[0][0]
    assert (one, text, got[0][1]) == (1, "a", [(42,)])
    assert isinstance(now, datetime) and now.tzinfo is not None
    products = [g[0] for g in got[1:5]]
    assert products == [[(20,)], [(30,)], [(40,)], [(50,)]]
    listed = [[r[0] for r in g[1]] for g in got[1:-1]]
    assert all(len(names) <= 3 for names in listed), listed
    assert len(listed[3]) == 3 and listed[3] != listed[2]  # the oldest one gone
    thresholds = [len(set(names) - set(listed[3])) for names in listed[4:9]]
    assert thresholds == [0, 0, 0, 0, 1], listed  # the fifth run is prepared
    assert [g[0] for g in got[5:10]] == [[(2,)]] * 5
    assert got[-1] == [[(2**40 + 1,)]]


def test_a_pipes_socket_is_watched_once_and_let_go_when_it_closes(postgis_url):
    """A loop connection's socket stays registered with the loop between fetches (one reader
    for its life, not one per wait). When the server ends the connection while it is idle,
    the loop is not woken again and again: the reader is dropped, the next fetch fails (the
    threadpool would answer) and the one after gets a new connection; closing the reader
    leaves no reader on the loop."""
    import asyncio

    engine = get_engine(postgis_url)

    async def run() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        reader = aio.AsyncReader(engine, 1, 10.0)
        out: dict[str, object] = {}
        pid = (await reader.fetch([("SELECT pg_backend_pid()", None)]))[0][0][0]
        pipe = reader._idle[0]
        fd = pipe.pg.socket
        for _ in range(3):
            await reader.fetch([("SELECT 1", None)])
        out["same_pipe"] = reader._idle == [pipe]
        out["watched"] = pipe._loop is loop
        calls = 0
        ready = pipe._ready

        def counted() -> None:
            nonlocal calls
            calls += 1
            ready()

        loop.remove_reader(fd)
        loop.add_reader(fd, counted)
        with engine.connect() as conn:  # the server ends the idle connection
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.3)
        out["wakeups"] = calls
        out["dropped"] = pipe._loop is None and not loop.remove_reader(fd)
        try:
            await reader.fetch([("SELECT 1", None)])
            out["failed"] = False
        except Exception:
            out["failed"] = True
        out["again"] = await reader.fetch([("SELECT 2", None)])
        fresh = reader._idle[0]
        fresh_fd = fresh.pg.socket
        out["fresh"] = fresh is not pipe and fresh._loop is loop
        await reader.close()
        out["closed"] = fresh._loop is None and not loop.remove_reader(fresh_fd)
        return out

    got = asyncio.run(run())
    assert got["same_pipe"] and got["watched"], got
    assert 1 <= got["wakeups"] <= 3, got  # not a busy loop on a dead socket
    assert got["dropped"] and got["failed"], got
    assert got["again"] == [[(2,)]] and got["fresh"] and got["closed"], got
