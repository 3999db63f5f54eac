"""Benchmark: find-my-zone lookups, in-process and over HTTP.

    python bench/lookup_bench.py [--seconds 10] [--points 1000000]

In-process: single name/code and point lookups (calls/s) and the vectorised batch
(points/s). Over HTTP: a real uvicorn server with one worker; `wrk` (Debian) drives
GET /lookup?lon=…&lat=… with a random point inside the territory per request, and
POST /lookup sends batches of 10,000 points. Prints a table and writes
bench/results/lookup.md. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import shapely

from bench._server import serve
from geo.territory import get_territory, lookup

RESULTS = Path(__file__).resolve().parent / "results" / "lookup.md"

WRK_SCRIPT = """
math.randomseed(42)
request = function()
  local lon = 8.75 + math.random() * 0.75
  local lat = 45.20 + math.random() * 0.40
  return wrk.format("GET", string.format("/lookup?lon=%.6f&lat=%.6f", lon, lat))
end
"""


def rate(fn, seconds: float = 2.0) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def inside_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the territory's bounding box."""
    t = get_territory()
    x0, y0, x1, y1 = shapely.total_bounds(t.geometries)
    rng = np.random.default_rng(seed)
    return rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)


def wrk(url: str, seconds: int, script: str | None = None) -> float:
    """Requests/s reported by wrk (2 threads, 32 connections)."""
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        if script:
            fh.write(script)
            cmd += ["-s", fh.name]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec"))
    non2xx = [x for x in out.splitlines() if "Non-2xx" in x]
    if non2xx:
        print("  note:", non2xx[0].strip(), "(404 = point outside the territory)")
    return float(line.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args()
    t = get_territory()
    _ = t.neighbours, t.metric_tree, t.name_index  # warm caches
    rows: list[tuple[str, str]] = []

    r = rate(lambda: lookup.find_comune("cassano d'adda"))
    rows.append(("in-process: find_comune by name", f"{r:,.0f} calls/s"))
    r = rate(lambda: lookup.locate_point(9.19, 45.46))
    rows.append(("in-process: locate_point (CRS84)", f"{r:,.0f} calls/s"))
    r = rate(lambda: lookup.locate_point(514000, 5034000, "EPSG:32632"))
    rows.append(("in-process: locate_point (EPSG:32632)", f"{r:,.0f} calls/s"))

    x, y = inside_points(args.points)
    lookup.locate_indices(t, x[:1000], y[:1000])
    t0 = time.perf_counter()
    idx = lookup.locate_indices(t, x, y)
    dt = time.perf_counter() - t0
    rows.append(
        (f"in-process: batch core, {args.points:,} points", f"{args.points / dt:,.0f} points/s")
    )
    lookup.locate_columns(x[:1000], y[:1000]).table()  # the outlines' index is built once
    t0 = time.perf_counter()
    answer = lookup.locate_columns(x, y)
    answer.table()
    dt = time.perf_counter() - t0
    rows.append(
        (f"in-process: full answers column-wise (comune, zone, union; nearest outside), "
         f"{args.points:,} points", f"{args.points / dt:,.0f} points/s")
    )  # fmt: skip
    t0 = time.perf_counter()
    lookup.locate_columns(x, y).csv_bytes()
    dt = time.perf_counter() - t0
    rate_csv = f"{args.points / dt:,.0f} points/s"
    rows.append((f"in-process: full answers as CSV, {args.points:,} points", rate_csv))
    print(f"  ({(idx >= 0).mean():.0%} of the random points fall inside the territory)")

    if shutil.which("wrk") is None:
        rows.append(("over HTTP", "skipped: wrk not installed (apt-get install wrk)"))
    else:
        with serve(workers=1) as base:
            wrk(base + "/lookup?lon=9.19&lat=45.46", 2)  # warm-up
            r = wrk(base + "/lookup?lon=9.19&lat=45.46", args.seconds)
            rows.append(("HTTP, 1 worker: GET /lookup one point (same)", f"{r:,.0f} req/s"))
            r = wrk(base + "/", args.seconds, WRK_SCRIPT)
            rows.append(("HTTP, 1 worker: GET /lookup random points", f"{r:,.0f} req/s"))
            r = wrk(base + "/lookup?q=Cassano%20d%27Adda", args.seconds)
            rows.append(("HTTP, 1 worker: GET /lookup?q=name", f"{r:,.0f} req/s"))
            for size in (10_000, 100_000):
                bx, by = inside_points(size, seed=1)
                body = "lon,lat\n" + "\n".join(
                    f"{a:.6f},{b:.6f}" for a, b in zip(bx, by, strict=True)
                )
                for fmt in ("json", "csv"):
                    with httpx.Client(base_url=base, timeout=60) as c:
                        url = f"/lookup?f={fmt}"
                        c.post(url, content=body, headers={"content-type": "text/csv"})
                        n, t0 = 0, time.perf_counter()
                        while time.perf_counter() - t0 < args.seconds:
                            res = c.post(url, content=body, headers={"content-type": "text/csv"})
                            res.raise_for_status()
                            n += 1
                        dt = time.perf_counter() - t0
                    rows.append(
                        (f"HTTP, 1 worker: POST /lookup {size:,}-point CSV, answer f={fmt}",
                         f"{n * size / dt:,.0f} points/s")
                    )  # fmt: skip

    width = max(len(a) for a, _ in rows)
    lines = [
        f"# Lookup benchmark ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()})",
        "",
        "| measure | result |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
    ]
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
