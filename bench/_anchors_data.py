"""Data of bench/anchors.py: synthetic interventions and polygons, loaded by the service's
own store code into one PostGIS schema (and, for ``ours-sqlite``, into a fresh embedded
SQLite store: the same functions, another engine), plus the views the anchors (tipg,
pygeoapi) read.

* Interventions (points inside the 133 comuni, an amount on 4 rows of 5) go through
  :func:`geo.interventions.prepare` → :func:`geo.interventions.upsert`, in chunks, with ids
  ``b-0000000``…, so a larger size is a top-up of a smaller one; each chunk is drawn from a
  seed of its start, so two stores topped up through the same sizes hold the same rows
  (:func:`fingerprint` checks it).
* Polygons (≈50 vertices, star-shaped so always valid, 100–600 m radius, centres uniform in
  lon 8.7–9.6, lat 45.15–45.65) go through :func:`geo.layers.collection.add_layer`.
* ``bench_points`` is a view of ``interventions`` (every column the service answers from,
  without the internal ones: ``geometry_wkb``, bbox columns, ``content_hash``);
  ``bench_polygons`` is a view of ``layer_features`` filtered to the one layer, its JSON
  properties as columns. Both are plain views: PostgreSQL inlines them, so the anchors use the
  same GIST index of ``geom`` (generated from the WKB by migration 0001) and the same rows.
  (PostGIS only: the anchors do not read SQLite.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo import interventions as iv
from geo.interventions.model import InputTable
from geo.layers.reading import LayerData
from geo.plan import PlanCatalogue
from geo.territory import get_territory, to_metric

ID_FORMAT = "b-%07d"
POLYGON_BBOX = (8.7, 45.15, 9.6, 45.65)
POLYGON_LAYER_NAME = "Bench polygons"
CHUNK = 50_000
#: Amounts of the generated interventions (uniform), the range the CQL2 case draws from.
AMOUNT_RANGE = (10_000.0, 20_000_000.0)

POINT_COLUMNS = (
    "id",
    "title",
    "programme",
    "missions",
    "objectives",
    "drivers",
    "comuni",
    "comuni_named",
    "precision",
    "amount_eur",
    "status",
    "period",
    "cup",
    "source_url",
    "reliability",
    "remark",
    "source",
    "component",
    "component_title",
    "submeasure",
    "summary",
    "implementing_body",
    "implementing_body_cf",
    "pnrr_amount_eur",
    "as_of",
    "created_at",
    "updated_at",
    "geom",
)


def _points_in_comuni(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random points, each inside a random comune (rejection sampling, vectorised)."""
    t = get_territory()
    comuni = rng.integers(0, len(t.comuni_list), n)
    b = shapely.bounds(t.geometries)
    xs, ys = np.empty(n), np.empty(n)
    todo = np.arange(n)
    while len(todo):
        c = comuni[todo]
        x = np.round(rng.uniform(b[c, 0], b[c, 2]), 6)
        y = np.round(rng.uniform(b[c, 1], b[c, 3]), 6)
        ok = shapely.contains_xy(t.geometries[c], x, y)
        xs[todo[ok]], ys[todo[ok]] = x[ok], y[ok]
        todo = todo[~ok]
    return shapely.points(xs, ys)


def intervention_table(start: int, stop: int) -> InputTable:
    """Rows ``start``…``stop - 1`` (deterministic per chunk start): located points."""
    rng = np.random.default_rng(1_000_003 + start)
    n = stop - start
    progs = [p.name for p in PlanCatalogue.load().programmes]
    amounts = np.round(rng.uniform(*AMOUNT_RANGE, n), 2)
    idx = np.arange(start, stop)
    frame = pd.DataFrame(
        {
            "id": [ID_FORMAT % i for i in idx],
            "title": [f"Intervento sintetico {i}" for i in idx],
            "programme": [progs[i % len(progs)] for i in idx],
            "amount_eur": [
                "" if i % 5 == 0 else repr(float(a)) for i, a in zip(idx, amounts, strict=True)
            ],
            "status": np.where(idx % 3 == 0, "completed", "planned"),
        }
    )
    return InputTable.build(frame, _points_in_comuni(n, rng))


