"""Benchmark: this service against tipg and pygeoapi's PostgreSQL provider, same PostGIS tables;
and this service on its embedded SQLite store, holding the same rows, in the same run.

    .venv/bin/python -m bench.anchors                      # 100 k points + 20 k polygons
    .venv/bin/python -m bench.anchors --size 1m            # 1 M points
    .venv/bin/python -m bench.anchors --sizes 1k,100k,1m   # growth, one table per size
    .venv/bin/python -m bench.anchors --size 10k --polygons 2k --duration 3 --warmup 1  # smoke

One run writes one table per size to ``bench/results/anchors.md`` (``--output``):

1. A PostGIS database: ``CMM_GEO_TEST_DATABASE_URL`` when set, else a throwaway cluster
   (``scripts/pg_throwaway.sh``); everything goes into a fresh schema, dropped at the end.
2. Data loaded by the service's own store code (:mod:`bench._anchors_data`): generated
   interventions through ``prepare`` + ``upsert``, the polygon layer through ``add_layer``;
   the anchors read two plain views of the same tables (same rows, same GIST index). With
   ``ours-sqlite`` the same functions load the same rows (same seeds, checked) into a fresh
   embedded store too (``cmm_geo.sqlite`` in a temp data dir, deleted at the end).
3. Every server, each one uvicorn worker (uvloop + httptools) on loopback: this service
   (``uvicorn api.main:app``) on PostGIS (``ours``) and on the SQLite file (``ours-sqlite``:
   ``CMM_GEO_DATABASE_URL=sqlite:///…``), tipg, pygeoapi (their own virtualenvs, pinned,
   see :mod:`bench._anchors_servers`), started one after the other and then kept running
   side by side. Per server: start-up (process start → first 200 on a one-feature items
   page), one sample request per case (checked, and compared across servers). Then per
   case a warm-up on each server and ``--rounds`` rounds (4) in which every server runs
   the case for ``duration / rounds`` seconds in turn, the order rotated each round
   (:func:`interleaved`): a slow or fast spell of the shared machine falls on every
   server, not on whichever ran then; a case's req/s is the median of its rounds. Every
   request has a different random URL (``bench/anchors_wrk.lua``; every URL logged and
   counted: distinct/total; the points bbox is placed around a random stored point so that
   it holds data). Resident memory
   after the load. On this service (both stores) also: 50 POSTs (latency, and whether the
   next reads — by id and by bbox — see each new feature); on PostGIS only, the cached
   case: the fixed 133-comuni page against nginx and a minimal ASGI app serving the same
   bytes. The ratios (req/s) go into a table of their own under the results.

Needs ``wrk`` and ``nginx`` from Debian (``apt-get install -y wrk nginx-light``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import shapely
import sqlalchemy as sa

from bench import _anchors_data as data
from bench import _anchors_servers as srv
from bench._anchors_load import Case, Loader, Run, merged

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "anchors.md"
SERVERS = ("ours", "ours-sqlite", "tipg", "pygeoapi")
#: This service, on either store (both get the write test).
OURS = ("ours", "ours-sqlite")
#: How the tables name each server.
LABEL = {
    "ours": "ours (PostGIS)",
    "ours-sqlite": "ours (embedded SQLite)",
    "tipg": "tipg",
    "pygeoapi": "pygeoapi",
}
#: The store each server reads (the anchors only read PostGIS).
STORE = {"ours": "postgis", "ours-sqlite": "sqlite", "tipg": "postgis", "pygeoapi": "postgis"}
COMUNI_PAGE = "/collections/comuni/items?limit=133"
#: Sample values of each case (also a check that every server answers the same).
SAMPLE = {
    "points_bbox": "9.180000,45.460000,9.192800,45.469000",
    "by_id": 42,
    "cql": "10000000.00",
    "polygons_bbox": "9.150000,45.440000,9.214000,45.485000",
}


def parse_size(text: str) -> int:
    """'10k' → 10000, '1m' → 1000000, '2500' → 2500."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1m, 2500)")
    return int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()])


# ----- the database ---------------------------------------------------------------------------


