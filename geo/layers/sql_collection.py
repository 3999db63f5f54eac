"""An uploaded layer answered by the store (no copy of the layer in any worker).

:class:`LayerSqlProvider` is a :class:`geo.ogc.sql.SqlCollection` over the shared table
``layer_features``: every statement carries ``layer_id = :id`` (:meth:`scope`), and every
query — bbox, ``?name=value``, CQL2, sorting, paging, ``numberMatched`` — runs as SQL; only
the page's rows are read, their geometries decoded at once (``shapely.from_wkb``). The
vector tiles ask for up to 20,000 features of a tile's box: that is one indexed ``count(*)``
and one paged ``SELECT`` too.

Properties are read from the JSON column ``properties`` by the layer's declared field types
(the ``fields`` of its record), ``json_extract`` on SQLite and ``->>`` on PostgreSQL:

===============================  ===========================================================
field type                        SQL kind (see :class:`geo.ogc.sql.SqlProperty`)
===============================  ===========================================================
``integer``, ``number``           ``number`` (``CAST(… AS double precision)`` on PostgreSQL)
``boolean``                       ``number`` 0/1 (in memory ``True == 1`` too; ``= TRUE`` is
                                  evaluated in Python, bounded)
``date``                          ``date`` (ISO ``YYYY-MM-DD`` text)
``string``, ``datetime``, ``time``  ``text`` (a datetime compared with an instant is parsed in
                                  Python, on the candidates SQL leaves)
``array``                         ``list`` (a JSON array, elements numbers or texts as the
                                  layer's first arrays hold them; a null array is unknown)
===============================  ===========================================================

``?name=value`` is typed: a number field matches the number (``?codice=3`` and
``?codice=3.0`` alike, where the in-memory collection compared the text ``"3"``), a boolean
field ``true``/``false`` in any case, an array field an element; ``None`` matches nulls.

Metadata is the layer record's (read once per store revision of ``layers``, which every
request reads once, :func:`geo.store.request_revisions`): title, description, keywords,
CRS list, version and last-modified exactly as :class:`geo.layers.collection.LayerProvider`
made them; the one geometry type is read from the WKB headers of the layer's rows (the
first five bytes, one ``SELECT DISTINCT`` per revision), declared as the in-memory provider
declared it (``Polygon``, or ``MultiPolygon`` when single and multi polygons mix).
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from geo.layers.collection import _queryable, crs_list
from geo.layers.store import TOPIC, features_table, get_layer
from geo.ogc.geometry import promote_to_multi
from geo.ogc.registry import Queryable
from geo.ogc.sql import (
    SQL_FALSE,
    SqlCollection,
    SqliteGeojson,
    SqlProperty,
    json_list,
    pg_feature,
    pg_geojson_geometry,
    pg_rendered,
    sqlite_spec,
)
from geo.store import read_connection, store_errors

#: SQL kind of each field type of an upload (geo.layers.attributes).
FIELD_KINDS = {
    "integer": "number",
    "number": "number",
    "boolean": "number",
    "date": "date",
    "string": "text",
    "datetime": "text",
    "time": "text",
    "array": "list",
}

_WKB_TYPES = {
    1: "Point",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
_FID = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_FID = 2**31 - 1


def _wkb_type(header: bytes) -> str | None:
    """The geometry type named by a WKB header (byte order + type; ISO and EWKB flags)."""
    if len(header) < 5:
        return None
    code = struct.unpack("<I" if header[0] == 1 else ">I", header[1:5])[0]
    return _WKB_TYPES.get((code & 0x0FFFFFFF) % 1000)


def _one_type(types: set[str]) -> str | None:
    """As geo.ogc.geometry.collection_geometry_type does with the geometries' types."""
    if not types:
        return None
    if len(types) == 1:
        return next(iter(types))
    multis = {_MULTI.get(t, t) for t in types}
    return multis.pop() if len(multis) == 1 else "GeometryCollection"


#: Geometry type per (engine, layer, upload), see LayerSqlProvider.geometry_type.
_TYPE_MEMO: dict[tuple[Any, ...], str | None] = {}
_TYPE_LOCK = threading.Lock()


