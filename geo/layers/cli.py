"""CLI group ``cmm-geo layers``: add, list, rm, metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from geo.errors import GeoError
from geo.terminal import console, fail

layers_app = typer.Typer(help="Green-network layers: upload, list, delete.", no_args_is_help=True)


@layers_app.command("add")
def add(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="GeoJSON, GPKG, SHP zip")
    ],
    name: Annotated[str | None, typer.Option(help="Layer name (default: from the file)")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS override, e.g. EPSG:3003")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the record as JSON")] = False,
) -> None:
    """Validate FILE, repair it, store it and serve it as /collections/{id}."""
    from geo.layers import add_layer
    from geo.layers.reading import read_path

    try:
        rec = add_layer(read_path(file, crs=crs, layer=layer), name)
    except GeoError as exc:
        fail(exc)
        return
    if json:
        sys.stdout.write(orjson.dumps(rec, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    rep = rec["report"]
    console.print(
        f"added [bold]{rec['id']}[/] ({rec['name']}): {rec['feature_count']} "
        f"{rec['geometry_type']} features from {rec['source_crs']}; "
        f"repaired {rep.get('repaired', 0)}, empty dropped {rep.get('empty_dropped', 0)}"
    )


@layers_app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The stored layers."""
    from geo.layers import list_layers

    rows = list_layers()
    if json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table("id", "name", "type", "features", "uploaded in", "created")
    for r in rows:
        table.add_row(
            r["id"], r["name"], r["geometry_type"], str(r["feature_count"]), r["source_crs"],
            r["created"],
        )  # fmt: skip
    console.print(table)


@layers_app.command("rm")
def rm(layer_id: Annotated[str, typer.Argument(help="Layer id")]) -> None:
    """Delete a layer."""
    from geo.layers import delete_layer

    try:
        delete_layer(layer_id)
    except GeoError as exc:
        fail(exc)
    console.print(f"deleted {layer_id}")


@layers_app.command("metrics")
def metrics(
    layer_id: Annotated[str, typer.Argument(help="Layer id")],
    by: Annotated[str, typer.Option(help="comune | zona | unione")] = "zona",
    within_m: Annotated[float, typer.Option(help="Interventions within N metres")] = 0.0,
) -> None:
    """Print a layer's metrics per unit as JSON."""
    from geo.layers import metrics as layer_metrics

    try:
        result = layer_metrics(layer_id, by, within_m)
    except GeoError as exc:
        fail(exc)
        return
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
