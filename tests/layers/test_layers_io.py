"""Reading uploads: every format and CRS, repairs, and a clear 4xx for every bad file."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import orjson
import pytest
import shapely
from layer_builders import (
    CRSS,
    FORMATS,
    RHO,
    feature,
    frame,
    geojson_bytes,
    lines,
    metric,
    points,
    polygons,
    to_bytes,
    zip_files,
)
from pyproj import Transformer

from geo.errors import InvalidParameter, PayloadTooLarge, ValidationFailed
from geo.layers.reading import detect_format, read_upload, suggest_crs
from geo.settings import Settings

BUILDERS = {"polygon": polygons, "line": lines, "point": points}


def _limits(**kw) -> Settings:
    return Settings(**kw)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("crs", list(CRSS))
@pytest.mark.parametrize("family", list(BUILDERS))
def test_every_format_crs_and_family_round_trips(tmp_path, fmt, crs, family):
    original = BUILDERS[family]()
    data, name = to_bytes(frame(original, CRSS[crs]), fmt, tmp_path)
    layer = read_upload(data, name)
    assert layer.family == family
    assert layer.feature_count == len(original)
    expected_crs = "CRS84" if crs == "crs84" else CRSS[crs]
    assert layer.source_crs == expected_crs
    assert layer.report["crs_from"] == "file"
    assert layer.report["repaired"] == 0 and layer.report["empty_dropped"] == 0
    got = layer.metric_geometries
    if family == "polygon":
        np.testing.assert_allclose(shapely.area(got), [g.area for g in original], rtol=1e-6)
    elif family == "line":
        np.testing.assert_allclose(shapely.length(got), [g.length for g in original], rtol=1e-6)
    else:
        d = [shapely.hausdorff_distance(a, b) for a, b in zip(got, original, strict=True)]
        assert max(d) < 0.05  # metres, after a round trip through the file's CRS
    # Served geometries are lon/lat around Milan, and the bbox covers them.
    minx, miny, maxx, maxy = layer.bbox
    assert 8.5 < minx < maxx < 9.6 and 45.2 < miny < maxy < 45.7
    assert shapely.contains(shapely.box(*layer.bbox).buffer(1e-9), layer.geometries).all()
    # Attributes keep their types.
    types = {f["name"]: f["type"] for f in layer.fields}
    assert types["nome"] == "string" and types["codice"] == "integer"
    assert types["valore"] == "number"
    assert [p["codice"] for p in layer.properties] == list(range(1, len(original) + 1))
    assert layer.properties[0]["nome"] == "feature 0"
    assert isinstance(layer.properties[1]["valore"], float)


def test_rdn2008_and_gauss_boaga_land_where_utm_does(tmp_path):
    """The same polygons written in three metric CRSs are read back to the same place."""
    ref = read_upload(*to_bytes(frame(polygons()), "gpkg", tmp_path / "a"))
    for crs in ("EPSG:3003", "EPSG:7791"):
        other = read_upload(*to_bytes(frame(polygons(), crs), "shpzip", tmp_path / crs[5:]))
        d = shapely.hausdorff_distance(ref.geometries, other.geometries)
        assert np.max(d) < 1e-6  # degrees (~0.1 m)


def test_nested_folders_in_zip_are_fine(tmp_path):
    data, name = to_bytes(frame(polygons(), "EPSG:3003"), "shpzip", tmp_path, folder="a/b/")
    layer = read_upload(data, name)
    assert layer.feature_count == 3 and layer.source_crs == "EPSG:3003"


def test_gpkg_layer_choice(tmp_path):
    path = tmp_path / "two.gpkg"
    frame(polygons()).to_file(path, layer="parchi", driver="GPKG")
    frame(lines(), "EPSG:3003").to_file(path, layer="navigli", driver="GPKG")
    data = path.read_bytes()
    with pytest.raises(InvalidParameter) as exc:
        read_upload(data, "two.gpkg")
    assert exc.value.parameter == "layer"
    assert "navigli" in exc.value.message and "parchi" in exc.value.message
    assert sorted(exc.value.extra["layers"]) == ["navigli", "parchi"]
    chosen = read_upload(data, "two.gpkg", layer="navigli")
    assert chosen.family == "line" and chosen.name == "navigli"
    assert chosen.source_crs == "EPSG:3003"
    with pytest.raises(InvalidParameter, match="no layer 'boschi'"):
        read_upload(data, "two.gpkg", layer="boschi")


def test_zip_with_two_shapefiles_needs_a_choice(tmp_path):
    a, _ = to_bytes(frame(polygons()), "shpzip", tmp_path / "a", name="parchi")
    b, _ = to_bytes(frame(points()), "shpzip", tmp_path / "b", name="alberi")
    entries = {}
    for blob in (a, b):
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            entries.update({n: zf.read(n) for n in zf.namelist()})
    data = zip_files(entries)
    with pytest.raises(InvalidParameter, match=r"2 Shapefiles: .*alberi"):
        read_upload(data, "both.zip")
    assert read_upload(data, "both.zip", layer="alberi").family == "point"


def test_crs_override_and_missing_crs(tmp_path):
    gb = frame(polygons(), "EPSG:3003")
    data, name = to_bytes(gb, "shpzip", tmp_path / "gb", drop_prj=True)
    with pytest.raises(ValidationFailed) as exc:
        read_upload(data, name)
    msg = exc.value.message
    assert "no CRS" in msg and "no .prj" in msg and "crs=EPSG:3003" in msg
    assert "Gauss-Boaga" in msg and exc.value.extra["suggested_crs"] == ["EPSG:3003"]
    layer = read_upload(data, name, crs="EPSG:3003")
    assert layer.report["crs_from"] == "override" and layer.source_crs == "EPSG:3003"
    np.testing.assert_allclose(
        shapely.area(layer.metric_geometries), [g.area for g in polygons()], rtol=1e-6
    )
    utm, name = to_bytes(frame(polygons()), "shpzip", tmp_path / "utm", drop_prj=True)
    with pytest.raises(ValidationFailed, match=r"UTM zone 32N .*crs=EPSG:32632"):
        read_upload(utm, name)
    # An override that puts the data far from Milan is refused with the likely CRS.
    with pytest.raises(ValidationFailed, match=r"do not fall in northern Italy.*EPSG:3003"):
        read_upload(data, name, crs="EPSG:32632")
    with pytest.raises(InvalidParameter, match="crs: unknown CRS"):
        read_upload(data, name, crs="EPSG:999999")


def test_geojson_with_projected_coordinates_and_no_crs_member(tmp_path):
    """Old exports: Gauss-Boaga coordinates, no crs member (GDAL would assume degrees)."""
    gdf = frame(polygons(), "EPSG:3003")
    feats = orjson.loads(gdf.to_json())["features"]
    with pytest.raises(ValidationFailed) as exc:
        read_upload(geojson_bytes(feats), "old.geojson")
    assert "EPSG:3003" in exc.value.message
    assert read_upload(geojson_bytes(feats), "old.geojson", crs="3003").feature_count == 3


def test_suggest_crs_ranges():
    assert suggest_crs((1.49e6, 5.02e6, 1.53e6, 5.05e6)) == ["EPSG:3003"]
    assert suggest_crs((4.9e5, 5.02e6, 5.3e5, 5.05e6)) == ["EPSG:32632", "EPSG:7791"]
    assert suggest_crs((8.9, 45.3, 9.4, 45.6)) == ["CRS84"]
    assert suggest_crs((45.3, 8.9, 45.6, 9.4)) == ["EPSG:4326"]
    assert suggest_crs((1.0e6, 5.69e6, 1.03e6, 5.71e6)) == ["EPSG:3857"]
    assert suggest_crs((1.0, 2.0, 3e7, 4e7)) == []


def test_invalid_geometries_are_repaired_and_counted():
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[9.0, 45.5], [9.02, 45.52], [9.02, 45.5], [9.0, 45.52], [9.0, 45.5]]],
    }
    ok = {
        "type": "Polygon",
        "coordinates": [[[9.1, 45.5], [9.11, 45.5], [9.11, 45.51], [9.1, 45.5]]],
    }
    data = geojson_bytes([feature(ok, n=1), feature(bowtie, n=2)])
    layer = read_upload(data, "bowtie.geojson")
    assert layer.report["repaired"] == 1
    assert layer.report["repaired_features"][0]["feature"] == 2
    assert "Self-intersection" in layer.report["repaired_features"][0]["reason"]
    assert shapely.is_valid(layer.geometries).all()
    fixed = layer.geometries[1]
    assert fixed.geom_type == "MultiPolygon" and len(fixed.geoms) == 2
    expected = shapely.make_valid(shapely.geometry.shape(bowtie)).area
    assert fixed.area == pytest.approx(expected, rel=1e-9)
    assert [p["n"] for p in layer.properties] == [1, 2]


def test_empty_geometries_are_dropped_and_counted():
    pt = {"type": "Point", "coordinates": [9.1, 45.5]}
    data = geojson_bytes(
        [
            feature(pt, n=1),
            feature(None, n=2),
            feature({"type": "Point", "coordinates": []}, n=3),
            feature({"type": "MultiPoint", "coordinates": [[9.2, 45.4], [9.21, 45.41]]}, n=4),
        ]
    )
    layer = read_upload(data, "pts.geojson")
    # GDAL's warning about the empty coordinates is passed on when GDAL gives it, which it
    # may do once per process only (this test failed when another test in the same worker
    # had read such a file first): the counts below are what the report guarantees.
    for w in layer.report.get("reader_warnings", []):
        assert "dimension" in w and "upload" not in w, w
    assert layer.report["empty_dropped"] == 2 and layer.report["empty_features"] == [2, 3]
    assert [p["n"] for p in layer.properties] == [1, 4]
    assert layer.family == "point"


def test_mixed_geometry_types_are_refused_with_feature_numbers():
    poly = {
        "type": "Polygon",
        "coordinates": [[[9.1, 45.5], [9.11, 45.5], [9.11, 45.51], [9.1, 45.5]]],
    }
    mpoly = {"type": "MultiPolygon", "coordinates": [poly["coordinates"]]}
    line = {"type": "LineString", "coordinates": [[9.1, 45.5], [9.2, 45.5]]}
    point = {"type": "Point", "coordinates": [9.1, 45.5]}
    data = geojson_bytes([feature(poly), feature(line), feature(mpoly), feature(point)])
    with pytest.raises(ValidationFailed) as exc:
        read_upload(data, "mixed.geojson")
    msg = exc.value.message
    assert "mixed geometry types" in msg
    assert "2 polygons (features 1, 3)" in msg
    assert "1 lines (features 2)" in msg and "1 points (features 4)" in msg
    assert {d["geometry_type"] for d in exc.value.details} == {"polygon", "line", "point"}
    # Polygon + MultiPolygon alone is one family.
    assert read_upload(geojson_bytes([feature(poly), feature(mpoly)]), "p.geojson").family == (
        "polygon"
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../evil.shp", "'..' in the path"),
        ("a/../../evil.txt", "'..' in the path"),
        ("/etc/evil.shp", "absolute path"),
        ("C:/evil.shp", "absolute path"),
        ("..\\evil.dbf", "'..' in the path"),
    ],
)
def test_unsafe_zip_entries_are_refused(tmp_path, entry, problem):
    data, _ = to_bytes(frame(polygons()), "shpzip", tmp_path)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries[entry] = b"x"
    with pytest.raises(ValidationFailed) as exc:
        read_upload(zip_files(entries), "evil.zip")
    assert problem in exc.value.message
    assert {"entry": entry, "problem": problem} in exc.value.details
    assert exc.value.status == 422


def test_too_many_zip_entries(tmp_path):
    data, _ = to_bytes(frame(polygons()), "shpzip", tmp_path)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries.update({f"notes/{i}.txt": b"." for i in range(101)})
    with pytest.raises(PayloadTooLarge, match=r"106 entries, more than the limit of 100"):
        read_upload(zip_files(entries), "many.zip")
    small = _limits(max_zip_entries=3)
    with pytest.raises(PayloadTooLarge, match="CMM_GEO_MAX_ZIP_ENTRIES"):
        read_upload(data, "layer.zip", settings=small)


def test_zip_bomb_is_refused(tmp_path):
    data, _ = to_bytes(frame(polygons()), "shpzip", tmp_path)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["padding.txt"] = b"\0" * (8 * 1024 * 1024)  # compresses to a few KB
    bomb = zip_files(entries)
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge) as exc:
        read_upload(bomb, "bomb.zip", settings=_limits(max_unzipped_mb=2))
    assert "expands to" in exc.value.message and "CMM_GEO_MAX_UNZIPPED_MB" in exc.value.message
    assert exc.value.status == 413


def test_oversize_upload(tmp_path):
    data, name = to_bytes(frame(polygons()), "geojson", tmp_path)
    with pytest.raises(PayloadTooLarge, match=r"exceeds the upload limit of 0.001 MB"):
        read_upload(data, name, settings=_limits(max_upload_mb=0.001))


def test_too_many_features(tmp_path):
    data, name = to_bytes(frame(points()), "gpkg", tmp_path)
    with pytest.raises(PayloadTooLarge, match=r"4 features, more than the limit of 3"):
        read_upload(data, name, settings=_limits(max_features=3))
    assert read_upload(data, name, settings=_limits(max_features=4)).feature_count == 4


def test_empty_and_corrupt_files(tmp_path):
    with pytest.raises(ValidationFailed, match=r"empty\.geojson: the file is empty"):
        read_upload(b"", "empty.geojson")
    with pytest.raises(ValidationFailed, match="unrecognised format"):
        read_upload(b"\x89PNG\r\n\x1a\n....", "photo.png")
    with pytest.raises(ValidationFailed, match=r"not valid JSON: .* line 2"):
        read_upload(b'{"type": "FeatureCollection",\n "features": [,]}', "broken.geojson")
    with pytest.raises(ValidationFailed, match="corrupt zip"):
        read_upload(b"PK\x03\x04" + b"garbage" * 50, "broken.zip")
    gpkg, _ = to_bytes(frame(polygons()), "gpkg", tmp_path)
    with pytest.raises(ValidationFailed, match=r"truncated.gpkg: not a readable GeoPackage"):
        read_upload(gpkg[:1500], "truncated.gpkg")
    with pytest.raises(ValidationFailed, match="bare Shapefile"):
        read_upload(b"\x00\x00\x27\x0a" + b"\0" * 96, "alone.shp")


def test_shapefile_missing_parts(tmp_path):
    data, _ = to_bytes(frame(polygons()), "shpzip", tmp_path)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist() if not n.endswith(".dbf")}
    with pytest.raises(ValidationFailed, match=r"lacks its .dbf"):
        read_upload(zip_files(entries), "nodbf.zip")
    with pytest.raises(ValidationFailed, match="holds no Shapefile"):
        read_upload(zip_files({"readme.txt": b"hello"}), "nothing.zip")


def test_detect_format_ignores_the_name(tmp_path):
    data, _ = to_bytes(frame(polygons()), "gpkg", tmp_path)
    assert detect_format(data, "misnamed.geojson") == "gpkg"
    assert read_upload(data, "misnamed.geojson").feature_count == 3


def test_plis_sample_is_read(shared_reference):
    layer = read_upload(
        (shared_reference / "plis_lombardia_sample.geojson").read_bytes(),
        "plis_lombardia_sample.geojson",
    )
    assert layer.feature_count == 9 and layer.family == "polygon"
    assert layer.source_crs == "CRS84"
    assert shapely.is_valid(layer.geometries).all()
    types = {f["name"]: f["type"] for f in layer.fields}
    assert types["NOME_PLIS"] == "string" and types["AREA_ATTO"] == "number"
    assert "area ha" in types
    # The metric geometries match an independent pyproj projection of the raw file.
    raw = orjson.loads((shared_reference / "plis_lombardia_sample.geojson").read_bytes())
    tx = Transformer.from_crs("OGC:CRS84", "EPSG:32632", always_xy=True)
    for f, got in zip(raw["features"], layer.metric_geometries, strict=True):
        g = shapely.make_valid(shapely.geometry.shape(f["geometry"]))
        expected = shapely.transform(g, lambda xy: np.column_stack(tx.transform(*xy.T)))
        assert got.area == pytest.approx(expected.area, rel=1e-6)
    # SHAPE_AREA is the regional area in m²: ours agrees within 1 %.
    for p, got in zip(layer.properties, layer.metric_geometries, strict=True):
        assert got.area == pytest.approx(p["SHAPE_AREA"], rel=0.01)


def test_point_layer_stays_where_it_was(tmp_path):
    """A point written in Gauss-Boaga comes back inside the comune it was built in."""
    data, name = to_bytes(frame(points(), "EPSG:3003"), "geojson", tmp_path)
    layer = read_upload(data, name)
    assert metric(RHO).contains(layer.metric_geometries[0])
