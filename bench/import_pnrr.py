"""Benchmark: import the PNRR open data (Italia Domani layout) into the store.

    .venv/bin/python bench/import_pnrr.py [--scale 100] [--pg-url URL]

Times the real extraction ``../shared/reference/pnrr_progetti_mi_2023.csv`` (when present)
and a synthetic file ``--scale`` times larger (every row repeated with rewritten CUPs,
≈213,000 rows at 100×), on a fresh embedded SQLite store — and on PostGIS (a throwaway
schema) when ``--pg-url`` (or CMM_GEO_TEST_DATABASE_URL) is given: first import (all
new) and re-import (all unchanged). Prints rows/s and writes ``bench/results/pnrr.md``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from geo import interventions as iv
from geo.interventions import pnrr
from geo.store import create_store_engine, migrate

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "reference" / "pnrr_progetti_mi_2023.csv"
RESULTS = ROOT / "bench" / "results" / "pnrr.md"


def synthesise(src: Path, dst: Path, scale: int) -> int:
    """``scale`` copies of ``src`` with new CUPs (``S`` + copy + project number): rows."""
    df = pd.read_csv(src, sep=";", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    codes, _ = pd.factorize(df["CUP"])
    parts = []
    for k in range(scale):
        part = df.copy()
        part["CUP"] = [f"S{k:02d}{j:012d}" for j in codes]
        part["Codice Locale Progetto"] = part["Codice Locale Progetto"] + f"_{k}"
        parts.append(part)
    big = pd.concat(parts, ignore_index=True)
    big.to_csv(dst, sep=";", index=False, encoding="utf-8-sig")
    return len(big)


def run(label: str, engine, path: Path) -> list[dict]:
    """Time read+map → validate → upsert, twice (new projects, then unchanged)."""
    out = []
    for attempt in ("first import", "re-import"):
        t0 = time.perf_counter()
        pt = pnrr.read_pnrr(path)
        t1 = time.perf_counter()
        prepared = pnrr.prepare_pnrr(pt)
        prepared.raise_for_errors()
        t2 = time.perf_counter()
        report = iv.upsert(prepared, engine=engine)
        t3 = time.perf_counter()
        r = {
            "store": label, "file": path.name, "attempt": attempt, "rows": pt.rows,
            "projects": len(prepared.records), "skipped": len(pt.skipped),
            "read": t1 - t0, "validate": t2 - t1, "write": t3 - t2, "total": t3 - t0,
            "new": len(report.new), "unchanged": len(report.unchanged),
        }  # fmt: skip
        print(
            f"{label:8s} {path.name[:28]:28s} {attempt:12s} {r['rows']:>8,} rows in "
            f"{r['total']:6.1f} s ({r['rows'] / r['total']:>8,.0f} rows/s): read+map "
            f"{r['read']:.1f} s, validate {r['validate']:.1f} s, write {r['write']:.1f} s — "
            f"{r['projects']:,} projects: new {r['new']:,}, unchanged {r['unchanged']:,}"
        )
        out.append(r)
    return out


def _stores(tmp: str, pg_url: str | None):
    engine = create_store_engine(f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:6]}.sqlite")
    migrate(engine)
    yield "SQLite", engine
    engine.dispose()
    if pg_url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        engine = create_store_engine(pg_url, schema=schema)
        try:
            migrate(engine)
            yield "PostGIS", engine
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            engine.dispose()


def main(
    scale: Annotated[int, typer.Option(help="copies of the real file in the synthetic one")] = 100,
    pg_url: Annotated[str | None, typer.Option(help="PostGIS URL (SQLAlchemy)")] = None,
    write: Annotated[bool, typer.Option(help="write bench/results/pnrr.md")] = True,
) -> None:
    """Time the real file and the synthetic one on each store."""
    if not REAL.is_file():
        raise typer.Exit(f"{REAL} is absent: this benchmark reads the real extraction")
    pg_url = pg_url or os.environ.get("CMM_GEO_TEST_DATABASE_URL")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cmm-geo-bench-") as tmp:
        big = Path(tmp) / f"pnrr_x{scale}.csv"
        t0 = time.perf_counter()
        n = synthesise(REAL, big, scale)
        print(f"generated {n:,} rows ({big.stat().st_size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        for path in (REAL, big):
            for label, engine in _stores(tmp, pg_url):
                results.extend(run(label, engine, path))
    if write:
        _write(results, scale)


def _write(results: list[dict], scale: int) -> None:
    lines = [
        "# PNRR import benchmark",
        "",
        "`bench/import_pnrr.py`: the real extraction (`pnrr_progetti_mi_2023.csv`, 2,131 "
        f"rows) and a synthetic file {scale}× larger (CUPs rewritten), each on a fresh store; "
        "read+map = CSV parsing, comune resolution, merge by CUP; validate = the "
        "interventions machinery (placement at the comuni); write = the all-or-nothing "
        "upsert (re-import: hashes compared, nothing written).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s) (shared), Python "
        f"{platform.python_version()}.",
        "",
        "| store | file | attempt | rows | projects | skipped | read+map s | validate s "
        "| write s | total s | rows/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['store']} | {r['file']} | {r['attempt']} | {r['rows']:,} | "
            f"{r['projects']:,} | {r['skipped']:,} | {r['read']:.2f} | {r['validate']:.2f} | "
            f"{r['write']:.2f} | {r['total']:.2f} | {np.floor(r['rows'] / r['total']):,.0f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    typer.run(main)