@contextmanager
def database(log):  # type: ignore[no-untyped-def]
    """The PostGIS URL to use: CMM_GEO_TEST_DATABASE_URL, else a throwaway cluster."""
    given = os.environ.get("CMM_GEO_TEST_DATABASE_URL")
    if given:
        log(f"database: CMM_GEO_TEST_DATABASE_URL ({sa.engine.make_url(given).host})")
        yield given, "CMM_GEO_TEST_DATABASE_URL"
        return
    errlog = (srv.WORK / "pg_throwaway.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "pg_throwaway.sh"), "start"],
        stdout=subprocess.PIPE,
        stderr=errlog,
        text=True,
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export CMM_GEO_TEST_DATABASE_URL="):
                url = line.split("=", 1)[1].strip()
                break
        if url is None:
            raise SystemExit(f"scripts/pg_throwaway.sh did not start: see {errlog.name}")
        log(f"database: throwaway cluster {sa.engine.make_url(url).port}")
        yield url, "throwaway cluster (scripts/pg_throwaway.sh: fsync off, trust auth)"
    finally:
        proc.send_signal(signal.SIGTERM)  # its trap stops the cluster and deletes it
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections work in ``schema`` first (libpq ``options``)."""
    u = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema},public"})
    return u.render_as_string(hide_password=False)


def libpq_dsn(url: str) -> str:
    """A plain ``postgresql://`` DSN (tipg's asyncpg) of a SQLAlchemy URL."""
    u = sa.engine.make_url(url).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


# ----- cases ----------------------------------------------------------------------------------


def cases(
    size: int, schema: str, layer_ids: dict[str, str], points_files: dict[str, Path]
) -> list[Case]:
    """The four uncached cases, with each server's URL around the random value.

    ``layer_ids``: the polygon layer's id per store (``postgis``, ``sqlite``: each store
    names it); ``points_files``: stored points per store, drawn from the rows it holds."""
    t_bounds = shapely.total_bounds(data.get_territory().geometries)
    lat0 = float((t_bounds[1] + t_bounds[3]) / 2)
    kx, ky = 1 / (111_320 * np.cos(np.radians(lat0))), 1 / 110_540
    km = lambda n: [f"{n * 1000 * kx:.6f}", f"{n * 1000 * ky:.6f}"]  # noqa: E731
    tp, tq = (
        f"/collections/{schema}.bench_points/items",
        f"/collections/{schema}.bench_polygons/items",
    )
    gt = "&filter=amount_eur%20%3E%20"
    points_bbox = lambda store: [  # noqa: E731
        *(f"{v:.6f}" for v in t_bounds),
        *km(1),
        str(points_files[store]),
    ]
    out = [
        Case(
            "points_bbox",
            "random 1 km bbox around a stored point, limit 100 (points)",
            "bbox",
            points_bbox("postgis"),
            {
                "ours": ("/collections/interventions/items?f=json&limit=100&bbox=", ""),
                "tipg": (f"{tp}?f=geojson&limit=100&bbox=", ""),
                "pygeoapi": ("/collections/bench_points/items?f=json&limit=100&bbox=", ""),
            },
        ),
        Case(
            "by_id",
            "item by random id (points)",
            "id",
            [str(size), data.ID_FORMAT],
            {
                "ours": ("/collections/interventions/items/", "?f=json"),
                "tipg": (f"{tp}/", "?f=geojson"),
                "pygeoapi": ("/collections/bench_points/items/", "?f=json"),
            },
        ),
        Case(
            "cql",
            "CQL2 `amount_eur > X`, random X, limit 100",
            "num",
            [f"{v:.0f}" for v in data.AMOUNT_RANGE],
            {
                "ours": (
                    "/collections/interventions/items?f=json&limit=100&filter-lang=cql2-text" + gt,
                    "",
                ),
                "tipg": (f"{tp}?f=geojson&limit=100&filter-lang=cql2-text" + gt, ""),
                "pygeoapi": (
                    "/collections/bench_points/items?f=json&limit=100&filter-lang=cql-text" + gt,
                    "",
                ),
            },
        ),
        Case(
            "polygons_bbox",
            "random 5 km bbox, limit 100 (polygons)",
            "bbox",
            [*(f"{v:.6f}" for v in data.POLYGON_BBOX), *km(5)],
            {
                "ours": (f"/collections/{layer_ids['postgis']}/items?f=json&limit=100&bbox=", ""),
                "tipg": (f"{tq}?f=geojson&limit=100&bbox=", ""),
                "pygeoapi": ("/collections/bench_polygons/items?f=json&limit=100&bbox=", ""),
            },
        ),
    ]
    # This service on its embedded store: the same URLs, the layer id the SQLite store gave,
    # boxes around points of that store.
    if "sqlite" in layer_ids:
        for case in out:
            case.paths["ours-sqlite"] = case.paths["ours"]
        out[0].server_params["ours-sqlite"] = points_bbox("sqlite")
        out[3].paths["ours-sqlite"] = (
            f"/collections/{layer_ids['sqlite']}/items?f=json&limit=100&bbox=",
            "",
        )
    return out


def sample_url(case: Case, server: str) -> str:
    """The case's URL for the sample value (the same on every server)."""
    prefix, suffix = case.paths[server]
    v = SAMPLE[case.key]
    return prefix + (data.ID_FORMAT % v if case.mode == "id" else str(v)) + suffix


@dataclass
class Sample:
    status: int
    ms: float
    bytes: int
    matched: Any = None
    returned: Any = None


def check_samples(base: str, server: str, all_cases: list[Case]) -> dict[str, Sample]:
    """One request per case: must be 200 with features (or the asked feature)."""
    out = {}
    for case in all_cases:
        url = base + sample_url(case, server)
        t0 = time.perf_counter()
        status, body, _ = srv.fetch(url)
        ms = 1000 * (time.perf_counter() - t0)
        if status != 200:
            raise SystemExit(f"{server}: {status} for {url}:\n{body[:600]!r}")
        doc = json.loads(body)
        if case.mode == "id":
            want = data.ID_FORMAT % SAMPLE[case.key]
            if str(doc.get("id")) != want:
                raise SystemExit(f"{server}: {url} answered id {doc.get('id')!r}, not {want}")
            out[case.key] = Sample(status, ms, len(body), 1, 1)
        else:
            feats = doc.get("features")
            if not isinstance(feats, list):
                raise SystemExit(f"{server}: {url} has no features: {body[:300]!r}")
            out[case.key] = Sample(status, ms, len(body), doc.get("numberMatched"), len(feats))
    return out


# ----- per server -----------------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    version: str
    startup_s: float
    rss_idle_mb: float
    rss_load_mb: float
    runs: dict[str, Run]
    warmups: dict[str, Run]
    samples: dict[str, Sample]
    command: str
    extra: dict[str, Any] = field(default_factory=dict)


def started(server: srv.Server, version: str, all_cases: list[Case], log) -> ServerResult:  # type: ignore[no-untyped-def]
    """What a started ``server`` shows before any load: start-up, idle RSS, samples."""
    log(f"{server.name}: up in {server.startup_s:.1f} s, {server.rss_mb():.0f} MB")
    return ServerResult(
        server.name,
        version,
        server.startup_s,
        server.rss_mb(),
        float("nan"),
        {},
        {},
        check_samples(server.base, server.name, all_cases),
        server.command_line(),
    )


def round_seconds(args) -> int:  # type: ignore[no-untyped-def]
    """Seconds of one round: wrk takes whole seconds."""
    return max(1, round(args.duration / args.rounds))


def in_rounds(  # type: ignore[no-untyped-def]
    loaders: dict[str, Loader], case: Case, args, settle: Any = None
) -> dict[str, Run]:
    """``case`` on every loader's server: a warm-up on each, then ``args.rounds`` runs of
    ``duration / rounds`` seconds per server, the servers' order rotated each round; each
    server's runs merged (:func:`merged`: the median round's req/s). ``settle(name)``,
    after each run: waits until that server has worked off what wrk left in flight, so
    the next run (another server's) does not pay for it."""
    names = list(loaders)
    if args.warmup > 0:
        for n in names:
            loaders[n].run(case, args.warmup, "warmup")
    rounds: dict[str, list[Run]] = {n: [] for n in names}
    seconds = round_seconds(args)
    for k in range(args.rounds):
        for n in names[k % len(names) :] + names[: k % len(names)]:
            rounds[n].append(loaders[n].run(case, seconds, f"measure{k}"))
            if settle is not None:
                settle(n)
    return {n: merged(runs) for n, runs in rounds.items()}


def interleaved(  # type: ignore[no-untyped-def]
    servers: dict[str, srv.Server], results: dict[str, ServerResult], all_cases, args, log
) -> None:
    """Every case on every server, in interleaved rounds (:func:`in_rounds`).

    The servers run side by side (the idle ones take no CPU), so a slower or faster spell
    of a shared machine (other tenants, frequency) falls on all of them alike instead of
    on whichever was measured then."""
    loaders = {n: Loader(n, s.base, args.threads, args.connections) for n, s in servers.items()}

    def settle(name: str) -> None:
        srv.wait_idle(servers[name].proc.pid)

    for case in all_cases:
        for n, r in in_rounds(loaders, case, args, settle).items():
            results[n].runs[case.key] = r
            log(
                f"  {n:12s} {case.key:14s} {r.rps:8.1f} req/s "
                f"(rounds {', '.join(f'{x:.0f}' for x in r.rounds)})  p99 {r.p99_ms:8.1f} ms  "
                f"distinct/total {r.distinct_text}  non-2xx {r.non2xx}  {r.errors or ''}"
            )


def write_test(base: str, token: str, n: int, size: int) -> dict[str, Any]:
    """``n`` POSTs of new interventions, each followed by a read by id and by bbox, then a
    DELETE of it and a read by id (404 expected): the data is as before afterwards."""
    programme = data.PlanCatalogue.load().programmes[0].name
    rng = np.random.default_rng()
    post_ms, id_ms, bbox_ms, delete_ms, failures = [], [], [], [], []
    id_ok = bbox_ok = gone_ok = 0
    tag = secrets.token_hex(3)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=120) as client:
        for i in range(n):
            x, y = 9.12 + rng.random() * 0.12, 45.43 + rng.random() * 0.06  # inside Milano
            fid = f"w-{tag}-{size}-{i:03d}"
            feat = {
                "type": "Feature",
                "id": fid,
                "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                "properties": {
                    "title": f"Scrittura {fid}",
                    "programme": programme,
                    "amount_eur": 123456.0,
                    "status": "planned",
                },
            }
            t0 = time.perf_counter()
            r = client.post(
                "/collections/interventions/items",
                json=feat,
                headers=auth,
            )
            t1 = time.perf_counter()
            if r.status_code != 201:
                failures.append(f"POST {r.status_code}: {r.text[:200]}")
                continue
            post_ms.append(1000 * (t1 - t0))
            g = client.get(f"/collections/interventions/items/{fid}?f=json")
            t2 = time.perf_counter()
            id_ms.append(1000 * (t2 - t1))
            id_ok += g.status_code == 200 and g.json()["properties"]["title"] == f"Scrittura {fid}"
            box = f"{x - 0.0005:.6f},{y - 0.0005:.6f},{x + 0.0005:.6f},{y + 0.0005:.6f}"
            b = client.get(f"/collections/interventions/items?f=json&limit=1000&bbox={box}")
            bbox_ms.append(1000 * (time.perf_counter() - t2))
            bbox_ok += b.status_code == 200 and any(f["id"] == fid for f in b.json()["features"])
            # Delete it again, so the anchors measured next read the same rows as we did.
            t3 = time.perf_counter()
            d = client.delete(f"/collections/interventions/items/{fid}", headers=auth)
            delete_ms.append(1000 * (time.perf_counter() - t3))
            if d.status_code not in (200, 204):
                failures.append(f"DELETE {d.status_code}: {d.text[:200]}")
            gone = client.get(f"/collections/interventions/items/{fid}?f=json")
            gone_ok += gone.status_code == 404
    q = lambda xs, p: float(np.percentile(xs, p)) if xs else float("nan")  # noqa: E731
    return {
        "n": n,
        "posted": len(post_ms),
        "post_median_ms": q(post_ms, 50),
        "post_p90_ms": q(post_ms, 90),
        "post_max_ms": max(post_ms, default=float("nan")),
        "id_ok": id_ok,
        "id_median_ms": q(id_ms, 50),
        "bbox_ok": bbox_ok,
        "bbox_median_ms": q(bbox_ms, 50),
        "delete_median_ms": q(delete_ms, 50),
        "gone_ok": gone_ok,
        "failures": failures[:5],
    }


#: Headers of our response a peer does not repeat: per connection or per request.
_OWN_HEADERS = {"date", "server", "content-length", "connection", "transfer-encoding"}
SAME_HEADERS = "minimal ASGI, same headers"


def cached_case(  # type: ignore[no-untyped-def]
    ours: srv.Server, args, log
) -> dict[str, Any]:
    """The fixed 133-comuni page of ``ours`` (running, answering from its response cache)
    against nginx and a minimal ASGI app serving its bytes at the same path, in interleaved
    rounds (:func:`in_rounds`); the minimal app twice: with the content type alone, and
    with every header of ours (the security headers, Link, ETag…: ~1 kB that uvicorn
    writes per response)."""
    status, body, headers = srv.fetch(ours.base + COMUNI_PAGE)
    if status != 200:
        raise SystemExit(f"ours: {status} for {COMUNI_PAGE}")
    content_type = headers.get("Content-Type", "application/json")
    out: dict[str, Any] = {"bytes": len(body), "content_type": content_type}
    names = ["ours", "nginx", "minimal ASGI", SAME_HEADERS]
    case = Case("comuni_page", "133-comuni page (fixed URL)", "fixed", [], {})
    case.paths = {n: (COMUNI_PAGE, "") for n in names}
    body_file = srv.WORK / "comuni_page.json"
    body_file.write_bytes(body)
    headers_file = srv.WORK / "comuni_page_headers.json"
    pairs = [[k, v] for k, v in headers.items() if k.lower() not in _OWN_HEADERS]
    headers_file.write_text(json.dumps(pairs))
    peers = []
    if srv.nginx_binary():
        peers.append(srv.nginx(body, "/collections/comuni/items", content_type))
    else:
        log("nginx missing (apt-get install -y nginx-light): the cached case has no nginx row")
    peers.append(srv.static_asgi(body_file, content_type, COMUNI_PAGE))
    peers.append(srv.static_asgi(body_file, content_type, COMUNI_PAGE, headers_file))
    loaders = {"ours": Loader("ours", ours.base, args.threads, args.connections)}
    with ExitStack() as stack:
        for peer in peers:
            stack.enter_context(srv.running(peer))
            status, got, _ = srv.fetch(peer.base + COMUNI_PAGE)
            if status != 200 or got != body:
                raise SystemExit(f"{peer.name} does not serve the same bytes ({status})")
            loaders[peer.name] = Loader(peer.name, peer.base, args.threads, args.connections)
            out[peer.name + " command"] = peer.command_line()
        for name, r in in_rounds(loaders, case, args).items():
            out[name] = r
            log(
                f"  {name:26s} {r.rps:8.1f} req/s "
                f"(rounds {', '.join(f'{x:.0f}' for x in r.rounds)})  p99 {r.p99_ms:8.1f} ms"
            )
    return out


