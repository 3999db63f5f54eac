"""Load of bench/anchors.py: wrk runs with random URLs (bench/anchors_wrk.lua), checked.

Every random-URL run logs the paths it sent (one file per wrk thread) and reports
``distinct/total`` over them; with the id case a server's runs continue one permutation of
the ids (``start`` moves past what earlier runs sent), so even warm-up and measured runs never
repeat an id until every id has been asked once.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "anchors_wrk.lua"
WORK = BENCH / ".work"


def id_multiplier(n: int) -> int:
    """The multiplier of the id permutation: coprime to ``n``, near 0.618·n (golden ratio), so
    that consecutive requests ask for ids far apart, spread over the whole table."""
    m = max(1, round(n * 0.6180339887))
    while math.gcd(m, n) != 1:
        m += 1
    return m


_nonce = itertools.count(int(time.time()) % 100_000)


@dataclass
class Case:
    """One request kind; ``paths[server]`` = (prefix, suffix) around the random value;
    ``server_params[server]``, when given, replaces ``params`` for that server (e.g. the
    file of stored points of the store it reads)."""

    key: str
    label: str
    mode: str  # bbox | id | num | tile | fixed
    params: list[str]
    paths: dict[str, tuple[str, str]]
    server_params: dict[str, list[str]] = field(default_factory=dict)

    def params_for(self, server: str) -> list[str]:
        """The mode arguments ``server``'s runs use."""
        return self.server_params.get(server, self.params)


@dataclass
class Run:
    """What one wrk run measured."""

    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: dict[str, int]
    distinct: int = 0
    total: int = 0
    command: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    #: req/s of each round (:func:`merged`); empty for a single run.
    rounds: list[float] = field(default_factory=list)

    @property
    def distinct_text(self) -> str:
        return f"{self.distinct:,}/{self.total:,}" if self.total else "–"


def merged(runs: list[Run]) -> Run:
    """The rounds of one case on one server as one run: the median of the rounds' requests
    per second (a stall — once a single request of a 2 s round took 12 s — then costs one
    round its place, not the whole case its number), the highest p99 of the rounds (a
    merged percentile would need wrk's histograms), the median p50, and every URL, answer
    and error counted once; ``rounds`` keeps each round's req/s."""
    if len(runs) == 1:
        return runs[0]
    requests = sum(r.requests for r in runs)
    errors: dict[str, int] = {}
    extra: dict[str, float] = {}
    for r in runs:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
        for k, v in r.extra.items():
            extra[k] = extra.get(k, 0) + v
    p50s = sorted(r.p50_ms for r in runs)
    return Run(
        rps=_median([r.rps for r in runs]),
        requests=requests,
        p50_ms=p50s[len(p50s) // 2],
        p99_ms=max(r.p99_ms for r in runs),
        non2xx=sum(r.non2xx for r in runs),
        errors=errors,
        distinct=sum(r.distinct for r in runs),
        total=sum(r.total for r in runs),
        command=runs[0].command,
        extra=extra,
        rounds=[r.rps for r in runs],
    )


def _median(values: list[float]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else math.nan


def parse_wrk(out: str) -> Run:
    """Requests/s, request count, p50/p99 latency, non-2xx/3xx and socket errors of wrk."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
    return Run(
        rps=rps,
        requests=requests,
        p50_ms=_ms(lat.get("50", "")),
        p99_ms=_ms(lat.get("99", "")),
        non2xx=int(bad.group(1)) if bad else 0,
        errors={k: v for k, v in errors.items() if v},
    )


class Loader:
    """Runs wrk against one server and keeps its URL logs and id-permutation position."""

    def __init__(self, server: str, base: str, threads: int, connections: int) -> None:
        self.server, self.base = server, base
        self.threads, self.connections = threads, connections
        self.id_start = 0
        self.id_offset = random.randrange(1 << 30)  # where this server's permutation starts
        self.seen: dict[str, set[str]] = {}

    def run(self, case: Case, seconds: float, tag: str) -> Run:
        """One wrk run of ``case`` for ``seconds``; URL log counted when the case is random."""
        prefix, suffix = case.paths[self.server]
        cmd = [
            "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",
            "--latency",
        ]
        logbase = ""
        if case.mode == "fixed":
            url = self.base + prefix
        else:
            logdir = WORK / "urls"
            logdir.mkdir(parents=True, exist_ok=True)
            logbase = str(logdir / f"{self.server}-{case.key}-{tag}".replace(" ", "_"))
            for old in logdir.glob(Path(logbase).name + "-*.txt"):
                old.unlink()
            params = list(case.params_for(self.server))
            if case.mode == "id":  # N FORMAT → N START MULT OFF FORMAT
                n = int(params[0])
                params = [
                    params[0],
                    str(self.id_start),
                    str(id_multiplier(n)),
                    str(self.id_offset % n),
                    params[1],
                ]
            url = self.base
            cmd += ["-s", str(LUA)]
            tail = [
                case.mode,
                prefix,
                suffix,
                logbase,
                str(next(_nonce)),
                str(self.threads),
                *params,
            ]
        cmd.append(url)
        if case.mode != "fixed":
            cmd += ["--", *tail]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or "Requests/sec" not in proc.stdout:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
        run = parse_wrk(proc.stdout)
        if answers := re.search(r"^TILE-ANSWERS (.*)$", proc.stdout, re.M):
            run.extra.update({k: float(v) for k, v in re.findall(r"(\w+)=(\d+)", answers[1])})
        run.command = " ".join(_quote(c) for c in cmd)
        if logbase:
            files = sorted(Path(logbase).parent.glob(Path(logbase).name + "-*.txt"))
            lines = [f.read_text().splitlines() for f in files]
            urls = [u for part in lines for u in part]
            seen = self.seen.setdefault(case.key, set())
            repeats_of_earlier = sum(1 for u in set(urls) if u in seen)
            seen.update(urls)
            run.total, run.distinct = len(urls), len(set(urls)) - repeats_of_earlier
            # Paths without their query: with a cache-busting query (tile mode) the tiles
            # themselves may repeat while every URL differs.
            run.extra["distinct_paths"] = len({u.split("?", 1)[0] for u in urls})
            if case.mode == "id":
                self.id_start += self.threads * max((len(x) for x in lines), default=0)
        return run


def _quote(arg: str) -> str:
    return f"'{arg}'" if re.search(r"[^\w@%+=:,./-]", arg) or not arg else arg
