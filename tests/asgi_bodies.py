"""Hostile request bodies sent straight through the app's ASGI interface.

A :class:`Body` hands the app its chunks one by one and counts what the app pulled, so a
test can prove that a write was refused before its body was read, or that a stalled
client is cut off. :func:`asgi_call` sends one request and returns what came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson

MULTIPART = {"Content-Type": "multipart/form-data; boundary=XB"}


class Body:
    """A request body handed to the app chunk by chunk, counting what the app pulled."""

    def __init__(self, chunks: Iterator[bytes], stall_after: int | None = None) -> None:
        self.chunks = chunks
        self.read = 0
        self.stall_after = stall_after

    async def receive(self) -> dict:
        if self.stall_after is not None and self.read >= self.stall_after:
            await asyncio.sleep(30)  # a client that stops sending
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}


def asgi_call(
    app, method: str, path: str, body: Body, headers: dict[str, str]
) -> tuple[int, dict, dict]:
    """One request through ``app``'s ASGI interface: (status, JSON body, headers)."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, body.receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    hdrs = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], orjson.loads(raw), hdrs
