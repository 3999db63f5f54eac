"""Benchmark: does hostile traffic slow down the clerks? ``/lookup`` latency, idle vs attacked.

    python -m bench.hostile_p99 [--requests 2000] [--attackers 4]

One uvicorn worker (the worst case: everything shares one process). First ``/lookup``
alone (sequential requests on one keep-alive connection, random points inside the
territory); then the same while ``--attackers`` processes (their own processes, so the
measuring client never waits for their GIL) send hostile OGC requests as fast as they are
answered: deeply nested, long and LIKE-heavy CQL2 filters, huge numbers,
over-long URLs. Reports p50/p99 of ``/lookup`` in both phases, their ratio, how many
hostile requests were sent and how they were answered (a 5xx other than 503 or a dropped
connection counts as a crash). Writes ``bench/results/hostile.md``. Loopback only; bounded
in count and time.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import platform
import random
import time
from pathlib import Path

import httpx
import numpy as np

from bench._server import serve

RESULTS = Path(__file__).resolve().parent / "results" / "hostile.md"


def hostile_urls(rng: random.Random) -> str:
    """One hostile request target (a different one each time)."""
    kind = rng.randrange(7)
    n = rng.randrange(5, 3000)
    if kind == 0:
        f = "(" * n + "population > 1" + ")" * n
    elif kind == 1:
        f = " OR ".join(
            f"population = {rng.randrange(10**6)}" for _ in range(rng.randrange(50, 400))
        )
    elif kind == 2:
        f = "name LIKE '" + "%_" * rng.randrange(3, 60) + "#'"
    elif kind == 3:
        f = f"population ^ {rng.randrange(300, 5000)} > 1"
    elif kind == 4:
        f = f"population > 1e{rng.randrange(300, 400)}"
    elif kind == 5:
        return "/collections/comuni/items?name=" + "x" * rng.randrange(9000, 60000)
    else:
        f = "NOT " * n + "population > 1"
    coll = rng.choice(["comuni", "interventions"])
    return f"/collections/{coll}/items?" + httpx.QueryParams({"filter": f, "limit": 5}).__str__()


def lookup_latencies(base: str, n: int, seed: int) -> np.ndarray:
    """Seconds per GET /lookup of ``n`` random points inside the territory."""
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    with httpx.Client(base_url=base, timeout=60) as c:
        for i in range(n):
            lon, lat = 9.0 + rng.random() * 0.3, 45.40 + rng.random() * 0.12
            t0 = time.perf_counter()
            c.get("/lookup", params={"lon": f"{lon:.6f}", "lat": f"{lat:.6f}"})
            out[i] = time.perf_counter() - t0
    return out


def attack(base: str, seed: int, stop, queue) -> None:
    """One attacker process: hostile requests until ``stop``; puts its tally on ``queue``."""
    rng = random.Random(seed)
    answers: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=base, timeout=60) as c:
        while not stop.is_set():
            try:
                status = str(c.get(hostile_urls(rng)).status_code)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                status = f"error {type(exc).__name__}"
            answers[status] += 1
    queue.put(dict(answers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--attackers", type=int, default=4)
    args = ap.parse_args()
    ncpu = os.cpu_count() or 1
    # The server on CPU 0, the clients (measuring and attacking) on the others: the server's
    # latency is measured, not the clients' competition with it for a core.
    server_cpus = "0" if ncpu > 1 else None
    if server_cpus is not None:
        os.sched_setaffinity(0, set(range(1, ncpu)))
    with serve(workers=1, cpus=server_cpus) as base:
        # Warm-up: a batch with a point outside waits for the index of outlines the server
        # builds in the background at start-up, so no phase measures that build.
        httpx.post(
            base + "/lookup",
            content="lon,lat\n8.0,45.0\n",
            headers={"content-type": "text/csv"},
            timeout=120,
        ).raise_for_status()
        lookup_latencies(base, 200, 0)
        idle = lookup_latencies(base, args.requests, 1)
        stop = mp.Event()
        queue: mp.Queue = mp.Queue()
        procs = [
            mp.Process(target=attack, args=(base, s, stop, queue)) for s in range(args.attackers)
        ]
        for pr in procs:
            pr.start()
        time.sleep(1.0)
        try:
            attacked = lookup_latencies(base, args.requests, 2)
        finally:
            stop.set()
            answers: collections.Counter[str] = collections.Counter()
            for _ in procs:
                answers.update(queue.get(timeout=120))
            for pr in procs:
                pr.join(120)
    p = {
        name: (np.percentile(v, 50) * 1e3, np.percentile(v, 99) * 1e3)
        for name, v in (("idle", idle), ("attacked", attacked))
    }
    sent = sum(answers.values())
    crashed = sum(
        v for k, v in answers.items() if k.startswith("error") or (k[0] == "5" and k != "503")
    )
    refused = sum(v for k, v in answers.items() if k[0] == "4")
    lines = [
        f"# /lookup under hostile traffic ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"Python {platform.python_version()}, 1 uvicorn worker, "
        f"{args.attackers} attacker processes; server pinned to CPU 0, clients to the "
        "other CPUs)",
        "",
        "| phase | p50 ms | p99 ms |",
        "|---|---|---|",
        *[f"| /lookup {k} | {a:.2f} | {b:.2f} |" for k, (a, b) in p.items()],
        "",
        f"p99 attacked / idle: **{p['attacked'][1] / p['idle'][1]:.2f}×**",
        "",
        f"hostile requests sent: {sent}; answered 4xx: {refused}; "
        f"crashed (5xx other than 503, or dropped): {crashed}; by status: {dict(answers)}",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
