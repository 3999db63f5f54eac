"""A geometry changed by another program no longer leaves its old GeoJSON text behind.

Since 0010 each row keeps its geometry's GeoJSON text (``geometry_json``), which the pages
of both stores send instead of encoding the WKB. The service writes the two together; a
program that updates ``geometry_wkb`` by itself (plain SQL, QGIS on the PostGIS table, a
script) would have left the old text in place, and the pages would have sent the old
shape. A trigger on ``interventions`` and ``layer_features`` now sets the text to NULL
when the WKB changes and the text does not: that row is encoded from its WKB again (as
before 0010) until the service writes it next. The service's own writes set both, and are
left alone.

PostgreSQL: a ``BEFORE UPDATE OF geometry_wkb`` trigger whose ``WHEN`` compares the old
and new values (the function runs only then). SQLite: an ``AFTER UPDATE OF geometry_wkb``
trigger clearing the text of that rowid.

Revision ID: 0013_geometry_text_guard
Revises: 0012_layer_tile_pixels
"""

from __future__ import annotations

from alembic import op

revision = "0013_geometry_text_guard"
down_revision = "0012_layer_tile_pixels"
branch_labels = None
depends_on = None

TABLES = ("interventions", "layer_features")
FUNCTION = "cmm_geometry_text_guard"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            "$cmm_geo$ BEGIN NEW.geometry_json = NULL; RETURN NEW; END $cmm_geo$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {FUNCTION} BEFORE UPDATE OF geometry_wkb ON {table} "
                "FOR EACH ROW WHEN (NEW.geometry_wkb IS DISTINCT FROM OLD.geometry_wkb "
                "AND NEW.geometry_json IS NOT DISTINCT FROM OLD.geometry_json) "
                f"EXECUTE FUNCTION {FUNCTION}()"
            )
        return
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {FUNCTION}_{table} AFTER UPDATE OF geometry_wkb ON {table} "
            "FOR EACH ROW WHEN NEW.geometry_wkb IS NOT OLD.geometry_wkb "
            "AND NEW.geometry_json IS OLD.geometry_json AND NEW.geometry_json IS NOT NULL "
            f"BEGIN UPDATE {table} SET geometry_json = NULL WHERE rowid = NEW.rowid; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {FUNCTION} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {FUNCTION}_{table}")
