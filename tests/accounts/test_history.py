"""Every create, update and delete of an intervention is recorded with who, when and what
changed, inside the write's transaction (API, app, imports), on both backends."""

from __future__ import annotations

import pytest

from geo import interventions as iv
from geo.auth import Principal
from geo.errors import Forbidden
from geo.interventions.history import history


def _feature(fid: str, **props) -> dict:
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [9.0468, 45.5276]},  # Rho
        "properties": {"title": f"Test {fid}", "programme": "PINQUA", **props},
    }


def test_create_update_delete_are_recorded(backend):
    maria = Principal("editor", comuni=frozenset({"015182"}), user="maria")
    iv.create_feature(_feature("hist-1", amount_eur=1000), principal=maria, engine=backend)
    iv.patch_feature(
        "hist-1",
        {"properties": {"title": "Nuovo titolo", "amount_eur": 2500.5}},
        principal=maria,
        engine=backend,
    )
    moved = {"geometry": {"type": "Point", "coordinates": [9.05, 45.53]}}
    iv.patch_feature("hist-1", moved, principal=maria, engine=backend)
    iv.delete("hist-1", principal=Principal("admin", token_id="abc123"), engine=backend)
    entries = history("hist-1", engine=backend)
    assert [e["action"] for e in entries] == ["delete", "update", "update", "create"]
    assert [e["actor"] for e in entries] == ["token abc123", "maria", "maria", "maria"]
    created = entries[-1]["changes"]
    assert created["title"] == [None, "Test hist-1"]
    assert created["amount_eur"] == [None, 1000.0]
    assert created["geometry"][1] == "POINT (9.0468 45.5276)"
    first_update = entries[2]["changes"]
    assert first_update["title"] == ["Test hist-1", "Nuovo titolo"]
    assert first_update["amount_eur"] == [1000.0, 2500.5]
    assert "programme" not in first_update and "geometry" not in first_update
    assert entries[1]["changes"]["geometry"] == ["POINT (9.0468 45.5276)", "POINT (9.05 45.53)"]
    assert entries[0]["changes"]["title"] == ["Nuovo titolo", None]
    assert entries[0]["at"] >= entries[-1]["at"]


def test_unchanged_rewrite_records_nothing_and_refused_write_records_nothing(backend):
    feature = _feature("hist-2", comuni="Rho")
    iv.create_feature(feature, engine=backend)
    iv.replace_feature("hist-2", feature, engine=backend)  # the same again: no change
    assert [e["action"] for e in history("hist-2", engine=backend)] == ["create"]
    milano_editor = Principal("editor", comuni=frozenset({"015146"}), user="luca")
    with pytest.raises(Forbidden):
        iv.patch_feature(
            "hist-2", {"properties": {"title": "x"}}, principal=milano_editor, engine=backend
        )
    assert len(history("hist-2", engine=backend)) == 1  # rolled back with the write


def test_imports_are_recorded_per_intervention(backend, tmp_path):
    from geo.interventions.reading import read_file

    csv = tmp_path / "rows.csv"
    csv.write_text("id,title,programme,comuni\nimp-1,Uno,PINQUA,Rho\nimp-2,Due,PINQUA,Milano\n")
    iv.upsert(iv.prepare(read_file(csv)), engine=backend)
    for fid in ("imp-1", "imp-2"):
        (entry,) = history(fid, engine=backend)
        assert entry["action"] == "create" and entry["actor"] == "admin"
        assert entry["changes"]["precision"] == [None, "comune"]


def test_seeded_interventions_have_their_creation(backend):
    (entry,) = history("doc-001", engine=backend)[-1:]
    assert entry["action"] == "create" and entry["actor"] == "seed"
