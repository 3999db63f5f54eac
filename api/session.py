"""The browser session over HTTP: cookie, CSRF, client address, and who writes.

* Cookie ``cmmgeo_session``: the session id, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``,
  ``Secure`` when the public URL is HTTPS (``CMM_GEO_BASE_URL``, or ``X-Forwarded-Proto``
  from a trusted proxy — :func:`api.security.public_base_url` decides, never a raw header).
* Every POST form carries ``csrf_token`` (the HMAC of the session id, or before sign-in
  of the ``cmmgeo_pre`` cookie): refused with 403 without it. Scripts send it as
  ``X-CSRF-Token``.
* :func:`write_principal` is who writes through the JSON API: a bearer token (machines),
  else a session cookie with its ``X-CSRF-Token`` header (the application's scripts).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.security import _first, _trusted, public_base_url
from api.uploads import read_body
from geo.accounts import sessions
from geo.auth import BearerRequired, Principal, authenticate
from geo.errors import Forbidden, GeoError, InvalidParameter

SESSION_COOKIE = "cmmgeo_session"
PRE_COOKIE = "cmmgeo_pre"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: Largest form body accepted (the intervention form carries a drawn geometry).
FORM_LIMIT_MB = 2.0


class CsrfFailed(Forbidden):
    """A form or a script's write without the CSRF token of its session (403)."""

    def __init__(self) -> None:
        super().__init__(
            "missing or wrong CSRF token: send the form from the page, or the "
            "X-CSRF-Token header with the session's token (GET /app/session)",
            reason="csrf",
        )


def is_https(request: Request) -> bool:
    """Whether the browser reaches the service over HTTPS (for the cookie's Secure flag)."""
    settings = request.app.state.settings
    return public_base_url(request, settings).startswith("https://")


def client_address(request: Request) -> str | None:
    """The client's address: ``X-Forwarded-For``'s first hop only from a trusted proxy."""
    peer = request.client.host if request.client else None
    settings = request.app.state.settings
    if _trusted(peer, settings.trusted_proxies):
        forwarded = _first(request.headers.get("x-forwarded-for"))
        if forwarded and len(forwarded) <= 64:
            return forwarded
    return peer


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """A cookie with the session flags (HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Delete a cookie (same flags, so the browser matches it)."""
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=is_https(request))


def session_of(request: Request) -> sessions.Session | None:
    """The request's live session, or None (run in the threadpool: it reads the store)."""
    cached = request.scope.get("cmmgeo.session", False)
    if cached is not False:
        return cached
    found = sessions.resolve_session(request.cookies.get(SESSION_COOKIE))
    request.scope["cmmgeo.session"] = found
    return found


async def current_session(request: Request) -> sessions.Session | None:
    """:func:`session_of` off the event loop."""
    return await run_in_threadpool(session_of, request)


def check_csrf(session: sessions.Session | None, token: str | None) -> None:
    """CsrfFailed unless ``token`` is the session's CSRF token."""
    if session is None or not sessions.csrf_ok(session.token, token):
        raise CsrfFailed()


def principal_of(request: Request, authorization: str | None) -> Principal:
    """Who writes through the JSON API (sync; call from the threadpool).

    A bearer token wins (machines); otherwise the session cookie, whose writes need the
    ``X-CSRF-Token`` header (a cross-site page cannot read or forge it). Neither: 401.
    """
    if authorization:
        return authenticate(authorization)
    session = session_of(request) if request.cookies.get(SESSION_COOKIE) else None
    if session is None:
        authenticate(None)  # raises the 401 with its Bearer challenge
        raise BearerRequired("sign in or send a bearer token")  # pragma: no cover
    check_csrf(session, request.headers.get(CSRF_HEADER))
    return session.principal


async def write_principal(request: Request, authorization: str | None) -> Principal:
    """:func:`principal_of` off the event loop, before any byte of the body is read."""
    return await run_in_threadpool(principal_of, request, authorization)


async def read_urlencoded(request: Request) -> dict[str, list[str]]:
    """A small ``application/x-www-form-urlencoded`` body (capped in size and time)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype and request.headers.get("content-length", "0") == "0":
        return {}  # an empty form (its CSRF check then refuses it)
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidParameter("Content-Type", "send the form (application/x-www-form-urlencoded)")
    settings = request.app.state.settings
    raw = await read_body(
        request,
        limit_mb=min(FORM_LIMIT_MB, settings.max_upload_mb),
        timeout_s=settings.body_timeout_s,
    )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("body", "the form is not UTF-8") from None
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError:
        raise InvalidParameter("body", "more than 1000 form fields") from None


def form_status(exc: GeoError) -> int:
    """The status of a page refusing a form: a bad value is 422 (as in the API), not 400."""
    return 422 if exc.status == 400 else exc.status


def form_value(data: dict[str, list[str]], name: str, limit: int = 1000) -> str:
    """One posted field (the last one if repeated), cut at ``limit`` characters."""
    values = data.get(name) or [""]
    return values[-1][:limit]


def lang_of(request: Request) -> str:
    """The page's language: ``?lang=``, the ``lang`` cookie, then Accept-Language."""
    from geo.accounts.messages import negotiate

    return negotiate(
        request.headers.get("accept-language"),
        request.query_params.get("lang") or request.cookies.get("lang"),
    )


def session_json(session: sessions.Session | None) -> dict[str, Any]:
    """What ``GET /app/session`` answers."""
    if session is None:
        return {"user": None}
    return {"user": session.user.to_dict(), "csrf_token": session.csrf}
