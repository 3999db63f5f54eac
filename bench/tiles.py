"""Benchmark: vector tiles of this service against tipg's, same PostGIS tables, one run.

    .venv/bin/python -m bench.tiles                                  # 100 k points + 20 k polygons
    .venv/bin/python -m bench.tiles --size 10k --polygons 2k --duration 3 --warmup 1  # smoke

Reuses the harness of ``bench/anchors.py`` (its database, data loader, servers and wrk
script): the same data loaded by the service's own store code into a fresh schema, tipg 1.6.1
on the two plain views ``bench_points`` / ``bench_polygons`` of the same tables, one server at
a time, each one uvicorn worker. Per server, per collection (points, polygons) and per zoom
band (10–12, 13–14, 15–16): a warm-up and a measured wrk run (``anchors_wrk.lua``, mode
``tile``) where each request asks for the WebMercatorQuad tile that contains a random stored
feature (a point, or a point on a polygon's surface) at a random zoom of the band — so tiles
hold data — in each server's URL order (ours ``{z}/{y}/{x}``, tipg ``{z}/{x}/{y}``), with a
query value no other request has: this service's response cache (keyed by path + query)
never answers, every tile is rendered. Where the data has fewer tiles than requests (zooms
10–12 cover the area with a few dozen tiles) tiles repeat, and the table says how many
distinct tiles were asked. wrk's Lua counts the answers: 200 with a body, 204 or an empty
200 (tipg's empty tile), other.

Before the load, the same ~200 tiles per band (``--samples``) are fetched from each server
with httpx and decoded (mapbox-vector-tile): body bytes of the non-empty tiles (median, p90)
and the features per tile, compared server against server on the same tiles.

Writes ``bench/results/tiles.md`` (``--output``). Needs ``wrk`` (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import morecantile
import numpy as np

from bench import _anchors_data as data
from bench import _anchors_servers as srv
from bench._anchors_load import Case, Loader, Run
from bench.anchors import (
    _f,
    _ratio,
    bench_store,
    database,
    libpq_dsn,
    machine,
    parse_size,
    with_search_path,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tiles.md"
SERVERS = ("ours", "tipg")
BANDS = ((10, 12), (13, 14), (15, 16))
COLLECTIONS = ("points", "polygons")
#: The query parameter that makes every URL unique (both servers ignore it on tiles; the
#: samples check that the answer is the same bytes with and without it).
BUSTER = "nocache"
#: tipg settings that make it cut the same tiles as this service (geo/ogc/tiles.py: a buffer
#: of 64/4096 around the tile, at most 20,000 features a tile); ``--tipg-defaults`` drops them.
TIPG_MATCH = {"TIPG_TILE_BUFFER": "64", "TIPG_MAX_FEATURES_PER_TILE": "20000"}
TMS = morecantile.tms.get("WebMercatorQuad")


def tile_prefix(server: str, collection: str, schema: str, layer_id: str) -> str:
    """The tile URL up to ``{z}``: ours ``…/{z}/{y}/{x}``, tipg ``…/{z}/{x}/{y}``."""
    if server == "ours":
        cid = "interventions" if collection == "points" else layer_id
    else:
        cid = f"{schema}.bench_{collection}"
    return f"/collections/{cid}/tiles/WebMercatorQuad/"


def tile_path(server: str, z: int, x: int, y: int) -> str:
    return f"{z}/{y}/{x}" if server == "ours" else f"{z}/{x}/{y}"


def make_case(server: str, collection: str, band: tuple[int, int], ctx: dict[str, Any]) -> Case:
    """One wrk case: random tiles of ``collection`` in ``band`` with a unique query each."""
    order = "zyx" if server == "ours" else "zxy"
    prefix = tile_prefix(server, collection, ctx["schema"], ctx["layer_id"])
    return Case(
        f"{collection}_z{band[0]}-{band[1]}",
        f"{collection}, z {band[0]}–{band[1]}",
        "tile",
        [order, str(band[0]), str(band[1]), str(ctx["points_files"][collection]), "1"],
        {server: (prefix, f"?{BUSTER}=")},
    )


# ----- the httpx sample: sizes and feature counts on the same tiles ---------------------------


@dataclass
class TileAnswer:
    status: int
    bytes: int
    features: int
    truncated: bool
    ms: float


def sample_tiles(points_file: Path, n: int, seed: int) -> dict[tuple[int, int], list]:
    """``n`` tiles per band, each the tile containing a random sample point at a random zoom
    of the band (as the wrk script picks them); the same tiles for every server."""
    rng = np.random.default_rng(seed)
    xy = np.loadtxt(points_file, ndmin=2)
    out = {}
    for band in BANDS:
        picks = rng.integers(0, len(xy), n)
        zooms = rng.integers(band[0], band[1] + 1, n)
        out[band] = [
            TMS.tile(float(xy[k, 0]), float(xy[k, 1]), int(z))
            for k, z in zip(picks, zooms, strict=True)
        ]
    return out


def decode(body: bytes) -> tuple[int, bool]:
    """Features in a tile (every layer but this service's ``truncated`` marker) and whether
    that marker is there."""
    if not body:
        return 0, False
    layers = mapbox_vector_tile.decode(body)
    n = sum(len(v["features"]) for k, v in layers.items() if k != "truncated")
    return n, "truncated" in layers


def fetch_samples(
    server: srv.Server, tiles: dict[str, dict[tuple[int, int], list]], ctx: dict[str, Any]
) -> dict[str, dict[tuple[int, int], list[TileAnswer]]]:
    """Every sample tile of every collection and band from ``server``, checked and decoded."""
    out: dict[str, dict[tuple[int, int], list[TileAnswer]]] = {}
    nonce = secrets.token_hex(4)
    with httpx.Client(base_url=server.base, timeout=120) as client:
        for collection, bands in tiles.items():
            prefix = tile_prefix(server.name, collection, ctx["schema"], ctx["layer_id"])
            # The cache-busting parameter must not change the answer.
            t = bands[BANDS[-1]][0]
            path = prefix + tile_path(server.name, t.z, t.x, t.y)
            a, b = client.get(path), client.get(f"{path}?{BUSTER}=check-{secrets.token_hex(3)}")
            if (a.status_code, a.content) != (b.status_code, b.content) or a.status_code not in (
                200,
                204,
            ):
                raise SystemExit(
                    f"{server.name}: {path} answered {a.status_code} ({len(a.content)} B) but "
                    f"{b.status_code} ({len(b.content)} B) with ?{BUSTER}=…: {b.text[:300]}"
                )
            out[collection] = {}
            for band, band_tiles in bands.items():
                answers = out[collection][band] = []
                for i, t in enumerate(band_tiles):
                    path = prefix + tile_path(server.name, t.z, t.x, t.y)
                    t0 = time.perf_counter()
                    # Unique, like the load: a sample tile asked twice is not a cache hit.
                    r = client.get(path, params={BUSTER: f"s{band[0]}-{i}-{nonce}"})
                    ms = 1000 * (time.perf_counter() - t0)
                    if r.status_code not in (200, 204):
                        raise SystemExit(
                            f"{server.name}: {r.status_code} for {path}: {r.text[:300]}"
                        )
                    if r.content and "vnd.mapbox-vector-tile" not in r.headers.get(
                        "content-type", ""
                    ):
                        raise SystemExit(f"{server.name}: {path} is {r.headers['content-type']}")
                    n, truncated = decode(r.content)
                    answers.append(TileAnswer(r.status_code, len(r.content), n, truncated, ms))
    return out


# ----- per server -----------------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    startup_s: float
    command: str
    runs: dict[str, Run] = field(default_factory=dict)
    samples: dict[str, dict[tuple[int, int], list[TileAnswer]]] = field(default_factory=dict)
    drained_s: float = 0.0


def measure(server: srv.Server, tiles, ctx: dict[str, Any], args, log) -> ServerResult:  # type: ignore[no-untyped-def]
    """Samples, then per collection and band a warm-up and a measured wrk run."""
    log(f"{server.name}: up in {server.startup_s:.1f} s")
    res = ServerResult(server.name, server.startup_s, server.command_line())
    t0 = time.perf_counter()
    res.samples = fetch_samples(server, tiles, ctx)
    log(f"  samples fetched in {time.perf_counter() - t0:.0f} s")
    loader = Loader(server.name, server.base, args.threads, args.connections)
    for collection in COLLECTIONS:
        for band in BANDS:
            case = make_case(server.name, collection, band, ctx)
            assert server.proc is not None
            if args.warmup > 0:
                loader.run(case, args.warmup, "warmup")
                res.drained_s += srv.wait_idle(server.proc.pid)
            r = res.runs[case.key] = loader.run(case, args.duration, "measure")
            # Slow tiles (zooms 10–12) leave requests in flight when wrk stops: let the server
            # finish them before the next run starts, so no run pays for another's backlog.
            drained = srv.wait_idle(server.proc.pid)
            res.drained_s += drained
            r.extra["drain_s"] = drained
            log(
                f"  {case.key:16s} {r.rps:8.1f} tiles/s  p99 {r.p99_ms:8.1f} ms  "
                f"empty {_empty_share(r)}  URLs {r.distinct_text}  "
                f"tiles {int(r.extra.get('distinct_paths', 0)):,}  non-2xx {r.non2xx} "
                f"{r.errors or ''} (drained {drained:.1f} s)"
            )
    return res


def _empty_share(r: Run) -> str:
    e = r.extra
    total = sum(e.get(k, 0) for k in ("ok", "s204", "empty200", "other"))
    if not total:
        return "–"
    return f"{100 * (e.get('s204', 0) + e.get('empty200', 0)) / total:.1f} %"


# ----- report ---------------------------------------------------------------------------------


def _sizes(answers: list[TileAnswer]) -> str:
    b = [a.bytes for a in answers if a.bytes]
    if not b:
        return "–"
    return f"{np.median(b):,.0f} / {np.percentile(b, 90):,.0f}"


def _compare(ours: list[TileAnswer], tipg: list[TileAnswer]) -> tuple[str, str, str]:
    """Mean features ours/tipg over tiles non-empty on both; tiles empty on one only; the
    empty share on each."""
    both = [
        (a.features, b.features)
        for a, b in zip(ours, tipg, strict=True)
        if a.features and b.features
    ]
    ratio = f"{np.mean([a / b for a, b in both]):.3f}" if both else "–"
    one = sum(1 for a, b in zip(ours, tipg, strict=True) if bool(a.features) != bool(b.features))
    empty = " / ".join(
        f"{100 * sum(1 for a in x if not a.bytes) / len(x):.0f} %" for x in (ours, tipg)
    )
    return ratio, f"{one}/{len(ours)}", empty


def report(
    results: dict[str, ServerResult],
    ctx: dict[str, Any],
    args,  # type: ignore[no-untyped-def]
    started: datetime,
    load_before: tuple,
    load_after: tuple,
) -> str:
    m = ctx["machine"]
    names = [n for n in SERVERS if n in results]
    short = args.duration < 10 or args.size < 100_000 or args.polygons < 20_000
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    lines = ["# Vector tiles: this service against tipg on the same PostGIS tables", ""]
    if short:
        lines += [
            "> **Short validation run — not a measurement.** "
            f"{args.duration:g} s per case and/or less than 100 k points / 20 k polygons, on a "
            "busy machine: these numbers only show that the harness works.",
            "",
        ]
    lines += [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min. Machine: {m['cpu']}, "
        f"{m['memory']} RAM, {m['os']}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (1 min). Database: PostgreSQL {ctx['pg']}, PostGIS "
        f"{ctx['postgis']} ({ctx['db_kind']}), on the same machine.",
        "",
        f"Data: {args.size:,} generated interventions (+ the 104 documented ones) and "
        f"{args.polygons:,} polygons of 50 vertices, loaded by this service's store code "
        f"(points: {ctx['load_points_s']:.0f} s, polygons: {ctx['load_polygons_s']:.0f} s); "
        "tipg reads the views `bench_points` / `bench_polygons` of the same tables (see "
        "`bench/README.md`, anchors).",
        "",
        f"Load: `wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency` per "
        f"collection and zoom band after a {args.warmup:g} s warm-up, one server at a time, wrk "
        "on the same cores; each server one uvicorn worker (uvloop + httptools, no access log). "
        "Each request: the tile containing a random stored feature (10 k sampled: points, or "
        "a point on a polygon's surface) at a random zoom of the band.",
        "",
        "**Uncached path.** This service keeps 200 responses in an in-memory cache per data "
        f"version, keyed by path + query. Every request here carries a `?{BUSTER}=…` value no "
        "other request had (both servers ignore it on tiles; checked: same bytes with and "
        "without), so no answer comes from that cache: every tile is queried and encoded. "
        "*URLs* is distinct/total URLs sent (from wrk's per-thread logs, excluding what the "
        "warm-up sent); *tiles* is how many distinct tiles they asked for: at zooms 10–12 the "
        "area has only a few dozen tiles, so the same tiles are rendered again and again "
        "(PostgreSQL's buffers are warm for both servers). A map client asking a tile again "
        "would be answered from this service's cache (or a CDN, by ETag) — not measured here.",
        "",
        "| collection, zooms | "
        + " | ".join(f"{n} tiles/s | {n} p99 ms | {n} empty" for n in names)
        + (" | ours / tipg" if len(names) == 2 else "")
        + " | URLs distinct/total | distinct tiles |",
        "|---|" + "---:|" * (3 * len(names) + (len(names) == 2)) + "---|---|",
    ]
    keys = [(c, b, f"{c}_z{b[0]}-{b[1]}") for c in COLLECTIONS for b in BANDS]
    for c, b, key in keys:
        row = f"| {c}, z {b[0]}–{b[1]} |"
        for n in names:
            r = results[n].runs[key]
            row += f" {_f(r.rps)} | {_f(r.p99_ms)} | {_empty_share(r)} |"
        if len(names) == 2:
            row += f" {_ratio(results['ours'].runs[key].rps, results['tipg'].runs[key].rps)} |"
        row += " " + ", ".join(results[n].runs[key].distinct_text for n in names) + " |"
        row += (
            " "
            + ", ".join(
                f"{int(results[n].runs[key].extra.get('distinct_paths', 0)):,}" for n in names
            )
            + " |"
        )
        lines.append(row)
    problems = [
        f"{n} {key}: non-2xx {results[n].runs[key].non2xx}, socket errors "
        f"{results[n].runs[key].errors}"
        for n in names
        for _, _, key in keys
        if results[n].runs[key].non2xx or results[n].runs[key].errors
    ]
    lines += [
        "",
        "*empty*: share of 204 (this service) or empty 200 (tipg) answers, counted by wrk's "
        "Lua. After every wrk run the harness waits until the server's CPU is idle (requests "
        "still in flight when wrk stops are finished before the next run; "
        + ", ".join(f"{n} {results[n].drained_s:.0f} s in all" for n in names)
        + "). Errors: "
        + ("; ".join(problems) if problems else "none (every response 2xx, no socket errors)."),
        "",
        f"## Size of a tile ({args.samples} sample tiles per band, the same on both servers)",
        "",
        "Fetched one by one with httpx before the load (uncompressed bodies, each URL with "
        f"its own `{BUSTER}` value: no cache hits), decoded with "
        "mapbox-vector-tile. Bytes of the non-empty tiles: median / p90. Features: mean of "
        "ours ÷ tipg over the tiles non-empty on both (1 = the same features). This service "
        "also keeps the features that lie only in the tile's buffer (64/4096 around it), tipg "
        "selects by the tile's own bounds, so ours has ≈ (1 + 2·64/4096)² ≈ 1.06× the points "
        "of tipg; its `truncated` marker layer is not counted.",
        "",
        "| collection, zooms | "
        + " | ".join(f"{n} bytes median / p90" for n in names)
        + " | features ours ÷ tipg | empty on one only | empty ours / tipg | truncated (ours) | "
        + " | ".join(f"{n} ms median (one at a time)" for n in names)
        + " |",
        "|---|" + "---:|" * len(names) + "---:|---:|---:|---:|" + "---:|" * len(names),
    ]
    for c, b, _ in keys:
        row = f"| {c}, z {b[0]}–{b[1]} |"
        for n in names:
            row += f" {_sizes(results[n].samples[c][b])} |"
        if len(names) == 2:
            ratio, one, empty = _compare(
                results["ours"].samples[c][b], results["tipg"].samples[c][b]
            )
        else:
            ratio = one = empty = "–"
        trunc = sum(a.truncated for a in results["ours"].samples[c][b]) if "ours" in results else 0
        row += f" {ratio} | {one} | {empty} | {trunc} |"
        row += "".join(
            f" {_f(float(np.median([a.ms for a in results[n].samples[c][b]])))} |" for n in names
        )
        lines.append(row)
    tipg_cfg = (
        "its defaults (buffer 256/4096, at most 10,000 features a tile)"
        if args.tipg_defaults
        else ", ".join(f"`{k}={v}`" for k, v in TIPG_MATCH.items())
        + " (the same buffer and feature cap as this service; its other defaults)"
    )
    lines += [
        "",
        "## Versions and configuration",
        "",
        *(
            f"- **{n}**: " + ", ".join(f"{k} {x}" for k, x in ctx["versions"][n].items())
            for n in names
        ),
        f"- wrk: {m['wrk']}; Python {m['python']}; this repository at {m['commit']}.",
        "- This service (geo/ogc/tiles.py): on PostGIS `ST_AsMVTGeom`/`ST_AsMVT` in the "
        "database (GIST on `geom`, the tile plus a 64/4096 buffer), the collection's "
        "`tile_properties` (interventions: 10 scalar columns; layers: every scalar field); "
        "204 when empty; at most 20,000 features a tile.",
        f"- tipg: `ST_AsMVT`/`ST_AsMVTGeom` in PostGIS, all columns as properties; {tipg_cfg}; "
        "an empty tile is a 200 with an empty body.",
        "- The properties differ (this service adds `comuni`, `comuni_names`, `zone`, `unioni`, "
        "`precision_note` to the points), so tile sizes differ too.",
        "",
        "## Commands",
        "",
        "```sh",
        ".venv/bin/python -m bench.tiles " + " ".join(sys.argv[1:]),
        *(results[n].command for n in names),
        "```",
        "",
        "wrk, one measured run per case (this service; tipg the same with its paths):",
        "",
        "```sh",
        *(r.command for r in results["ours"].runs.values() if "ours" in results),
        "```",
        "",
    ]
    return "\n".join(lines)


# ----- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=parse_size, default=100_000, help="generated points (100k)")
    ap.add_argument("--polygons", type=parse_size, default=20_000, help="polygons (20k)")
    ap.add_argument("--duration", type=float, default=20, help="seconds per measured run (20)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per case (3)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    ap.add_argument("--samples", type=int, default=200, help="httpx sample tiles per band (200)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="subset of ours,tipg")
    ap.add_argument(
        "--tipg-defaults",
        action="store_true",
        help="run tipg with its own tile buffer and feature cap (not ours)",
    )
    ap.add_argument("--output", type=Path, default=RESULTS, help="markdown results file")
    ap.add_argument("--keep-schema", action="store_true", help="do not drop the bench schema")
    args = ap.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    if bad := set(args.servers) - set(SERVERS):
        ap.error(f"unknown servers {bad}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    srv.WORK.mkdir(parents=True, exist_ok=True)
    started, load_before = datetime.now(UTC), os.getloadavg()
    if load_before[0] > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load_before[0]:.1f}: the numbers will be noisy", flush=True)

    def log(msg: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)

    py_tipg = srv.ensure_venv("tipg") if "tipg" in args.servers else None
    schema = f"cmm_bench_{secrets.token_hex(3)}"
    ctx: dict[str, Any] = {"machine": machine(), "schema": schema, "versions": {}}
    ctx["versions"]["ours"] = srv.versions(
        sys.executable, [*srv.REPORTED["ours"], "mapbox-vector-tile", "morecantile"]
    )
    if py_tipg:
        ctx["versions"]["tipg"] = srv.versions(py_tipg, srv.REPORTED["tipg"])
    results: dict[str, ServerResult] = {}
    with ExitStack() as stack:
        url, ctx["db_kind"] = stack.enter_context(database(log))
        engine = bench_store(stack, url, schema, args, ctx, log)
        ctx["load_points_s"] = data.load_points(engine, args.size, log)
        data.vacuum_analyze(engine)
        ctx["points_files"] = {c: srv.WORK / f"tiles-{c}.txt" for c in COLLECTIONS}
        data.write_sample_points(engine, ctx["points_files"]["points"])
        data.write_sample_points(engine, ctx["points_files"]["polygons"], layer_id=ctx["layer_id"])
        tiles = {
            c: sample_tiles(ctx["points_files"][c], args.samples, seed=i)
            for i, c in enumerate(COLLECTIONS)
        }
        data_dir = Path(tempfile.mkdtemp(prefix="cmm-geo-tiles-"))
        stack.callback(shutil.rmtree, data_dir, True)
        ready = {
            "ours": "/collections/interventions/items?f=json&limit=1",
            "tipg": f"/collections/{schema}.bench_points/items?f=geojson&limit=1",
        }
        make = {
            "ours": lambda: srv.ours(
                with_search_path(url, schema), data_dir, secrets.token_urlsafe(24), ready["ours"]
            ),
            "tipg": lambda: srv.tipg(
                py_tipg,
                libpq_dsn(url),
                schema,
                ready["tipg"],
                None if args.tipg_defaults else TIPG_MATCH,
            ),
        }
        for name in args.servers:
            with srv.running(make[name]()) as server:
                results[name] = measure(server, tiles, ctx, args, log)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            report(results, ctx, args, started, load_before, os.getloadavg()), encoding="utf-8"
        )
        log(f"wrote {args.output}")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
