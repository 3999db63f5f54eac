"""Interventions in the store: tables, all-or-nothing upserts, deletes, seed, reads.

Writes run in one transaction and bump the ``interventions`` revision, so every worker's
caches see them; the documented interventions are seeded once per store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo.auth import ADMIN, Principal
from geo.errors import Conflict, DataError, Forbidden, NotFound
from geo.interventions import history
from geo.interventions.model import (
    DEFAULT_FILE,
    EXTRA_COLUMNS,
    SEED_KEY,
    TOPIC,
    ImportReport,
    Prepared,
)
from geo.interventions.validation import prepare
from geo.ogc.encode import kept_geometry_texts
from geo.store import (
    bump_revision,
    get_engine,
    get_meta,
    metadata,
    revision,
    set_meta,
    transaction,
    utcnow,
)
from geo.territory import Territory, get_territory

interventions_table = sa.Table(
    "interventions",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("programme", sa.Text, nullable=False),
    sa.Column("missions", sa.JSON, nullable=False),
    sa.Column("objectives", sa.JSON, nullable=False),
    sa.Column("drivers", sa.JSON, nullable=False),
    sa.Column("comuni", sa.JSON, nullable=False),
    sa.Column("comuni_named", sa.JSON, nullable=False),
    sa.Column("geometry_wkb", sa.LargeBinary, nullable=False),
    # SQLite: its GeoJSON text, rounded (geo.ogc.encode.stored_geometry_texts), 0010.
    sa.Column("geometry_json", sa.Text),
    # Its properties' JSON text, as a page writes it (sql_collection), 0011.
    sa.Column("properties_json", sa.Text),
    sa.Column("geometry_type", sa.String(30), nullable=False),
    sa.Column("precision", sa.String(10), nullable=False),
    sa.Column("minx", sa.Float, nullable=False),
    sa.Column("miny", sa.Float, nullable=False),
    sa.Column("maxx", sa.Float, nullable=False),
    sa.Column("maxy", sa.Float, nullable=False),
    sa.Column("amount_eur", sa.Float),
    sa.Column("status", sa.Text),
    sa.Column("period", sa.Text),
    sa.Column("cup", sa.String(15)),
    sa.Column("source_url", sa.Text),
    sa.Column("reliability", sa.String(1)),
    sa.Column("remark", sa.Text),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("component", sa.String(20)),
    sa.Column("component_title", sa.Text),
    sa.Column("submeasure", sa.String(40)),
    sa.Column("summary", sa.Text),
    sa.Column("implementing_body", sa.Text),
    sa.Column("implementing_body_cf", sa.String(20)),
    sa.Column("pnrr_amount_eur", sa.Float),
    sa.Column("as_of", sa.String(10)),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

links_table = sa.Table(
    "intervention_comuni",
    metadata,
    sa.Column("intervention_id", sa.String(100), primary_key=True),
    sa.Column("istat_code", sa.String(6), primary_key=True),
    sa.Column("named", sa.Boolean, nullable=False),
    sa.Column("spatial", sa.Boolean, nullable=False),
)


_CHUNK = 2000


def upsert(
    prepared: Prepared,
    *,
    engine: Engine | None = None,
    principal: Principal = ADMIN,
    conn: Connection | None = None,
    progress=None,
    new_only: bool = False,
) -> ImportReport:
    """Insert or update all records in one transaction (all-or-nothing), by id.

    Raises ValidationFailed when ``prepared`` has errors, Conflict when ``new_only`` and an
    id exists (a POST: the lookup of the existing rows tells, no query of its own),
    Forbidden when an editor writes outside their comune. ``progress(n)`` is called as
    records are written.
    """
    prepared.raise_for_errors()
    if conn is None:
        from geo.interventions.sql_collection import ensure_properties_layout

        engine = engine or get_store()
        ensure_properties_layout(engine)  # before the write: it may rewrite rows itself
        with transaction(engine) as c:
            return upsert(
                prepared, principal=principal, conn=c, progress=progress, new_only=new_only
            )
    records, links = prepared.records, prepared.links
    it, lt = interventions_table, links_table
    existing: dict[str, tuple[str, list[str]]] = {}
    ids = [r["id"] for r in records]
    cols = (it.c.id, it.c.content_hash, it.c.comuni)
    if len(ids) > 5 * _CHUNK:  # large imports: one scan beats many IN lists
        wanted = set(ids)
        for row in conn.execute(sa.select(*cols)):
            if row.id in wanted:
                existing[row.id] = (row.content_hash, row.comuni)
    else:
        for k in range(0, len(ids), _CHUNK):
            for row in conn.execute(sa.select(*cols).where(it.c.id.in_(ids[k : k + _CHUNK]))):
                existing[row.id] = (row.content_hash, row.comuni)
    if new_only and existing:
        rid = next(r["id"] for r in records if r["id"] in existing)
        raise Conflict(f"an intervention with id {rid!r} exists; use PUT or PATCH")
    _check_principal(principal, records, existing)
    report = ImportReport()
    now = utcnow()
    new_recs, upd_recs, link_rows = [], [], []
    for rec, lk in zip(records, links, strict=True):
        old = existing.get(rec["id"])
        if old is None:
            new_recs.append({**rec, "created_at": now, "updated_at": now})
            report.new.append(rec["id"])
        elif old[0] != rec["content_hash"]:
            upd_recs.append({**rec, "b_id": rec["id"], "updated_at": now})
            report.updated.append(rec["id"])
        else:
            report.unchanged.append(rec["id"])
            continue
        link_rows.extend(
            {"intervention_id": rec["id"], "istat_code": c, "named": nm, "spatial": sp}
            for c, nm, sp in lk
        )
    history.record_upsert(conn, principal, new_recs, upd_recs, now)  # before the updates
    for recs in (new_recs, upd_recs):  # the texts the pages send (after the history)
        texts = kept_geometry_texts([r["geometry_wkb"] for r in recs])
        for r, text in zip(recs, texts, strict=True):
            r["geometry_json"] = text
    if progress:
        progress(len(report.unchanged))
    for k in range(0, len(new_recs), _CHUNK):
        conn.execute(it.insert(), new_recs[k : k + _CHUNK])
        if progress:
            progress(len(new_recs[k : k + _CHUNK]))
    if upd_recs:
        cols = {c: sa.bindparam(c) for c in upd_recs[0] if c not in ("id", "b_id", "updated_at")}
        stmt = (
            it.update()
            .where(it.c.id == sa.bindparam("b_id"))
            # The kept properties go with the old values (PostgreSQL's trigger writes them
            # anew, see geo.interventions.sql_collection.ensure_properties_layout).
            .values(**cols, updated_at=sa.bindparam("updated_at"), properties_json=sa.null())
        )
        upd_ids = [r["id"] for r in upd_recs]
        for k in range(0, len(upd_recs), _CHUNK):
            conn.execute(lt.delete().where(lt.c.intervention_id.in_(upd_ids[k : k + _CHUNK])))
            conn.execute(
                stmt,
                [{kk: v for kk, v in r.items() if kk != "id"} for r in upd_recs[k : k + _CHUNK]],
            )
            if progress:
                progress(len(upd_recs[k : k + _CHUNK]))
    for k in range(0, len(link_rows), _CHUNK * 2):
        conn.execute(lt.insert(), link_rows[k : k + _CHUNK * 2])
    if conn.dialect.name == "sqlite":  # the texts its pages send (PostgreSQL: a trigger)
        from geo.interventions.sql_collection import keep_sqlite_properties

        keep_sqlite_properties(conn, report.new + report.updated)
    if report.new or report.updated:
        bump_revision(conn, TOPIC)
    if len(new_recs) > 5 * _CHUNK and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE interventions")  # fresh statistics for the planner
        conn.exec_driver_sql("ANALYZE intervention_comuni")
    return report


def _check_principal(
    principal: Principal, records: list[dict[str, Any]], existing: dict[str, tuple[str, list]]
) -> None:
    if principal.role == "admin":
        return
    bad = []
    for i, rec in enumerate(records, start=1):
        old = existing.get(rec["id"])
        if not principal.may_write(rec["comuni"]) or (old and not principal.may_write(old[1])):
            bad.append({"row": i, "id": rec["id"], "comuni": rec["comuni"]})
    if bad:
        t = get_territory()
        name = ", ".join(sorted(t.comuni[c].name for c in principal.editable if c in t.comuni))
        name = name or "no comune"
        raise Forbidden(
            f"an editor of {name} may only write interventions located in {name}; "
            f"{len(bad)} are (also) elsewhere",
            details=bad[:100],
        )


def delete(
    intervention_id: str,
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
    precondition=None,
):
    """Delete one intervention (NotFound, Forbidden); ``precondition`` (``If-Match``) runs
    inside the transaction, the row locked."""
    engine = engine or get_store()
    it = interventions_table
    with transaction(engine) as conn:
        row = conn.execute(
            sa.select(it).where(it.c.id == intervention_id).with_for_update()
        ).first()
        if precondition is not None and row is not None:
            precondition()
        if row is None:
            raise NotFound(f"no intervention with id {intervention_id!r}")
        if not principal.may_write(row.comuni):
            raise Forbidden("an editor may only delete interventions located in their comune")
        conn.execute(links_table.delete().where(links_table.c.intervention_id == intervention_id))
        conn.execute(it.delete().where(it.c.id == intervention_id))
        history.record_delete(conn, principal, row, utcnow())
        bump_revision(conn, TOPIC)


# --------------------------------------------------------------------------- store + seed

_ready: set[int] = set()
_ready_lock = threading.Lock()


def get_store(engine: Engine | None = None) -> Engine:
    """The migrated engine, with the documented interventions seeded once."""
    engine = engine or get_engine()
    if id(engine) in _ready:  # read several times a request: no lock once seeded
        return engine
    with _ready_lock:
        if id(engine) not in _ready:
            seed(engine)
            _ready.add(id(engine))
    return engine


def seed(engine: Engine) -> ImportReport | None:
    """Load the 104 documented interventions on first start (once per store)."""
    from geo.interventions.reading import read_file

    if engine.dialect.name == "sqlite":  # its rows keep their texts (keep_sqlite_properties)
        from geo.interventions.sql_collection import ensure_properties_layout

        ensure_properties_layout(engine)
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(764022)")
        if get_meta(conn, SEED_KEY):
            return None
        table = read_file(DEFAULT_FILE)
        prepared = prepare(table, source="documented")
        if prepared.errors:
            raise DataError(f"{DEFAULT_FILE.name}: {prepared.errors[:5]}")
        report = upsert(prepared, conn=conn, principal=Principal("admin", user="seed"))
        set_meta(conn, SEED_KEY, utcnow().isoformat())
        return report


# --------------------------------------------------------------------------- reading


class Snapshot:
    """All interventions in memory (features + arrays for fast filtering)."""

    def __init__(self, rows: list[Any], territory: Territory, rev: int, ts: datetime | None):
        self.revision = rev
        self.last_modified = ts or datetime(2025, 1, 1, tzinfo=UTC)
        self.ids = [r.id for r in rows]
        self.by_id = {r.id: i for i, r in enumerate(rows)}
        self.geometries = (
            shapely.from_wkb([r.geometry_wkb for r in rows]) if rows else np.array([], dtype=object)
        )
        self.bounds = np.array([[r.minx, r.miny, r.maxx, r.maxy] for r in rows]).reshape(-1, 4)
        self.properties = [_properties(r, territory) for r in rows]
        self.amount = np.array(
            [np.nan if r.amount_eur is None else r.amount_eur for r in rows], dtype=float
        )
        self.pnrr_amount = np.array(
            [np.nan if r.pnrr_amount_eur is None else r.pnrr_amount_eur for r in rows],
            dtype=float,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def feature(self, i: int, *, geometry: bool = True) -> dict[str, Any]:
        """GeoJSON Feature of row ``i``."""
        return {
            "type": "Feature",
            "id": self.ids[i],
            "geometry": shapely.geometry.mapping(self.geometries[i]) if geometry else None,
            "properties": self.properties[i],
        }


def linked_lists(codes: Iterable[str], t: Territory) -> tuple[list[str], ...]:
    """(comuni, their names, zones, unions) of an intervention's stored comuni codes:
    codes the territory does not know dropped, zones and unions sorted, each once."""
    comuni = [c for c in codes if c in t.comuni]
    zone = sorted({t.comuni[c].zona_id for c in comuni})
    unioni = sorted({t.comuni[c].unione_id for c in comuni if t.comuni[c].unione_id})
    return comuni, [t.comuni[c].name for c in comuni], zone, unioni


def _properties(r: Any, t: Territory) -> dict[str, Any]:
    comuni, names, zone, unioni = linked_lists(r.comuni, t)
    created, updated = (
        (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts).isoformat().replace("+00:00", "Z")
        for ts in (r.created_at, r.updated_at)
    )
    return {
        "id": r.id,
        "title": r.title,
        "programme": r.programme,
        "missions": list(r.missions),
        "objectives": list(r.objectives),
        "drivers": list(r.drivers),
        "comuni": comuni,
        "comuni_names": names,
        "comuni_named": list(r.comuni_named),
        "zone": zone,
        "unioni": unioni,
        "amount_eur": r.amount_eur,
        "status": r.status,
        "period": r.period,
        "cup": r.cup,
        "source_url": r.source_url,
        "reliability": r.reliability,
        "remark": r.remark,
        "source": r.source,
        **{c: getattr(r, c) for c in EXTRA_COLUMNS},
        "precision": r.precision,
        "precision_note": (
            "placed at the representative point of its comune(s): the source gives no coordinates"
            if r.precision == "comune"
            else "geometry as given by the source"
        ),
        "created": created,
        "updated": updated,
    }


_snapshots: dict[int, Snapshot] = {}
_snap_lock = threading.Lock()


def snapshot(engine: Engine | None = None) -> Snapshot:
    """The current interventions, reloaded only when the store's revision changed."""
    engine = get_store(engine)
    rev, ts = revision(engine, TOPIC)
    with _snap_lock:
        snap = _snapshots.get(id(engine))
        if snap is not None and snap.revision == rev:
            return snap
    with engine.connect() as conn:
        rows = conn.execute(sa.select(interventions_table).order_by(interventions_table.c.id)).all()
    snap = Snapshot(list(rows), get_territory(), rev, ts)
    with _snap_lock:
        _snapshots[id(engine)] = snap
    return snap


def get_feature(
    intervention_id: str,
    engine: Engine | None = None,
    *,
    conn: Connection | None = None,
    for_update: bool = False,
) -> dict[str, Any] | None:
    """One intervention as a GeoJSON Feature, or None (one row read by primary key, so the
    write path never reloads the whole table); on ``conn`` when given (inside a write),
    ``for_update``: the row locked there too (``FOR UPDATE`` on PostgreSQL; SQLite's write
    transaction is already exclusive), read and locked in one statement."""
    it = interventions_table
    stmt = sa.select(it).where(it.c.id == intervention_id)
    if for_update:
        stmt = stmt.with_for_update()
    if conn is not None:
        row = conn.execute(stmt).first()
    else:
        with get_store(engine).connect() as c:
            row = c.execute(stmt).first()
    if row is None:
        return None
    return {
        "type": "Feature",
        "id": row.id,
        "geometry": shapely.geometry.mapping(shapely.from_wkb(row.geometry_wkb)),
        "properties": _properties(row, get_territory()),
    }
