"""The 104 documented interventions: loaded, on the right comuni, mapped to the plan."""

from __future__ import annotations

import csv
import unicodedata

import numpy as np
import pandas as pd
import pytest
import shapely

from geo import interventions as iv
from geo.interventions.collection import InterventionsProvider
from geo.interventions.reading import read_csv
from geo.ogc.registry import FeatureQuery, registry
from geo.plan import PLAN_DIR

DEFAULT = iv.DEFAULT_FILE


def _key(name: str) -> str:
    """Independent name normalisation: no accents, apostrophes, case or spaces."""
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in s if ch.isalnum())


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with DEFAULT.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from geo.store import get_engine

    path = tmp_path_factory.mktemp("iv") / "cmm_geo.sqlite"
    return iv.get_store(get_engine(f"sqlite:///{path}"))


def test_default_file_is_the_reference(rows, shared_reference):
    with (shared_reference / "interventions.csv").open(encoding="utf-8", newline="") as f:
        ref = list(csv.DictReader(f))
    assert len(rows) == len(ref) == 104
    for ours, theirs in zip(rows, ref, strict=True):
        assert {k: v for k, v in ours.items() if k != "id"} == theirs


def test_104_load_each_on_its_comuni(rows, engine, territory):
    snap = iv.snapshot(engine)
    assert len(snap) == 104
    by_name = {_key(c.name): c.istat_code for c in territory.comuni_list}
    for r in rows:
        props = snap.properties[snap.by_id[r["id"]]]
        named = {by_name[_key(n)] for n in r["comuni"].split(";") if n.strip()}
        assert set(props["comuni_named"]) == named, r["title"]
        if r["lat"]:
            # given coordinates: linked to the comune under the point, plus those named
            point = shapely.Point(float(r["lon"]), float(r["lat"]))
            under = {c.istat_code for c in territory.comuni_list if c.geometry.covers(point)}
            assert under, r["title"]
            assert set(props["comuni"]) == named | under
            assert props["precision"] == "exact"
        else:
            assert set(props["comuni"]) == named, r["title"]
            assert props["precision"] == "comune"
            assert "representative point" in props["precision_note"]
        # names exactly as ISTAT spells them
        assert props["comuni_names"] == [territory.comuni[c].name for c in props["comuni"]]
    n_comuni = len({c for p in snap.properties for c in p["comuni_named"]})
    assert n_comuni == 73  # "104, over 73 comuni" (reference README)


def test_placed_geometries_lie_in_their_comuni(engine, territory):
    snap = iv.snapshot(engine)
    for i, p in enumerate(snap.properties):
        if p["precision"] != "comune":
            continue
        parts = shapely.get_parts(snap.geometries[i])
        assert len(parts) == len(p["comuni_named"])
        for pt, code in zip(parts, p["comuni_named"], strict=True):
            assert territory.comuni[code].geometry.contains(pt)


def test_programme_mapping_is_the_catalogue(engine):
    with (PLAN_DIR / "programmes.csv").open(encoding="utf-8", newline="") as f:
        mapping = {r["programme"]: r for r in csv.DictReader(f)}
    snap = iv.snapshot(engine)
    for p in snap.properties:
        m = mapping[p["programme"]]
        assert p["missions"] == m["missions"].split(";")
        assert p["drivers"] == [int(d) for d in m["drivers"].split(";")]


def test_sources_and_reliability_kept(rows, engine):
    snap = iv.snapshot(engine)
    for r in rows:
        p = snap.properties[snap.by_id[r["id"]]]
        assert p["source"] == "documented"
        assert p["reliability"] == r["reliability"]
        assert p["source_url"] == r["source_url"]
        assert (p["remark"] or "") == r["remark"]
        assert (p["cup"] or "") == r["cup"]
        assert p["amount_eur"] == (float(r["amount_eur"]) if r["amount_eur"] else None)


def test_line_links_every_comune_it_crosses(territory):
    # A cycle route from Milano (Duomo) to Rho crosses Pero (and more) on the way.
    line = shapely.LineString([(9.1900, 45.4642), (9.0400, 45.5280)])
    table = iv.InputTable.build(
        pd.DataFrame([{"id": "line-1", "title": "Ciclabile", "programme": "Biciplan"}]),
        np.array([line], dtype=object),
    )
    prepared = iv.prepare(table)
    assert prepared.errors == []
    rec = prepared.records[0]
    crossed = {
        c.istat_code
        for c in territory.comuni_list
        if line.intersects(c.geometry) and line.intersection(c.geometry).length > 0
    }
    assert set(rec["comuni"]) == crossed
    names = {territory.comuni[c].name for c in rec["comuni"]}
    assert {"Milano", "Rho", "Pero"} <= names
    assert rec["precision"] == "exact"
    assert rec["geometry_type"] == "LineString"