class _Json:
    """Expressions reading one key of the ``properties`` JSON column, per dialect."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.col = features_table.c.properties

    def _sqlite_odd(self, name: str, array: bool) -> Any:
        """Keys a JSON path cannot spell (``"`` or ``\\``): looked up with ``json_each``."""
        each = sa.func.json_each(self.col).table_valued("key", "value", "type").alias()
        conds = [each.c.key == sa.literal(name, sa.Text)]
        if array:
            conds.append(each.c.type == "array")
        return sa.select(each.c.value).where(*conds).scalar_subquery()

    def scalar(self, name: str) -> Any:
        """The value as SQL: text on PostgreSQL, the JSON's own type on SQLite."""
        if self.pg:
            return self.col.op("->>", return_type=sa.Text)(sa.literal(name, sa.Text))
        if '"' in name or "\\" in name:
            return self._sqlite_odd(name, array=False)
        return sa.func.json_extract(self.col, sa.literal(f'$."{name}"', sa.Text))

    def array(self, name: str) -> Any:
        """The value as JSON when it is an array, NULL otherwise."""
        if self.pg:
            value = self.col.op("->", return_type=sa.JSON)(sa.literal(name, sa.Text))
            return sa.case((sa.func.json_typeof(value) == "array", value))
        if '"' in name or "\\" in name:
            return self._sqlite_odd(name, array=True)
        path = sa.literal(f'$."{name}"', sa.Text)
        return sa.case(
            (sa.func.json_type(self.col, path) == "array", sa.func.json_extract(self.col, path))
        )

    def number(self, name: str) -> Any:
        value = self.scalar(name)
        return sa.cast(value, sa.Float) if self.pg else value

    def boolean(self, name: str) -> Any:
        """0/1 (SQLite's JSON true/false already are)."""
        if not self.pg:
            return self.scalar(name)
        value = self.scalar(name)
        return sa.case((value == "true", 1.0), (value == "false", 0.0), else_=sa.null())


def _properties_text() -> Any:
    """A feature's stored properties as JSON text (written by orjson, the service's encoder),
    ``{}`` when there are none: what both stores' encoded pages carry as they are."""
    return sa.func.coalesce(sa.cast(features_table.c.properties, sa.Text), "{}")


class LayerSqlProvider(SqlCollection):
    """One stored layer as an OGC collection, every query run in the store."""

    table = features_table
    topic = TOPIC
    id_column = "fid"
    geometry_type_column = None
    rtree = "rtree_layer_features_geom"
    license = None
    translations: dict[str, tuple[str, str]] = {}  # noqa: RUF012 - never mutated

    def __init__(self, layer_id: str, engine: Engine | None = None) -> None:
        super().__init__(engine)
        self.id = layer_id
        self._memo: dict[Any, Any] = {}
        self._memo_lock = threading.Lock()
        self.record()  # NotFound for a layer that is gone, as LayerProvider

    # -- the layer record, once per store revision

    def _memoised(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._memo_lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._memo_lock:
            if len(self._memo) > 64:
                self._memo.clear()
            self._memo[key] = value
        return value

    def record(self) -> dict[str, Any]:
        """The layer's record (geo.layers.store.get_layer), re-read when ``layers`` changes."""
        with store_errors():
            engine = self.engine()
            rev = self.revision()[0]
            return self._memoised(  # type: ignore[no-any-return]
                ("record", id(engine), rev), lambda: get_layer(self.id, engine=engine)
            )

    def _stamp(self) -> tuple[Any, ...]:
        rec = self.record()
        return (id(self.engine()), rec["created"], rec["updated"])

    @property  # type: ignore[override]
    def title(self) -> str:
        """The layer's name."""
        return str(self.record()["name"])

    @property  # type: ignore[override]
    def description(self) -> str:
        """What it is, where it came from, where its metrics are."""
        rec = self.record()
        return (
            f"Uploaded {rec['geometry_type']} layer ({rec['feature_count']} features); "
            f"uploaded in {rec['source_crs']}, stored and served in CRS84. "
            f"Metrics per comune/zona/unione: /layers/{self.id}/metrics"
        )

    @property  # type: ignore[override]
    def keywords(self) -> tuple[str, ...]:
        """As LayerProvider declares them."""
        return ("green network", "layer", str(self.record()["geometry_type"]))

    @property  # type: ignore[override]
    def crs(self) -> list[str]:
        """CRSs this layer is offered in (the upload's own CRS listed second)."""
        return crs_list(self.record()["source_crs"])

    @property
    def source_crs(self) -> str:
        """The CRS the layer was uploaded in."""
        return str(self.record()["source_crs"])

    @property  # type: ignore[override]
    def geometry_type(self) -> str | None:
        """The one geometry type, from the WKB headers of the layer's rows: read once per
        version of the layer (a scan of it) and shared by every instance of the provider, so
        a write to another layer (which renews every provider) does not read it again."""
        with store_errors():
            key = (self.id, *self._stamp())
            with _TYPE_LOCK:
                if key in _TYPE_MEMO:
                    return _TYPE_MEMO[key]
            value = self._read_geometry_type()
            with _TYPE_LOCK:
                if len(_TYPE_MEMO) > 1024:
                    _TYPE_MEMO.clear()
                _TYPE_MEMO[key] = value
            return value

    def _read_geometry_type(self) -> str | None:
        c = features_table.c
        header = sa.func.substr(c.geometry_wkb, 1, 5)
        with read_connection(self.engine()) as conn:
            headers = conn.execute(sa.select(header).where(*self.scope()).distinct()).scalars()
            types = {_wkb_type(bytes(h)) for h in headers if h is not None}
        return _one_type({t for t in types if t is not None})

    def version(self) -> str:
        """Changes with every upload, replace and rename (as LayerProvider's)."""
        rec = self.record()
        return f"{self.id}-{rec['updated']}{rec['created']}"

    def last_modified(self) -> datetime:
        """When the layer last changed."""
        return datetime.fromisoformat(self.record()["updated"].replace("Z", "+00:00"))

    # -- SqlCollection hooks

    def scope(self) -> list[Any]:
        """This layer's rows of the shared table."""
        return [features_table.c.layer_id == self.id]

    def bbox_scope(self, dialect: str) -> list[Any]:
        """On SQLite a bbox lets the R*Tree choose the rows: the layer test is written
        ``+layer_id`` so the planner does not scan the layer's index range instead (measured
        2x faster on a 5 km box of a 20,000-polygon layer)."""
        if dialect == "sqlite":
            return [sa.literal_column(f"+{features_table.name}.layer_id") == self.id]
        return self.scope()

    def _fields(self) -> list[dict[str, str]]:
        return [f for f in self.record()["fields"] if isinstance(f, dict) and "name" in f]

    def queryables(self) -> list[Queryable]:
        """The upload's fields, typed (as LayerProvider declares them)."""
        return [_queryable(f["name"], f["type"]) for f in self._fields()]

    def property_names(self) -> list[str]:
        """The upload's fields, in order."""
        return [f["name"] for f in self._fields()]

    def _props(self, dialect: str) -> dict[str, SqlProperty]:
        """The properties of the layer's current fields (they change with a replace)."""
        return self._memoised(  # type: ignore[no-any-return]
            ("props", dialect, *self._stamp()), lambda: self.sql_properties(dialect)
        )

    #: Up to zoom 10 from the shapes simplified to a quarter pixel of zoom 10 (migration
    #: 0009), up to zoom 12 to a quarter pixel of zoom 12 (0008): low-zoom tiles of big
    #: polygon layers are the slow ones.
    tile_geometries = ((10, "geom_3857_z10"), (12, "geom_3857_z12"), (99, "geom_3857"))
    #: The polygons of zooms 10–14 already cut for their zoom (migration 0012): low-zoom
    #: tiles of polygon layers spent most of their time making each polygon valid again.
    tile_pixels: ClassVar[Mapping[int, str]] = {z: f"geom_px_z{z}" for z in range(10, 15)}

    @property
    def tile_properties(self) -> tuple[str, ...]:  # type: ignore[override]
        """The scalar fields, carried in vector tiles (``id`` and ``geom`` are the tile's own:
        a field of that name is left out of tiles, the API still serves it)."""
        return tuple(
            f["name"]
            for f in self._fields()
            if FIELD_KINDS.get(f.get("type", ""), "text") != "list"
            and f["name"] not in ("id", "geom")
        )

    def tile_column(self, name: str, prop: SqlProperty) -> Any:
        """Booleans stay booleans in tiles (stored as 0/1 for comparisons)."""
        if self._types().get(name) == "boolean":
            return prop.expr != 0
        return super().tile_column(name, prop)

    def _types(self) -> dict[str, str]:
        return {f["name"]: f.get("type", "") for f in self._fields()}

    def sql_properties(self, dialect: str) -> dict[str, SqlProperty]:
        """Each declared field read from the JSON column, by its type."""
        j = _Json(dialect)
        out: dict[str, SqlProperty] = {}
        for f in self._fields():
            name, kind = f["name"], FIELD_KINDS.get(f.get("type", ""), "text")
            if kind == "list":
                element = self._array_element(j, name)
                out[name] = json_list(name, j.array(name), dialect, element, nullable=True)
            elif f.get("type") == "boolean":
                out[name] = SqlProperty(name, "number", j.boolean(name))
            elif kind == "number":
                out[name] = SqlProperty(name, "number", j.number(name))
            else:
                out[name] = SqlProperty(name, kind, j.scalar(name))
        return out

    def _array_element(self, j: _Json, name: str) -> str:
        """``number`` when the layer's first non-empty arrays hold numbers, else ``text``."""
        expr = j.array(name)
        with read_connection(self.engine()) as conn:
            values = conn.execute(
                sa.select(features_table.c.properties)
                .where(*self.scope(), expr.is_not(None))
                .order_by(features_table.c.fid)
                .limit(20)
            ).scalars()
            items = [x for p in values for x in (p.get(name) or [])]
        numeric = [isinstance(x, int | float) and not isinstance(x, bool) for x in items]
        return "number" if items and all(numeric) else "text"

    def property_condition(
        self, name: str, value: str, props: Mapping[str, SqlProperty]
    ) -> ColumnElement[bool]:
        """``?name=value``, typed by the field (see the module docstring)."""
        types = {f["name"]: f.get("type") for f in self._fields()}
        prop = props.get(name)
        if prop is not None and types.get(name) == "boolean":
            if value == "None":
                return prop.expr.is_(None)
            wanted = {"true": 1, "false": 0}.get(value.lower())
            return SQL_FALSE if wanted is None else prop.expr == wanted
        return super().property_condition(name, value, props)

    def geojson_select(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> sa.Select[Any] | None:
        """(fid text, Feature text) per row, encoded by PostgreSQL: the stored properties as
        they are. None for a ``properties=`` subset (the Python path picks keys)."""
        if properties is not None:
            return None
        geometry_type = self.geometry_type

        def build() -> sa.Select[Any]:
            c = features_table.c
            fid = sa.cast(c.fid, sa.Text)
            geometry = (
                sa.literal("null", sa.Text)
                if skip_geometry
                else pg_geojson_geometry(
                    sa.literal_column("layer_features.geom"), geometry_type, c.geometry_json
                )
            )
            feature = pg_rendered(pg_feature(fid, geometry, _properties_text()), self.engine())
            return sa.select(fid, feature).select_from(features_table)

        return self._cache.built(("geojson", skip_geometry, geometry_type), build)  # type: ignore[no-any-return]

    def sqlite_geojson(
        self, properties: list[str] | None, skip_geometry: bool
    ) -> SqliteGeojson | None:
        """The page encoded by SQLite and Python: the stored properties' JSON text as it is
        (written by orjson, the service's encoder), the geometries vectorised. None for a
        ``properties=`` subset (the Python path picks keys)."""
        if properties is not None:
            return None
        geometry_type = self.geometry_type

        def build() -> SqliteGeojson:
            c = features_table.c
            return sqlite_spec(
                features_table,
                [sa.cast(c.fid, sa.Text), _properties_text()],
                (None,),
                None if skip_geometry else c.geometry_wkb,
                geometry_type,
                c.geometry_json,
            )

        return self._cache.built(("sqlite", skip_geometry, geometry_type), build)  # type: ignore[no-any-return]

    def build_features(
        self, rows: Sequence[Any], properties: list[str] | None, skip_geometry: bool
    ) -> list[dict[str, Any]]:
        """Features of rows of ``layer_features`` (ids as text, as the in-memory collection)."""
        if skip_geometry or not rows:
            geoms = np.full(len(rows), None, dtype=object)
        else:
            decoded = shapely.from_wkb([r.geometry_wkb for r in rows])
            geoms, _ = promote_to_multi(list(decoded), self.geometry_type)
        out = []
        for r, g in zip(rows, geoms, strict=True):
            props = dict(r.properties or {})
            if properties is not None:
                props = {k: props[k] for k in properties if k in props}
            out.append({"type": "Feature", "id": str(r.fid), "geometry": g, "properties": props})
        return out

    def feature_key(self, feature_id: str) -> int | None:
        """The fid a feature id (its decimal text, as served) names; None for any other text."""
        if not isinstance(feature_id, str) or not _FID.fullmatch(feature_id):
            return None
        fid = int(feature_id)
        return fid if fid <= _MAX_FID else None

    def property_values(self, name: str) -> np.ndarray:
        """A bounded sample of a property's values (the first features by fid), plus a
        ``None`` when some feature beyond the sample lacks it (so "nullable" stays right)."""
        with store_errors():
            sample, nulls = self._memoised(("sample", *self._stamp()), self._read_sample)
        values = [p.get(name) for p in sample]
        if name in nulls and None not in values:
            values.append(None)
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    def _read_sample(self) -> tuple[list[dict[str, Any]], set[str]]:
        c = features_table.c
        with read_connection(self.engine()) as conn:
            sample = [
                dict(p or {})
                for p in conn.execute(
                    sa.select(c.properties)
                    .where(*self.scope())
                    .order_by(c.fid)
                    .limit(self.property_sample_size)
                ).scalars()
            ]
            props = self._props(conn.dialect.name)
            names = [n for n in self.property_names() if n in props]
            nulls: set[str] = set()
            if names:
                probes = [
                    sa.func.max(sa.case((props[n].expr.is_(None), 1), else_=0)) for n in names
                ]
                row = conn.execute(sa.select(*probes).where(*self.scope())).one()
                nulls = {n for n, v in zip(names, row, strict=True) if v}
        return sample, nulls