def count_generated(engine: Engine) -> int:
    """How many generated (``b-…``) interventions the store holds."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM interventions WHERE id LIKE 'b-%'")
        ).scalar_one()


def load_points(engine: Engine, size: int, log: Callable[[str], None] = print) -> float:
    """Top the generated interventions up to ``size`` (prepare + upsert per chunk); seconds."""
    have = count_generated(engine)
    t0 = time.perf_counter()
    for start in range(have, size, CHUNK):
        stop = min(size, start + CHUNK)
        prepared = iv.prepare(intervention_table(start, stop), source="bench")
        prepared.raise_for_errors()
        iv.upsert(prepared, engine=engine)
        log(f"  interventions {stop:,}/{size:,} ({time.perf_counter() - t0:.0f} s)")
    return time.perf_counter() - t0


def polygons(n: int, seed: int = 20) -> np.ndarray:
    """``n`` star-shaped polygons of 50 vertices (+ the closing one) inside POLYGON_BBOX."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = POLYGON_BBOX
    lat0 = (miny + maxy) / 2
    kx, ky = 1 / (111_320 * np.cos(np.radians(lat0))), 1 / 110_540  # degrees per metre
    radius = rng.uniform(100, 600, n)
    margin_x, margin_y = 600 * kx, 600 * ky
    cx = rng.uniform(minx + margin_x, maxx - margin_x, n)
    cy = rng.uniform(miny + margin_y, maxy - margin_y, n)
    angles = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    r = radius[:, None] * rng.uniform(0.7, 1.0, (n, 50))
    x = np.round(cx[:, None] + r * np.cos(angles) * kx, 6)
    y = np.round(cy[:, None] + r * np.sin(angles) * ky, 6)
    ring = np.stack([x, y], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)  # closed: 51 coordinates
    return shapely.polygons(ring)


def load_polygons(engine: Engine, n: int) -> str:
    """Store ``n`` polygons as one layer through the service's layer code; its id."""
    from geo.layers.collection import add_layer

    geoms = polygons(n)
    rng = np.random.default_rng(21)
    kinds = np.array(["parco", "plis", "bosco", "filare"])[rng.integers(0, 4, n)]
    area_ha = np.round(shapely.area(to_metric(geoms)) / 10_000, 3)
    props = [
        {"name": f"Area {i}", "kind": str(k), "area_ha": float(a)}
        for i, (k, a) in enumerate(zip(kinds, area_ha, strict=True))
    ]
    data = LayerData(
        name=POLYGON_LAYER_NAME,
        family="polygon",
        geometries=geoms,
        metric_geometries=to_metric(geoms),
        properties=props,
        fields=[
            {"name": "name", "type": "string"},
            {"name": "kind", "type": "string"},
            {"name": "area_ha", "type": "number"},
        ],
        source_crs="CRS84",
        bbox=tuple(float(v) for v in shapely.total_bounds(geoms)),
        report={
            "filename": "bench",
            "format": "generated",
            "features_read": n,
            "features_kept": n,
            "geometry_type": "polygon",
            "source_crs": "CRS84",
        },
    )
    return add_layer(data, POLYGON_LAYER_NAME, engine=engine)["id"]


def create_views(engine: Engine, layer_id: str) -> None:
    """The views tipg and pygeoapi serve (same tables, same rows, same GIST index)."""
    cols = ", ".join(f'"{c}"' for c in POINT_COLUMNS)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW IF EXISTS bench_points")
        conn.exec_driver_sql(f"CREATE VIEW bench_points AS SELECT {cols} FROM interventions")
        conn.exec_driver_sql("DROP VIEW IF EXISTS bench_polygons")
        conn.execute(
            sa.text(
                "CREATE VIEW bench_polygons AS SELECT fid AS id, properties->>'name' AS name, "
                "properties->>'kind' AS kind, (properties->>'area_ha')::float8 AS area_ha, "
                f"geom FROM layer_features WHERE layer_id = '{layer_id}'"
            )
        )


