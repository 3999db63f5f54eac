"""Change history of interventions: who created, changed or deleted which one, when, and
what changed field by field.

Every write of :mod:`geo.interventions.store` (API, web app, file and PNRR imports, seed)
calls :func:`record_upsert` or :func:`record_delete` inside its own transaction, so a change
and its history row are committed together or not at all. The actor is the
:class:`~geo.auth.Principal`'s name (a user's name, ``token <id>``, or ``admin``).
``changes`` maps each field to ``[before, after]``; geometries are shown as WKT (6
decimals, shortened past :data:`MAX_WKT` characters).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo.auth import Principal
from geo.interventions.model import EXTRA_COLUMNS
from geo.store import get_engine, metadata

history_table = sa.Table(
    "intervention_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("intervention_id", sa.String(100), nullable=False),
    sa.Column("action", sa.String(10), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
)

#: Fields compared, in the order the history shows them.
FIELDS = (
    "title",
    "programme",
    "missions",
    "objectives",
    "drivers",
    "comuni_named",
    "comuni",
    "geometry",
    "precision",
    "amount_eur",
    "status",
    "period",
    "cup",
    "source_url",
    "reliability",
    "remark",
    "source",
    *EXTRA_COLUMNS,
)
MAX_WKT = 300
_CHUNK = 2000


def _wkt(wkb: bytes | None) -> str | None:
    if wkb is None:
        return None
    text = shapely.to_wkt(shapely.from_wkb(bytes(wkb)), rounding_precision=6, trim=True)
    return text if len(text) <= MAX_WKT else text[: MAX_WKT - 1] + "…"


def _values(rec: Any) -> dict[str, Any]:
    """The compared fields of a record (a dict about to be written, or a stored row)."""
    get = rec.get if isinstance(rec, dict) else lambda k: getattr(rec, k, None)
    out: dict[str, Any] = {}
    for f in FIELDS:
        v = _wkt(get("geometry_wkb")) if f == "geometry" else get(f)
        out[f] = list(v) if isinstance(v, list | tuple) else v
    return out


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the fields that differ (None/empty are alike)."""
    b, a = before or {}, after or {}
    out = {}
    for f in FIELDS:
        old, new = b.get(f), a.get(f)
        if old in ("", []):
            old = None
        if new in ("", []):
            new = None
        if old != new:
            out[f] = [old, new]
    return out


def record_upsert(
    conn: Connection,
    principal: Principal,
    new: list[dict[str, Any]],
    updated: list[dict[str, Any]],
    at: datetime,
) -> None:
    """History rows of an upsert; call before the updates run (reads the rows they replace)."""
    from geo.interventions.store import interventions_table as it

    rows = [
        {
            "intervention_id": r["id"],
            "action": "create",
            "actor": principal.name,
            "at": at,
            "changes": diff(None, _values(r)),
        }
        for r in new
    ]
    by_id = {r["id"]: r for r in updated}
    ids = list(by_id)
    for k in range(0, len(ids), _CHUNK):
        for old in conn.execute(sa.select(it).where(it.c.id.in_(ids[k : k + _CHUNK]))):
            changes = diff(_values(old), _values(by_id[old.id]))
            rows.append(
                {
                    "intervention_id": old.id,
                    "action": "update",
                    "actor": principal.name,
                    "at": at,
                    "changes": changes,
                }
            )
    for k in range(0, len(rows), _CHUNK):
        conn.execute(history_table.insert(), rows[k : k + _CHUNK])


def record_delete(conn: Connection, principal: Principal, row: Any, at: datetime) -> None:
    """History row of a deletion (``row``: the stored intervention, read before deleting)."""
    conn.execute(
        history_table.insert().values(
            intervention_id=row.id,
            action="delete",
            actor=principal.name,
            at=at,
            changes=diff(_values(row), None),
        )
    )


def history(intervention_id: str, *, engine: Engine | None = None) -> list[dict[str, Any]]:
    """The changes of one intervention, newest first (also after it was deleted)."""
    h = history_table
    with (engine or get_engine()).connect() as conn:
        rows = conn.execute(
            sa.select(h).where(h.c.intervention_id == intervention_id).order_by(h.c.id.desc())
        ).all()
    return [
        {
            "id": r.id,
            "action": r.action,
            "actor": r.actor,
            "at": (r.at.replace(tzinfo=UTC) if r.at.tzinfo is None else r.at),
            "changes": {f: r.changes[f] for f in FIELDS if f in r.changes},
        }
        for r in rows
    ]
