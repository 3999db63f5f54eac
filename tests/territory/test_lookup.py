"""Find my zone: by code, by name, by point in every supported CRS, in batches."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from geo.errors import InvalidParameter, NotFound
from geo.territory import lookup

# A point in the Duomo square, Milano, and one in the centre of Rho.
DUOMO = (9.1916, 45.4642)
RHO = (9.0403, 45.5310)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("015146", "Milano"),
        ("15146", "Milano"),
        ("F205", "Milano"),
        ("f205", "Milano"),
        ("cassano d'adda", "Cassano d'Adda"),
        ("CASSANO D’ADDA", "Cassano d'Adda"),
        ("Cassano dAdda", "Cassano d'Adda"),
        ("cassina de pecchi", "Cassina de' Pecchi"),
        ("  san   giuliano milanese ", "San Giuliano Milanese"),
        ("Vermezzo con Zelo", "Vermezzo con Zelo"),
    ],
)
def test_find_by_code_or_name(q, expected):
    assert lookup.find_comune(q)["comune"]["name"] == expected


def test_answer_carries_zone_union_neighbours():
    c = lookup.find_comune("Liscate")["comune"]
    assert c["zona_omogenea"]["name"] == "Adda Martesana"
    assert c["zona_omogenea"]["confidence"] in {"high", "medium-high", "medium", "low-medium"}
    assert c["unione"]["id"] == "uc-adda-martesana"
    assert c["neighbours"] and all("istat_code" in n for n in c["neighbours"])
    assert lookup.find_comune("Milano")["comune"]["unione"] is None


def test_miss_suggests_similar_names():
    with pytest.raises(NotFound) as exc:
        lookup.find_comune("Cassano dAda")
    body = exc.value.to_dict()
    assert body["suggestions"][0]["name"] == "Cassano d'Adda"
    assert "did you mean Cassano d'Adda" in body["description"]


def test_unknown_istat_code_is_not_found():
    with pytest.raises(NotFound, match="ISTAT code 099999"):
        lookup.find_comune("099999")


def test_empty_query_is_invalid():
    with pytest.raises(InvalidParameter):
        lookup.find_comune("  ")


@pytest.mark.parametrize("epsg", [32632, 3003, 7791, 3857])
@pytest.mark.parametrize(("lonlat", "name"), [(DUOMO, "Milano"), (RHO, "Rho")])
def test_point_in_every_projected_crs(epsg, lonlat, name):
    tx = Transformer.from_crs("OGC:CRS84", f"EPSG:{epsg}", always_xy=True)
    x, y = tx.transform(*lonlat)
    assert lookup.locate_point(x, y, f"EPSG:{epsg}")["comune"]["name"] == name


def test_point_in_crs84_and_epsg4326_axis_order():
    lon, lat = DUOMO
    assert lookup.locate_point(lon, lat)["comune"]["name"] == "Milano"
    # EPSG:4326 is latitude first, as the EPSG definition says.
    assert lookup.locate_point(lat, lon, "EPSG:4326")["comune"]["name"] == "Milano"
    with pytest.raises(InvalidParameter, match="axis order"):
        lookup.locate_point(lon, lat, "EPSG:4326")


def test_point_outside_gives_nearest_with_distance(territory):
    with pytest.raises(NotFound) as exc:
        lookup.locate_point(9.0, 46.0)  # north of the metropolitan city
    nearest = exc.value.to_dict()["nearest"]
    code = nearest["istat_code"]
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:32632", always_xy=True)
    p = shapely.Point(*tx.transform(9.0, 46.0))
    dists = shapely.distance(territory.metric_geometries, p)
    assert code == territory.codes[int(np.argmin(dists))]
    assert nearest["distance_m"] == pytest.approx(float(dists.min()), abs=0.2)


def test_border_point_goes_to_lowest_code(territory):
    # A vertex on the border between Milano (015146) and Sesto San Giovanni (015209).
    shared = shapely.intersection(
        shapely.boundary(territory.comuni["015146"].geometry),
        shapely.boundary(territory.comuni["015209"].geometry),
    )
    pt = shapely.get_coordinates(shared)[0]
    hits = territory.tree.query(shapely.Point(pt), predicate="intersects")
    assert len(hits) >= 2
    single = lookup.locate_point(float(pt[0]), float(pt[1]))["comune"]["istat_code"]
    batch = lookup.locate_batch(np.array([pt[0]]), np.array([pt[1]]))["results"][0]
    assert single == batch["istat_code"] == min(territory.codes[hits])


def test_batch_matches_single_lookups(territory):
    rng = np.random.default_rng(42)
    lo, la, hi, ha = shapely.total_bounds(territory.geometries)
    x = rng.uniform(lo, hi, 300)
    y = rng.uniform(la, ha, 300)
    batch = lookup.locate_batch(x, y)
    assert batch["count"] == 300
    assert batch["matched"] + batch["outside"] == 300
    assert 0 < batch["outside"] < 300
    for xi, yi, row in zip(x, y, batch["results"], strict=True):
        try:
            expected = lookup.locate_point(xi, yi)["comune"]["istat_code"]
        except NotFound as exc:
            assert row["istat_code"] is None
            assert row["nearest_istat_code"] == exc.to_dict()["nearest"]["istat_code"]
        else:
            assert row["istat_code"] == expected


def test_batch_in_projected_crs():
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:3003", always_xy=True)
    x, y = tx.transform([DUOMO[0], RHO[0]], [DUOMO[1], RHO[1]])
    res = lookup.locate_batch(np.array(x), np.array(y), "EPSG:3003", ids=["duomo", "rho"])
    assert [(r["id"], r["name"]) for r in res["results"]] == [("duomo", "Milano"), ("rho", "Rho")]


def test_batch_rejects_garbage_coordinates():
    with pytest.raises(InvalidParameter, match="point 2"):
        lookup.locate_batch(np.array([9.19, np.nan]), np.array([45.46, 45.4]))


def test_read_points_csv_and_geojson():
    x, y, ids, crs = lookup.read_points(b"id;lon;lat\na;9,19;45,46\nb;9.04;45.53\n", "csv")
    assert ids == ["a", "b"] and x.tolist() == [9.19, 9.04] and crs is None
    assert y.tolist() == [45.46, 45.53]
    gj = (
        b'{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:32632"}},'
        b'"features":[{"type":"Feature","id":7,"properties":{},'
        b'"geometry":{"type":"Point","coordinates":[514000,5034000]}}]}'
    )
    x, _, ids, crs = lookup.read_points(gj, "geojson")
    assert ids == [7] and crs == "EPSG:32632" and x.tolist() == [514000.0]


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (b"", "csv", "empty"),
        (b"a,b\n1,2\n", "csv", "lon,lat"),
        (b"lon,lat\n9.1,45.4\nx,45.4\n", "csv", "row 3"),
        (b"{not json", "geojson", "not valid JSON"),
        (
            b'{"type":"FeatureCollection","features":[{"geometry":{"type":"LineString"}}]}',
            "geojson",
            "feature 1",
        ),
        (b"lon,lat\n", "csv", "no points"),
    ],
)
def test_read_points_errors_say_where(content, fmt, message):
    with pytest.raises(InvalidParameter, match=message):
        lookup.read_points(content, fmt)
