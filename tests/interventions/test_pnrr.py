"""PNRR open data (Italia Domani) → interventions: mapping, messy rows, idempotency,
aggregates, the HTTP import, and the real extraction of ../shared/reference."""

from __future__ import annotations

import pandas as pd
import pytest
import shapely
import sqlalchemy as sa

from geo import interventions as iv
from geo.errors import ValidationFailed
from geo.interventions.collection import InterventionsProvider
from geo.interventions.pnrr import import_pnrr, parse_amounts, read_pnrr
from geo.interventions.stats import intervention_stats
from geo.ogc.registry import FeatureQuery
from geo.store import bump_revision

ADMIN = {"Authorization": "Bearer test-admin-token"}
HEADER = [
    "CUP", "Codice Locale Progetto", "Missione", "Descrizione Missione", "Componente",
    "Descrizione Componente", "Codice Univoco Submisura", "Descrizione Submisura",
    "Titolo progetto", "Sintesi progetto", "Soggetto attuatore",
    "Codice fiscale soggetto attuatore", "Finanziamento PNRR", "Finanziamento Totale",
    "COD_ISTAT_COMUNE", "Descrizione Comune", "Indirizzo", "CAP", "Data di Estrazione",
]  # fmt: skip
PROJECT_COLS = [*HEADER[:14], "Data di Estrazione"]
SUB = "Abilitazione al cloud per le PA locali"


def row(cup: str, mission: str, code: str, comune: str, pnrr: str, total: str, **kw) -> dict:
    """One joined row with plausible defaults."""
    base = {
        "CUP": cup,
        "Codice Locale Progetto": kw.pop("local", f"L_{cup}"),
        "Missione": mission,
        "Descrizione Missione": f"Missione {mission}",
        "Componente": f"{mission}C1",
        "Descrizione Componente": f"Componente 1 di {mission}",
        "Codice Univoco Submisura": f"{mission}C1I1.02.00",
        "Descrizione Submisura": SUB,
        "Titolo progetto": f"Progetto {cup}",
        "Sintesi progetto": f'SINTESI; DEL PROGETTO, "{cup}"',
        "Soggetto attuatore": "COMUNE DI MILANO",
        "Codice fiscale soggetto attuatore": "1199250158",
        "Finanziamento PNRR": pnrr,
        "Finanziamento Totale": total,
        "COD_ISTAT_COMUNE": code,
        "Descrizione Comune": comune,
        "Indirizzo": "",
        "CAP": "20100.0",
        "Data di Estrazione": "2023-03-01",
    }
    base.update(kw)
    return base


A, B, C, D, E, F, G = (f"B11A2200001000{i}" for i in range(1, 8))
ROWS = [
    row(A, "M1", "015146", "MILANO", "4.753682e+06", "4.753682e+06"),
    # no ISTAT code: the name, UPPERCASE with a curly apostrophe; Italian decimals
    row(B, "M5", "", "CASSANO D’ADDA", "1.234.567,89", "2.000.000,00"),
    # code without its leading zeros
    row(C, "M2", "15195", "SAN GIULIANO MILANESE", "10507.0", "10507.0"),
    # several comuni, one duplicate row, one conflicting title
    row(D, "M4", "015146", "MILANO", "300000.0", "350000.0"),
    row(D, "M4", "015059", "CASSANO D'ADDA", "300000.0", "350000.0"),
    row(D, "M4", "015146", "MILANO", "300000.0", "350000.0"),
    row(
        D,
        "M4",
        "015060",
        "CASSINA DE' PECCHI",
        "300000.0",
        "350000.0",
        **{"Titolo progetto": "Another title"},
    ),
    # outside the territory (Torino)
    row(E, "M6", "001272", "TORINO", "5000.0", "5000.0"),
    # no single comune
    row(F, "M5", "", "TUTTI I COMUNI", "1.2322932e+06", "1.812196e+06"),
    # amounts unknown
    row(G, "M3", "015242", "VIMODRONE", "", ""),
]


