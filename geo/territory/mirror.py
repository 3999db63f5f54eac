"""The comuni mirrored in the store (``territory_comuni``), so SQL can join them.

The territory lives in memory (133 comuni, read from ``data/``); the store holds a copy of
what queries need to join — ISTAT code, name, zone, union — so PostgreSQL can build an
interventions page (names, zones, unions of each intervention's comuni) without Python.
:func:`ensure_mirror` writes it on first use per process and whenever the territory's
version differs from the one recorded in ``store_meta``; the write is an upsert plus a
delete of codes no longer there, so several workers doing it at once agree.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from geo.store import get_meta, metadata, read_connection, set_meta, transaction
from geo.territory.model import Territory, get_territory

territory_comuni = sa.Table(
    "territory_comuni",
    metadata,
    sa.Column("istat_code", sa.String(6), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("zona_id", sa.Text, nullable=False),
    sa.Column("unione_id", sa.Text),
)

_META_KEY = "territory_mirror"
_done: set[tuple[int, str]] = set()
_lock = threading.Lock()


def ensure_mirror(engine: Engine, territory: Territory | None = None) -> None:
    """Make ``territory_comuni`` hold ``territory`` (default: the service's); one read of
    ``store_meta`` per process and version, a write only when the version changed."""
    t = territory or get_territory()
    key = (id(engine), t.version)
    if key in _done:
        return
    with _lock:
        if key in _done:
            return
        with read_connection(engine) as conn:
            current = get_meta(conn, _META_KEY)
        if current != t.version:
            _write(engine, t)
        _done.add(key)


def _write(engine: Engine, t: Territory) -> None:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [
        {"istat_code": c.istat_code, "name": c.name, "zona_id": c.zona_id, "unione_id": c.unione_id}
        for c in t.comuni_list
    ]
    tc = territory_comuni
    stmt = insert(tc)
    stmt = stmt.on_conflict_do_update(
        index_elements=[tc.c.istat_code],
        set_={"name": stmt.excluded.name, "zona_id": stmt.excluded.zona_id,
              "unione_id": stmt.excluded.unione_id},
    )  # fmt: skip
    with transaction(engine) as conn:
        conn.execute(stmt, rows)
        conn.execute(tc.delete().where(tc.c.istat_code.not_in([r["istat_code"] for r in rows])))
        set_meta(conn, _META_KEY, t.version)
