"""The short lane of items pages and features (``api.ogc_lane``) answers exactly as the
FastAPI routes do: same status, headers and bytes, on both stores, for valid requests it
takes and for everything it hands on (errors, odd parameters, HTML)."""

from __future__ import annotations

import os
import queue
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import api.ogc_lane as lane
from api.main import create_app
from geo.ogc.registry import MemoryProvider, registry
from geo.store import abandon_on, get_engine, read_connection

Q = quote
TAKEN = [
    "/collections/comuni/items",
    "/collections/comuni/items?limit=5&offset=3",
    "/collections/comuni/items?f=json&bbox=9.0,45.4,9.2,45.5&limit=20",
    "/collections/comuni/items?bbox=500000,5030000,520000,5040000&bbox-crs="
    + Q("http://www.opengis.net/def/crs/EPSG/0/32632"),
    "/collections/comuni/items?crs=" + Q("http://www.opengis.net/def/crs/EPSG/0/3003"),
    "/collections/comuni/items?filter=" + Q("population > 20000") + "&sortby=-population",
    "/collections/comuni/items?filter-lang=cql2-json&filter="
    + Q('{"op":"=","args":[{"property":"zona_omogenea_name"},"Nord Ovest"]}'),
    "/collections/comuni/items?properties=name,population&skipGeometry=true",
    "/collections/comuni/items?f=html&limit=3",
    "/collections/comuni/items/015146",
    "/collections/comuni/items/015146?properties=name&skipGeometry=false",
    "/collections/comuni/items/015146?crs=" + Q("http://www.opengis.net/def/crs/EPSG/0/4326"),
    "/collections/zone-omogenee/items?limit=2",
    "/collections/interventions/items?limit=7",
    "/collections/interventions/items?bbox=9.0,45.3,9.4,45.6&limit=50",
    "/collections/interventions/items?filter=" + Q("amount_eur > 1000000") + "&limit=30",
    "/collections/interventions/items?datetime=2020-01-01T00:00:00Z/..",
    "/collections/comuni/items/015146?crs=EPSG:4326",
    "/collections/comuni/tiles/WebMercatorQuad/10/365/544",
    "/collections/interventions/tiles/WebMercatorQuad/12/1462/2176?nocache=1",
    "/collections/comuni/tiles/WebMercatorQuad/3/0/0",  # empty: 204
    "/collections/comuni/tiles/WorldCRS84Quad/9/100/530",
]
#: Handed on to the routes: errors, and requests the lane does not parse.
HANDED_ON = [
    "/collections/comuni/items/999999",
    "/collections/nope/items",
    "/collections/nope/items/1",
    "/collections/comuni/items?limit=0",
    "/collections/comuni/items?limit=abc",
    "/collections/comuni/items?limit=+5",
    "/collections/comuni/items?offset=-1",
    "/collections/comuni/items?skipGeometry=yes",
    "/collections/comuni/items?f=JSON",
    "/collections/comuni/items?f=",
    "/collections/comuni/items?bbox=1,2,3",
    "/collections/comuni/items?limit=5&limit=6",
    "/collections/comuni/items?filter=" + Q("nonsense >>> 3"),
    "/collections/comuni/items?filter=" + Q("population > 1") + "&filter-lang=cql3",
    "/collections/comuni/items?sortby=shoe_size",
    "/collections/comuni/items?name=Milano",
    "/collections/comuni/items?simplify=100&limit=2",
    "/collections/comuni/items?wat=1",
    "/collections/comuni/items/015146?limit=3",
    "/collections/comuni/items?f=html&bbox=" + Q("<script>alert(1)</script>"),
    "/collections/comuni/tiles/WebMercatorQuad/99/0/0",
    "/collections/comuni/tiles/WebMercatorQuad/10/-1/544",
    "/collections/comuni/tiles/Nope/10/365/544",
    "/collections/nope/tiles/WebMercatorQuad/10/365/544",
    "/collections/comuni/tiles/WebMercatorQuad/x/y/z",
]
URLS = TAKEN + HANDED_ON
VOLATILE = {"date", "server"}


def _drop_lane(app):
    app.user_middleware = [m for m in app.user_middleware if m.cls is not lane.FeaturesLane]
    return app


@pytest.fixture()
def pair(backend):
    """The app with its lane, the same app without it."""
    with TestClient(create_app()) as a, TestClient(_drop_lane(create_app())) as b:
        yield a, b


@pytest.fixture()
def taken(monkeypatch):
    """How many requests the lane answered itself (its two entry points, spied on)."""
    calls: list[str] = []
    for name in ("_item", "_items", "_tile"):
        real = getattr(lane, name)

        def spy(*args, _real=real, _name=name, **kw):
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(lane, name, spy)
    return calls


def test_lane_answers_as_the_routes_do(pair, taken):
    with_lane, without = pair
    answered = []
    for url in URLS:
        before = len(taken)
        a, b = with_lane.get(url), without.get(url)
        if len(taken) > before and a.status_code in (200, 204):
            answered.append(url)
        assert a.status_code == b.status_code, url
        assert a.content == b.content, url
        ha = {k: v for k, v in a.headers.items() if k not in VOLATILE}
        hb = {k: v for k, v in b.headers.items() if k not in VOLATILE}
        assert ha == hb, url
        assert a.status_code < 500, url
    # Not vacuous: the lane itself answered every request of the first list.
    assert answered == TAKEN