@dataclass
class SizeResult:
    size: int
    polygons: int
    total_points: int
    #: Seconds to top the generated points up to ``size``, per store (postgis, sqlite).
    load_s: dict[str, float]
    servers: dict[str, ServerResult]
    #: The write test, per server that had one (this service, on either store).
    writes: dict[str, dict[str, Any]]
    cached: dict[str, Any] | None
    cases: list[Case]
    #: Bytes of the SQLite file after the load (when ours-sqlite ran).
    sqlite_bytes: int | None = None


def run_size(size: int, ctx: dict[str, Any], args, log, with_cached: bool) -> SizeResult:  # type: ignore[no-untyped-def]
    """Load up to ``size`` points into every store, then measure every server on them."""
    engines: dict[str, sa.Engine] = ctx["engines"]
    log(f"== {size:,} generated points + {args.polygons:,} polygons")
    load_s, prints, totals, points_files = {}, {}, {}, {}
    sqlite_bytes = None
    for store, engine in engines.items():
        log(f"  loading into {store}")
        load_s[store] = data.load_points(engine, size, log)
        data.vacuum_analyze(engine)
        if store == "sqlite":  # the file (+ WAL, empty after the checkpoint) after the load
            sqlite_bytes = sum(f.stat().st_size for f in ctx["sqlite_dir"].glob("cmm_geo.sqlite*"))
        prints[store] = data.fingerprint(engine)
        with engine.connect() as conn:
            totals[store] = conn.execute(sa.text("SELECT count(*) FROM interventions")).scalar_one()
        points_files[store] = srv.WORK / f"points-{store}.txt"
        data.write_sample_points(engine, points_files[store])
        engine.dispose()  # no connection of this process stays open while a server runs
    if not data.same_fingerprints(list(prints.values())) or len(set(totals.values())) > 1:
        raise SystemExit(f"the stores do not hold the same rows: {prints}, totals {totals}")
    all_cases = cases(size, ctx["schema"], ctx["layer_ids"], points_files)
    results: dict[str, ServerResult] = {}
    writes: dict[str, dict[str, Any]] = {}
    cached = None
    with ExitStack() as stack:
        servers: dict[str, srv.Server] = {}
        for name in args.servers:  # started one after the other, each timed alone
            for earlier in servers.values():  # done with its own start (its first requests
                srv.wait_idle(earlier.proc.pid)  # build the nearest-comune index beside them)
            servers[name] = stack.enter_context(srv.running(ctx["make"][name]()))
            results[name] = started(servers[name], ctx["versions"][name], all_cases, log)
        interleaved(servers, results, all_cases, args, log)
        for name, server in servers.items():
            results[name].rss_load_mb = server.rss_mb()
        if "ours" in servers and with_cached:
            cached = cached_case(servers["ours"], args, log)
        for name in OURS:
            if name in servers and args.writes:
                w = writes[name] = write_test(servers[name].base, ctx["token"], args.writes, size)
                log(
                    f"  {name}: writes: POST median {w['post_median_ms']:.1f} ms, "
                    f"next read by id ok {w['id_ok']}/{w['posted']}, "
                    f"by bbox ok {w['bbox_ok']}/{w['posted']}"
                )
                results[name].extra["rss_after_writes_mb"] = servers[name].rss_mb()
    if args.writes:
        for name in OURS:
            if name in args.servers:
                # The writes left dead rows (PostGIS) or WAL pages (SQLite): the next size
                # starts from the same state.
                engine = engines[STORE[name]]
                data.vacuum_analyze(engine)
                engine.dispose()
    total = next(iter(totals.values()))
    return SizeResult(
        size,
        args.polygons,
        total,
        load_s,
        results,
        writes,
        cached,
        all_cases,
        sqlite_bytes,
    )


