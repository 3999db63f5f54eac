"""Membership facts of the green network: which comuni each park, PLIS or Naviglio involves.

Read from ``data/green_network/membership.csv`` (a seed from public sources, each row with
its ``source`` and ``status`` = ``to be verified``). Names of comuni are resolved to ISTAT
codes forgivingly; names outside the metropolitan city keep ``istat_code`` = None.
Checked against a layer's geometry by :func:`geo.layers.membership_check`.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from typing import Any

from geo import REPO_DATA_DIR
from geo.errors import NotFound
from geo.names import fold
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
