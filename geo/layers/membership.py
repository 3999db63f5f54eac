"""Membership facts of the green network: which comuni each park, PLIS or Naviglio involves.

Read from ``data/green_network/membership.csv`` (a seed from public sources, each row with
its ``source`` and ``status`` = ``to be verified``). Names of comuni are resolved to ISTAT
codes forgivingly; names outside the metropolitan city keep ``istat_code`` = None.
Checked against a layer's geometry by :func:`membership_check`.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from geo import REPO_DATA_DIR
from geo.errors import NotFound
from geo.layers.overlay import layer_metrics
from geo.layers.store import load_layer
from geo.names import fold
from geo.store import get_engine
from geo.territory import get_territory

MEMBERSHIP_FILE = REPO_DATA_DIR / "green_network" / "membership.csv"
#: A comune is "touched" by a polygon layer covering at least this much of it (m², 5 ha:
#: ISTAT's generalised boundaries and PGT-based park perimeters differ by tens of metres,
#: which along a shared border makes slivers of a few hectares) …
TOUCH_MIN_M2 = 50_000.0
#: … or by a line layer running at least this far inside it (m).
TOUCH_MIN_M = 50.0


@lru_cache(maxsize=1)
def membership() -> tuple[dict[str, Any], ...]:
    """Every membership row with its comuni resolved (in the file's order)."""
    t = get_territory()
    out = []
    with MEMBERSHIP_FILE.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            comuni = []
            for name in (n.strip() for n in row["comuni"].split(";")):
                if name:
                    code = t.name_index.get(name)
                    comuni.append({"name": t.comuni[code].name if code else name,
                                   "istat_code": code})  # fmt: skip
            out.append(
                {
                    "layer_kind": row["layer_kind"],
                    "name": row["name"],
                    "comuni": comuni,
                    "n_comuni_in_metropolitan_city": sum(1 for c in comuni if c["istat_code"]),
                    "source": row["source"],
                    "status": row["status"],
                }
            )
    return tuple(out)


def find_entry(name: str) -> dict[str, Any]:
    """A membership row by name (case/accents ignored; a unique prefix or part is enough)."""
    key = fold(name or "")
    rows = membership()
    exact = [r for r in rows if fold(r["name"]) == key]
    if exact:
        return exact[0]
    partial = [r for r in rows if key and key in fold(r["name"])]
    if len(partial) == 1:
        return partial[0]
    raise NotFound(
        f"no single membership entry named {name!r}"
        + (f" ({len(partial)} match)" if partial else "")
        + "; known: "
        + "; ".join(r["name"] for r in (partial or rows)),
        parameter="name",
    )


# ----- checked against a stored layer -------------------------------------------------------


def _matches(value: Any, key: str) -> bool:
    if not isinstance(value, str) or len(value) < 4:
        return False
    v = fold(value)
    return v == key or (len(key) >= 6 and (key in v or v in key))


def membership_check(layer_id: str, name: str, *, engine: Engine | None = None) -> dict[str, Any]:
    """Check a membership entry (``data/green_network/membership.csv``) against a layer.

    The layer's features whose text attributes name the entry (e.g. ``NOME_PLIS``) are
    used when there are any, else the whole layer. A comune counts as touched when the
    layer covers at least TOUCH_MIN_M2 of it (lines: TOUCH_MIN_M; points: one point), so
    slivers from generalised boundaries do not count.
    """
    engine = engine or get_engine()
    entry = find_entry(name)
    layer = load_layer(layer_id, engine=engine)
    key = fold(entry["name"])
    key_short = fold(re.sub(r"\(.*?\)", "", entry["name"])).strip()
    chosen = [
        i
        for i, p in enumerate(layer.properties)
        if any(_matches(v, key) or _matches(v, key_short) for v in p.values())
    ]
    used = np.array(chosen if chosen else range(len(layer.fids)), dtype=int)
    family = layer.record["geometry_type"]
    result = layer_metrics(family, layer.metric_geometries[used], "comune")
    t = get_territory()
    touched: set[str] = set()
    measure: dict[str, Any] = {}
    for r in result["units"]:
        value = r.get("covered_km2", r.get("length_km", r.get("count")))
        measure[r["id"]] = value
        if (
            (family == "polygon" and r["covered_km2"] * 1e6 >= TOUCH_MIN_M2)
            or (family == "line" and r["length_km"] * 1e3 >= TOUCH_MIN_M)
            or (family == "point" and r["count"] > 0)
        ):
            touched.add(r["id"])
    listed = {c["istat_code"] for c in entry["comuni"] if c["istat_code"]}

    unit = {"polygon": "covered_km2", "line": "length_km", "point": "count"}[family]

    def named(codes: set[str]) -> list[dict[str, Any]]:
        return [{**t.comune_summary(c), unit: measure[c]} for c in sorted(codes)]

    return {
        "layer": {"id": layer_id, "name": layer.record["name"]},
        "entry": {k: entry[k] for k in ("layer_kind", "name", "source", "status")},
        "features_used": len(used),
        "matched_by": ("features whose attributes name the entry" if chosen else "the whole layer"),
        "matched_features": [int(layer.fids[i]) for i in chosen],
        "touch_threshold": {"polygon_m2": TOUCH_MIN_M2, "line_m": TOUCH_MIN_M, "point": 1},
        "listed_and_touched": named(listed & touched),
        "listed_not_touched": named(listed - touched),
        "touched_not_listed": named(touched - listed),
        "listed_outside_metropolitan_city": [
            c["name"] for c in entry["comuni"] if not c["istat_code"]
        ],
    }
