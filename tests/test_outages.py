"""Database outages, for real: a PostgreSQL cluster of its own that the test stops, pauses
(SIGSTOP: a hung database) and brings back, under a real uvicorn server process.

What must hold: the territory, the landing page and ``/collections`` keep answering; what
needs the database answers 503 with ``Retry-After`` quickly instead of 500 or hanging; the
service starts while the database is down and recovers by itself, without a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.postgis

ROOT = Path(__file__).resolve().parents[1]
#: Small budgets so that "bounded" is quick to see (CMM_GEO_DB_CONNECT_TIMEOUT_S etc.).
CONNECT_S = 2
STATEMENT_S = 2
#: Generous bound for one answer during an outage: never a hang, never a fine timing.
BOUND_S = 15.0
TERRITORY = ("/lookup?q=Rho", "/comuni", "/collections/comuni/items", "/", "/collections")
INTERVENTIONS = "/collections/interventions/items"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    """The newest installed PostgreSQL with PostGIS (as scripts/pg_throwaway.sh picks it)."""
    found = []
    for d in Path("/usr/lib/postgresql").glob("*"):
        ext = Path(f"/usr/share/postgresql/{d.name}/extension/postgis.control")
        if d.name.isdigit() and (d / "bin" / "initdb").exists() and ext.exists():
            found.append(int(d.name))
    if not found:
        pytest.fail("no PostgreSQL with PostGIS installed: run the tests with scripts/test.sh")
    return Path(f"/usr/lib/postgresql/{max(found)}/bin")


class Cluster:
    """A throwaway PostgreSQL cluster on a fixed port that the test can stop, pause, resume."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cmm-geo-outage-pg-"))
        self.data = self.dir / "data"
        self.root = os.getuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-locale", "-E", "UTF8", "--no-sync")  # fmt: skip
        self.created = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/cmm_geo_outage"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, cwd=self.dir, check=True, capture_output=True, timeout=120)

    def _pg_ctl_start(self, listen: str) -> None:
        opts = (f"-F -p {self.port} -c listen_addresses={listen} "
                f"-c unix_socket_directories={self.dir} -c fsync=off")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "-s", "-o", opts, "start")  # fmt: skip

    def start(self) -> None:
        """Start; the first time, create the database (+ PostGIS) before anyone can connect."""
        if not self.created:
            self._pg_ctl_start("''")  # unix socket only: the service cannot see a half-made db
            psql = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p",
                    str(self.port), "-U", "postgres"]  # fmt: skip
            self._run("psql", *psql, "-d", "postgres", "-c", "CREATE DATABASE cmm_geo_outage")
            self._run("psql", *psql, "-d", "cmm_geo_outage", "-c", "CREATE EXTENSION postgis")
            self.stop()
            self.created = True
        self._pg_ctl_start("127.0.0.1")

    def stop(self) -> None:
        """Immediate shutdown (like a crash of the database host's service)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-s", "stop")

    def pids(self) -> list[int]:
        """The postmaster and its children (this cluster's processes only)."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return []
        master = int(pidfile.read_text().split()[0])
        pids = [master]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(stat.parent.name))
        return pids

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def destroy(self) -> None:
        self.signal(signal.SIGCONT)
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except subprocess.SubprocessError:
                self.signal(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """``uvicorn api.main:app`` as a real process, pointed at the cluster."""

    def __init__(self, database_url: str) -> None:
        self.port = _free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="cmm-geo-outage-data-"))
        self.log = open(self.data_dir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "CMM_GEO_DATABASE_URL": database_url,
            "CMM_GEO_DATA_DIR": str(self.data_dir),
            "CMM_GEO_DB_CONNECT_TIMEOUT_S": str(CONNECT_S),
            "CMM_GEO_REQUEST_TIMEOUT_S": str(STATEMENT_S),
            "CMM_GEO_TILES_URL": "none",
        }
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if self.http.get("/lookup?q=Rho", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start within 120 s:\n{self.output()}")
            time.sleep(0.3)

    def output(self) -> str:
        self.log.flush()
        return (self.data_dir / "server.log").read_text(errors="replace")[-4000:]

    def get(self, path: str) -> tuple[httpx.Response, float]:
        """The response and how long it took."""
        t0 = time.monotonic()
        r = self.http.get(path)
        return r, time.monotonic() - t0

    def wait_for(self, path: str, status: int, within: float) -> httpx.Response:
        """Poll ``path`` until it answers ``status`` (the service recovering by itself)."""
        deadline = time.monotonic() + within
        while True:
            r = self.http.get(path)
            if r.status_code == status:
                return r
            if time.monotonic() > deadline:
                pytest.fail(f"{path}: still {r.status_code} after {within} s: {r.text[:300]}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.destroy()


def _assert_unavailable(r: httpx.Response, took: float, server: Server) -> None:
    assert r.status_code == 503, (r.status_code, r.text[:300], server.output())
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["code"] == "ServiceUnavailable"
    assert "database is unavailable" in body["description"]
    assert took < BOUND_S, f"503 took {took:.1f} s"


def _assert_territory_answers(server: Server) -> None:
    for path in TERRITORY:
        r, took = server.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300], server.output())
        assert took < BOUND_S, f"{path} took {took:.1f} s"


