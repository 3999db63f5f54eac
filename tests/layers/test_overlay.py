"""Overlay metrics per comune, zona and unione, checked against plain shapely computations."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import shapely
from layer_builders import LEGNANO, MILANO, PERO, RHO, frame, lines, metric, points, polygons
from layer_builders import to_bytes as write_layer
from pyproj import Transformer

from geo.errors import InvalidParameter
from geo.layers.overlay import Interventions, csv_rows, layer_metrics
from geo.layers.reading import read_upload
from geo.territory import to_metric


def _rows(result) -> dict:
    return {r["id"]: r for r in result["units"]}


def _expected_polygon(territory, geoms) -> dict[str, float]:
    """Covered m² per comune, one comune at a time (no STRtree, no vectorising)."""
    union = shapely.union_all(geoms)
    out = {}
    for code, g in zip(territory.codes, territory.metric_geometries, strict=True):
        a = g.intersection(union).area
        if a > 0:
            out[str(code)] = a
    return out


def test_polygon_layer_per_comune_is_dissolved_first(territory, tmp_path):
    original = polygons()
    layer = read_upload(*write_layer(frame(original, "EPSG:3003"), "shpzip", tmp_path))
    result = layer_metrics(layer.family, layer.metric_geometries, "comune")
    rows = _rows(result)
    assert len(rows) == 133 and result["crs_of_measure"] == "EPSG:32632"
    expected = _expected_polygon(territory, original)
    assert {RHO, PERO, MILANO} <= set(expected)
    for code, row in rows.items():
        want = expected.get(code, 0.0) / 1e6
        assert row["covered_km2"] == pytest.approx(want, rel=1e-5, abs=2e-6), code
        assert row["share"] == pytest.approx(want / row["area_km2"], rel=1e-4, abs=2e-6)
    # The two squares overlap: counted once.
    a, b, c = original
    assert a.intersection(b).area > 1e6
    union_km2 = shapely.union_all(original).area / 1e6
    assert result["totals"]["layer_km2"] == pytest.approx(union_km2, rel=1e-6)
    assert result["totals"]["layer_km2"] < (a.area + b.area + c.area) / 1e6 - 1
    assert result["totals"]["in_units_km2"] == pytest.approx(union_km2, rel=1e-5)


def test_full_cover_gives_share_one(territory):
    rho = metric(RHO).buffer(50)
    result = layer_metrics("polygon", np.array([rho]), "comune")
    row = _rows(result)[RHO]
    assert row["share"] == pytest.approx(1.0, abs=1e-9)
    assert row["covered_km2"] == pytest.approx(metric(RHO).area / 1e6, abs=1e-6)


def test_zones_and_unions_add_up(territory):
    geoms = np.array(polygons())
    by_comune = layer_metrics("polygon", geoms, "comune")
    by_zona = layer_metrics("polygon", geoms, "zona")
    zona_rows = _rows(by_zona)
    assert len(zona_rows) == 8
    for zid, z in territory.zones.items():
        members = [r["covered_km2"] for r in by_comune["units"] if r["id"] in z.comuni]
        assert zona_rows[zid]["covered_km2"] == pytest.approx(sum(members), rel=1e-4, abs=1e-5)
    assert zona_rows["nord-ovest"]["covered_km2"] > 0 and zona_rows["milano"]["covered_km2"] > 0
    by_unione = layer_metrics("polygon", geoms, "unione")
    assert {r["id"] for r in by_unione["units"]} == set(territory.unions)
    for r in by_unione["units"]:
        members = [
            c["covered_km2"]
            for c in by_comune["units"]
            if c["id"] in territory.unions[r["id"]].comuni
        ]
        assert r["covered_km2"] == pytest.approx(sum(members), rel=1e-4, abs=1e-5)


def test_line_layer_lengths(territory, tmp_path):
    original = lines()
    layer = read_upload(*write_layer(frame(original, "EPSG:7791"), "gpkg", tmp_path))
    rows = _rows(layer_metrics(layer.family, layer.metric_geometries, "comune"))
    union = shapely.union_all(original)
    total = 0.0
    for code, g in zip(territory.codes, territory.metric_geometries, strict=True):
        want = g.intersection(union).length / 1e3
        total += want
        assert rows[str(code)]["length_km"] == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert rows[LEGNANO]["length_km"] > 0 and rows[MILANO]["length_km"] > 6
    assert "covered_km2" not in rows[MILANO]
    assert total == pytest.approx(sum(r["length_km"] for r in rows.values()), rel=1e-6)


def test_point_layer_counts(territory, tmp_path):
    layer = read_upload(*write_layer(frame(points(), "OGC:CRS84"), "geojson", tmp_path))
    result = layer_metrics(layer.family, layer.metric_geometries, "comune")
    rows = _rows(result)
    assert rows[RHO]["count"] == 2 and rows[MILANO]["count"] == 1
    assert rows[LEGNANO]["count"] == 2  # the MultiPoint's two points
    assert sum(r["count"] for r in rows.values()) == 5 == result["totals"]["layer_points"]
    zona = _rows(layer_metrics(layer.family, layer.metric_geometries, "zona"))
    assert zona["nord-ovest"]["count"] == 2 and zona["alto-milanese"]["count"] == 2


def test_interventions_inside_or_near(territory):
    square = polygons()[2]  # a 2 km disc around Milano's centroid
    c = square.centroid
    to_ll = Transformer.from_crs("EPSG:32632", "OGC:CRS84", always_xy=True)
    where = [(c.x, c.y), (c.x + 2300, c.y), (c.x + 6000, c.y)]
    pts = np.array([shapely.Point(*to_ll.transform(x, y)) for x, y in where])
    iv = Interventions(ids=["in", "near", "far"], geometries=pts)
    inside = layer_metrics("polygon", np.array([square]), "comune", interventions=iv)
    assert _rows(inside)[MILANO]["intervention_ids"] == ["in"]
    assert inside["totals"]["interventions"] == 1
    near = layer_metrics("polygon", np.array([square]), "zona", interventions=iv, within_m=500)
    assert _rows(near)["milano"]["intervention_ids"] == ["in", "near"]
    assert near["within_m"] == 500
    # The comune code given with an intervention wins over its coordinates.
    iv2 = Interventions(ids=["in", "near", "far"], geometries=pts, comuni=[RHO, None, None])
    moved = _rows(
        layer_metrics("polygon", np.array([square]), "comune", interventions=iv2, within_m=500)
    )
    assert moved[RHO]["intervention_ids"] == ["in"]
    assert moved[MILANO]["intervention_ids"] == ["near"]
    flat = csv_rows(
        layer_metrics("polygon", np.array([square]), "comune", interventions=iv, within_m=500)
    )
    assert next(r for r in flat if r["id"] == MILANO)["intervention_ids"] == "in;near"


def test_bad_parameters():
    g = np.array(polygons())
    with pytest.raises(InvalidParameter, match="by: unknown unit 'provincia'"):
        layer_metrics("polygon", g, "provincia")
    for bad in (-1, 1e9, float("nan")):
        with pytest.raises(InvalidParameter, match="within_m"):
            layer_metrics("polygon", g, "comune", within_m=bad)


def test_plis_sample_in_the_metropolitan_city(territory, shared_reference):
    raw = (shared_reference / "plis_lombardia_sample.geojson").read_bytes()
    layer = read_upload(raw, "plis_lombardia_sample.geojson")
    assert layer.feature_count == 9
    cmm = shapely.union_all(territory.metric_geometries)
    inside = {
        p["NOME_PLIS"]
        for p, g in zip(layer.properties, layer.metric_geometries, strict=True)
        if g.intersection(cmm).area > 10_000
    }
    # ../shared/reference/README.md names 4 (Roccolo, Mulini, Basso Olona, Rugareto);
    # the geometries show a 5th: Parco dei Mughetti covers ~2.6 km² of Cerro Maggiore,
    # which its own ENTE_PLIS lists as a member ("Cerro Maggiore (MI)").
    assert inside == {
        "Parco del Roccolo",
        "Parco dei Mulini",
        "Parco del Basso Olona",
        "Bosco del Rugareto",
        "Parco dei Mughetti",
    }
    mughetti = next(p for p in layer.properties if p["NOME_PLIS"] == "Parco dei Mughetti")
    assert "Cerro Maggiore (MI)" in mughetti["ENTE_PLIS"]
    outside = {p["NOME_PLIS"] for p in layer.properties} - inside
    assert len(outside) == 4 and all(
        "(VA)" in p["NOTE_PLIS"] + p["ENTE_PLIS"]
        for p in layer.properties
        if p["NOME_PLIS"] in outside
    )
    # Independent: parse the file with orjson, repair, project with pyproj, loop.
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:32632", always_xy=True)
    geoms = [
        shapely.transform(
            shapely.make_valid(shapely.geometry.shape(f["geometry"])),
            lambda xy: np.column_stack(tx.transform(*xy.T)),
        )
        for f in orjson.loads(raw)["features"]
    ]
    expected = _expected_polygon(territory, geoms)
    rows = _rows(layer_metrics(layer.family, layer.metric_geometries, "comune"))
    touched = {code for code, r in rows.items() if r["covered_km2"] > 0.001}
    assert touched == {code for code, a in expected.items() if a > 1000}
    for code, row in rows.items():
        assert row["covered_km2"] == pytest.approx(expected.get(code, 0) / 1e6, rel=1e-5, abs=1e-6)
    names = {territory.comuni[c].name for c in touched}
    assert {"Canegrate", "Parabiago", "Nerviano", "Rescaldina", "Rho", "Vanzago"} <= names
    zona = _rows(layer_metrics(layer.family, layer.metric_geometries, "zona"))
    assert zona["alto-milanese"]["covered_km2"] > 10
    assert zona["sud-est"]["covered_km2"] == 0


def test_to_metric_consistent_with_layer_metric_geometries(tmp_path):
    layer = read_upload(*write_layer(frame(polygons(), "EPSG:3003"), "geojson", tmp_path))
    again = to_metric(layer.geometries)
    np.testing.assert_allclose(
        shapely.area(again), shapely.area(layer.metric_geometries), rtol=1e-7
    )


def test_dissolve_unions_only_features_that_meet(monkeypatch):
    """The layer dissolved group by group is the union of all its features (areas and
    lengths as ``union_all`` of everything gives them, overlaps counted once, chains of
    overlapping features joined), and features meeting no other are never noded: a layer
    of many separate parks stays fast."""
    from geo.layers import overlay

    rng = np.random.default_rng(7)
    for _ in range(25):
        n = int(rng.integers(1, 150))
        centres = rng.uniform(0, 2_000, (n, 2))
        discs = shapely.buffer(shapely.points(centres), rng.uniform(5, 120, n))
        discs[rng.random(n) < 0.05] = None  # missing geometries are left out
        whole = shapely.union_all(discs)
        got = overlay.dissolve(discs, "polygon")
        assert shapely.is_valid(got)
        assert shapely.area(got) == pytest.approx(whole.area, rel=1e-9)
        assert shapely.symmetric_difference(got, whole).area < 1e-6 * whole.area
        ends = centres + rng.uniform(-150, 150, (n, 2))
        segments = shapely.linestrings(np.stack([centres, ends], axis=1))
        assert shapely.length(overlay.dissolve(segments, "line")) == pytest.approx(
            shapely.union_all(segments).length, rel=1e-9
        )

    # A chain a–b–c (a and c apart) is one group; 300 separate squares are never unioned.
    chain = [shapely.box(0, 0, 10, 10), shapely.box(8, 0, 18, 10), shapely.box(16, 0, 26, 10)]
    apart = [shapely.box(100 + 20 * k, 100, 110 + 20 * k, 110) for k in range(300)]
    unioned: list[int] = []
    real = shapely.union_all

    def spy(geoms, *args, **kwargs):  # type: ignore[no-untyped-def]
        unioned.append(len(geoms))
        return real(geoms, *args, **kwargs)

    monkeypatch.setattr(overlay.shapely, "union_all", spy)
    got = overlay.dissolve(np.array(chain + apart, dtype=object), "polygon")
    assert unioned == [3]
    assert shapely.area(got) == pytest.approx(26 * 10 + 300 * 100)
    assert shapely.get_num_geometries(got) == 301


def test_dissolve_takes_what_make_valid_leaves(territory):
    """A repaired polygon may come as a collection (a MultiPolygon and a dangling line):
    its polygons are measured, its lines carry no area, and a polygon layer holding one
    is measured as ``union_all`` of it all measures it."""
    from geo.layers import overlay

    c = metric(RHO).centroid
    x, y = c.x, c.y
    spike = shapely.Polygon(
        [(x, y), (x + 800, y), (x + 800, y + 800), (x + 400, y + 800), (x + 400, y + 1200),
         (x + 400, y + 800), (x, y + 800)]
    )  # fmt: skip
    bowtie = shapely.Polygon(
        [(x + 2000, y), (x + 2600, y + 600), (x + 2600, y), (x + 2000, y + 600)]
    )
    repaired = shapely.make_valid(np.array([spike, bowtie], dtype=object))
    assert shapely.get_type_id(repaired).tolist() == [7, 6]  # a collection, a MultiPolygon
    overlapping = shapely.box(x + 700, y + 700, x + 1500, y + 1500)
    layer = np.array([*repaired, overlapping], dtype=object)
    got = overlay.dissolve(layer, "polygon")
    assert shapely.get_type_id(got) == 6
    assert shapely.area(got) == pytest.approx(shapely.union_all(layer).area, rel=1e-9)
    result = layer_metrics("polygon", layer, "comune")
    assert _rows(result)[RHO]["covered_km2"] == pytest.approx(
        metric(RHO).intersection(shapely.union_all(layer)).area / 1e6, rel=1e-6
    )


def test_dissolve_of_copies_meeting_by_the_million_unions_them_all(monkeypatch):
    """A layer whose features all overlap (copies of one big square) would give a pair for
    each two of them: past MAX_PAIRS the dissolve unions everything at once instead of
    holding the pairs, and measures the same."""
    from geo.layers import overlay

    monkeypatch.setattr(overlay, "MAX_PAIRS", 1_000)
    copies = np.array([shapely.box(k, k, 5_000 + k, 5_000 + k) for k in range(120)], dtype=object)
    assert overlay._groups(copies) is None  # 7,140 pairs > 1,000 + 4 × 120
    got = overlay.dissolve(copies, "polygon")
    assert shapely.area(got) == pytest.approx(shapely.union_all(copies).area, rel=1e-9)
    segments = shapely.linestrings([[(k, 0), (k + 5_000, 10)] for k in range(120)])
    line = overlay.dissolve(segments, "line")
    assert shapely.get_type_id(line) == 5
    assert shapely.length(line) == pytest.approx(shapely.union_all(segments).length, rel=1e-9)
    few = np.array([shapely.box(10_000 * k, 0, 10_000 * k + 10, 10) for k in range(300)])
    assert overlay._groups(few) is not None  # separate features: no pairs at all