def test_polygon_on_a_border_does_not_link_the_neighbour(territory):
    rho = territory.comuni[territory.name_index.get("Rho")]
    table = iv.InputTable.build(
        pd.DataFrame([{"title": "Whole Rho", "programme": "Forestazione"}]),
        np.array([rho.geometry], dtype=object),
    )
    rec = iv.prepare(table).records[0]
    assert rec["comuni"] == [rho.istat_code]  # neighbours only touch its boundary


def test_provider_filters(engine, territory):
    p = InterventionsProvider(engine)
    snap = iv.snapshot(engine)

    def ids(**eq):
        r = p.query(FeatureQuery(properties_eq=eq, limit=1000))
        assert r.number_matched == len(r.features)
        return {f["id"] for f in r.features}

    def expect(pred):
        return {snap.ids[i] for i, pp in enumerate(snap.properties) if pred(pp)}

    assert len(ids()) == 104
    assert ids(programme="SPUGNA") == expect(lambda q: q["programme"] == "PUI SPUGNA")
    assert len(ids(programme="PUI SPUGNA")) == 31
    rho = territory.name_index.get("Rho")
    assert ids(comune="rho") == ids(comuni=rho) == expect(lambda q: rho in q["comuni"])
    assert ids(zona="Nord Milano") == expect(lambda q: "nord-milano" in q["zone"])
    assert ids(mission="m3") == expect(lambda q: "M3" in q["missions"])
    assert ids(drivers="5") == expect(lambda q: 5 in q["drivers"])
    assert ids(status="completed") == expect(lambda q: q["status"] == "completed")
    assert ids(unione="uc-adda-martesana") == expect(lambda q: "uc-adda-martesana" in q["unioni"])
    rng = ids(amount_min="1000000", amount_max="5000000")
    assert rng == expect(lambda q: q["amount_eur"] is not None and 1e6 <= q["amount_eur"] <= 5e6)
    assert rng
    assert ids(source="documented") == ids()
    assert ids(source="pnrr") == set()
    bbox = (9.10, 45.40, 9.25, 45.52)
    got = {f["id"] for f in p.query(FeatureQuery(bbox=bbox, limit=1000)).features}
    assert got == {
        snap.ids[i] for i in np.flatnonzero(shapely.intersects(snap.geometries, shapely.box(*bbox)))
    }
    assert {"comuni", "zone", "unioni", "amount_min", "amount_max", "programme"} <= {
        q.name for q in p.queryables()
    }


def test_registered_in_the_registry(client):
    assert "interventions" in registry.ids()


def test_documented_rows_reimport_unchanged(engine):
    prepared = iv.prepare(read_csv(DEFAULT.read_bytes()), source="documented")
    report = iv.upsert(prepared, engine=engine)
    assert (len(report.new), len(report.updated), len(report.unchanged)) == (0, 0, 104)


def test_plan_endpoints_counts(client):
    def n_rows(name: str) -> int:
        with (PLAN_DIR / f"{name}.csv").open(encoding="utf-8", newline="") as f:
            return sum(1 for _ in csv.DictReader(f))

    whole = client.get("/plan").json()
    for part in ("missions", "objectives", "drivers", "keywords", "programmes"):
        r = client.get(f"/plan/{part}")
        assert r.status_code == 200
        assert r.json()["count"] == len(r.json()[part]) == n_rows(part) == whole["counts"][part]
    assert whole["counts"]["missions"] == 6
    assert whole["counts"]["drivers"] == 10


def test_served_through_the_ogc_routes(client):
    r = client.get("/collections/interventions/items", params={"comune": "Rho", "limit": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] >= 10
    assert all("015182" in f["properties"]["comuni"] for f in body["features"])
    r = client.get(
        "/collections/interventions/items",
        params={"zona": "Nord Milano", "programme": "SPUGNA", "amount_max": "1e12"},
    )
    assert r.status_code == 200
    assert all(f["properties"]["programme"] == "PUI SPUGNA" for f in r.json()["features"])
    assert client.get("/collections/interventions/items/doc-001").status_code == 200
