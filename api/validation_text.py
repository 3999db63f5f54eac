"""Pydantic's request-validation errors in the asked language (Italian besides English).

FastAPI checks the declared parameters (``limit: int``, ``Query(ge=1)``, ``Literal``…)
with pydantic, whose messages are English only. An Italian page or JSON error then read
"Input should be a valid integer". Each error is put into Italian from its ``type`` and
its ``ctx`` (the bounds, the expected values), never by matching the English text, which
changes between pydantic versions; English stays exactly as pydantic says it. Types not
listed keep pydantic's text after a short Italian lead-in.
"""

from __future__ import annotations

from typing import Any

#: Italian text per pydantic error type; ``{name}`` fields come from the error's ``ctx``.
MESSAGES_IT: dict[str, str] = {
    "missing": "valore obbligatorio mancante",
    "extra_forbidden": "non previsto",
    "int_parsing": "deve essere un numero intero",
    "int_type": "deve essere un numero intero",
    "int_from_float": "deve essere un numero intero, senza decimali",
    "int_parsing_size": "numero intero troppo grande",
    "float_parsing": "deve essere un numero (con il punto come separatore decimale)",
    "float_type": "deve essere un numero",
    "finite_number": "deve essere un numero finito",
    "decimal_parsing": "deve essere un numero decimale",
    "decimal_type": "deve essere un numero decimale",
    "bool_parsing": "deve essere true o false (oppure 1/0, yes/no, on/off)",
    "bool_type": "deve essere true o false",
    "greater_than": "deve essere maggiore di {gt}",
    "greater_than_equal": "deve essere maggiore o uguale a {ge}",
    "less_than": "deve essere minore di {lt}",
    "less_than_equal": "deve essere minore o uguale a {le}",
    "multiple_of": "deve essere un multiplo di {multiple_of}",
    "string_type": "deve essere un testo",
    "string_unicode": "deve essere un testo in UTF-8",
    "string_too_short": "almeno {min_length} {characters}",
    "string_too_long": "al massimo {max_length} {characters}",
    "string_pattern_mismatch": "non ha la forma attesa (espressione regolare {pattern})",
    "string_not_ascii": "solo caratteri ASCII",
    "literal_error": "deve essere {expected}",
    "enum": "deve essere {expected}",
    "too_short": "almeno {min_length} {items}, non {actual_length}",
    "too_long": "al massimo {max_length} {items}, non {actual_length}",
    "json_invalid": "JSON non valido: {error}",
    "json_type": "il JSON deve essere un testo",
    "value_error": "valore non valido: {error}",
    "assertion_error": "valore non valido: {error}",
    "dict_type": "deve essere un oggetto JSON",
    "model_type": "deve essere un oggetto JSON",
    "model_attributes_type": "deve essere un oggetto JSON",
    "list_type": "deve essere una lista",
    "tuple_type": "deve essere una lista",
    "set_type": "deve essere una lista",
    "date_type": "deve essere una data",
    "date_parsing": "deve essere una data nella forma AAAA-MM-GG",
    "date_from_datetime_parsing": "deve essere una data (AAAA-MM-GG)",
    "datetime_type": "deve essere una data con l'ora",
    "datetime_parsing": "deve essere una data con l'ora (ISO 8601, es. 2025-01-31T12:00:00Z)",
    "datetime_from_date_parsing": "deve essere una data o una data con l'ora (ISO 8601)",
    "time_parsing": "deve essere un'ora (HH:MM[:SS])",
    "uuid_parsing": "deve essere un UUID",
    "uuid_type": "deve essere un UUID",
    "url_parsing": "deve essere un indirizzo web (URL)",
    "url_type": "deve essere un indirizzo web (URL)",
    "url_scheme": "l'indirizzo deve iniziare con {expected_schemes}",
    "url_too_long": "al massimo {max_length} {characters}",
}

#: Types whose Italian text also shows what was given (a short scalar only): "non «abc»".
ECHO = frozenset({
    "int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "finite_number",
    "decimal_parsing", "bool_parsing", "bool_type", "greater_than", "greater_than_equal",
    "less_than", "less_than_equal", "multiple_of", "string_pattern_mismatch", "literal_error",
    "enum", "date_parsing", "date_from_datetime_parsing", "datetime_parsing",
    "datetime_from_date_parsing", "time_parsing", "uuid_parsing", "url_parsing",
})  # fmt: skip
#: Longest echo of a given value (the rest is cut with "…").
ECHO_MAX = 60
FALLBACK_IT = "valore non valido ({msg})"


def _plural(n: Any, one: str, many: str) -> str:
    return one if n == 1 else many


def _text(value: Any) -> str:
    """A ``ctx`` value as text: ``180.0`` → ``180`` (as pydantic's own message shows it)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _or_list(expected: Any) -> str:
    """pydantic's ``'a', 'b' or 'c'`` → ``'a', 'b' o 'c'`` (its last separator only)."""
    text = str(expected)
    head, sep, tail = text.rpartition(" or ")
    return f"{head} o {tail}" if sep else text


def _given(value: Any) -> str | None:
    """A short rendering of the value given, or None when it is not a plain scalar."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    raw = str(value)
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in raw[:ECHO_MAX])
    return text if len(raw) <= ECHO_MAX else text[: ECHO_MAX - 1] + "…"


def where(error: dict[str, Any]) -> str:
    """The parameter or body field at fault: ``limit``, ``body``, ``features.0.geometry``.

    FastAPI's ``loc`` starts with the source (query, path, body); a body that is not JSON
    ends with the character offset instead of a field, which names no parameter."""
    loc = list(error.get("loc") or ())
    source = loc[0] if loc else None
    if source == "body" and error.get("type") == "json_invalid":
        return "body"
    rest = loc[1:] if source in ("query", "path", "body") else loc
    return ".".join(str(p) for p in rest) or ("body" if source == "body" else "request")


def message(error: dict[str, Any], lang: str) -> str:
    """The text of one pydantic error (an item of ``errors()``) in ``lang``."""
    msg = str(error.get("msg") or "invalid")
    if lang != "it":
        return msg
    kind = str(error.get("type") or "")
    template = MESSAGES_IT.get(kind)
    if template is None:
        return FALLBACK_IT.format(msg=msg)
    ctx = {k: _text(v) for k, v in (error.get("ctx") or {}).items()}
    for key in ("min_length", "max_length"):
        if key in ctx:
            n = (error.get("ctx") or {})[key]
            ctx.setdefault("characters", _plural(n, "carattere", "caratteri"))
            ctx.setdefault("items", _plural(n, "elemento", "elementi"))
    if "expected" in ctx:
        ctx["expected"] = _or_list(ctx["expected"])
    try:
        text = template.format(**ctx)
    except (KeyError, IndexError, ValueError):  # a pydantic without that ctx field
        return FALLBACK_IT.format(msg=msg)
    loc = tuple(error.get("loc") or ())
    if kind == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        text = f"{text} (carattere {loc[1] + 1})"
    given = _given(error.get("input")) if kind in ECHO else None
    return f"{text}, non «{given}»" if given is not None else text