def test_database_stopped_then_hung_then_back(cluster: Cluster) -> None:
    cluster.start()
    server = Server(cluster.url)
    try:
        r = server.wait_for(INTERVENTIONS, 200, within=180)  # migrates and seeds on first use
        assert r.json()["numberMatched"] >= 100
        assert server.get("/collections")[0].status_code == 200

        # --- stopped: refused connections --------------------------------------------
        cluster.stop()
        _assert_territory_answers(server)
        r, took = server.get(INTERVENTIONS)
        _assert_unavailable(r, took, server)
        _assert_unavailable(*server.get("/stats/interventions?by=zona"), server)
        listed = server.get("/collections")[0].json()
        ids = [c["id"] for c in listed["collections"]]
        assert "comuni" in ids and "zone-omogenee" in ids
        interventions = [c for c in listed["collections"] if c["id"] == "interventions"]
        assert interventions == [] or "extent" not in interventions[0]
        assert any("interventions" in n for n in listed["notes"])
        assert server.get("/maps/territory")[0].status_code == 200

        # --- back: the same server serves interventions again ---------------------------
        cluster.start()
        server.wait_for(INTERVENTIONS, 200, within=60)

        # --- hung: every postgres process paused, sockets open but silent --------------
        cluster.signal(signal.SIGSTOP)
        # While an interventions request waits on the hung database, /lookup still answers.
        waiting: dict[str, object] = {}
        t = threading.Thread(target=lambda: waiting.update(r=server.get(INTERVENTIONS)))
        t.start()
        time.sleep(0.2)
        r, took = server.get("/lookup?q=Rho")
        assert r.status_code == 200 and took < BOUND_S
        t.join(BOUND_S + 30)
        assert not t.is_alive(), "an interventions request hung on the paused database"
        _assert_unavailable(*waiting["r"], server)  # type: ignore[misc]
        for _ in range(2):  # again: a fresh connection attempt must give up too
            _assert_unavailable(*server.get(INTERVENTIONS), server)
        _assert_territory_answers(server)

        cluster.signal(signal.SIGCONT)
        r = server.wait_for(INTERVENTIONS, 200, within=60)
        assert r.json()["numberMatched"] >= 100
        assert server.proc.poll() is None  # never restarted
    finally:
        server.stop()


def test_starts_with_the_database_down(cluster: Cluster) -> None:
    server = Server(cluster.url)  # the cluster is initialised but not running
    try:
        _assert_territory_answers(server)
        _assert_unavailable(*server.get(INTERVENTIONS), server)
        assert server.get("/maps/territory")[0].status_code == 200

        cluster.start()
        r = server.wait_for(INTERVENTIONS, 200, within=180)  # migrated and seeded lazily
        assert r.json()["numberMatched"] >= 100
        ids = [c["id"] for c in server.get("/collections")[0].json()["collections"]]
        assert "interventions" in ids
        assert server.proc.poll() is None
    finally:
        server.stop()
