"""Importing interventions: CSV, GeoJSON, GeoPackage; validation of every row; all-or-nothing."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from geo import interventions as iv
from geo.interventions.reading import read_csv, read_file
from geo.store import get_engine, revision

ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture()
def engine(tmp_path):
    return iv.get_store(get_engine(f"sqlite:///{tmp_path / 'cmm_geo.sqlite'}"))


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM interventions")).scalar_one()


def _errors(csv_text: str) -> list[tuple[int | None, str]]:
    return [(e["row"], e["field"]) for e in iv.prepare(read_csv(csv_text.encode())).errors]


HEADER = "id,title,programme,comuni,lat,lon,amount_eur,cup,reliability\n"


def test_every_kind_of_error_reported_with_its_row():
    text = HEADER + (
        "a,Ok,PINQUA,Rho,,,100,,A\n"  # 1 fine
        "b,Unknown comune,PINQUA,Rhoo,,,,,\n"  # 2
        "c,Bad amount,PINQUA,Rho,,,12 mila,,\n"  # 3
        "a,Duplicate id,PINQUA,Rho,,,,,\n"  # 4 (and 1)
        "d,Dup cup,PINQUA,Rho,,,,J12345678901234,\n"  # 5
        "e,Dup cup,PINQUA,Rho,,,,J12345678901234,\n"  # 6
        "f,Unknown programme,Bogus programme,Rho,,,,,\n"  # 7
        "g,Swapped,PINQUA,,9.19,45.46,,,\n"  # 8
        "h,No location,PINQUA,,,,,,\n"  # 9
        "i,Bad reliability,PINQUA,Rho,,,,,Z\n"  # 10
        "j,Half a point,PINQUA,Rho,45.5,,,,\n"  # 11
        "k,,PINQUA,Rho,,,,,\n"  # 12 no title
    )
    errors = _errors(text)
    assert set(errors) == {
        (2, "comuni"),
        (3, "amount_eur"),
        (1, "id"),
        (4, "id"),
        (5, "cup"),
        (6, "cup"),
        (7, "programme"),
        (8, "geometry"),
        (9, "geometry"),
        (10, "reliability"),
        (11, "lat/lon"),
        (12, "title"),
    }
    details = iv.prepare(read_csv(text.encode())).errors
    comune = next(e for e in details if e["field"] == "comuni")
    assert "Rho" in comune["message"]  # suggestion
    swapped = next(e for e in details if e["row"] == 8)
    assert "swapped" in swapped["message"]


def test_one_broken_row_changes_nothing_and_reports_it(engine):
    before = _count(engine)
    rev = revision(engine, iv.TOPIC)[0]
    rows = [f"x{i},Row {i},PUI SPUGNA,Rho,,,{i * 1000},," for i in range(1, 50)]
    rows[36] = "x37,Row 37,PUI SPUGNA,Atlantide,,,1000,,"
    text = HEADER + "\n".join(rows) + "\n"
    prepared = iv.prepare(read_csv(text.encode()))
    with pytest.raises(iv.ValidationFailed) as exc:
        iv.upsert(prepared, engine=engine)
    assert exc.value.details == [
        {"row": 37, "field": "comuni", "message": exc.value.details[0]["message"]}
    ]
    assert "Atlantide" in exc.value.details[0]["message"]
    assert _count(engine) == before
    assert revision(engine, iv.TOPIC)[0] == rev


def test_failure_inside_the_transaction_rolls_back_everything(engine):
    before = _count(engine)
    text = HEADER + "r1,One,PINQUA,Rho,,,,,\nr2,Two,PINQUA,Rho,,,,,\n"
    prepared = iv.prepare(read_csv(text.encode()))
    prepared.records[1]["precision"] = "nonsense"  # violates a CHECK constraint in the DB
    with pytest.raises(sa.exc.IntegrityError):
        iv.upsert(prepared, engine=engine)
    assert _count(engine) == before


def test_geojson_and_gpkg_in_other_crs(tmp_path, engine, territory):
    gdf = gpd.GeoDataFrame(
        {
            "id": ["gj-1", "gj-2"],
            "title": ["Bosco", "Ciclabile"],
            "programme": ["Forestazione", "Biciplan"],
            "amount_eur": [1000.5, None],
        },
        geometry=[shapely.Point(9.05, 45.52), shapely.LineString([(9.19, 45.46), (9.04, 45.53)])],
        crs="OGC:CRS84",
    )
    gj = tmp_path / "in.geojson"
    gdf.to_file(gj, driver="GeoJSON")
    gp = tmp_path / "in.gpkg"
    gdf.to_crs(32632).to_file(gp, driver="GPKG")
    a = iv.prepare(read_file(gj))
    b = iv.prepare(read_file(gp))
    assert a.errors == b.errors == []
    for ra, rb in zip(a.records, b.records, strict=True):
        assert ra["comuni"] == rb["comuni"]
        ga, gb = shapely.from_wkb(ra["geometry_wkb"]), shapely.from_wkb(rb["geometry_wkb"])
        assert shapely.equals_exact(ga, gb, tolerance=1e-6)
    assert a.records[0]["amount_eur"] == 1000.5
    assert territory.comuni[a.records[0]["comuni"][0]].name == "Rho"
    assert len(a.records[1]["comuni"]) > 2
    report = iv.upsert(b, engine=engine)
    assert sorted(report.new) == ["gj-1", "gj-2"]


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_gpkg_without_crs_is_refused(tmp_path):
    gdf = gpd.GeoDataFrame(
        {"title": ["X"], "programme": ["CPI"]}, geometry=[shapely.Point(500000, 5040000)]
    )
    path = tmp_path / "nocrs.gpkg"
    gdf.to_file(path, driver="GPKG")
    errors = iv.prepare(read_file(path)).errors
    assert errors[0]["field"] == "crs" and errors[0]["row"] is None
    ok = iv.prepare(read_file(path, crs="EPSG:32632"))
    assert ok.errors == []


def test_invalid_geometry_reported(tmp_path):
    bowtie = "POLYGON ((9.1 45.45, 9.2 45.5, 9.2 45.45, 9.1 45.5, 9.1 45.45))"
    text = f'title,programme,wkt\nOk,CPI,POINT (9.19 45.46)\nBow,CPI,"{bowtie}"\nJunk,CPI,POINT (\n'
    errors = iv.prepare(read_csv(text.encode())).errors
    assert [(e["row"], e["field"]) for e in errors] == [(2, "geometry"), (3, "wkt")]
    assert "Self-intersection" in errors[0]["message"]


def test_csv_with_comune_codes_and_semicolons():
    text = "title;programme;comuni;amount_eur\nDue comuni;PINQUA;015182;F205;1.392.882,80\n"
    prepared = iv.prepare(read_csv(text.encode()))
    # the ';' separator splits 'comuni' too: F205 lands in amount_eur → an error, not a guess
    assert prepared.errors
    text = 'title;programme;comuni;amount_eur\nDue comuni;PINQUA;"015182;F205";1.392.882,80\n'
    prepared = iv.prepare(read_csv(text.encode()))
    assert prepared.errors == []
    rec = prepared.records[0]
    assert rec["comuni"] == ["015146", "015182"]  # Rho by ISTAT code, Milano by cadastral code
    assert rec["amount_eur"] == 1392882.80
    assert rec["geometry_type"] == "MultiPoint" and rec["precision"] == "comune"


def test_cli_import_is_idempotent(tmp_path, data_dir):
    from geo.cli import app

    path = tmp_path / "two.csv"
    path.write_text(HEADER + "cli-1,One,PINQUA,Rho,,,,,\ncli-2,Two,CPI,Milano,45.46,9.19,,,\n")
    runner = CliRunner()
    r1 = runner.invoke(app, ["import", "interventions", str(path), "--json"])
    assert r1.exit_code == 0, r1.output
    assert json.loads(r1.stdout.strip().splitlines()[-1])["new"] == 2
    r2 = runner.invoke(app, ["import", "interventions", str(path), "--json"])
    assert json.loads(r2.stdout.strip().splitlines()[-1])["unchanged"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "cli-3,Three,PINQUA,Nowhere,,,,,\n")
    r3 = runner.invoke(app, ["import", "interventions", str(bad)])
    assert r3.exit_code == 2
    assert "row 1" in r3.output and "Nowhere" in r3.output
    for rid in ("cli-1", "cli-2"):
        iv.delete(rid)


def test_http_import(client, tmp_path):
    text = HEADER + "http-1,One,PINQUA,Rho,,,5,,\nhttp-2,Two,CPI,Atlantide,,,,,\n"
    files = {"file": ("in.csv", text.encode(), "text/csv")}
    assert client.post("/imports/interventions", files=files).status_code == 401
    r = client.post("/imports/interventions", files=files, headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["details"][0]["row"] == 2
    assert client.get("/stats/interventions?by=programme").json()["n_interventions"] == 104
    good = {"file": ("in.csv", text.split("http-2")[0].encode(), "text/csv")}
    r = client.post("/imports/interventions", files=good, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["new"] == 1
    assert (
        client.delete("/collections/interventions/items/http-1", headers=ADMIN).status_code == 204
    )