# ----- report ---------------------------------------------------------------------------------


def _f(v: float, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if a and b and np.isfinite(a) and np.isfinite(b) else "–"


def machine() -> dict[str, str]:
    """What this ran on, and how busy it was."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    deb = (
        Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists()
        else "?"
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    nginx = srv.nginx_binary()
    ngv = (
        subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        if nginx
        else "-"
    )
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
    ).stdout.count("\n")
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "memory": f"{int(mem) / 1024 / 1024:.1f} GiB",
        "os": f"Debian {deb}, Linux {platform.release()}",
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?",
        "nginx": ngv,
        "commit": f"{git}" + (f" + {dirty} changed files (uncommitted)" if dirty else ""),
    }


def report(
    results: list[SizeResult],
    ctx: dict[str, Any],
    args,
    started: datetime,  # type: ignore[no-untyped-def]
    load_before: tuple,
    load_after: tuple,
) -> str:
    m = ctx["machine"]
    names = [n for n in SERVERS if n in args.servers]
    short = args.duration < 10 or any(r.size < 100_000 for r in results)
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    title = "# This service against tipg and pygeoapi on the same PostGIS tables"
    if "ours-sqlite" in names:
        title += ", and on its embedded SQLite store"
    lines = [title, ""]
    if short:
        lines += [
            "> **Short validation run — not a measurement.** "
            f"{args.duration:g} s per case and/or fewer than 100 k points, on a busy "
            "machine: these numbers only show that the harness works.",
            "",
        ]
    sqlite_note = (
        f" The embedded store of `ours (embedded SQLite)`: SQLite "
        f"{ctx['versions_full']['ours-sqlite']['SQLite']}, a fresh file on the same machine, "
        "holding the same rows (loaded by the same code, checked: same count and coordinate "
        "sums); the anchors only read PostGIS."
        if "ours-sqlite" in names
        else ""
    )
    lines += [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min. "
        f"Machine: {m['cpu']}, {m['memory']} RAM, {m['os']}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min). "
        f"Database: PostgreSQL {ctx['pg']}, PostGIS {ctx['postgis']} ({ctx['db_kind']}), "
        "on the same machine." + sqlite_note,
        "",
        f"Load: `wrk -t{args.threads} -c{args.connections} --latency`, {args.duration:g} s per "
        f"case and server in {args.rounds} rounds of {round_seconds(args)} s, after a "
        f"{args.warmup:g} s warm-up: the servers run side by side (started one after the "
        "other, each start timed alone) and each round runs the case on every server in "
        "turn (the order rotated), so a slow or fast spell of the shared machine falls on "
        "all of them; req/s is the median of a case's rounds (each round's in the run's log), "
        "p99 the highest of its rounds. wrk on the same cores; "
        "each server one uvicorn worker (uvloop + httptools, no access log) on loopback. "
        "Every request of the uncached cases has a different URL (distinct/total counts the "
        "URLs wrk sent, from its per-thread logs; distinct excludes URLs the warm-up sent), so "
        "this service's response cache (keyed by path + query) cannot answer any of them.",
        "",
    ]
    for res in results:
        lines += _size_section(res, names, ctx, args)
    if len(results) > 1:
        lines += _growth(results, names)
    lines += _versions(ctx, names, m)
    lines += _commands(results, ctx, args)
    return "\n".join(lines) + "\n"


def _ratio_pairs(names: list[str]) -> list[tuple[str, str]]:
    """(a, b) for each "a / b" column: each variant of this service against each anchor,
    then embedded SQLite against PostGIS (the same service, the other store)."""
    pairs = [(a, b) for a in OURS if a in names for b in ("tipg", "pygeoapi") if b in names]
    if "ours" in names and "ours-sqlite" in names:
        pairs.append(("ours-sqlite", "ours"))
    return pairs


def _load_text(res: SizeResult, ctx: dict[str, Any]) -> str:
    where = {"postgis": "into PostGIS", "sqlite": "into the embedded SQLite store"}
    parts = [f"{_f(s)} s {where[k]}" for k, s in res.load_s.items()]
    text = f"loading the new points took {' and '.join(parts)} (prepare + upsert)"
    if "sqlite" in res.load_s:
        text += (
            f"; the {res.polygons:,} polygons (add_layer, once per run) took "
            f"{_f(ctx['load_polygons_s'])} s and {_f(ctx['load_polygons_sqlite_s'])} s; "
            f"the SQLite file is {_f((res.sqlite_bytes or 0) / 2**20, 0)} MB"
        )
    return text + "."


def _writes_text(name: str, w: dict[str, Any]) -> str:
    return (
        f"Writes ({LABEL[name]}): {w['posted']}/{w['n']} POSTs of a new intervention, "
        f"median {_f(w['post_median_ms'])} ms, p90 {_f(w['post_p90_ms'])} ms, max "
        f"{_f(w['post_max_ms'])} ms; the next read by id saw the new feature "
        f"{w['id_ok']}/{w['posted']} times (median {_f(w['id_median_ms'])} ms), the "
        f"next bbox read {w['bbox_ok']}/{w['posted']} times (median "
        f"{_f(w['bbox_median_ms'])} ms). Each was then deleted again (DELETE median "
        f"{_f(w['delete_median_ms'])} ms; the next read by id answered 404 "
        f"{w['gone_ok']}/{w['posted']} times), so every server reads the same rows."
        + (f" Failures: {w['failures']}" if w["failures"] else "")
    )


def _size_section(res: SizeResult, names: list[str], ctx: dict[str, Any], args) -> list[str]:  # type: ignore[no-untyped-def]
    out = [
        f"## {res.size:,} generated points + {res.polygons:,} polygons",
        "",
        f"`interventions` holds {res.total_points:,} rows ({res.size:,} generated, the "
        f"104 documented ones; the write test deletes what it adds); {_load_text(res, ctx)}",
        "",
    ]
    head = "| request | " + " | ".join(f"{LABEL[n]} req/s | {LABEL[n]} p99 ms" for n in names)
    out += [head + " | distinct/total URLs |", "|---|" + "---:|" * (2 * len(names)) + "---|"]
    for case in res.cases:
        row = f"| {case.label} |"
        for n in names:
            r = res.servers[n].runs[case.key]
            row += f" {_f(r.rps)} | {_f(r.p99_ms)} |"
        row += " " + ", ".join(res.servers[n].runs[case.key].distinct_text for n in names) + " |"
        out.append(row)
    if pairs := _ratio_pairs(names):
        out += [
            "",
            "Ratios of the requests per second above (> 1× = the first is faster):",
            "",
            "| request | " + " | ".join(f"{LABEL[a]} / {LABEL[b]}" for a, b in pairs) + " |",
            "|---|" + "---:|" * len(pairs),
        ]
        for case in res.cases:
            rps = {n: res.servers[n].runs[case.key].rps for n in names}
            out.append(
                f"| {case.label} | " + " | ".join(_ratio(rps[a], rps[b]) for a, b in pairs) + " |"
            )
    problems = [
        f"{LABEL[n]} {c.key}: non-2xx {res.servers[n].runs[c.key].non2xx}, socket errors "
        f"{res.servers[n].runs[c.key].errors}"
        for n in names
        for c in res.cases
        if res.servers[n].runs[c.key].non2xx or res.servers[n].runs[c.key].errors
    ]
    out += [
        "",
        "Errors: "
        + ("; ".join(problems) if problems else "none (every response 2xx, no socket errors)."),
    ]
    out += [
        "",
        "| server | start-up (to first 200 on a 1-feature page) | RSS idle | RSS after the load |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        s = res.servers[n]
        rss = f"{_f(s.rss_load_mb, 0)} MB"
        if "rss_after_writes_mb" in s.extra:
            rss += f" ({_f(s.extra['rss_after_writes_mb'], 0)} MB after the writes)"
        out.append(f"| {LABEL[n]} | {_f(s.startup_s, 2)} s | {_f(s.rss_idle_mb, 0)} MB | {rss} |")
    out += [
        "",
        "Same answers? One sample request per case (the same parameters on every "
        "server): numberMatched / features returned, body bytes, first-request latency.",
        "",
        "| case | " + " | ".join(LABEL[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for case in res.cases:
        cells = []
        for n in names:
            s = res.servers[n].samples[case.key]
            cells.append(
                f"{s.matched if s.matched is not None else '–'} / {s.returned}, "
                f"{s.bytes:,} B, {s.ms:.0f} ms"
            )
        out.append(f"| {case.label} | " + " | ".join(cells) + " |")
    differ = [
        c.label
        for c in res.cases
        if len(
            {
                (res.servers[n].samples[c.key].matched, res.servers[n].samples[c.key].returned)
                for n in names
            }
        )
        > 1
    ]
    out += [
        "",
        "numberMatched and features returned agree on every case."
        if not differ
        else f"**They differ** on: {'; '.join(differ)}.",
    ]
    for n in names:
        if n in res.writes:
            out += ["", _writes_text(n, res.writes[n])]
    if res.cached:
        c = res.cached
        peers = [p for p in ("nginx", "minimal ASGI", SAME_HEADERS) if p in c]
        out += [
            "",
            f"Cached against cached: `{COMUNI_PAGE}` ({c['bytes']:,} bytes, "
            f"`{c['content_type']}`), a fixed URL, so this service (on PostGIS) answers from "
            "its response cache; nginx serves the same bytes from a file (one worker process), "
            "the minimal ASGI app (`bench/_static_asgi.py`) from memory under the same "
            "uvicorn, once with the content type alone and once with every header this "
            "service sends (security headers, Link, ETag…); in interleaved rounds as above, "
            "this service still running beside them.",
            "",
            "| server | req/s | p99 ms | ours / it |",
            "|---|---:|---:|---:|",
            f"| ours (response cache) | {_f(c['ours'].rps)} | {_f(c['ours'].p99_ms)} | – |",
        ]
        for p in peers:
            out.append(
                f"| {p} | {_f(c[p].rps)} | {_f(c[p].p99_ms)} | {_ratio(c['ours'].rps, c[p].rps)} |"
            )
    return [*out, ""]


def _growth(results: list[SizeResult], names: list[str]) -> list[str]:
    out = [
        "## Growth with the number of points",
        "",
        "| server | points | start-up s | RSS after load MB | "
        + " | ".join(f"{c.key} req/s (p99 ms)" for c in results[0].cases)
        + " | POST median ms |",
        "|---|---:|---:|---:|" + "---:|" * len(results[0].cases) + "---:|",
    ]
    for n in names:
        for res in results:
            s = res.servers[n]
            cells = " | ".join(
                f"{_f(s.runs[c.key].rps)} ({_f(s.runs[c.key].p99_ms)})" for c in res.cases
            )
            post = _f(res.writes[n]["post_median_ms"]) if n in res.writes else "–"
            out.append(
                f"| {LABEL[n]} | {res.size:,} | {_f(s.startup_s, 2)} | {_f(s.rss_load_mb, 0)} | "
                f"{cells} | {post} |"
            )
    return [*out, ""]


def _versions(ctx: dict[str, Any], names: list[str], m: dict[str, str]) -> list[str]:
    out = ["## Versions and configuration", ""]
    for n in names:
        v = ctx["versions_full"][n]
        out.append(f"- **{LABEL[n]}**: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    out += [
        f"- wrk: {m['wrk']}; nginx: {m['nginx']}; Python {m['python']}; this repository at "
        f"{m['commit']}.",
        "- tipg reads the views `bench_points` and `bench_polygons` (`TIPG_DB_SCHEMAS`, "
        "`TIPG_DB_TABLES`; id column `id` found by its fallback key names), `f=geojson`, "
        "CQL2 with `filter-lang=cql2-text`; its defaults otherwise (asyncpg pool 1–10).",
        "- pygeoapi reads the same views through its `PostgreSQL` provider (`id_field: id`, "
        "`geom_field: geom`, `search_path: [schema, public]`), `f=json`, filters with "
        "`filter-lang=cql-text`; logging ERROR, `gzip: false`; its OpenAPI document is "
        "generated before the start (not counted in start-up).",
        "- this service reads its own tables (`interventions` + `intervention_comuni`, "
        "`layers` + `layer_features`), on PostGIS through `CMM_GEO_DATABASE_URL` (search_path "
        "set to the bench schema); `f=json`; `CMM_GEO_ADMIN_TOKEN` set for the writes; "
        "`CMM_GEO_FILTER_RATE_PER_CLIENT=0` (wrk sends every filter from one address: the "
        "per-client rate limit would answer 429s, not queries); its `geo/` and `api/` "
        "compiled to bytecode before it starts, as `pip install` compiled tipg and pygeoapi.",
    ]
    if "ours-sqlite" in names:
        out.append(
            "- ours (embedded SQLite) is the same service on the same tables in a SQLite file, "
            "`CMM_GEO_DATABASE_URL=sqlite:///<data dir>/cmm_geo.sqlite` (the file the service "
            "uses by default under `CMM_GEO_DATA_DIR`), otherwise configured as on PostGIS; "
            "WAL journal, R*Trees over the bbox columns (migrations 0005, 0006). The same rows "
            "were loaded into it by the same functions; after each load its WAL is "
            "checkpointed (TRUNCATE), but there is no `ANALYZE` (the service never runs it on "
            "SQLite, so a store it loaded has no statistics either) and no `VACUUM` (it may "
            "renumber the rowids the R*Trees are keyed by). The layer id is the one that "
            f"store gave (`{ctx['layer_ids'].get('sqlite')}`; on PostGIS "
            f"`{ctx['layer_ids'].get('postgis')}`); its bbox boxes are placed around points "
            "drawn from its own rows."
        )
    out += [
        "- The views (a view is inlined by PostgreSQL: same rows, same GIST index on `geom`): "
        "`bench_points` = `interventions` minus `geometry_wkb`, the bbox columns and "
        "`content_hash` (tipg and pygeoapi would otherwise send the WKB as a property); "
        "`bench_polygons` = `layer_features` of the one layer (`layer_features` holds every "
        "layer in one table), `fid` as `id`, its JSON properties as columns.",
        "- Properties differ by design: this service adds `comuni`, `comuni_names`, `zone`, "
        "`unioni` (from `intervention_comuni` and the territory) and a `precision_note`, so its "
        "bodies differ in size (see the body bytes above); each server uses its own default "
        "ordering and `numberMatched`.",
        "- RSS is VmRSS of the server process and its children (/proc), not counting PostgreSQL"
        + (
            "; for ours (embedded SQLite) it includes the database engine and its page cache, "
            "which run inside the process."
            if "ours-sqlite" in names
            else "."
        ),
        "",
    ]
    return out


def _commands(results: list[SizeResult], ctx: dict[str, Any], args) -> list[str]:  # type: ignore[no-untyped-def]
    res = results[-1]
    out = [
        "## Commands",
        "",
        "```sh",
        ".venv/bin/python -m bench.anchors " + " ".join(sys.argv[1:]),
        "```",
        "",
        "Servers (ports are picked free per run; schema is per run):",
        "",
        "```sh",
    ]
    out += [res.servers[n].command for n in SERVERS if n in res.servers]
    if res.cached:
        out += [
            res.cached[k]
            for k in ("nginx command", "minimal ASGI command", SAME_HEADERS + " command")
            if k in res.cached
        ]
    out += [
        "```",
        "",
        "wrk, one measured run per case (this service; the same for the others with their paths):",
        "",
        "```sh",
    ]
    if "ours" in res.servers:
        out += [r.command for r in res.servers["ours"].runs.values()]
    return [*out, "```", ""]


# ----- main -----------------------------------------------------------------------------------


def bench_store(stack, url: str, schema: str, args, ctx: dict[str, Any], log):  # type: ignore[no-untyped-def]
    """The bench schema: migrated, seeded, the polygons loaded as one layer and the views the
    anchors read; dropped when ``stack`` closes (unless ``--keep-schema``). Fills
    ``ctx`` with the PostgreSQL/PostGIS versions, ``layer_id`` and ``load_polygons_s``."""
    from geo import interventions as iv
    from geo.store import create_store_engine, migrate

    engine = create_store_engine(url, schema=schema)

    def drop() -> None:
        engine.dispose()
        if not args.keep_schema:
            with create_store_engine(url).begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    stack.callback(drop)
    migrate(engine)
    iv.get_store(engine)  # seeds the 104 documented interventions
    with engine.connect() as conn:
        ctx["pg"] = conn.exec_driver_sql("SHOW server_version").scalar_one()
        ctx["postgis"] = conn.exec_driver_sql("SELECT postgis_lib_version()").scalar_one()
    t0 = time.perf_counter()
    ctx["layer_id"] = data.load_polygons(engine, args.polygons)
    ctx["load_polygons_s"] = time.perf_counter() - t0
    log(
        f"{args.polygons:,} polygons stored as layer {ctx['layer_id']!r} "
        f"in {ctx['load_polygons_s']:.0f} s"
    )
    data.create_views(engine, ctx["layer_id"])
    return engine


def sqlite_store(stack, args, ctx: dict[str, Any], log):  # type: ignore[no-untyped-def]
    """A fresh embedded store, as the service makes it by default (``cmm_geo.sqlite`` in its
    data dir): migrated, seeded, the polygons loaded as one layer by the same code as on
    PostGIS; deleted when ``stack`` closes (unless ``--keep-schema``). Fills ``ctx`` with
    ``sqlite_dir``, ``sqlite_url``, ``layer_id_sqlite`` and ``load_polygons_sqlite_s``."""
    from geo import interventions as iv
    from geo.store import create_store_engine, migrate

    data_dir = Path(tempfile.mkdtemp(prefix="cmm-geo-anchors-sqlite-"))
    if args.keep_schema:
        log(f"SQLite store kept in {data_dir}")
    else:
        stack.callback(shutil.rmtree, data_dir, True)
    url = f"sqlite:///{(data_dir / 'cmm_geo.sqlite').as_posix()}"
    engine = create_store_engine(url)
    stack.callback(engine.dispose)
    migrate(engine)
    iv.get_store(engine)  # seeds the 104 documented interventions
    t0 = time.perf_counter()
    ctx["layer_id_sqlite"] = data.load_polygons(engine, args.polygons)
    ctx["load_polygons_sqlite_s"] = time.perf_counter() - t0
    log(
        f"{args.polygons:,} polygons stored in SQLite as layer {ctx['layer_id_sqlite']!r} "
        f"in {ctx['load_polygons_sqlite_s']:.0f} s"
    )
    ctx["sqlite_dir"], ctx["sqlite_url"] = data_dir, url
    return engine


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=parse_size, default=100_000, help="generated points (100k)")
    ap.add_argument(
        "--sizes",
        type=lambda s: [parse_size(x) for x in s.split(",")],
        help="several sizes, ascending (growth; e.g. 1k,100k,1m); overrides --size",
    )
    ap.add_argument("--polygons", type=parse_size, default=20_000, help="polygons (20k)")
    ap.add_argument("--duration", type=float, default=20, help="seconds per measured run (20)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per case (3)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds per case, the servers interleaved; each runs duration/rounds s (4)",
    )
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    ap.add_argument("--writes", type=int, default=50, help="POSTs in the write test (50)")
    ap.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated subset of " + ",".join(SERVERS),
    )
    ap.add_argument("--no-cached", action="store_true", help="skip the cached case")
    ap.add_argument("--output", type=Path, default=RESULTS, help="markdown results file")
    ap.add_argument("--keep-schema", action="store_true", help="do not drop the bench schema")
    args = ap.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    if bad := set(args.servers) - set(SERVERS):
        ap.error(f"unknown servers {bad}")
    sizes = sorted(args.sizes or [args.size])
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    srv.WORK.mkdir(parents=True, exist_ok=True)
    started, load_before = datetime.now(UTC), os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1) / 2:
        print(
            f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs: "
            "the numbers will be noisy",
            flush=True,
        )

    def log(msg: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)

    pys = {n: srv.ensure_venv(n) for n in ("tipg", "pygeoapi") if n in args.servers}
    ctx: dict[str, Any] = {"machine": machine(), "token": secrets.token_urlsafe(24)}
    ctx["versions_full"] = {"ours": srv.versions(sys.executable, srv.REPORTED["ours"])}
    ctx["versions_full"]["ours-sqlite"] = {
        **srv.versions(sys.executable, srv.REPORTED["ours-sqlite"]),
        "SQLite": sqlite3.sqlite_version,
    }
    for n, py in pys.items():
        ctx["versions_full"][n] = srv.versions(py, srv.REPORTED[n])
    ctx["versions"] = {n: next(iter(v.values())) for n, v in ctx["versions_full"].items()}
    schema = f"cmm_bench_{secrets.token_hex(3)}"
    ctx["schema"] = schema
    results: list[SizeResult] = []
    with ExitStack() as stack:
        url, ctx["db_kind"] = stack.enter_context(database(log))
        engine = bench_store(stack, url, schema, args, ctx, log)
        ctx["engines"] = {"postgis": engine}
        ctx["layer_ids"] = {"postgis": ctx["layer_id"]}
        if "ours-sqlite" in args.servers:
            ctx["engines"]["sqlite"] = sqlite_store(stack, args, ctx, log)
            ctx["layer_ids"]["sqlite"] = ctx["layer_id_sqlite"]
        data_dir = Path(tempfile.mkdtemp(prefix="cmm-geo-anchors-"))
        stack.callback(shutil.rmtree, data_dir, True)
        ours_url = with_search_path(url, schema)
        pts = f"/collections/{schema}.bench_points/items"
        ctx["make"] = {
            "ours": lambda: srv.ours(
                ours_url, data_dir, ctx["token"], "/collections/interventions/items?f=json&limit=1"
            ),
            "ours-sqlite": lambda: srv.ours(
                ctx["sqlite_url"],
                ctx["sqlite_dir"],
                ctx["token"],
                "/collections/interventions/items?f=json&limit=1",
                name="ours-sqlite",
            ),
            "tipg": lambda: srv.tipg(
                pys["tipg"], libpq_dsn(url), schema, f"{pts}?f=geojson&limit=1"
            ),
            "pygeoapi": lambda: srv.pygeoapi(
                pys["pygeoapi"],
                sa.engine.make_url(url),
                schema,
                "/collections/bench_points/items?f=json&limit=1",
            ),
        }
        for i, size in enumerate(sizes):
            results.append(
                run_size(size, ctx, args, log, with_cached=i == 0 and not args.no_cached)
            )
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(
                report(results, ctx, args, started, load_before, os.getloadavg())
            )
            log(f"wrote {args.output}")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
