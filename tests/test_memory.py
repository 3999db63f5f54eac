"""A worker's resident memory: what importing the app loads, what a started worker holds, and
the allocator settings ``cmm-geo serve`` gives its workers (see geo/memory.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from geo import memory
from tests.servers import ROOT, free_port

#: Imported on first use only (geo.lazy): file reads, uploads, batches, Folium maps.
HEAVY = ("pandas", "pyogrio", "geopandas", "folium", "branca", "pyarrow", "matplotlib")
#: VmRSS of a worker after importing the app and building the nearest-comune index, MB:
#: ~126 measured (it was ~295 when the index was built whole and pyarrow imported eagerly).
STARTED_WORKER_MB = 180

_STARTED = """
import json, sys, threading
import api.main
for t in threading.enumerate():
    if t.name == "nearest-index":
        t.join()
rss = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmRSS:"))
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules], "rss_mb": rss / 1024}))
"""


def _started_worker(data_dir: Path) -> dict:
    env = {**os.environ, "CMM_GEO_DATA_DIR": str(data_dir)}
    env.pop("CMM_GEO_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{_STARTED}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_started_worker_leaves_heavy_libraries_for_first_use_and_fits_its_budget(tmp_path):
    started = _started_worker(tmp_path)
    assert started["heavy"] == [], f"imported at start-up: {started['heavy']}"
    assert started["rss_mb"] < STARTED_WORKER_MB, started


def test_freed_memory_and_arenas_are_glibc_calls_here():
    """The test machines run glibc: both calls reach it (elsewhere they do nothing)."""
    assert memory.release_freed_memory() is True
    assert memory.limit_malloc_arenas(8) is True  # glibc's own default for 1 core


def test_tune_process_keeps_what_the_environment_says(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    memory.tune_process()
    assert os.environ["MALLOC_ARENA_MAX"] == str(memory.ARENAS)
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "jemalloc"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "not a number")
    memory.tune_process()  # left to glibc, which ignores it
    assert os.environ["MALLOC_ARENA_MAX"] == "not a number"


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.parametrize("workers", [1, 2])
def test_cmm_geo_serve_runs_uvicorn_alone_with_the_allocator_settings(tmp_path, workers):
    """``cmm-geo serve`` becomes ``python -m uvicorn api.main:app`` (exec: the command line's
    libraries are gone), and every serving process has the allocator settings in its
    environment, which glibc and pyarrow read when it starts; the service answers."""
    port = free_port()
    env = {**os.environ, "CMM_GEO_DATA_DIR": str(tmp_path)}
    for k in ("CMM_GEO_DATABASE_URL", "MALLOC_ARENA_MAX", "ARROW_DEFAULT_MEMORY_POOL"):
        env.pop(k, None)
    cli = Path(sys.executable).with_name("cmm-geo")
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "cmm-geo serve exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lookup?q=Rho") as r:
                    assert json.load(r)["comune"]["istat_code"] == "015182"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("cmm-geo serve did not answer within 120 s")
                time.sleep(0.3)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"uvicorn", b"api.main:app"], cmdline
        pids = [proc.pid]
        for pid in pids:  # grows while walked: every descendant
            pids += _children(pid)
        environs = []
        for pid in pids:
            try:
                raw = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            environs.append(dict(v.split(b"=", 1) for v in raw.split(b"\0") if b"=" in v))
        serving = [e for e in environs if b"CMM_GEO_DATA_DIR" in e]
        assert len(serving) >= workers, f"expected {workers} workers, found {len(serving)}"
        for e in serving:
            assert e.get(b"MALLOC_ARENA_MAX") == str(memory.ARENAS).encode()
            assert e.get(b"ARROW_DEFAULT_MEMORY_POOL") == b"system"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
