"""Benchmark: this service's OGC API – Features against pygeoapi, same data, same load.

Creates ``bench/.venv-pygeoapi`` (pygeoapi from PyPI + uvicorn) when missing, serves
``data/boundaries/comuni.geojson`` from pygeoapi's GeoJSON provider, starts both servers
on loopback (one uvicorn process each), runs ``wrk`` on the same URLs for a bounded
time and writes ``bench/results/ogc.md``. Usage::

    .venv/bin/python bench/ogc_vs_pygeoapi.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV = BENCH / ".venv-pygeoapi"
WORK = BENCH / ".work"
PYGEOAPI_SPEC = "pygeoapi==0.21.*"

#: (label, our path+query, pygeoapi path+query). pygeoapi's ids are the ISTAT codes too.
CASES = [
    (
        "all 133 comuni, one page",
        "/collections/comuni/items?f=json&limit=133",
        "/collections/comuni/items?f=json&limit=133",
    ),
    (
        "one comune by id",
        "/collections/comuni/items/015146?f=json",
        "/collections/comuni/items/015146?f=json",
    ),
    (
        "point-sized bbox",
        "/collections/comuni/items?f=json&bbox=9.19,45.46,9.1901,45.4601",
        "/collections/comuni/items?f=json&bbox=9.19,45.46,9.1901,45.4601",
    ),
    (
        "CQL2 filter",
        "/collections/comuni/items?f=json&filter=population%20%3E%20100000",
        "/collections/comuni/items?f=json&filter=population%20%3E%20100000",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv() -> Path:
    """The pygeoapi virtualenv's python (created on first use)."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run(
        [str(py), "-c", "import pygeoapi, uvicorn, starlette"], capture_output=True
    )
    if probe.returncode != 0:
        subprocess.run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                PYGEOAPI_SPEC,
                "uvicorn[standard]",
                "starlette",
            ],
            check=True,
        )
    return py


def pygeoapi_config(port: int) -> Path:
    """A pygeoapi config serving the comuni GeoJSON, and its OpenAPI document."""
    WORK.mkdir(exist_ok=True)
    data = WORK / "comuni.geojson"
    shutil.copy(ROOT / "data" / "boundaries" / "comuni.geojson", data)
    cfg = WORK / "pygeoapi.yml"
    cfg.write_text(
        f"""server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  gzip: false
  languages: [en-US]
  cors: true
  pretty_print: false
  limits: {{default_items: 10, max_items: 10000}}
  map:
    url: https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png
    attribution: OpenStreetMap
logging:
  level: ERROR
metadata:
  identification:
    title: comuni benchmark
    description: same data as cmm-geo
    keywords: [comuni]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://example.org
  license: {{name: CC-BY 4.0, url: https://creativecommons.org/licenses/by/4.0/}}
  provider: {{name: bench, url: https://example.org}}
  contact: {{name: bench, position: bench, address: x, city: Milano, stateorprovince: MI,
            postalcode: "20100", country: Italy, phone: "+39", fax: "+39", email: a@b.c,
            url: https://example.org, hours: 9-17, instructions: none, role: pointOfContact}}
resources:
  comuni:
    type: collection
    title: Comuni
    description: The 133 comuni
    keywords: [comuni]
    extents:
      spatial: {{bbox: [8.7, 45.16, 9.56, 45.65], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: feature
        name: GeoJSON
        data: {data}
        id_field: istat_code
""",
        encoding="utf-8",
    )
    return cfg


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(
                    f"server exited ({proc.returncode}) before answering {url}"
                ) from None
            time.sleep(0.3)
    raise SystemExit(f"no answer from {url} within {seconds} s")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


#: A different point-sized bbox on every request (same seed for both servers), so no
#: response cache can answer: this measures the query path itself.
RANDOM_BBOX_LUA = """
math.randomseed(7)
request = function()
  local x = 8.75 + math.random() * 0.75
  local y = 45.20 + math.random() * 0.40
  return wrk.format("GET", string.format("%s&bbox=%.6f,%.6f,%.6f,%.6f",
                                         wrk.path, x, y, x + 0.0001, y + 0.0001))
end
"""
RANDOM_CASE = ("random point-sized bbox, never the same URL (no cache hit)",
               "/collections/comuni/items?f=json", "/collections/comuni/items?f=json")


