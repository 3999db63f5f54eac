"""Store and CPU work of the hot read paths, off the event loop, and given up when the
client leaves.

``run_sync`` is a plain ``loop.run_in_executor`` with the caller's context (the per-request
revision memo lives in a ContextVar): anyio's ``to_thread`` — what Starlette's
``run_in_threadpool`` uses — spends ~60 µs per call in capacity limiters, cancel scopes and
backend lookups, twice per items request. Its pool is as large as anyio's default (40) on
PostgreSQL, whose reads wait for the database; on the embedded SQLite store it has as many
threads as CPUs (``CMM_GEO_READ_THREADS``): SQLite works inside the process and takes the
GIL back after each row, so forty threads spent their time handing the GIL over to one
another (45 k context switches a second, 40 % of the CPUs idle). Other routes (lookups,
pages) keep Starlette's own threadpool, so a slow filter never delays them.

``run_abandonable`` also watches the connection: when the client disconnects before the
answer is ready, the request's abandon event is set, and the query waiting in the database
is cancelled (``geo.store.abandon_on``), so a client that gives up on a slow filter frees
its worker and its connection at once instead of when the query ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import Message, Receive

from geo.settings import get_settings
from geo.store import abandon_on

T = TypeVar("T")

_POOLS: dict[int, ThreadPoolExecutor] = {}


def read_threads() -> int:
    """How many threads read items (``CMM_GEO_READ_THREADS``, 0 = by store, see above)."""
    settings = get_settings()
    if settings.read_threads:
        return settings.read_threads
    if settings.effective_database_url.startswith("sqlite"):
        return os.cpu_count() or 1
    return 40


#: The pool of the current settings object (by identity: tests change the settings).
_CURRENT: list[Any] = [None, None]


def _pool() -> ThreadPoolExecutor:
    settings = get_settings()
    if _CURRENT[0] is settings:
        return _CURRENT[1]  # type: ignore[no-any-return]
    size = read_threads()
    pool = _POOLS.get(size)
    if pool is None:  # once per size
        pool = _POOLS.setdefault(
            size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="cmm-geo-read")
        )
    _CURRENT[:] = [settings, pool]
    return pool


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the read pool, in a copy of the caller's context."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), functools.partial(ctx.run, fn, *args))


async def run_abandonable(
    receive: Receive, seen: list[Message], fn: Callable[..., T], *args: Any
) -> T:
    """``fn(*args)`` as :func:`run_sync`, its store queries cancelled if the client
    disconnects first. The messages read from ``receive`` meanwhile are appended to
    ``seen`` (to replay to an app that still has to read them), even when ``fn`` fails."""
    gone = threading.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        return await run_sync(_abandonable, gone, fn, *args)
    finally:
        watcher.cancel()


def _abandonable(gone: threading.Event, fn: Callable[..., T], *args: Any) -> T:
    with abandon_on(gone):
        return fn(*args)


def replaying(seen: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages a watcher already took."""
    pending = list(seen)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
