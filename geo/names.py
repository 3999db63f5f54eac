"""Forgiving name matching: case, accents, apostrophes and spacing do not matter.

``Cassano d’Adda``, ``CASSANO D'ADDA``, ``cassano dadda`` and ``Cassano  d Adda`` all
normalise to the same key. Misses get suggestions ranked by similarity (rapidfuzz).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from rapidfuzz import fuzz, process

_APOSTROPHES = "'’‘`´ʼ′"
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Lowercase, strip accents, turn every run of punctuation or space into one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NON_ALNUM.sub(" ", ascii_only).strip()


def name_key(text: str) -> str:
    """Matching key: folded, with apostrophes and spaces removed (``d'Adda`` = ``dAdda``)."""
    for a in _APOSTROPHES:
        text = text.replace(a, "")
    return fold(text).replace(" ", "")


class NameIndex:
    """Maps forgiving keys of names to values; suggests near names on a miss."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        """``items``: (display name, value) pairs; keys are derived from the names."""
        self._by_key: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in items:
            self._by_key[name_key(name)] = value
            self._names[name] = value
        self._choices = {name: fold(name) for name in self._names}

    def get(self, text: str) -> str | None:
        """The value whose name matches ``text`` forgivingly, or None."""
        return self._by_key.get(name_key(text))

    def suggest(self, text: str, limit: int = 5, cutoff: float = 60.0) -> list[dict]:
        """Names most similar to ``text``, best first: ``{name, value, score}``."""
        query = fold(text)
        if not query:
            return []
        hits = process.extract(
            query, self._choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=cutoff
        )
        return [
            {"name": name, "value": self._names[name], "score": round(score, 1)}
            for _, score, name in hits
        ]
