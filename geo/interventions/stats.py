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

The store does the counting: one ``GROUP BY`` query per request (comuni through the
``intervention_comuni`` links, zones and unions by mapping those codes, missions by
unnesting their JSON lists), so no worker holds the table and a write costs nothing here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from geo.errors import InvalidParameter
from geo.interventions.model import TOPIC
from geo.interventions.store import get_store, interventions_table, links_table
from geo.plan import PlanCatalogue
from geo.store import read_connection, revision, store_errors
from geo.territory import Territory, get_territory

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
    src = source.strip().lower() if source else None
    mis = mission.strip().upper() if mission else None
    t = get_territory()
    engine = get_store(engine)
    with store_errors(), read_connection(engine) as conn:
        n_selected, acc = _aggregate(conn, t, by, src, mis, amount)
    rev, _ = revision(engine, TOPIC)
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
        "revision": rev,
        "groups": groups,
    }


def _unnest(conn: Connection, column: sa.Column) -> sa.TableValuedAlias:
    """The elements of a JSON list column, as a table joinable to its row."""
    if conn.dialect.name == "postgresql":
        return sa.func.json_array_elements_text(column).table_valued("value")
    return sa.func.json_each(column).table_valued("value")


def _aggregate(
    conn: Connection, t: Territory, by: str, src: str | None, mis: str | None, amount: str
) -> tuple[int, dict[str, dict[str, Any]]]:
    """(interventions selected, {group key: count, count_with_amount, amount_eur})."""
    it, lt = interventions_table, links_table
    value = it.c.pnrr_amount_eur if amount == "pnrr" else it.c.amount_eur
    where: list[sa.ColumnElement[bool]] = []
    if src:
        where.append(it.c.source == src)
    if mis:
        if conn.dialect.name == "postgresql":
            where.append(sa.cast(it.c.missions, JSONB).op("?")(mis))
        else:
            m = _unnest(conn, it.c.missions)
            where.append(sa.exists(sa.select(1).select_from(m).where(m.c.value == mis)))
    n_selected = conn.execute(sa.select(sa.func.count()).select_from(it).where(*where)).scalar()
    if by in ("comune", "zona", "unione"):
        if by == "comune":
            key = lt.c.istat_code
        else:
            owner = {
                c.istat_code: (c.zona_id if by == "zona" else c.unione_id)
                for c in t.comuni_list
                if (c.zona_id if by == "zona" else c.unione_id)
            }
            key = sa.case(owner, value=lt.c.istat_code, else_=None)
        pairs = (
            sa.select(it.c.id.label("iid"), key.label("key"), value.label("value"))
            .select_from(it.join(lt, lt.c.intervention_id == it.c.id))
            .where(*where, lt.c.istat_code.in_(list(t.comuni)))
            .distinct()
            .subquery()
        )
    elif by == "programme":
        pairs = (
            sa.select(it.c.id.label("iid"), it.c.programme.label("key"), value.label("value"))
            .where(*where)
            .subquery()
        )
    else:  # mission
        m = _unnest(conn, it.c.missions)
        pairs = (
            sa.select(it.c.id.label("iid"), m.c.value.label("key"), value.label("value"))
            .select_from(it.join(m, sa.true()))
            .where(*where)
            .distinct()
            .subquery()
        )
    rows = conn.execute(
        sa.select(
            pairs.c.key,
            sa.func.count(),
            sa.func.count(pairs.c.value),
            sa.func.coalesce(sa.func.sum(pairs.c.value), 0.0),
        )
        .where(pairs.c.key.is_not(None))
        .group_by(pairs.c.key)
    ).all()
    acc = {
        str(k): {"count": int(n), "count_with_amount": int(na), "amount_eur": float(total)}
        for k, n, na, total in rows
    }
    return int(n_selected or 0), acc