def wrk(url: str, duration: int, connections: int, script: str | None = None) -> tuple[float, int]:
    """Requests per second and non-2xx responses of one wrk run (optionally a Lua script)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    if script:
        lua = WORK / "random_bbox.lua"
        lua.write_text(script)
        cmd += ["-s", str(lua)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per URL")
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    py = ensure_venv()
    version = subprocess.run(
        [str(py), "-c", "import pygeoapi; print(pygeoapi.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    ours_port, theirs_port = free_port(), free_port()
    cfg = pygeoapi_config(theirs_port)
    openapi = WORK / "pygeoapi-openapi.yml"
    env_p = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run(
        [
            str(VENV / "bin" / "pygeoapi"),
            "openapi",
            "generate",
            str(cfg),
            "--output-file",
            str(openapi),
        ],
        env=env_p,
        check=True,
        capture_output=True,
    )
    data_dir = tempfile.mkdtemp(prefix="cmm-geo-bench-")
    env_o = {**os.environ, "CMM_GEO_DATA_DIR": data_dir}
    uv = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    ours = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--port",
            str(ours_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            *uv,
        ],
        cwd=ROOT,
        env=env_o,
    )
    theirs = subprocess.Popen(
        [
            str(py),
            "-m",
            "uvicorn",
            "pygeoapi.starlette_app:APP",
            "--port",
            str(theirs_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            *uv,
        ],
        cwd=WORK,
        env=env_p,
    )
    rows = []
    try:
        o_base, t_base = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
        wait_for(o_base + "/conformance", ours)
        wait_for(t_base + "/conformance?f=json", theirs)
        for label, o_path, t_path in CASES:
            t0 = time.perf_counter()
            o_status, o_body = fetch(o_base + o_path)
            t1 = time.perf_counter()
            t_status, t_body = fetch(t_base + t_path)
            t2 = time.perf_counter()
            if o_status != 200:
                raise SystemExit(f"cmm-geo answered {o_status} to {o_path}: {o_body[:300]!r}")
            first = f"first request {1000 * (t1 - t0):.0f} ms vs {1000 * (t2 - t1):.0f} ms"
            note = ""
            if label == "CQL2 filter":
                import json

                n_ours = json.loads(o_body).get("numberMatched")
                t_json = json.loads(t_body) if t_status == 200 else {}
                n_theirs = t_json.get("numberMatched", len(t_json.get("features", [])))
                if t_status != 200 or n_theirs != n_ours:
                    note = (
                        f"pygeoapi's GeoJSON provider does not filter (HTTP {t_status}, "
                        f"{n_theirs} features vs {n_ours}); ours alone"
                    )
            o_rps, o_bad = wrk(o_base + o_path, args.duration, args.connections)
            if note:
                rows.append(
                    (label, o_rps, None, f"{note}; first request {1000 * (t1 - t0):.0f} ms")
                )
                continue
            t_rps, t_bad = wrk(t_base + t_path, args.duration, args.connections)
            note = first + (f"; non-2xx: ours {o_bad}, pygeoapi {t_bad}" if o_bad or t_bad else "")
            rows.append((label, o_rps, t_rps, note))
            print(f"{label}: ours {o_rps:.0f} req/s, pygeoapi {t_rps:.0f} req/s", flush=True)
        label, o_path, t_path = RANDOM_CASE
        o_rps, o_bad = wrk(o_base + o_path, args.duration, args.connections, RANDOM_BBOX_LUA)
        t_rps, t_bad = wrk(t_base + t_path, args.duration, args.connections, RANDOM_BBOX_LUA)
        rows.append((label, o_rps, t_rps, "measures the query path, not the response cache"))
        print(f"{label}: ours {o_rps:.0f} req/s, pygeoapi {t_rps:.0f} req/s", flush=True)
    finally:
        for proc in (ours, theirs):
            proc.terminate()
        for proc in (ours, theirs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)

    lines = [
        "# OGC API – Features: cmm-geo vs pygeoapi",
        "",
        f"wrk -t2 -c{args.connections} -d{args.duration}s per URL, loopback, one uvicorn "
        f"process each (uvloop + httptools), {os.cpu_count()} CPU cores shared with wrk; "
        f"pygeoapi {version} with its GeoJSON provider on the same comuni GeoJSON; "
        "no Accept-Encoding (identity bodies on both sides).",
        "",
        "| case | cmm-geo req/s | pygeoapi req/s | ratio | note |",
        "|---|---:|---:|---:|---|",
    ]
    for label, o, t, note in rows:
        ratio = f"{o / t:.0f}×" if t else "–"
        lines.append(f"| {label} | {o:,.0f} | {f'{t:,.0f}' if t else '–'} | {ratio} | {note} |")
    text = "\n".join(lines) + "\n"
    out = BENCH / "results" / "ogc.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
