"""Store and CPU work of the hot read paths, off the event loop, and given up when the
client leaves.

``run_sync`` is a plain ``loop.run_in_executor`` with the caller's context (the per-request
revision memo lives in a ContextVar): anyio's ``to_thread`` — what Starlette's
``run_in_threadpool`` uses — spends ~60 µs per call in capacity limiters, cancel scopes and
backend lookups, twice per items request. Its pool is as large as anyio's default (40), so
the service's concurrency does not change.

``run_abandonable`` also watches the connection: when the client disconnects before the
answer is ready, the request's abandon event is set, and the query waiting in the database
is cancelled (``geo.store.abandon_on``), so a client that gives up on a slow filter frees
its worker and its connection at once instead of when the query ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import Message, Receive

from geo.store import abandon_on

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="cmm-geo-read")


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the read pool, in a copy of the caller's context."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(ctx.run, fn, *args))


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
