"""Aggregates of the interventions per comune, zona, unione, programme or mission.

For each group: ``count`` of interventions, ``count_with_amount``, ``amount_eur`` (sum of
the stated amounts) and, for territorial groups, ``population`` and
``amount_per_inhabitant``. An intervention linked to several comuni (or zones, unions,
missions) counts — with its whole amount — in each of them: amounts are not split, so
group totals overlap. Amounts are what each source states (sometimes the PNRR share,
sometimes the total): they are not one measure, and sums are indicative only.

Filters: ``source`` (``documented``, ``pnrr``, …) and ``mission`` (``M1``…) select the
interventions counted; ``amount="pnrr"`` sums the PNRR share (``pnrr_amount_eur``, known
for PNRR open-data rows) instead of ``amount_eur`` (the total as the source states it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from geo.errors import InvalidParameter
from geo.interventions.store import snapshot
from geo.plan import PlanCatalogue
from geo.territory import get_territory

GROUPINGS = ("comune", "zona", "unione", "programme", "mission")
AMOUNTS = ("total", "pnrr")

NOTE = (
    "Amounts are as each source states them (sometimes the PNRR share, sometimes the "
    "total project cost) and statuses are as of the source's date: do not add them up as "
    "if they were one measure. An intervention linked to several groups counts, with its "
    "whole amount, in each of them (amounts are not split), so totals overlap."
)


def intervention_stats(
    by: str,
    engine: Engine | None = None,
    *,
    source: str | None = None,
    mission: str | None = None,
    amount: str = "total",
) -> dict[str, Any]:
    """Aggregates grouped ``by`` one of GROUPINGS: ``{by, note, groups: [...]}``.

    ``source``/``mission`` filter the interventions; ``amount`` is ``total`` or ``pnrr``.
    """
    if by not in GROUPINGS:
        raise InvalidParameter("by", f"use one of {', '.join(GROUPINGS)}")
    if amount not in AMOUNTS:
        raise InvalidParameter("amount", f"use one of {', '.join(AMOUNTS)}")
    snap = snapshot(engine)
    src = source.strip().lower() if source else None
    mis = mission.strip().upper() if mission else None
    amounts = snap.pnrr_amount if amount == "pnrr" else snap.amount
    t = get_territory()
    keys_of = {
        "comune": lambda p: p["comuni"],
        "zona": lambda p: p["zone"],
        "unione": lambda p: p["unioni"],
        "programme": lambda p: [p["programme"]],
        "mission": lambda p: p["missions"],
    }[by]
    acc: dict[str, dict[str, Any]] = {}
    n_selected = 0
    for p, value in zip(snap.properties, amounts, strict=True):
        if (src and p["source"] != src) or (mis and mis not in p["missions"]):
            continue
        n_selected += 1
        for key in keys_of(p):
            g = acc.setdefault(key, {"count": 0, "count_with_amount": 0, "amount_eur": 0.0})
            g["count"] += 1
            if value == value:  # not NaN
                g["count_with_amount"] += 1
                g["amount_eur"] += float(value)
    groups: list[dict[str, Any]] = []
    if by == "comune":
        for c in t.comuni_list:
            groups.append({"id": c.istat_code, "name": c.name, "population": c.population})
    elif by in ("zona", "unione"):
        for g in (t.zones if by == "zona" else t.unions).values():
            groups.append({"id": g.id, "name": g.name, "population": g.population})
    elif by == "programme":
        for prog in PlanCatalogue.load().programmes:
            groups.append({"id": prog.name, "name": prog.name, "population": None})
    else:
        for m in PlanCatalogue.load().missions:
            groups.append({"id": m.code, "name": m.title, "population": None})
    known = {g["id"] for g in groups}
    for key in sorted(set(acc) - known):  # e.g. a programme no longer in the catalogue
        groups.append({"id": key, "name": key, "population": None})
    for g in groups:
        a = acc.get(g["id"], {"count": 0, "count_with_amount": 0, "amount_eur": 0.0})
        g.update(a)
        g["amount_eur"] = round(g["amount_eur"], 2)
        pop = g["population"]
        g["amount_per_inhabitant"] = (
            round(g["amount_eur"] / pop, 2) if pop and g["count_with_amount"] else None
        )
    groups.sort(key=lambda g: (-g["count"], str(g["id"])))
    return {
        "by": by,
        "note": NOTE,
        "filters": {"source": src, "mission": mis},
        "amount": amount,
        "n_interventions": n_selected,
        "revision": snap.revision,
        "groups": groups,
    }
