"""The smallest ASGI app serving fixed bytes: the floor a Python server can reach.

bench/anchors.py runs it under uvicorn (one worker, uvloop + httptools) with the bytes of
this service's 133-comuni page, to compare the response cache with it. ``STATIC_BODY`` is
the file, ``STATIC_TYPE`` its content type (or ``STATIC_HEADERS`` all the headers); every
GET answers them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BODY = Path(os.environ["STATIC_BODY"]).read_bytes()
#: ``STATIC_HEADERS``: a JSON file of [name, value] pairs sent instead of the content type
#: alone (the service's own headers: security, links, caching), so the same response.
_HEADERS = os.environ.get("STATIC_HEADERS")
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        *(
            [(k.lower().encode(), v.encode()) for k, v in json.loads(Path(_HEADERS).read_text())]
            if _HEADERS
            else [(b"content-type", os.environ.get("STATIC_TYPE", "application/json").encode())]
        ),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Answer every HTTP request with BODY; accept the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(MESSAGE)
