"""The visitor's choice of language for the OGC HTML pages, made as on the app's pages.

The OGC resources and their response cache (``api.ogc_cache``) read the language of
titles and pages from ``Accept-Language`` alone (:func:`geo.ogc.http.negotiate_language`).
A browser's explicit choice — ``?lang=`` or the ``lang`` cookie the map application sets —
is written into that header before they see the request, decided by the application's
rule (:func:`geo.webapp.i18n.negotiate`): so the page, its ``Content-Language``, its ETag
and the cache key agree, with no second negotiation. ``?lang=`` counts for every format
(it is part of the URL); the cookie only when a page is asked for (HTML), so the JSON that
programs read never depends on a browser's cookie. HTML answers say ``Vary: Cookie``, and
a ``?lang=`` choice is remembered in the cookie, as on the application's pages.

A pure ASGI middleware put outside the response cache (``api.main``).
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.query import query_pairs
from geo.ogc import negotiate
from geo.webapp.i18n import lang_of
from geo.webapp.i18n import negotiate as negotiate_lang

LANG_COOKIE = "lang"
#: Paths of the OGC resources (besides ``/``), each with what lies under it.
OGC_PREFIXES = ("/conformance", "/collections", "/api", "/tileMatrixSets")
COOKIE_MAX_AGE = 365 * 86400


def is_ogc_path(path: str) -> bool:
    """``/`` and the OGC API resources (``/collections/…``, ``/conformance``…)."""
    return path == "/" or any(path == p or path.startswith(p + "/") for p in OGC_PREFIXES)


class PageLanguageMiddleware:
    """Put ``?lang=`` / the ``lang`` cookie into ``Accept-Language`` for the OGC resources."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not is_ogc_path(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        raw_query: bytes = scope.get("query_string", b"")
        if not any(w in raw_query.lower() for w in (b"lang", b"html", b"%")):
            accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
            if b"html" not in accept.lower():  # no language chosen, not a page: as it is
                await self.app(scope, receive, send)
                return
        query = query_pairs(raw_query)
        first = {}
        for k, v in query:
            first.setdefault(k, v)
        headers = Headers(scope=scope)
        html = negotiate(first.get("f") or None, headers.get("accept")) == "html"
        chosen = lang_of(first.get("lang") or "")
        remembered = None
        if html and not chosen:
            remembered = lang_of(cookie_parser(headers.get("cookie", "")).get(LANG_COOKIE) or "")
        override = chosen or remembered
        if override:
            lang = negotiate_lang(headers.get("accept-language"), override)
            raw = [(k, v) for k, v in scope["headers"] if k != b"accept-language"]
            scope = {**scope, "headers": [*raw, (b"accept-language", lang.encode())]}
        if not html:
            await self.app(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", []))
                out = MutableHeaders(raw=message["headers"])
                if out.get("content-type", "").startswith("text/html"):
                    vary = out.get("vary", "")
                    if "cookie" not in vary.lower():
                        out["vary"] = f"{vary}, Cookie" if vary else "Cookie"
                    cookies = out.getlist("set-cookie")
                    if (
                        chosen
                        and message["status"] < 400
                        and not any(c.startswith(LANG_COOKIE + "=") for c in cookies)
                    ):
                        out.append(
                            "set-cookie",
                            f"{LANG_COOKIE}={chosen}; Max-Age={COOKIE_MAX_AGE}; Path=/; "
                            "SameSite=lax",
                        )
            await send(message)

        await self.app(scope, receive, send_with_vary)
