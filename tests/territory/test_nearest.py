"""The nearest comune to points outside: exact, lowest code on ties, the same one by one and
in a batch, wherever the point is (near, far, on the grid's edge, beyond it); the index kept in
the data dir between starts, read back whole or built again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.crs import CRS84, METRIC_EPSG, epsg_uri, transformer_xy
from geo.territory import get_territory, lookup, nearest
from geo.territory.nearest import CELL_M, MARGIN_M, TIE_M, nearest_index


def reference(t, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force with shapely: distance to every comune, lowest index among the closest."""
    pts = shapely.points(mx, my)
    d = shapely.distance(t.metric_geometries[None, :], pts[:, None])
    best = d.min(axis=1)
    owner = np.array(
        [np.flatnonzero(row <= b + TIE_M).min() for row, b in zip(d, best, strict=True)]
    )
    return owner, best


def outside_points(n: int, seed: int, spread_deg: float) -> tuple[np.ndarray, np.ndarray]:
    t = get_territory()
    x0, y0, x1, y1 = shapely.total_bounds(t.geometries)
    rng = np.random.default_rng(seed)
    lon = rng.uniform(x0 - spread_deg, x1 + spread_deg, n)
    lat = rng.uniform(y0 - spread_deg, y1 + spread_deg, n)
    keep = lookup.locate_indices(t, lon, lat) < 0
    return lon[keep], lat[keep]


def test_grid_answers_exactly_what_shapely_answers():
    t = get_territory()
    lon, lat = outside_points(4000, 1, 0.35)  # near, far, and beyond the grid's margin
    mx, my = transformer_xy(CRS84, epsg_uri(METRIC_EPSG)).transform(lon, lat)
    owner, dist = nearest_index(t).query(t, np.asarray(mx), np.asarray(my))
    ref_owner, ref_dist = reference(t, np.asarray(mx), np.asarray(my))
    assert np.array_equal(owner, ref_owner)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-6)
    ix = nearest_index(t)
    beyond = (np.asarray(mx) < ix.x0) | (np.asarray(mx) > ix.x0 + ix.nx * CELL_M)
    assert beyond.any(), "some points must test the path beyond the grid"
    assert MARGIN_M > 0


def test_the_grid_is_the_same_whatever_its_blocks_and_stays_small(monkeypatch):
    """The grid is built a block of rows at a time (bounded memory): one row per block gives
    the same candidates as the default blocks; stored in narrow integers, a few MB."""
    t = get_territory()
    ix = nearest_index(t)
    monkeypatch.setattr(nearest, "BLOCK_CELLS", 1)  # one row of cells per block
    rows = nearest.NearestIndex.build(t)
    assert (rows.nx, rows.ny) == (ix.nx, ix.ny)
    assert np.array_equal(rows.starts, ix.starts)
    assert np.array_equal(rows.cand, ix.cand)
    assert ix.cand.dtype.itemsize <= 4 and ix.starts.dtype.itemsize <= 4
    assert ix.starts[-1] == ix.cand.size and np.all(np.diff(ix.starts) >= 1)  # none empty
    size = sum(v.nbytes for v in vars(ix).values() if isinstance(v, np.ndarray))
    assert size < 8 * 2**20, f"the index takes {size / 2**20:.1f} MB"


def test_queries_answered_in_blocks_agree_with_one_block(monkeypatch):
    t = get_territory()
    lon, lat = outside_points(3000, 3, 0.3)
    mx, my = transformer_xy(CRS84, epsg_uri(METRIC_EPSG)).transform(lon, lat)
    mx, my = np.asarray(mx), np.asarray(my)
    owner, dist = nearest_index(t).query(t, mx, my)
    monkeypatch.setattr(nearest, "QUERY_BLOCK", 7)
    owner7, dist7 = nearest_index(t).query(t, mx, my)
    assert np.array_equal(owner, owner7)
    assert np.array_equal(dist, dist7)
    assert (owner >= 0).all()


def test_single_and_batch_agree():
    lon, lat = outside_points(300, 2, 0.2)
    batch = lookup.locate_columns(lon, lat).to_dict()["results"]
    for x, y, row in zip(lon, lat, batch, strict=True):
        code, dist = lookup.nearest(get_territory(), float(x), float(y))
        assert row["istat_code"] is None
        assert row["nearest_istat_code"] == code
        assert abs(row["distance_m"] - round(dist, 1)) <= 0.051


def test_equidistant_comuni_give_the_lowest_code():
    """At a vertex two or more comuni share, every one of them is at distance 0."""
    t = get_territory()
    ix = nearest_index(t)
    owners: dict[tuple[float, float], set[int]] = {}
    for k in range(ix.ax.size):
        owners.setdefault((float(ix.ax[k]), float(ix.ay[k])), set()).add(int(ix.owner[k]))
    shared = [(xy, o) for xy, o in owners.items() if len(o) >= 2][:200]
    assert len(shared) >= 50
    xs = np.array([xy[0] for xy, _ in shared])
    ys = np.array([xy[1] for xy, _ in shared])
    owner, dist = ix.query(t, xs, ys)
    ref_owner, _ = reference(t, xs, ys)
    assert np.array_equal(owner, ref_owner)
    assert np.allclose(dist, 0.0, atol=1e-6)
    assert [int(o) for o in owner] == [min(o) for _, o in shared]


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=7.5, max_value=11.0),
    st.floats(min_value=44.5, max_value=46.5),
)
def test_any_point_outside_matches_the_brute_force(lon, lat):
    t = get_territory()
    if lookup.locate_indices(t, np.array([lon]), np.array([lat]))[0] >= 0:
        return
    mx, my = transformer_xy(CRS84, epsg_uri(METRIC_EPSG)).transform(lon, lat)
    owner, dist = nearest_index(t).query(t, np.array([mx]), np.array([my]))
    ref_owner, ref_dist = reference(t, np.array([mx]), np.array([my]))
    assert owner[0] == ref_owner[0]
    assert abs(dist[0] - ref_dist[0]) < 1e-6


