"""CLI group ``cmm-geo import``: ``interventions FILE`` and ``pnrr FILE [LOCALISATION]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from geo.errors import GeoError
from geo.terminal import console, fail, progress

import_app = typer.Typer(help="Import data into the store.", no_args_is_help=True)


@import_app.command("interventions")
def import_interventions(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, GeoJSON, GPKG")],
    crs: Annotated[str | None, typer.Option(help="CRS of x/y, WKT or a CRS-less layer")] = None,
    source: Annotated[str, typer.Option(help="source of rows that do not say")] = "import",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only")] = False,
    json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Validate FILE and upsert its interventions by id, all-or-nothing."""
    from geo import interventions as iv
    from geo.interventions.reading import read_file

    try:
        with progress() as bar:
            task = bar.add_task("reading", total=None)
            table = read_file(file, crs=crs)
            n = len(table.frame)
            bar.update(task, description="validating", total=n)
            prepared = iv.prepare(table, source=source)
            prepared.raise_for_errors()
            bar.update(task, completed=n)
            if dry_run:
                console.print(f"{n:,} rows valid (dry run: nothing written)")
                return
            write = bar.add_task("writing", total=n)
            report = iv.upsert(prepared, progress=lambda k: bar.advance(write, k))
    except GeoError as exc:
        fail(exc)
        return
    if json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
        return
    console.print(
        f"[green]imported[/] {file.name}: {len(report.new):,} new, "
        f"{len(report.updated):,} updated, {len(report.unchanged):,} unchanged"
    )


@import_app.command("pnrr")
def import_pnrr(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Italia Domani CSV (or joined)")
    ],
    localisation: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="Localisation CSV, joined by CUP"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only")] = False,
    json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Import PNRR projects (Italia Domani open data) as interventions, by CUP, all-or-nothing."""
    from geo import interventions as iv
    from geo.interventions import pnrr

    try:
        with progress() as bar:
            task = bar.add_task("reading and mapping rows", total=None)
            pt = pnrr.read_pnrr(file, localisation)
            n = len(pt.table.frame)
            bar.update(task, description="validating projects", total=n, completed=0)
            prepared = pnrr.prepare_pnrr(pt)
            prepared.raise_for_errors()
            bar.update(task, completed=n)
            report = pnrr.PnrrReport(pt, None)
            if not dry_run:
                write = bar.add_task("writing projects", total=n)
                done = iv.upsert(prepared, progress=lambda k: bar.advance(write, k))
                report = pnrr.PnrrReport(pt, done)
    except GeoError as exc:
        fail(exc)
        return
    out = report.to_dict()
    if json:
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return
    head = "[yellow]dry run[/] (nothing written)" if dry_run else "[green]imported[/]"
    console.print(
        f"{head} {file.name}{' + ' + localisation.name if localisation else ''}: "
        f"{out['rows']:,} rows → {out['imported_rows']:,} imported "
        f"({out['merged_rows']:,} merged duplicates), {out['skipped_rows']:,} skipped; "
        f"{out['projects']:,} projects"
        + (
            ""
            if dry_run
            else f": {out['new']:,} new, {out['updated']:,} updated, {out['unchanged']:,} unchanged"
        )
    )
    for g in out["skipped"]["by_reason"]:
        ex = g["examples"][0]
        console.print(
            f"  skipped {g['count']:,} × {g['reason']} (e.g. row {ex['row']} {ex['cup']}: "
            f"{ex['detail']})"
        )
    for g in out["warnings"]["by_field"]:
        ex = g["examples"][0]
        console.print(
            f"  [yellow]warning[/] {g['count']:,} CUP(s) with differing {g['field']} "
            f"(e.g. {ex['cup']}: kept {ex['kept']!r} of {ex['values']})"
        )
