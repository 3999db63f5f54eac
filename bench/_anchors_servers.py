"""Servers of bench/anchors.py: this service (on PostGIS, or on its embedded SQLite store),
tipg, pygeoapi, nginx and a minimal ASGI app.

Each runs as one process on a free loopback port (uvicorn: one worker, uvloop + httptools, no
access log); :class:`Server` records the command, the start-up time (process start → first
200 on a given URL) and the resident memory of the process and its children (from /proc).
The anchors live in their own virtualenvs (``bench/.venv-tipg``, ``bench/.venv-pygeoapi``,
gitignored), created on first use from PyPI with the pinned versions below.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORK = BENCH / ".work"

#: What each anchor's virtualenv gets (pinned; the versions installed are reported too).
#: The uvicorn this service runs with today (pyproject: >=0.30,<1), so all three serve alike.
UVICORN = "uvicorn[standard]==0.54.0"
PINS = {
    "tipg": ["tipg==1.6.1", UVICORN],
    "pygeoapi": [
        "pygeoapi==0.21.0",
        "starlette==1.10.0",  # pygeoapi.starlette_app; not a dependency of pygeoapi itself
        "GeoAlchemy2==0.20.0",  # its PostgreSQL provider's requirements
        "psycopg2-binary==2.9.13",
        UVICORN,
    ],
}
PROBES = {
    "tipg": "import tipg, uvicorn",
    "pygeoapi": "import pygeoapi, geoalchemy2, psycopg2, starlette",
}
#: Distributions whose versions the results list.
REPORTED = {
    "ours": [
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "SQLAlchemy",
        "psycopg",
        "shapely",
        "orjson",
    ],
    "tipg": ["tipg", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg"],
    "pygeoapi": [
        "pygeoapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "SQLAlchemy",
        "GeoAlchemy2",
        "psycopg2-binary",
        "pygeofilter",
        "shapely",
    ],
}
#: This service on its embedded store: the same (anchors.py adds SQLite's library version).
REPORTED["ours-sqlite"] = [d for d in REPORTED["ours"] if d != "psycopg"]
UVICORN_FLAGS = [
    "--host",
    "127.0.0.1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv(name: str) -> Path:
    """The python of ``bench/.venv-<name>``, created and filled from PyPI when needed (again
    whenever the pins above change: a stamp file in the venv remembers them)."""
    venv = BENCH / f".venv-{name}"
    py = venv / "bin" / "python"
    stamp = venv / ".anchors-pins"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = " ".join(PINS[name])
    ok = subprocess.run([str(py), "-c", PROBES[name]], capture_output=True).returncode == 0
    if not ok or not stamp.exists() or stamp.read_text() != pins:
        print(f"installing {pins} into {venv}", flush=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS[name]],
            check=True,
        )
        stamp.write_text(pins)
    return py


def versions(python: Path | str, names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python``."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: print(n, '-')\n"
    )
    out = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def fetch(
    url: str, timeout: float = 60, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers of one request (no Accept-Encoding: identity bodies)."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (scanning /proc for parent ids)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        tree += kids
        todo += kids
    return tree


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of ``pid`` and its descendants, in MB."""
    total = 0
    for p in _children(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants, in seconds (/proc)."""
    total = 0
    for p in _children(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, below: float = 0.05, window: float = 0.5, timeout: float = 120) -> float:
    """Wait until ``pid`` (with its children) uses less than ``below`` of a core over
    ``window`` seconds — requests wrk left in flight are done — or ``timeout``; seconds waited.
    Without it a run of slow requests leaves a backlog that the next run pays for."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        c0 = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - c0 < below * window:
            break
    return time.perf_counter() - t0


@dataclass
class Server:
    """A running server: its process, base URL, command and start-up time."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    proc: subprocess.Popen | None = None
    startup_s: float = float("nan")
    log: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 600) -> None:
        """Start and wait for the first 200 on ``ready_path``; records ``startup_s``."""
        self.log = WORK / f"{self.name.replace(' ', '_')}.log"
        out = self.log.open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = self.base + self.ready_path
        while True:
            try:
                status, _, _ = fetch(url, timeout=30)
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited ({self.proc.returncode}); log {self.log}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise SystemExit(f"{self.name}: no 200 from {url} within {timeout:.0f} s")
            time.sleep(0.05)
        self.startup_s = time.perf_counter() - t0

    def rss_mb(self) -> float:
        assert self.proc is not None
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM to the process group this server started, SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: its own group, led by this pid
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(10)

    def command_line(self) -> str:
        """The command as one shell line, with the environment it needs."""
        keys = [k for k in self.env if k.startswith(("CMM_GEO_", "TIPG_", "PYGEOAPI_"))]
        keys += [k for k in ("DATABASE_URL",) if k in self.env]
        env = "".join(f"{k}='{'<token>' if k.endswith('TOKEN') else self.env[k]}' " for k in keys)
        return f"cd {self.cwd} && {env}{' '.join(self.cmd)}".replace(str(ROOT) + "/", "")


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server``, yield it, stop it whatever happens."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ----- the three OGC API – Features servers --------------------------------------------------


def ours(
    db_url: str, data_dir: Path, admin_token: str, ready_path: str, name: str = "ours"
) -> Server:
    """``uvicorn api.main:app`` of this repository, one worker, on ``db_url``: the bench
    schema on PostGIS (``ours``), or ``sqlite:///…`` for the embedded store (``ours-sqlite``).

    Its modules are compiled to bytecode first, as ``pip install`` does for an installed
    package (and did for tipg's and pygeoapi's): a checkout run with
    ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile ``geo/`` and ``api/`` at every
    start (~0.3–0.5 s of the start-up measured)."""
    import compileall

    for package in ("geo", "api"):
        compileall.compile_dir(ROOT / package, quiet=1)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port), *UVICORN_FLAGS]
    env = {
        **os.environ,
        "CMM_GEO_DATABASE_URL": db_url,
        "CMM_GEO_DATA_DIR": str(data_dir),
        "CMM_GEO_ADMIN_TOKEN": admin_token,
        # wrk sends every filter from one address: measure the queries, not the 429s of
        # the per-client rate limit (the anchors have none; bench/hostile_p99.py keeps it).
        "CMM_GEO_FILTER_RATE_PER_CLIENT": "0",
    }
    return Server(name, cmd, env, ROOT, port, ready_path)


def tipg(
    py: Path, dsn: str, schema: str, ready_path: str, settings: dict[str, str] | None = None
) -> Server:
    """tipg serving the two bench views of ``schema`` (asyncpg pool of its defaults);
    ``settings``: further ``TIPG_*`` variables (bench/tiles.py matches its tile limits)."""
    port = free_port()
    cwd = WORK / "tipg"  # tipg reads a .env from its working directory: an empty one
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [str(py), "-m", "uvicorn", "tipg.main:app", "--port", str(port), *UVICORN_FLAGS]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIPG_")},
        "DATABASE_URL": dsn,
        "TIPG_DB_SCHEMAS": f'["{schema}"]',
        "TIPG_DB_TABLES": f'["{schema}.bench_points", "{schema}.bench_polygons"]',
        **(settings or {}),
    }
    return Server("tipg", cmd, env, cwd, port, ready_path)


def pygeoapi(py: Path, url: sa.engine.URL, schema: str, ready_path: str) -> Server:
    """pygeoapi (Starlette app) with its PostgreSQL provider on the two bench views."""
    port = free_port()
    cwd = WORK / "pygeoapi"
    cwd.mkdir(parents=True, exist_ok=True)
    cfg, openapi = cwd / "pygeoapi.yml", cwd / "pygeoapi-openapi.yml"
    cfg.write_text(pygeoapi_config(port, url, schema), encoding="utf-8")
    env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(openapi)}
    # The OpenAPI document is a deployment step (it reads the tables' columns): not start-up.
    subprocess.run(
        [
            str(py.parent / "pygeoapi"),
            "openapi",
            "generate",
            str(cfg),
            "--output-file",
            str(openapi),
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=cwd,
    )
    cmd = [
        str(py),
        "-m",
        "uvicorn",
        "pygeoapi.starlette_app:APP",
        "--port",
        str(port),
        *UVICORN_FLAGS,
    ]
    return Server("pygeoapi", cmd, env, cwd, port, ready_path)


def pygeoapi_config(port: int, url: sa.engine.URL, schema: str) -> str:
    """pygeoapi's configuration: the two views through the PostgreSQL provider."""
    data = (
        f"{{host: '{url.host}', port: {url.port or 5432}, dbname: '{url.database}', "
        f"user: '{url.username}', password: '{url.password or ''}', "
        f"search_path: ['{schema}', public]}}"
    )

    def resource(name: str, title: str) -> str:
        return f"""  {name}:
    type: collection
    title: {title}
    description: {title} (bench view of the cmm-geo tables)
    keywords: [bench]
    extents:
      spatial: {{bbox: [8.7, 45.15, 9.6, 45.65], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: feature
        name: PostgreSQL
        data: {data}
        id_field: id
        table: {name}
        geom_field: geom
"""

    return (
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
    title: cmm-geo anchors
    description: the cmm-geo bench tables
    keywords: [bench]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://example.org
  license: {{name: CC-BY 4.0, url: https://creativecommons.org/licenses/by/4.0/}}
  provider: {{name: bench, url: https://example.org}}
  contact: {{name: bench, position: bench, address: x, city: Milano, stateorprovince: MI,
            postalcode: "20100", country: Italy, phone: "+39", fax: "+39", email: a@b.c,
            url: https://example.org, hours: 9-17, instructions: none, role: pointOfContact}}
resources:
"""
        + resource("bench_points", "Bench points")
        + resource("bench_polygons", "Bench polygons")
    )


# ----- cached peers: nginx and a minimal ASGI app serving the same bytes ---------------------


def nginx_binary() -> str | None:
    """Debian's nginx (``apt-get install nginx-light``), if installed."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def nginx(body: bytes, path: str, content_type: str) -> Server:
    """nginx (one worker process, as this user, its own conf in a temp dir) serving ``body``
    at ``path`` from a file, with ``content_type``; keep-alive unlimited like uvicorn."""
    binary = nginx_binary()
    assert binary is not None
    port = free_port()
    home = WORK / "nginx"
    shutil.rmtree(home, ignore_errors=True)
    www = home / "www"
    target = www / path.lstrip("/")
    target.parent.mkdir(parents=True)
    target.write_bytes(body)
    for d in [home, *target.parents]:
        if d.is_relative_to(home):
            d.chmod(0o755)
    target.chmod(0o644)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # as root the worker would be nobody
    (home / "nginx.conf").write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    types {{ }}
    default_type {content_type};
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
}}
""",
        encoding="utf-8",
    )
    cmd = [binary, "-p", str(home), "-c", str(home / "nginx.conf"), "-e", str(home / "error.log")]
    return Server("nginx", cmd, dict(os.environ), home, port, path)


def static_asgi(
    body_file: Path, content_type: str, path: str, headers_file: Path | None = None
) -> Server:
    """A minimal ASGI app (bench/_static_asgi.py) answering the same bytes, one uvicorn;
    with ``headers_file`` (JSON [name, value] pairs) the same headers too."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench._static_asgi:app",
        "--port",
        str(port),
        *UVICORN_FLAGS,
    ]
    env = {**os.environ, "STATIC_BODY": str(body_file), "STATIC_TYPE": content_type}
    if headers_file is not None:
        env["STATIC_HEADERS"] = str(headers_file)
        return Server("minimal ASGI, same headers", cmd, env, ROOT, port, path)
    return Server("minimal ASGI", cmd, env, ROOT, port, path)
