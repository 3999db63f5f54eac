"""Forgiving name keys and suggestions."""

from __future__ import annotations

import pytest

from geo.names import NameIndex, fold, name_key


@pytest.mark.parametrize(
    "variant",
    ["Cassano d'Adda", "Cassano d’Adda", "cassano dadda", "CASSANO D ADDA", " Cassano   d`Adda "],
)
def test_variants_share_a_key(variant):
    assert name_key(variant) == name_key("Cassano d'Adda")


def test_accents_fold():
    assert fold("Città  Metropolitana") == "citta metropolitana"
    assert name_key("Cassina de’ Pecchi") == name_key("cassina de pecchi")


def test_suggestions_ranked():
    idx = NameIndex([("Cassano d'Adda", "1"), ("Assago", "2"), ("Cassina de' Pecchi", "3")])
    assert idx.get("Cassano dAda") is None
    hits = idx.suggest("Cassano dAda")
    assert hits[0]["name"] == "Cassano d'Adda"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert idx.suggest("   ") == []