def csv_bytes(rows: list[dict], *, sep: str = ";", bom: bool = False, cols=None) -> bytes:
    """CSV as the national files are: quoted where needed, optional BOM."""
    frame = pd.DataFrame(rows, columns=cols or HEADER)
    text = frame.to_csv(sep=sep, index=False, lineterminator="\r\n")
    return (("\ufeff" if bom else "") + text).encode()


def pnrr_count(engine) -> int:
    it = iv.interventions_table
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(it.c.source == "pnrr")).scalar()


def clear_pnrr(engine) -> None:
    """Remove the PNRR rows (tests share one store per backend)."""
    it, lt = iv.interventions_table, iv.links_table
    with engine.begin() as conn:
        ids = sa.select(it.c.id).where(it.c.source == "pnrr")
        conn.execute(lt.delete().where(lt.c.intervention_id.in_(ids)))
        conn.execute(it.delete().where(it.c.source == "pnrr"))
        bump_revision(conn, iv.TOPIC)


@pytest.fixture(scope="module")
def engine(store_engine):
    """The seeded store of each backend (SQLite file / PostGIS schema); PNRR rows are
    removed around every test, so other modules see it as they left it."""
    clear_pnrr(store_engine)
    yield store_engine
    clear_pnrr(store_engine)


@pytest.fixture
def store(engine):
    clear_pnrr(engine)
    yield engine
    clear_pnrr(engine)


# --------------------------------------------------------------------------- mapping


def test_amount_parsing():
    values, bad = parse_amounts(
        pd.Series(["4.753682e+06", "10507.0", "1.234.567,89", "1234,5", "€ 1 000", "", "abc", "-5"])
    )
    assert values[:5].tolist() == [4753682.0, 10507.0, 1234567.89, 1234.5, 1000.0]
    assert pd.isna(values[5]) and not bad[5]  # empty: unknown, not malformed
    assert bad.tolist() == [False] * 6 + [True, True]


def test_joined_mapping_and_messy_rows(store):
    pt = read_pnrr(csv_bytes(ROWS, bom=True))
    assert pt.rows == len(ROWS) == pt.imported_rows + len(pt.skipped)
    reasons = {g["reason"]: g for g in pt.skipped_summary()["by_reason"]}
    assert reasons.keys() == {"outside the 133 comuni", "no single comune"}
    assert reasons["no single comune"]["examples"][0] == {
        "row": 9, "file": "projects", "cup": F, "detail": "no single comune: 'TUTTI I COMUNI'",
    }  # fmt: skip
    assert "001272" in reasons["outside the 133 comuni"]["examples"][0]["detail"]
    assert pt.merged_rows == 1
    warn = pt.warnings_summary()["by_field"]
    assert [(w["field"], w["examples"][0]["cup"], w["examples"][0]["kept"]) for w in warn] == [
        ("Titolo progetto", D, f"Progetto {D}")
    ]

    report = import_pnrr(csv_bytes(ROWS, bom=True), engine=store).to_dict()
    assert (report["projects"], report["new"], report["updated"], report["unchanged"]) == (
        5, 5, 0, 0,
    )  # fmt: skip
    feats = {i: iv.get_feature(i, store) for i in (A, B, C, D, E, F, G)}
    assert feats[E] is None and feats[F] is None
    a = feats[A]["properties"]
    assert a["comuni"] == ["015146"] and a["missions"] == ["M1"]
    assert a["amount_eur"] == a["pnrr_amount_eur"] == 4753682.0
    assert (a["programme"], a["submeasure"], a["component"]) == (SUB, "M1C1I1.02.00", "M1C1")
    assert a["summary"] == f'SINTESI; DEL PROGETTO, "{A}"'  # quoted field with ; and ,
    assert (a["source"], a["cup"], a["as_of"], a["precision"]) == (
        "pnrr",
        A,
        "2023-03-01",
        "comune",
    )
    assert a["implementing_body"] == "COMUNE DI MILANO"
    assert a["implementing_body_cf"] == "01199250158"  # leading zero restored
    b = feats[B]["properties"]
    assert b["comuni"] == ["015059"] and b["comuni_names"] == ["Cassano d'Adda"]
    assert (b["pnrr_amount_eur"], b["amount_eur"]) == (1234567.89, 2000000.0)
    assert feats[C]["properties"]["comuni"] == ["015195"]
    d = feats[D]
    assert d["properties"]["comuni"] == ["015059", "015060", "015146"]
    assert d["properties"]["title"] == f"Progetto {D}"
    assert d["geometry"]["type"] == "MultiPoint" and len(d["geometry"]["coordinates"]) == 3
    assert d["properties"]["pnrr_amount_eur"] == 300000.0  # not multiplied by its rows
    g = feats[G]["properties"]
    assert g["amount_eur"] is None and g["pnrr_amount_eur"] is None