def test_rdn2008_epsg_6707_is_northing_first_in_single_and_batch_lookups():
    """EPSG:6707 (RDN2008 / UTM 32N) has northing as its first axis, as EPSG defines it."""
    from pyproj import Transformer

    n, e = Transformer.from_crs("EPSG:4326", "EPSG:6707").transform(45.4642, 9.19)
    assert n > 5_000_000 > e  # first axis northing
    assert lookup.locate_point(n, e, "EPSG:6707")["comune"]["name"] == "Milano"
    row = lookup.locate_columns(np.array([n]), np.array([e]), "EPSG:6707").to_dict()
    assert row["results"][0]["name"] == "Milano"
    e2, n2 = Transformer.from_crs("EPSG:4326", "EPSG:7791", always_xy=True).transform(9.19, 45.4642)
    assert lookup.locate_point(e2, n2, "EPSG:7791")["comune"]["name"] == "Milano"


# ----- kept between starts ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_index():
    """The index of the territory, built once for these tests (the grid tests above check
    the build itself; these check how it is kept and read)."""
    return nearest_index(get_territory())


@pytest.fixture
def own_data_dir(tmp_path, monkeypatch, good_index):
    """A data dir of this test alone, and no index in this process's memory."""
    from geo.settings import get_settings

    monkeypatch.setenv("CMM_GEO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    saved = dict(nearest._indices)
    nearest._indices.clear()
    yield tmp_path
    nearest._indices.clear()
    nearest._indices.update(saved)
    get_settings.cache_clear()


def _answers(t, idx) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = outside_points(3000, 7, 0.3)
    mx, my = transformer_xy(CRS84, epsg_uri(METRIC_EPSG)).transform(lon, lat)
    return idx.query(t, mx, my)


def _builds(monkeypatch, idx) -> list[object]:
    """Count the builds, each answering ``idx`` (a real build takes seconds; its result is
    what the grid tests check)."""
    calls: list[object] = []

    def build(t):
        calls.append(t)
        return idx

    monkeypatch.setattr(nearest.NearestIndex, "build", staticmethod(build))
    return calls


def _same(a, b) -> bool:
    return all(
        np.array_equal(getattr(a, f.name), getattr(b, f.name))
        and np.asarray(getattr(a, f.name)).dtype == np.asarray(getattr(b, f.name)).dtype
        for f in dataclasses.fields(a)
    )


def test_the_index_is_kept_in_the_data_dir_and_read_at_the_next_start(
    own_data_dir, monkeypatch, good_index
):
    t = get_territory()
    builds = _builds(monkeypatch, good_index)
    assert nearest_index(t) is good_index and len(builds) == 1
    path = nearest.cache_path(t)
    assert path.parent.parent == own_data_dir and path.is_file()
    assert t.version in path.name
    nearest._indices.clear()  # the next start of a worker
    read = nearest_index(t)
    assert len(builds) == 1  # read, not built
    assert read is not good_index and _same(read, good_index)
    got, want = _answers(t, read), _answers(t, good_index)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert not list(path.parent.glob(".nearest-*"))  # no temp file left behind


@pytest.mark.parametrize("damage", ["truncated", "garbage", "out of range", "pickled"])
def test_a_damaged_kept_index_is_built_again_and_replaced(
    own_data_dir, damage, caplog, monkeypatch, good_index
):
    t = get_territory()
    path = nearest.cache_path(t)
    nearest._keep(path, good_index)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not an npz" * 100)
    else:
        arrays = {
            f.name: np.asarray(getattr(good_index, f.name)) for f in dataclasses.fields(good_index)
        }
        if damage == "out of range":
            arrays["cand"] = arrays["cand"].copy()
            arrays["cand"][5] = len(arrays["ax"]) + 10  # a segment that does not exist
        else:  # an object array: never unpickled (allow_pickle=False)
            arrays["owner"] = np.array([object()] * len(arrays["owner"]), dtype=object)
        np.savez(path, **arrays)
    assert nearest._kept(path, t) is None
    builds = _builds(monkeypatch, good_index)
    assert nearest_index(t) is good_index and len(builds) == 1
    assert "built again" in caplog.text
    kept = nearest._kept(path, t)  # written over, whole
    assert kept is not None and _same(kept, good_index)


def test_a_data_dir_that_cannot_be_written_still_answers(
    own_data_dir, caplog, monkeypatch, good_index
):
    (own_data_dir / "cache").write_text("a file where the cache directory would be")
    t = get_territory()
    builds = _builds(monkeypatch, good_index)
    idx = nearest_index(t)
    assert len(builds) == 1 and "not kept" in caplog.text
    owner, dist = _answers(t, idx)
    assert (owner >= 0).all() and np.isfinite(dist).all()
