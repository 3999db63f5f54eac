"""Benchmark: import 100,000 synthetic interventions (CSV) into the store.

    .venv/bin/python bench/import_interventions.py [--rows 100000] [--pg-url URL]

Generates a CSV (points inside random comuni, rows located by comune name only, rows
naming two comuni), then times reading, validation + spatial join and the all-or-nothing
upsert on a fresh embedded SQLite store — and on PostGIS (a throwaway schema) when
``--pg-url`` (or CMM_GEO_TEST_DATABASE_URL) is given. Prints rows/s. Target: < 30 s.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import numpy as np
import shapely
import typer

from geo import interventions as iv
from geo.interventions.reading import read_file
from geo.plan import PlanCatalogue
from geo.store import create_store_engine, migrate
from geo.territory import get_territory


def generate(path: Path, n: int, seed: int = 4) -> None:
    """Write ``n`` synthetic rows: 60% with lat/lon, 30% one comune, 10% two comuni."""
    rng = np.random.default_rng(seed)
    t = get_territory()
    progs = [p.name for p in PlanCatalogue.load().programmes]
    comuni = rng.integers(0, len(t.comuni_list), n)
    # random points inside the comuni: sample in each bbox, keep those inside
    pts = np.empty(n, dtype=object)
    todo = np.arange(n)
    b = shapely.bounds(t.geometries)
    while len(todo):
        c = comuni[todo]
        x = np.round(rng.uniform(b[c, 0], b[c, 2]), 6)
        y = np.round(rng.uniform(b[c, 1], b[c, 3]), 6)
        cand = shapely.points(x, y)
        ok = shapely.contains_xy(t.geometries[c], x, y)
        pts[todo[ok]] = cand[ok]
        todo = todo[~ok]
    kind = rng.random(n)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "programme", "comuni", "lat", "lon", "amount_eur", "status"])
        for i in range(n):
            name = t.comuni_list[comuni[i]].name
            lat = lon = ""
            if kind[i] < 0.6:
                lon, lat = f"{pts[i].x:.6f}", f"{pts[i].y:.6f}"
                names = ""
            elif kind[i] < 0.9:
                names = name
            else:
                names = f"{name};{t.comuni_list[(comuni[i] + 7) % 133].name}"
            amount = "" if i % 5 == 0 else f"{rng.integers(10_000, 20_000_000)}"
            w.writerow([f"b-{i:06d}", f"Intervention {i}", progs[i % len(progs)], names,
                        lat, lon, amount, "planned"])  # fmt: skip


def run(label: str, engine, path: Path) -> None:
    """Time read → prepare → upsert, twice (new rows, then unchanged)."""
    for attempt in ("first import", "re-import"):
        t0 = time.perf_counter()
        table = read_file(path)
        t1 = time.perf_counter()
        prepared = iv.prepare(table, source="bench")
        t2 = time.perf_counter()
        report = iv.upsert(prepared, engine=engine)
        t3 = time.perf_counter()
        n = len(table.frame)
        print(
            f"{label:8s} {attempt:12s} {n:,} rows in {t3 - t0:5.1f} s "
            f"({n / (t3 - t0):,.0f} rows/s): read {t1 - t0:.1f} s, validate+join "
            f"{t2 - t1:.1f} s, write {t3 - t2:.1f} s — new {len(report.new):,}, "
            f"unchanged {len(report.unchanged):,}"
        )


def main(
    rows: Annotated[int, typer.Option(help="rows to generate")] = 100_000,
    pg_url: Annotated[str | None, typer.Option(help="PostGIS URL (SQLAlchemy)")] = None,
) -> None:
    """Generate the CSV and time the import on each store."""
    pg_url = pg_url or os.environ.get("CMM_GEO_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="cmm-geo-bench-") as tmp:
        path = Path(tmp) / "interventions.csv"
        t0 = time.perf_counter()
        generate(path, rows)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        engine = create_store_engine(f"sqlite:///{tmp}/bench.sqlite")
        migrate(engine)
        run("SQLite", engine, path)
        engine.dispose()
        if pg_url:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            engine = create_store_engine(pg_url, schema=schema)
            try:
                migrate(engine)
                run("PostGIS", engine, path)
            finally:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                engine.dispose()


if __name__ == "__main__":
    typer.run(main)