def test_two_file_layout(store):
    projects = [{k: r[k] for k in PROJECT_COLS} for r in ROWS if r["CUP"] != E]
    projects = list({r["CUP"]: r for r in projects[::-1]}.values())[::-1]  # one per CUP
    projects.append({**projects[0], "CUP": "B11A22000010009", "Codice Locale Progetto": "L_ORPHAN"})
    loc_cols = ["CUP", "Codice Locale Progetto", "COD_ISTAT_COMUNE", "Descrizione Comune"]
    locs = [{k: r[k] for k in loc_cols} for r in ROWS]
    # projects: comma-separated with quoted fields and a BOM; headers in another case
    pbytes = csv_bytes(projects, sep=",", bom=True, cols=PROJECT_COLS)
    pbytes = pbytes.replace(b"Finanziamento PNRR", b"FINANZIAMENTO PNRR", 1)
    pt = read_pnrr(pbytes, csv_bytes(locs, cols=loc_cols))
    reasons = {g["reason"]: g["count"] for g in pt.skipped_summary()["by_reason"]}
    assert reasons == {
        "no localisation": 1,
        "not in the projects file": 1,  # Torino's CUP is not in the projects file
        "no single comune": 1,
    }
    assert pt.rows == pt.imported_rows + len(pt.skipped)
    report = import_pnrr(pbytes, csv_bytes(locs, cols=loc_cols), engine=store).to_dict()
    assert report["new"] == 5
    d = iv.get_feature(D, store)["properties"]
    assert d["comuni"] == ["015059", "015060", "015146"]
    assert d["title"] == f"Progetto {D}"
    assert iv.get_feature(B, store)["properties"]["comuni"] == ["015059"]


def test_malformed_amount_is_an_error_and_nothing_is_written(store):
    bad = [*ROWS[:3], row("B11A22000010008", "M1", "015146", "MILANO", "abc", "10.0")]
    with pytest.raises(ValidationFailed) as exc:
        import_pnrr(csv_bytes(bad), engine=store)
    assert exc.value.details == [
        {"row": 4, "file": "projects", "field": "Finanziamento PNRR",
         "message": "not an amount in EUR: 'abc'"}
    ]  # fmt: skip
    assert pnrr_count(store) == 0
    # a malformed amount in a row that is skipped anyway (outside) does not block
    outside = row("B11A22000010008", "M1", "001272", "TORINO", "abc", "")
    report = import_pnrr(csv_bytes([*ROWS[:3], outside]), engine=store).to_dict()
    assert (report["new"], report["skipped_rows"]) == (3, 1)


def test_missing_columns_are_reported():
    frame = [{k: v for k, v in r.items() if k != "Missione"} for r in ROWS[:2]]
    with pytest.raises(ValidationFailed) as exc:
        read_pnrr(csv_bytes(frame, cols=[h for h in HEADER if h != "Missione"]))
    assert exc.value.details[0]["field"] == "mission"


