"""Where errors become responses: one place for the whole service."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import json_response
from geo.errors import GeoError, InvalidParameter, ServiceUnavailable
from geo.store import unavailable

log = logging.getLogger("cmm_geo")

#: Paths answering by the OGC API rules (400 for a bad parameter) rather than 422.
OGC_PREFIXES = ("/collections", "/conformance")
#: OGC resources matched exactly (the landing page and the API definition).
OGC_PATHS = ("/", "/api")


def _is_ogc(path: str) -> bool:
    return path.startswith(OGC_PREFIXES) or path in OGC_PATHS


def _wants_html(request: Request) -> bool:
    """An OGC resource asked for as HTML (``f=html`` or a browser's Accept)."""
    if not _is_ogc(request.url.path):
        return False
    from geo.ogc import negotiate

    f = request.query_params.get("f")
    return negotiate(f if f in ("json", "html") else None, request.headers.get("accept")) == "html"


def _language(request: Request) -> str:
    """``it`` or ``en``: ``?lang=``, else Accept-Language, else Italian. On the OGC paths
    ``api.page_language`` has already written ``?lang=`` (and, for pages, the cookie) into
    the header; elsewhere ``?lang=`` is read here. JSON never depends on the cookie."""
    from geo.webapp.i18n import negotiate

    return negotiate(request.headers.get("accept-language"), request.query_params.get("lang"))


def _reply_language(request: Request) -> str:
    """The language of an error's words: :func:`_language`, except that JSON for a program
    that asked for no language (no ``?lang=``, no Accept-Language) is English, as every
    API error always was. Validation and domain errors follow this one rule."""
    if not _wants_html(request) and not (
        request.headers.get("accept-language") or request.query_params.get("lang")
    ):
        return "en"
    return _language(request)


def _answer(request: Request, body: dict, status_code: int, headers=None):
    """The error as JSON, or as an HTML page when HTML was asked for (every value escaped)."""
    if not _wants_html(request):
        return json_response(body, status_code=status_code, headers=headers)
    from html import escape

    from fastapi.responses import HTMLResponse

    # The language of the OGC pages (Accept-Language; ?lang= and the cookie become it).
    lang = _language(request)
    words = _PAGE_WORDS[lang]
    code = escape(str(body.get("code", "Error")))
    heading = _STATUS_WORDS[lang].get(status_code) or escape(_reason(status_code))
    title = f"{heading} ({status_code} {code})"
    # Request validation reports every bad parameter: the first is the description.
    others = [
        f"<li><code>{escape(str(d.get('parameter')))}</code>: {escape(str(d.get('message')))}</li>"
        for d in (body.get("details") or [])[1:]
        if isinstance(d, dict) and "parameter" in d and "message" in d
    ]
    page = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_PAGE_STYLE}</style></head><body>"
        f'<h1>{heading}</h1><p class="code">{status_code} {code}</p>'
        f"<p>{escape(str(body.get('description', '')))}</p>"
        + (
            f"<p>{words['parameter']}: <code>{escape(str(body['parameter']))}</code></p>"
            if body.get("parameter")
            else ""
        )
        + (f"<p>{words['also']}:</p><ul>{''.join(others)}</ul>" if others else "")
        + f'<p><a href="/?f=html">{words["home"]}</a></p></body></html>'
    )
    return HTMLResponse(
        page, status_code=status_code, headers={**(headers or {}), "Content-Language": lang}
    )


#: The look of the OGC pages (``geo/ogc/templates/base.html``), for the error page.
_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;"
    "color:#222}h1{color:#8a1c1c}code{background:#f3f3f3}.code{color:#555;margin-top:-.5rem}"
    "a:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}"
)

#: The heading of an HTML error page, per language and status (else the HTTP reason).
_STATUS_WORDS = {
    "it": {
        400: "Richiesta non valida", 401: "Accesso richiesto", 403: "Operazione non consentita",
        404: "Non trovato", 405: "Metodo non consentito", 406: "Formato non disponibile",
        409: "Conflitto", 412: "Il dato è cambiato nel frattempo", 413: "Richiesta troppo grande",
        414: "Indirizzo troppo lungo", 415: "Tipo di file non supportato",
        422: "Dati non validi", 429: "Troppe richieste", 500: "Errore interno",
        503: "Servizio momentaneamente non disponibile", 504: "Tempo scaduto",
    },
    "en": {
        400: "Bad request", 401: "Sign-in required", 403: "Not allowed", 404: "Not found",
        405: "Method not allowed", 406: "Format not available", 409: "Conflict",
        412: "The data changed meanwhile", 413: "Request too large", 414: "Address too long",
        415: "Unsupported file type", 422: "Invalid data", 429: "Too many requests",
        500: "Internal error", 503: "Service temporarily unavailable", 504: "Timed out",
    },
}  # fmt: skip


def _reason(status_code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


#: The words of an HTML error page, per language.
_PAGE_WORDS = {
    "it": {"parameter": "Parametro", "home": "Pagina iniziale", "also": "Inoltre"},
    "en": {"parameter": "Parameter", "home": "Home", "also": "Also"},
}


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and stray exceptions to JSON bodies."""

    @app.exception_handler(GeoError)
    async def geo_error(request: Request, exc: GeoError):
        status = exc.status
        ogc = _is_ogc(request.url.path)
        if isinstance(exc, InvalidParameter) and status == 400 and not ogc:
            status = 422
        # The description in Italian when the raiser wrote it (else English, said so).
        lang = _reply_language(request)
        said = lang if exc.message_it is not None else "en"
        # e.g. WWW-Authenticate on 401
        headers = {**(getattr(exc, "headers", None) or {}), "Content-Language": said}
        return _answer(request, exc.to_dict(lang), status, headers)

    @app.exception_handler(SQLAlchemyError)
    async def store_error(request: Request, exc: SQLAlchemyError):
        # Database down, hung or too slow → 503 + Retry-After (geo.store.unavailable decides).
        err = unavailable(exc)
        if err is None:
            return await unexpected(request, exc)
        return await geo_error(request, err)

    try:  # a DB-API error that escaped SQLAlchemy's wrapping (raw psycopg use)
        from psycopg import Error as PsycopgError

        app.add_exception_handler(PsycopgError, store_error)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # pydantic's English, or Italian by the error's type and bounds (api.validation_text);
        # ``type`` lets programs tell errors apart whatever the language.
        from api.validation_text import message, where

        lang = _reply_language(request)
        problems = []
        for e in exc.errors():
            problems.append(
                {
                    "parameter": where(e),
                    "message": message(e, lang),
                    "type": str(e.get("type") or "invalid"),
                }
            )
        first = problems[0] if problems else {"parameter": "request", "message": "invalid"}
        status = 400 if _is_ogc(request.url.path) else 422
        return _answer(
            request,
            {
                "code": "InvalidParameterValue",
                "description": f"{first['parameter']}: {first['message']}",
                "parameter": first["parameter"],
                "details": problems,
            },
            status,
            {"Content-Language": lang},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _answer(
            request,
            {"code": code, "description": str(exc.detail)},
            exc.status_code,
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # pragma: no cover - last resort
        err = exc if isinstance(exc, ServiceUnavailable) else unavailable(exc)
        if err is not None:  # raised outside the routes (a middleware): still a 503
            return json_response(err.to_dict(), status_code=err.status, headers=err.headers)
        log.exception("unhandled error on %s", request.url.path)
        return json_response(
            {"code": "ServerError", "description": "internal error; it has been logged"},
            status_code=500,
        )
