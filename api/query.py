"""A request's query, parsed once for the layers that read it before routing."""

from __future__ import annotations

from urllib.parse import parse_qsl

#: The last query parsed and its pairs: the page language, the filter budget and the short
#: lane each read the same request's query, one after the other (~10 µs a parse of a
#: filtered page's query).
_last: tuple[bytes, tuple[tuple[str, str], ...]] = (b"", ())


def query_pairs(raw: bytes) -> tuple[tuple[str, str], ...]:
    """``parse_qsl`` of a raw query string (latin-1, as ASGI gives it; blank values kept;
    undecodable escapes replaced), the same (immutable) pairs for the same bytes."""
    global _last
    last = _last
    if last[0] == raw:
        return last[1]
    pairs = tuple(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    _last = (raw, pairs)
    return pairs