def test_idempotent_and_incremental(store):
    first = import_pnrr(csv_bytes(ROWS), engine=store).to_dict()
    rev = iv.snapshot(store).revision
    again = import_pnrr(csv_bytes(ROWS), engine=store).to_dict()
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, first["new"])
    assert iv.snapshot(store).revision == rev  # nothing written: caches stay valid
    newer = [dict(r) for r in ROWS]
    newer[0]["Finanziamento PNRR"] = "5.0e+06"
    for r in newer:
        r["Data di Estrazione"] = "2023-09-30"
    newer.append(row("B11A22000010008", "M1", "015146", "MILANO", "1.0", "1.0"))
    later = import_pnrr(csv_bytes(newer), engine=store).to_dict(ids=True)
    assert later["new"] == 1 and later["ids"]["new"] == ["B11A22000010008"]
    assert later["updated"] == first["new"]  # the extraction date changed everywhere
    assert iv.get_feature(A, store)["properties"]["pnrr_amount_eur"] == 5.0e6
    only_amount = [dict(r) for r in newer]
    only_amount[1]["Finanziamento Totale"] = "2.500.000,00"
    last = import_pnrr(csv_bytes(only_amount), engine=store).to_dict(ids=True)
    assert (last["ids"]["updated"], last["new"], last["unchanged"]) == ([B], 0, 5)


# --------------------------------------------------------------------------- aggregates


def test_stats_and_collection_filters(store, territory):
    import_pnrr(csv_bytes(ROWS), engine=store)
    snap = iv.snapshot(store)
    pnrr = [p for p in snap.properties if p["source"] == "pnrr"]
    for by, key in (("comune", "comuni"), ("zona", "zone"), ("unione", "unioni")):
        res = intervention_stats(by, store, source="pnrr", amount="pnrr")
        assert res["n_interventions"] == len(pnrr) == 5
        expected: dict[str, float] = {}
        for p in pnrr:
            for k in p[key]:
                expected[k] = expected.get(k, 0.0) + (p["pnrr_amount_eur"] or 0.0)
        got = {g["id"]: g for g in res["groups"] if g["count"]}
        assert {k: g["amount_eur"] for k, g in got.items()} == pytest.approx(expected)
    milano = next(g for g in intervention_stats("comune", store, source="pnrr", amount="pnrr")[
        "groups"] if g["id"] == "015146")  # fmt: skip
    assert milano["amount_eur"] == pytest.approx(4753682.0 + 300000.0)
    pop = territory.comuni["015146"].population
    assert milano["amount_per_inhabitant"] == pytest.approx(round(milano["amount_eur"] / pop, 2))
    by_m = intervention_stats("comune", store, source="pnrr", mission="M4", amount="total")
    assert {g["id"]: g["amount_eur"] for g in by_m["groups"] if g["count"]} == {
        "015059": 350000.0, "015060": 350000.0, "015146": 350000.0,
    }  # fmt: skip
    missions = intervention_stats("mission", store, source="pnrr", amount="pnrr")
    assert {g["id"]: g["count"] for g in missions["groups"] if g["count"]} == {
        "M1": 1, "M2": 1, "M3": 1, "M4": 1, "M5": 1,
    }  # fmt: skip
    n_documented = sum(p["source"] == "documented" for p in snap.properties)
    assert n_documented >= 104
    documented = intervention_stats("mission", store, source="documented")
    assert documented["n_interventions"] == n_documented

    provider = InterventionsProvider(store)
    assert provider.query(FeatureQuery(properties_eq={"source": "pnrr"})).number_matched == 5
    assert (
        provider.query(FeatureQuery(properties_eq={"source": "documented"})).number_matched
        == n_documented
    )
    sub = provider.query(FeatureQuery(properties_eq={"submeasure": "M4C1I1.02.00"}))
    assert [f["id"] for f in sub.features] == [D]
    assert provider.query(FeatureQuery(properties_eq={"component": "M2C1"})).number_matched == 1


