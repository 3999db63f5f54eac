"""Request bodies read safely: only after authentication, capped in size and in time.

FastAPI parses ``File``/``Form``/``Body`` parameters before the handler runs, so a
stranger could make the server spool a whole upload before hearing 401. Write routes
therefore take the raw :class:`Request`, authenticate, and only then read the body
through :func:`limited_stream`: refused with 413 as soon as it passes the cap (whatever
``Content-Length`` claims, or when it is absent) and with 408 when the client takes longer
than ``body_timeout_s`` to send it. :func:`read_form` parses a multipart body from that
stream, accepting only the parts a route names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from geo.errors import InvalidParameter, PayloadTooLarge, RequestTimeout

MB = 1024 * 1024
#: Room for multipart boundaries, part headers and the small text fields of a form.
FORM_SLACK = 64 * 1024
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _too_large(limit_mb: float, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what}: larger than the upload limit of {limit_mb:g} MB (CMM_GEO_MAX_UPLOAD_MB)",
        parameter="file",
    )


async def limited_stream(
    request: Request, *, limit: int, timeout_s: float, limit_mb: float, what: str = "body"
) -> AsyncGenerator[bytes, None]:
    """The body's chunks; 413 past ``limit`` bytes, 408 past ``timeout_s`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidParameter("Content-Length", f"not a byte count: {declared!r}")
        if int(declared) > limit:
            raise _too_large(limit_mb, what)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    chunks = request.stream().__aiter__()
    size = 0
    while True:
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(chunks.__anext__(), remaining)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"{what}: not received within {timeout_s:g} s (CMM_GEO_BODY_TIMEOUT_S)"
            ) from None
        except ClientDisconnect:
            raise InvalidParameter(what, "the client disconnected while sending it") from None
        size += len(chunk)
        if size > limit:
            raise _too_large(limit_mb, what)
        yield chunk


async def read_body(request: Request, *, limit_mb: float, timeout_s: float) -> bytes:
    """The whole (small) body, within the size and time limits."""
    parts = [
        c
        async for c in limited_stream(
            request, limit=int(limit_mb * MB), timeout_s=timeout_s, limit_mb=limit_mb
        )
    ]
    return b"".join(parts)


def safe_name(filename: str | None, default: str = "upload") -> str:
    """The base name of a client's file name: no folders, no ``..``, no control characters."""
    raw = (filename or "").replace("\\", "/")
    name = "".join(ch for ch in PurePosixPath(raw).name if ch.isprintable())
    return default if name in ("", ".", "..") else name[:200]


@dataclass
class Upload:
    """One uploaded file: its safe name and its bytes (within the upload limit)."""

    filename: str
    data: bytes


@dataclass
class Form:
    """The accepted parts of a multipart body."""

    files: dict[str, Upload] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A text field, None when absent or blank."""
        value = self.fields.get(name)
        return value if value and value.strip() else None

    def flag(self, name: str) -> bool:
        """A boolean field (true/false, 1/0, yes/no, on/off)."""
        value = (self.fields.get(name) or "").strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidParameter(name, f"expected true or false, got {value!r}")


async def read_form(
    request: Request,
    *,
    files: tuple[str, ...],
    required: tuple[str, ...],
    fields: tuple[str, ...],
    limit_mb: float,
    timeout_s: float,
) -> Form:
    """Parse a multipart/form-data body holding only the named ``files`` and ``fields``."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise InvalidParameter(
            "Content-Type",
            f"send multipart/form-data with the file in {files[0]!r} (got {ctype or 'none'!r})",
        )
    limit = int(limit_mb * MB)
    stream = limited_stream(
        request,
        limit=len(files) * limit + FORM_SLACK,
        timeout_s=timeout_s,
        limit_mb=limit_mb,
    )
    parser = MultiPartParser(
        request.headers, stream, max_files=len(files), max_fields=len(fields) + 1
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidParameter("body", f"malformed multipart body: {exc.message}") from None
    try:
        return await _accept(form, files, required, fields, limit, limit_mb)
    finally:
        await form.close()


async def _accept(
    form: Any,
    files: tuple[str, ...],
    required: tuple[str, ...],
    fields: tuple[str, ...],
    limit: int,
    limit_mb: float,
) -> Form:
    """Check the parsed parts: known names, each once, files as files, within the limit."""
    keys = list(form.keys())
    unknown = sorted(set(keys) - set(files) - set(fields))
    if unknown:
        raise InvalidParameter(
            unknown[0],
            f"unknown form field(s) {', '.join(unknown)}; accepted: {', '.join(files + fields)}",
            unknown=unknown,
        )
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InvalidParameter(repeated[0], "given more than once")
    out = Form()
    for name in files:
        value = form.get(name)
        if value is None:
            if name in required:
                raise InvalidParameter(name, "missing: send the file in this form field")
            continue
        if not isinstance(value, UploadFile):
            raise InvalidParameter(name, "expected a file, got a text field")
        filename = safe_name(value.filename)
        data = await value.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit_mb, filename)
        out.files[name] = Upload(filename, data)
    for name in fields:
        value = form.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidParameter(name, "expected a text field, got a file")
        out.fields[name] = value
    return out


def form_body(**fields: tuple[str, str]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a multipart form (for ``openapi_extra`` of a route that
    reads its own body): ``name=(kind, description)`` with kind ``file`` (required),
    ``file?`` (optional file), ``string`` or ``boolean``."""
    props: dict[str, Any] = {}
    required = []
    for name, (kind, description) in fields.items():
        if kind.startswith("file"):
            props[name] = {"type": "string", "format": "binary", "description": description}
            if kind == "file":
                required.append(name)
        else:
            props[name] = {"type": kind, "description": description}
    schema = {"type": "object", "required": required, "properties": props}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }
