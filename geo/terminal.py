"""Terminal output shared by the ``cmm-geo`` commands: consoles, errors, progress bars."""

from __future__ import annotations

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geo.errors import GeoError

console = Console()
err = Console(stderr=True)


def fail(exc: GeoError, limit: int = 50) -> None:
    """Print a domain error with what helps fix it (rows, suggestions), then exit non-zero."""
    err.print(f"[bold red]error[/]: {exc.message}", soft_wrap=True, highlight=False)
    body = exc.to_dict()
    for s in body.get("suggestions") or []:
        err.print(f"  did you mean: {s['name']} ({s['istat_code']})", soft_wrap=True)
    if body.get("nearest"):
        err.print(f"nearest: {orjson.dumps(body['nearest']).decode()}", soft_wrap=True)
    details = exc.details
    if isinstance(details, list):
        for d in details[:limit]:
            if isinstance(d, dict):
                where = " ".join(f"{k} {d[k]}" for k in ("row", "feature") if d.get(k))
                where += f" {d['field']}" if d.get("field") else ""
                err.print(f"  {where}: {d.get('message', d)}", soft_wrap=True, highlight=False)
            else:
                err.print(f"  {d}", soft_wrap=True)
        if len(details) > limit:
            err.print(f"  … and {len(details) - limit} more")
    elif details is not None:
        err.print(f"details: {orjson.dumps(details).decode()}", soft_wrap=True)
    raise typer.Exit(code=2 if exc.status < 500 else 1)


def progress() -> Progress:
    """A progress bar on stderr (description, bar, n/total, elapsed), gone when done."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