def test_http_import_stats_and_map(client):
    store = iv.get_store()
    clear_pnrr(store)
    data = csv_bytes(ROWS, bom=True)
    try:
        r = client.post("/imports/pnrr", files={"file": ("pnrr.csv", data, "text/csv")})
        assert r.status_code == 401
        assert pnrr_count(store) == 0
        r = client.post(
            "/imports/pnrr", files={"file": ("pnrr.csv", data, "text/csv")}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["rows"], body["new"], body["skipped_rows"]) == (len(ROWS), 5, 2)
        assert body["skipped"]["by_reason"][0]["count"] == 1
        s = client.get(
            "/stats/interventions", params={"by": "mission", "source": "pnrr", "amount": "pnrr"}
        ).json()
        assert s["n_interventions"] == 5
        m1 = next(g for g in s["groups"] if g["id"] == "M1")
        assert m1["amount_eur"] == 4753682.0
        items = client.get("/collections/interventions/items", params={"source": "pnrr"}).json()
        assert items["numberMatched"] == 5
        page = client.get("/maps/interventions", params={"source": "pnrr"}).text
        assert '<span class="cmm-count">5</span>' in page
        # two files through the same endpoint
        loc_cols = ["CUP", "Codice Locale Progetto", "COD_ISTAT_COMUNE", "Descrizione Comune"]
        r = client.post(
            "/imports/pnrr",
            files={
                "file": ("p.csv", csv_bytes(ROWS, cols=PROJECT_COLS), "text/csv"),
                "localisation": ("l.csv", csv_bytes(ROWS, cols=loc_cols), "text/csv"),
            },
            data={"dry_run": "true"},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        assert r.json()["dry_run"] is True and r.json()["projects"] == 5
    finally:
        clear_pnrr(store)


# --------------------------------------------------------------------------- the real file


def test_real_extraction(shared_reference, engine, territory):
    path = shared_reference / "pnrr_progetti_mi_2023.csv"
    clear_pnrr(engine)
    try:
        report = import_pnrr(path, engine=engine)
        out = report.to_dict()
        df = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        assert out["rows"] == len(df) == 2131
        assert out["imported_rows"] + out["skipped_rows"] == 2131
        assert all(s["reason"] and s["detail"] for s in report.pnrr.skipped)
        # independently: a row is imported when its comune is one of the 133
        code = df["COD_ISTAT_COMUNE"].str.zfill(6)
        inside = code.isin(list(territory.comuni)) & (df["COD_ISTAT_COMUNE"] != "")
        assert int(inside.sum()) == out["imported_rows"]
        kept, skipped = df[inside], df[~inside]
        assert set(skipped["Descrizione Comune"]) == {"TUTTI I COMUNI"}
        assert out["skipped"]["by_reason"][0]["reason"] == "no single comune"
        assert out["projects"] == kept["CUP"].nunique() == out["new"]
        assert pnrr_count(engine) == out["projects"]
        # per-mission PNRR totals: each local project counted once
        tranches = kept.drop_duplicates(["CUP", "Codice Locale Progetto"])
        amounts = pd.to_numeric(tranches["Finanziamento PNRR"])
        expected = amounts.groupby(tranches["Missione"]).sum()
        stats = intervention_stats("mission", engine, source="pnrr", amount="pnrr")
        got = {g["id"]: g["amount_eur"] for g in stats["groups"] if g["count"]}
        assert got.keys() == set(expected.index)
        for m, total in expected.items():
            assert got[m] == pytest.approx(total, abs=0.01), m
        # what the skipped rows account for: 17 national projects (M5, Servizio civile)
        lost = skipped.drop_duplicates(["CUP", "Codice Locale Progetto"])
        assert len(lost) == skipped["CUP"].nunique() == 17
        assert set(lost["Missione"]) == {"M5"}
        assert pd.to_numeric(lost["Finanziamento PNRR"]).sum() > 0
        again = import_pnrr(path, engine=engine).to_dict()
        assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, out["projects"])
        one = iv.get_feature("D45F21005290001", engine)["properties"]
        assert one["pnrr_amount_eur"] == pytest.approx(1602345.0 + 1741966.6)
        assert "2 local projects" in one["remark"]
        geoms = [iv.get_feature(c, engine)["geometry"] for c in kept["CUP"].unique()[:50]]
        assert all(shapely.geometry.shape(g).is_valid for g in geoms)
    finally:
        clear_pnrr(engine)
