"""Error tree of the domain layer.

Each error carries the HTTP status and a short machine code; the API maps them to
responses in one place (``api.errors``), the CLI prints them. Nothing here imports
a web framework.

A message is English; the place that raises it may add its Italian form (``it=``), which
the API serves to Italian readers (HTML pages by default, JSON when asked): the text is
written where the facts are, never recovered by matching the English afterwards.
"""

from __future__ import annotations

from typing import Any

#: Longest echo of a value in an Italian message (the rest is cut with "…").
ECHO_MAX = 60


def quoted(value: object) -> str:
    """A value given by the user, as Italian messages echo it: «…», at most
    :data:`ECHO_MAX` characters, non-printable characters shown as U+FFFD.
    (Escaping for HTML is the page's job.)"""
    raw = str(value)
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in raw[:ECHO_MAX])
    return f"«{text}»" if len(raw) <= ECHO_MAX else f"«{text[: ECHO_MAX - 1]}…»"


class GeoError(Exception):
    """Base class: a problem the user can act on.

    ``message`` is English (clients and tests read it); ``it``, when given, is the same
    message in Italian, chosen by :meth:`text` for an Italian reader.
    """

    status: int = 400
    code: str = "InvalidParameterValue"

    def __init__(
        self, message: str, *, details: Any = None, it: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.message_it = it
        self.details = details
        self.extra = extra

    def text(self, lang: str = "en") -> str:
        """The message in ``lang`` (``it`` or ``en``): English when no Italian was given."""
        return self.message_it if lang == "it" and self.message_it is not None else self.message

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        """JSON body of the error, its description in ``lang``."""
        body: dict[str, Any] = {"code": self.code, "description": self.text(lang)}
        if self.details is not None:
            body["details"] = self.details
        body.update(self.extra)
        return body


class InvalidParameter(GeoError):
    """A request parameter is missing or malformed (HTTP 400)."""

    status = 400
    code = "InvalidParameterValue"

    def __init__(
        self, parameter: str, message: str, *, it: str | None = None, **extra: Any
    ) -> None:
        super().__init__(
            f"{parameter}: {message}",
            it=None if it is None else f"{parameter}: {it}",
            parameter=parameter,
            **extra,
        )
        self.parameter = parameter


class UnprocessableParameter(InvalidParameter):
    """Like InvalidParameter but answered as 422 (validation of query parameters)."""

    status = 422


class NotFound(GeoError):
    """The thing asked for does not exist (HTTP 404)."""

    status = 404
    code = "NotFound"


class Unauthorized(GeoError):
    """No or an unknown bearer token (HTTP 401)."""

    status = 401
    code = "Unauthorized"


class Forbidden(GeoError):
    """The token is valid but may not do this (HTTP 403)."""

    status = 403
    code = "Forbidden"


class Conflict(GeoError):
    """The write conflicts with stored data (HTTP 409)."""

    status = 409
    code = "Conflict"


class PreconditionFailed(GeoError):
    """``If-Match`` names a version that is no longer current (HTTP 412): someone else
    changed the feature since the client read it."""

    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(GeoError):
    """An upload exceeds a configured limit (HTTP 413)."""

    status = 413
    code = "PayloadTooLarge"


class ValidationFailed(GeoError):
    """Input data failed validation; ``details`` lists every problem with where it is (422)."""

    status = 422
    code = "ValidationFailed"


class RequestTimeout(GeoError):
    """The client took too long to send its request body (HTTP 408)."""

    status = 408
    code = "RequestTimeout"


class UriTooLong(GeoError):
    """The request target exceeds ``max_url_length`` (HTTP 414)."""

    status = 414
    code = "URITooLong"


class TooManyRequests(GeoError):
    """A client sent more of a costly kind of request than its rate allows (HTTP 429).

    ``retry_after`` (seconds) becomes a ``Retry-After`` header.
    """

    status = 429
    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class ServiceUnavailable(GeoError):
    """The store is unreachable or the query ran out of its time budget (HTTP 503).

    ``retry_after`` (seconds) becomes a ``Retry-After`` header.
    """

    status = 503
    code = "ServiceUnavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class DataError(Exception):
    """The committed or reference data is inconsistent (a bug in the data, not the request)."""