def write_sample_points(
    engine: Engine, path: Path, n: int = 10_000, layer_id: str | None = None
) -> int:
    """``n`` random stored points (``x y`` lines) for the bbox case to centre its boxes on, so
    every box holds data (a box drawn anywhere in the extent is empty half the time); with
    ``layer_id``, a point on the surface of ``n`` random features of that layer instead
    (bench/tiles.py picks the tiles containing them). On SQLite (no ``geom`` column) a point's
    bbox corner is the point, and the point on the surface comes from shapely."""
    if engine.dialect.name == "sqlite":
        sql = (
            "SELECT minx, miny FROM interventions WHERE id LIKE 'b-%' ORDER BY random() LIMIT :n"
            if layer_id is None
            else "SELECT geometry_wkb FROM layer_features WHERE layer_id = :layer "
            "ORDER BY random() LIMIT :n"
        )
    else:
        sql = (
            "SELECT ST_X(geom), ST_Y(geom) FROM interventions "
            "WHERE id LIKE 'b-%' ORDER BY random() LIMIT :n"
            if layer_id is None
            else "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p "
            "FROM layer_features WHERE layer_id = :layer ORDER BY random() LIMIT :n) s"
        )
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"n": n, "layer": layer_id}).all()
    if rows and len(rows[0]) == 1:  # WKB (SQLite, layer): its point on the surface
        pts = shapely.point_on_surface(shapely.from_wkb([bytes(r[0]) for r in rows]))
        rows = list(zip(shapely.get_x(pts), shapely.get_y(pts), strict=True))
    path.write_text("".join(f"{x:.6f} {y:.6f}\n" for x, y in rows))
    return len(rows)


def fingerprint(engine: Engine) -> tuple[int, float, float, float]:
    """Count and coordinate/amount sums of the generated interventions: equal on two stores
    that hold the same rows (the sums rounded, as their order of addition may differ)."""
    with engine.connect() as conn:
        n, sx, sy, sa_ = conn.execute(
            sa.text(
                "SELECT count(*), sum(minx), sum(miny), sum(amount_eur) FROM interventions "
                "WHERE id LIKE 'b-%'"
            )
        ).one()
    return int(n), round(float(sx or 0), 3), round(float(sy or 0), 3), round(float(sa_ or 0), 0)


def same_fingerprints(prints: list[tuple[int, float, float, float]]) -> bool:
    """Whether the stores' fingerprints agree: counts exactly, sums to 1e-12 of their size
    (a sum of 1 M amounts in another order may differ in its last digits: 8,013,788,733,655
    on PostGIS, …654 on SQLite)."""
    first = prints[0]
    for other in prints[1:]:
        if other[0] != first[0]:
            return False
        for a, b in zip(first[1:], other[1:], strict=True):
            if abs(a - b) > 1e-12 * max(abs(a), abs(b)) + 1e-3:
                return False
    return True


def vacuum_analyze(engine: Engine) -> None:
    """Fresh statistics and visibility maps after a load (same starting state for all).

    On SQLite only a WAL checkpoint (TRUNCATE: the file holds everything, the WAL is empty):
    no ``VACUUM`` (it may renumber the rowids the R*Trees are keyed by) and no ``ANALYZE``
    (the service never runs it on SQLite, so a store it loaded has no statistics either)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # autocommit (isolation_level None): no open transaction
        try:
            busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        if busy:
            raise RuntimeError("SQLite WAL checkpoint blocked by another connection")
        os.sync()  # see below
        return
    tables = ("interventions", "intervention_comuni", "layer_features", "layers")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        _all_visible(conn, tables)
        # The load's writes on disk now, not during the measurements: PostgreSQL's next
        # timed checkpoint (and the kernel's write-back) came minutes after a load, in the
        # middle of the next server's runs (one such run: I/O pressure 8 %, a p99 of 5 s).
        conn.exec_driver_sql("CHECKPOINT")
    os.sync()


def _all_visible(conn: Any, tables: tuple[str, ...]) -> None:
    """VACUUM again until the pages of ``tables`` are marked all-visible."""
    # A VACUUM right after an asynchronous commit (the throwaway cluster runs with
    # synchronous_commit=off) cannot yet mark that commit's pages all-visible: half the
    # points stayed unmarked, so every count paid heap visits and the planners chose
    # scans. Once the WAL writer has caught up (a fraction of a second) it can. (A few
    # pages where the write test deleted rows keep their dead line pointers, hence the
    # 99 %: with so few, VACUUM skips the index pass that would free them.)
    for _ in range(20):
        unmarked = (
            conn.exec_driver_sql(
                "SELECT relname FROM pg_class WHERE oid = ANY(%(oids)s::regclass[])"
                " AND relallvisible < 0.99 * relpages",
                {"oids": list(tables)},
            )
            .scalars()
            .all()
        )
        if not unmarked:
            return
        time.sleep(0.5)
        for table in unmarked:
            conn.exec_driver_sql(f"VACUUM {table}")
    print(f"warning: VACUUM leaves pages not all-visible in {', '.join(unmarked)}", flush=True)
