"""A real uvicorn server of the app for browser and client tests (one place to start it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_app(
    env: dict[str, str],
    prefix: str = "cmm-geo-server-",
    *,
    workers: int = 1,
    database_url: str | None = None,
    access_log: Path | None = None,
    ready_path: str = "/maps",
) -> Iterator[str]:
    """Run ``uvicorn api.main:app`` with ``env`` (``workers`` processes) over an embedded
    store in a fresh data dir (removed afterwards), or over ``database_url``; yield its base
    URL once ``ready_path`` answers. With ``access_log``, uvicorn logs every request there (to
    see what a client really asked the server)."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix=prefix)
    full = {**os.environ, **env, "CMM_GEO_DATA_DIR": data_dir, "CMM_GEO_PORT": str(port)}
    full.pop("CMM_GEO_DATABASE_URL", None)
    full.pop("CMM_GEO_BASE_URL", None)
    if database_url:
        full["CMM_GEO_DATABASE_URL"] = database_url
    log_path = access_log or Path(data_dir) / "uvicorn.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info" if access_log else "warning",
         "--workers", str(workers)],
        cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.close()
                tail = log_path.read_text()[-3000:]
                pytest.fail(f"uvicorn exited: {tail}")
            try:
                with urllib.request.urlopen(base + ready_path, timeout=30) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not answer {ready_path} within 120 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