def test_lane_keeps_conditional_requests_and_gzip(pair):
    with_lane, _ = pair
    url = "/collections/interventions/items?limit=40"
    r = with_lane.get(url, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
    assert with_lane.get(url, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    one = with_lane.get("/collections/comuni/items/015146", headers={"Origin": "https://x.example"})
    assert one.json()["id"] == "015146"


class _SlowProvider(MemoryProvider):
    """Its page takes 5 s in PostgreSQL (pg_sleep); records how the query ended."""

    def __init__(self, engine) -> None:
        super().__init__(
            "test-slow", "Slow", [], version="1", last_modified=datetime(2025, 1, 1, tzinfo=UTC)
        )
        self.engine, self.ended = engine, queue.Queue()

    def query(self, q):
        started = time.monotonic()
        try:
            with read_connection(self.engine) as conn:
                conn.exec_driver_sql("SELECT pg_sleep(5)")
        except Exception as exc:
            self.ended.put((type(getattr(exc, "orig", exc)).__name__, time.monotonic() - started))
            raise
        self.ended.put(("finished", time.monotonic() - started))
        return super().query(q)


@pytest.mark.parametrize("store_backend", ["postgis"], indirect=True)
def test_a_page_whose_client_left_is_cancelled_in_the_database(backend):
    import asyncio

    slow = _SlowProvider(get_engine())
    registry.register("test-slow", lambda: slow)
    app = create_app()
    sent: list[dict] = []

    async def call() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(0.3)  # the client gives up
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/collections/test-slow/items", "raw_path": b"",
            "root_path": "", "query_string": b"limit=5", "headers": [(b"host", b"t")],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        await app(scope, receive, send)

    try:
        started = time.monotonic()
        asyncio.run(call())
        elapsed = time.monotonic() - started
        how, took = slow.ended.get(timeout=10)
    finally:
        registry.unregister("test-slow")
    assert how == "QueryCanceled", how  # PostgreSQL stopped the statement
    assert took < 3 and elapsed < 3  # not the 5 s the query would have taken
    assert not any(m["type"] == "http.response.start" for m in sent)  # nobody to answer


def test_abandon_event_cancels_a_running_statement(postgis_url):
    """geo.store.abandon_on: the statement a thread waits for is cancelled when set."""
    engine = get_engine(postgis_url)
    gone = threading.Event()
    threading.Timer(0.3, gone.set).start()
    started = time.monotonic()
    with (
        pytest.raises(sa.exc.OperationalError, match="canceling statement due to user"),
        abandon_on(gone),
        read_connection(engine) as conn,
    ):
        conn.exec_driver_sql("SELECT pg_sleep(5)")
    assert time.monotonic() - started < 3
    with read_connection(engine) as conn:  # the pool's connection is still good
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    # Without the event set, statements run to their end.
    with abandon_on(threading.Event()), read_connection(engine) as conn:
        assert conn.exec_driver_sql("SELECT pg_sleep(0.3), 2").all()[0][1] == 2


@pytest.mark.parametrize(
    "path",
    ["/collections/comuni/items", "/collections/a b/items/è", "/x?y", "/x#y", "/x\\y",
     "/x\ty", "//host/x", "/", "/x%3Fy"],
)  # fmt: skip
@pytest.mark.parametrize(
    "headers",
    [[], [(b"accept", b"text/html"), (b"accept", b"application/json")],
     [(b"accept-language", b"en;q=0.9, it;q=0.8"), (b"host", b"example.org:8080")]],
)  # fmt: skip
def test_the_lanes_request_is_the_routes_request(path, headers):
    """``ogc_request_of`` (no Starlette ``Request``) gives what ``ogc_request`` gives."""
    import asyncio

    from starlette.requests import Request

    from api.ogc_params import ogc_request, ogc_request_of

    app = create_app()
    scope = {
        "type": "http", "method": "GET", "path": path, "query_string": b"f=json&limit=3",
        "headers": headers, "scheme": "http", "server": ("127.0.0.1", 8000), "root_path": "",
        "app": app, "client": ("127.0.0.1", 1234),
    }  # fmt: skip
    for f in (None, "json", "html"):
        want = asyncio.run(ogc_request(Request(scope), f))
        assert ogc_request_of(scope, [("f", "json"), ("limit", "3")], f) == want


def test_items_are_read_in_a_pool_sized_for_the_store(backend, taken, monkeypatch):
    """Items pages and features are read in the read pool: 40 threads on PostgreSQL,
    whose threads wait for the database; as many as CPUs on SQLite, which works in the
    process and takes the GIL back after every row (more threads only queue for it);
    ``CMM_GEO_READ_THREADS`` sets it. Other routes keep Starlette's threadpool."""
    from api import offload
    from geo.ogc.service import OgcService
    from geo.settings import get_settings

    sqlite = backend.dialect.name == "sqlite"
    assert offload.read_threads() == ((os.cpu_count() or 1) if sqlite else 40)
    seen: list[tuple[str, int]] = []
    real = OgcService.items

    def spy(self, *args, **kw):  # type: ignore[no-untyped-def]
        pool = offload._pool()
        seen.append((threading.current_thread().name, pool._max_workers))
        return real(self, *args, **kw)

    monkeypatch.setattr(OgcService, "items", spy)
    with TestClient(create_app()) as client:
        assert client.get("/collections/interventions/items?limit=2&f=json").status_code == 200
        monkeypatch.setenv("CMM_GEO_READ_THREADS", "7")
        get_settings.cache_clear()
        assert offload.read_threads() == 7
        assert client.get("/collections/interventions/items?limit=3&f=json").status_code == 200
    monkeypatch.delenv("CMM_GEO_READ_THREADS")
    get_settings.cache_clear()
    assert taken.count("_items") == 2
    assert [name.startswith("cmm-geo-read") for name, _ in seen] == [True, True]
    assert [size for _, size in seen] == [offload.read_threads(), 7]
