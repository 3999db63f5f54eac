"""Feature writes of uploaded layers (OGC API – Features Part 4): create, replace, merge
patch, delete — the interventions' write path, for every layer.

**Checked before anything is written** (422 naming the member, field or geometry):

* the body: a GeoJSON Feature, or a merge patch of one, with the members the interventions'
  writes accept (:func:`geo.interventions.features.check_members`);
* its properties against the layer's fields (the record's ``fields``, typed at upload by
  :mod:`geo.layers.attributes`): unknown names, and values of the wrong type (an integer
  field takes ``3`` or ``3.0``, a date ``2024-05-01``…); ``null`` is always allowed;
* its geometry: in ``Content-Crs`` (CRS84 when absent; any CRS the collection lists:
  EPSG:4326 latitude first, 32632, 3003, 7791, 6707 northing first, 3857), reprojected to
  CRS84, of the layer's family (polygons, lines or points), repaired with ``make_valid`` as
  an upload is (:mod:`geo.layers.checks`), in northern Italy (else the likely CRS is
  suggested), then given the collection's one declared type (a Polygon becomes a
  MultiPolygon where the layer declares MultiPolygon).

**Who may write**: the admin, and an editor of every comune the feature lies in, before and
after the change — the interventions' rule (:meth:`geo.auth.Principal.may_write` over
:func:`geo.interventions.validation.spatial_comuni`). A feature outside the 133 comuni is the
admin's alone.

**One transaction per write**, touching the feature's own row and the layer's record only
(primary-key reads and writes, no scan of the layer):

* the layer's record is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write
  transaction is exclusive), so writers of one layer queue, and ``precondition``
  (``If-Match``) is checked with nothing able to slip in between;
* the record's feature count, extent and ``updated_at`` (the collection's version, hence its
  ETags) change with the row, and the store's ``layers`` revision is bumped
  (:func:`geo.store.bump_revision`): every worker's registry, response cache, counts,
  extents and tiles see the change on their next request;
* the SQLite R*Tree (triggers of migration 0006) and the PostGIS ``geom`` (a generated
  column) follow the row's bbox columns and WKB by themselves;
* new features get the next id of the layer, never one a deleted feature had (a high-water
  mark in ``store_meta``).

Which comuni a feature lies in is computed from its geometry at each write (one STRtree
query over the 133 comuni): the store keeps no per-feature list of comuni for layers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Engine

from geo.auth import ADMIN, Principal
from geo.crs import CRS84, parse_crs, short_name, transformer
from geo.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    UnprocessableParameter,
    ValidationFailed,
)
from geo.interventions.features import check_members
from geo.interventions.validation import spatial_comuni
from geo.layers import checks
from geo.layers.sql_collection import _one_type, _wkb_type
from geo.layers.store import (
    TOPIC,
    _not_found,
    _record,
    features_table,
    fid_key,
    get_layer,
    layers_table,
)
from geo.ogc.encode import kept_geometry_texts
from geo.ogc.geometry import promote
from geo.ogc.http import feature_etag
from geo.store import bump_revision, get_engine, get_meta, set_meta, transaction
from geo.territory import get_territory

_MAX_FID = 2**31 - 1
#: Multi* types and their one-part type.
_SINGLE = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}
#: What each field type takes, in words (for the 422s).
_EXPECTED = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "text",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date and time (ISO 8601, e.g. 2024-05-01T10:30:00)",
    "time": "a time (HH:MM:SS)",
    "array": "a list of texts, numbers or booleans",
}


# ----- what a write sends, checked ----------------------------------------------------------


def _fail(problems: list[dict[str, str]], what: str) -> ValidationFailed:
    """422 naming the first problem, listing the first 100 (field and message each)."""
    first, more = problems[0], len(problems) - 1
    return ValidationFailed(
        f"{first['field']}: {first['message']}"
        + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        + f"; {what}: nothing was written",
        details=problems[:100],
        parameter=first["field"],
    )


class _WrongType(Exception):
    pass


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise _WrongType
    if "\x00" in v:  # PostgreSQL cannot read it back out of JSON
        raise _WrongType
    return v


def _element(x: Any) -> bool:
    """An element an array field takes: a scalar (no nested lists or objects)."""
    return (
        x is None or isinstance(x, bool | int | float) or (isinstance(x, str) and "\x00" not in x)
    )


def _typed(kind: str | None, v: Any) -> Any:
    """``v`` as a field of type ``kind`` stores it; _WrongType when it is not one."""
    if v is None:
        return None
    if kind == "integer":
        if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
            return v
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
    elif kind == "number":
        if isinstance(v, float) and math.isfinite(v):
            return v
        if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
            return v
    elif kind == "boolean":
        if isinstance(v, bool):
            return v
    elif kind == "date":
        return date.fromisoformat(_text(v)).isoformat()
    elif kind == "datetime":
        return datetime.fromisoformat(_text(v)).isoformat()
    elif kind == "time":
        return time.fromisoformat(_text(v)).isoformat()
    elif kind == "array":
        if isinstance(v, list) and all(_element(x) for x in v):
            return v
    elif kind == "string" or isinstance(v, str):
        return _text(v)
    elif kind not in _EXPECTED and isinstance(v, bool | int | float):
        return v  # a field type this module does not know: any JSON scalar
    raise _WrongType


def check_properties(
    props: dict[str, Any], fields: list[dict[str, Any]], layer_id: str
) -> dict[str, Any]:
    """The properties typed as the layer's fields store them; 422 listing every unknown
    field and every value of the wrong type."""
    types = {f["name"]: f.get("type") for f in fields if isinstance(f, dict) and "name" in f}
    problems: list[dict[str, str]] = []
    unknown = [k for k in props if k not in types]
    if unknown:
        known = ", ".join(types) or "none"
        problems.extend(
            {
                "field": f"properties.{k}",
                "message": f"unknown field {k!r} of layer {layer_id!r} (its fields: {known})",
            }
            for k in unknown
        )
    out: dict[str, Any] = {}
    for k, v in props.items():
        if k not in types:
            continue
        try:
            out[k] = _typed(types[k], v)
        except (_WrongType, ValueError, TypeError):
            shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "…"
            expected = _EXPECTED.get(str(types[k]), "a JSON value")
            problems.append(
                {
                    "field": f"properties.{k}",
                    "message": f"field {k!r} is {types[k]}: expected {expected} or null, "
                    f"got {shown}",
                }
            )
    if problems:
        raise _fail(problems, "the properties do not fit the layer's fields")
    return out


def content_crs(value: str | None) -> str:
    """The CRS URI of a write's ``Content-Crs`` (CRS84 when absent); 422 when unsupported."""
    if value is None or not value.strip():
        return CRS84
    try:
        return parse_crs(value.strip().strip("<>").strip(), "Content-Crs")
    except InvalidParameter as exc:
        raise UnprocessableParameter(
            "Content-Crs", exc.message.split(": ", 1)[-1] + " (e.g. <" + CRS84 + ">)"
        ) from None


def _geometry_fail(message: str) -> ValidationFailed:
    return _fail([{"field": "geometry", "message": message}], "bad geometry")


def check_geometry(geometry: Any, crs: str, family: str) -> BaseGeometry:
    """A GeoJSON geometry in ``crs`` → a valid CRS84 geometry of the layer's ``family``
    (``polygon``, ``line``, ``point``); 422 saying what is wrong."""
    if geometry is None:
        raise _geometry_fail("a feature of a layer needs a geometry")
    try:
        g = shapely.force_2d(shapely.geometry.shape(geometry))
    except Exception as exc:  # shapely raises many kinds on malformed GeoJSON
        raise _geometry_fail(f"not a GeoJSON geometry ({type(exc).__name__}: {exc})") from None
    if g.is_empty:
        raise _geometry_fail("empty geometry")
    raw = shapely.get_coordinates(g)
    if not np.isfinite(raw).all():
        raise _geometry_fail("coordinates must be finite numbers")
    if crs != CRS84:
        tx = transformer(crs, CRS84)

        def _to_lonlat(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(tx.transform(xy[:, 0], xy[:, 1]))

        g = shapely.transform(g, _to_lonlat)
    lonlat = shapely.get_coordinates(g)
    bounds = tuple(float(v) for v in shapely.total_bounds(g))
    if not np.isfinite(lonlat).all() or not checks._plausible(bounds):
        raw_bounds = (raw[:, 0].min(), raw[:, 1].min(), raw[:, 0].max(), raw[:, 1].max())
        raise _geometry_fail(
            f"in {short_name(crs)} its coordinates ({checks._describe(raw_bounds)}) do not "
            f"fall in northern Italy: {_crs_hint(raw_bounds, crs)}"
        )
    kind = _family(g)
    if kind != family:
        raise _geometry_fail(
            f"this layer holds {family}s; got a {g.geom_type}"
            + (f" of {kind}s" if kind in (checks.POLYGON, checks.LINE, checks.POINT) else "")
        )
    if g.geom_type == "GeometryCollection":
        g = checks._multi(list(shapely.get_parts(g)), family)
    if not g.is_valid:
        g = checks._repair(np.array([g], dtype=object), family)[0]
        if g.is_empty:
            raise _geometry_fail("invalid, and nothing is left of it once repaired")
    return g  # type: ignore[no-any-return]


def _crs_hint(raw_bounds: tuple[float, ...], crs: str) -> str:
    """Which ``Content-Crs`` the coordinates look like (checks.suggest_crs), if any."""
    x0, y0, x1, y1 = (float(v) for v in raw_bounds)
    for name in checks.suggest_crs((x0, y0, x1, y1)):
        try:
            uri = parse_crs(name)
        except InvalidParameter:
            continue
        if uri != crs:
            return (
                f"they look like {checks._SUGGESTION_NAMES.get(name, name)}; send them with "
                f"Content-Crs: <{uri}>"
            )
    return "give their CRS in Content-Crs (CRS84, EPSG:4326, 32632, 3003, 7791, 6707, 3857)"


def _family(g: BaseGeometry) -> str:
    """``polygon``, ``line`` or ``point`` (a collection of one of them too), else the type."""
    if g.geom_type != "GeometryCollection":
        return checks._FAMILY.get(g.geom_type, g.geom_type)
    kinds = {checks._FAMILY.get(p.geom_type) for p in shapely.get_parts(g)}
    one = kinds.pop() if len(kinds) == 1 else None
    return one or "mixed collection"


def as_declared(g: BaseGeometry, declared: str | None, layer_id: str) -> BaseGeometry:
    """``g`` as the collection's one declared type: promoted to it (Polygon → MultiPolygon),
    or a one-part Multi* taken apart where the layer declares single parts; a geometry of
    several parts in a layer of single ones is refused (it would change the type of every
    feature the layer serves)."""
    if declared is None or g.geom_type == declared:
        return g
    promoted = promote(g, declared)
    if promoted is not None and promoted.geom_type == declared:
        return promoted
    if _SINGLE.get(g.geom_type) == declared:
        parts = shapely.get_parts(g)
        if len(parts) == 1:
            return parts[0]  # type: ignore[no-any-return]
        raise _geometry_fail(
            f"layer {layer_id!r} declares {declared} (one part per feature); got a "
            f"{g.geom_type} of {len(parts)} parts: send each part as its own feature"
        )
    return g


# ----- who may write -----------------------------------------------------------------------


def comuni_of(g: BaseGeometry | None) -> list[str]:
    """ISTAT codes of the comuni a CRS84 geometry lies in (the interventions' rule)."""
    if g is None:
        return []
    return spatial_comuni(np.array([g], dtype=object))[0]


def _authorise(principal: Principal, comuni: list[str], what: str) -> None:
    """Forbidden unless ``principal`` may write a feature lying in ``comuni``."""
    if principal.may_write(comuni):
        return
    t = get_territory()
    theirs = ", ".join(sorted(t.comuni[c].name for c in principal.editable if c in t.comuni))
    theirs = theirs or "no comune"
    where = ", ".join(t.comuni[c].name for c in comuni if c in t.comuni)
    raise Forbidden(
        f"an editor of {theirs} may only write features lying in {theirs}; {what} lies "
        + (f"in {where}" if where else "outside the 133 comuni (only the admin may write it)"),
        details={"comuni": comuni},
    )


def may_edit(
    principal: Principal | None, layer_id: str, feature_id: str, *, engine: Engine | None = None
) -> bool:
    """Whether ``principal`` may replace, patch or delete one feature (NotFound if absent)."""
    engine = engine or get_engine()
    fid = _fid(layer_id, feature_id)
    c = features_table.c
    with engine.connect() as conn:
        wkb = conn.execute(
            sa.select(c.geometry_wkb).where(c.layer_id == layer_id, c.fid == fid)
        ).scalar()
    if wkb is None:
        get_layer(layer_id, engine=engine)  # the layer itself may be what is missing
        raise _no_feature(layer_id, feature_id)
    return principal is not None and principal.may_write(comuni_of(shapely.from_wkb(wkb)))


# ----- the writes --------------------------------------------------------------------------


def _no_feature(layer_id: str, feature_id: Any) -> NotFound:
    return NotFound(
        f"no feature {str(feature_id)[:40]!r} in collection {layer_id!r}", parameter="featureId"
    )


def _fid(layer_id: str, feature_id: str) -> int:
    """The row id of a served feature id (its decimal text); NotFound for anything else."""
    text = str(feature_id)
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and text == str(int(text))):
        raise _no_feature(layer_id, feature_id)
    fid = int(text)
    if fid > _MAX_FID:
        raise _no_feature(layer_id, feature_id)
    return fid


@dataclass
class _Sent:
    """What a write sends, checked against one version of the layer's record."""

    properties: dict[str, Any]
    geometry: BaseGeometry | None  # CRS84, of the layer's family; None: a patch keeps it
    fields: Any
    family: str


def _check_body(
    body: Any, record: dict[str, Any], crs: str, *, patch: bool, feature_id: str | None
) -> _Sent:
    fields = record["fields"]
    names = [f["name"] for f in fields if isinstance(f, dict) and "name" in f]
    props = check_members(body, patch=patch, writable=names)
    body_id = body.get("id")
    if feature_id is not None and body_id is not None and str(body_id) != feature_id:
        raise InvalidParameter("id", f"the body's id {body_id!r} differs from the URL's")
    typed = check_properties(props, fields, record["id"])
    if patch and "geometry" not in body:
        geometry = None
    else:
        geometry = check_geometry(body.get("geometry"), crs, record["geometry_type"])
    return _Sent(typed, geometry, fields, record["geometry_type"])


@dataclass
class _Row:
    fid: int
    properties: dict[str, Any]
    wkb: bytes
    bounds: tuple[float, float, float, float]


def _read_row(conn: Connection, layer_id: str, fid: int) -> _Row | None:
    c = features_table.c
    r = conn.execute(
        sa.select(c.fid, c.properties, c.geometry_wkb, c.minx, c.miny, c.maxx, c.maxy).where(
            c.layer_id == layer_id, c.fid == fid
        )
    ).first()
    if r is None:
        return None
    return _Row(r.fid, dict(r.properties or {}), bytes(r.geometry_wkb),
                (r.minx, r.miny, r.maxx, r.maxy))  # fmt: skip


#: The declared geometry type of each version of a layer (layer id, engine, created,
#: updated): a write knows the type it leaves, so the next write needs no scan of the rows.
_declared: dict[tuple[Any, ...], str | None] = {}
_declared_lock = threading.Lock()


def _version(layer_id: str, engine: Engine, record: dict[str, Any]) -> tuple[Any, ...]:
    return (layer_id, id(engine), record["created"], record["updated"])


def _declared_type(conn: Connection, engine: Engine, record: dict[str, Any]) -> str | None:
    """The collection's one geometry type (as :class:`LayerSqlProvider` declares it, read
    off the rows' WKB headers), remembered per version of the layer."""
    key = _version(record["id"], engine, record)
    with _declared_lock:
        if key in _declared:
            return _declared[key]
    c = features_table.c
    header = sa.func.substr(c.geometry_wkb, 1, 5)
    rows = conn.execute(sa.select(header).where(c.layer_id == record["id"]).distinct()).scalars()
    types = {_wkb_type(bytes(h)) for h in rows if h is not None}
    found = _one_type({t for t in types if t is not None})
    _remember(key, found)
    return found


def _remember(key: tuple[Any, ...], declared: str | None) -> None:
    with _declared_lock:
        if len(_declared) >= 4096:
            _declared.clear()
        _declared[key] = declared


def _lock_layer(conn: Connection, layer_id: str) -> dict[str, Any]:
    """The layer's record, its row locked until the transaction ends (FOR UPDATE)."""
    row = conn.execute(
        sa.select(layers_table).where(layers_table.c.id == layer_id).with_for_update()
    ).first()
    if row is None:
        raise _not_found(layer_id)
    return _record(row)


def _next_fid(conn: Connection, layer_id: str) -> int:
    """One more than any id the layer ever had (kept in store_meta: never reused)."""
    c = features_table.c
    top = conn.execute(sa.select(sa.func.max(c.fid)).where(c.layer_id == layer_id)).scalar()
    last = get_meta(conn, fid_key(layer_id))
    fid = max(int(top or 0), int(last or 0)) + 1
    if fid > _MAX_FID:
        raise Conflict(f"layer {layer_id!r} has used every feature id")
    set_meta(conn, fid_key(layer_id), str(fid))
    return fid


def _touch_record(
    conn: Connection,
    record: dict[str, Any],
    *,
    count: int,
    removed: tuple[float, ...] | None,
    added: tuple[float, ...] | None,
) -> dict[str, Any]:
    """Write the record after a write of a feature: feature count, extent, ``updated_at``
    (strictly later than before, so the collection's version always changes); bump the
    ``layers`` revision. Returns the new record."""
    layer_id = record["id"]
    box = list(record["bbox"])
    on_edge = removed is not None and (
        removed[0] <= box[0] or removed[1] <= box[1] or removed[2] >= box[2] or removed[3] >= box[3]
    )
    if on_edge and count:  # the extent may shrink: read it again (bbox index of the layer)
        c = features_table.c
        extent = (
            sa.func.min(c.minx),
            sa.func.min(c.miny),
            sa.func.max(c.maxx),
            sa.func.max(c.maxy),
        )
        box = list(conn.execute(sa.select(*extent).where(c.layer_id == layer_id)).one())
    elif added is not None:
        box = [min(box[0], added[0]), min(box[1], added[1]),
               max(box[2], added[2]), max(box[3], added[3])]  # fmt: skip
    before = datetime.fromisoformat(record["updated"].replace("Z", "+00:00"))
    now = max(datetime.now(UTC), before + timedelta(microseconds=1))
    conn.execute(
        layers_table.update()
        .where(layers_table.c.id == layer_id)
        .values(
            feature_count=count, minx=box[0], miny=box[1], maxx=box[2], maxy=box[3], updated_at=now
        )
    )
    bump_revision(conn, TOPIC)
    row = conn.execute(sa.select(layers_table).where(layers_table.c.id == layer_id)).one()
    return _record(row)  # as every reader will see it once committed


def _served(layer_id: str, fid: int, props: dict[str, Any], wkb: bytes, declared: str | None):
    """The feature as ``GET …/items/{id}`` serves it (CRS84 GeoJSON) and its strong ETag."""
    g = promote(shapely.from_wkb(wkb), declared)
    feature = {
        "type": "Feature",
        "id": str(fid),
        "geometry": shapely.geometry.mapping(g),
        "properties": props,
    }
    return feature, feature_etag(feature)


@dataclass
class Written:
    """A feature as written: the GeoJSON a GET now serves, and its strong ETag."""

    feature: dict[str, Any]
    etag: str

    @property
    def id(self) -> str:
        """The feature's id (the decimal text of its row id)."""
        return str(self.feature["id"])


def _write(
    layer_id: str,
    feature_id: str | None,
    body: Any,
    *,
    patch: bool,
    principal: Principal,
    crs: str | None,
    engine: Engine | None,
    precondition: Callable[[], None] | None,
) -> Written:
    engine = engine or get_engine()
    fid = None if feature_id is None else _fid(layer_id, feature_id)
    record = get_layer(layer_id, engine=engine)
    src = content_crs(crs)
    sent = _check_body(body, record, src, patch=patch, feature_id=feature_id)  # before locking
    if fid is None:  # a new feature: who may write it is known before the transaction
        _authorise(principal, comuni_of(sent.geometry), "this feature")
    with transaction(engine) as conn:
        current = _lock_layer(conn, layer_id)
        if (current["fields"], current["geometry_type"]) != (sent.fields, sent.family):
            sent = _check_body(body, current, src, patch=patch, feature_id=feature_id)
        old = None
        if fid is not None:
            old = _read_row(conn, layer_id, fid)
            if precondition is not None:
                precondition()  # If-Match, with the layer locked
            if old is None:
                raise _no_feature(layer_id, feature_id)
        declared = _declared_type(conn, engine, current)
        names = [f["name"] for f in current["fields"] if isinstance(f, dict) and "name" in f]
        if old is not None and patch:
            props = {**{k: old.properties.get(k) for k in names}, **sent.properties}
        else:
            props = {k: sent.properties.get(k) for k in names}
        if sent.geometry is not None:
            geometry = as_declared(sent.geometry, declared, layer_id)
            wkb = shapely.to_wkb(geometry, output_dimension=2)
            bounds = tuple(float(v) for v in shapely.bounds(geometry))
            after = geometry.geom_type if declared is None else declared
        else:
            assert old is not None
            wkb, bounds, after = old.wkb, old.bounds, declared
        if old is not None:
            what = f"feature {fid} of layer {layer_id!r}"
            before_comuni = comuni_of(shapely.from_wkb(old.wkb))
            _authorise(principal, before_comuni, what)
            if sent.geometry is not None:
                _authorise(principal, comuni_of(shapely.from_wkb(wkb)), f"the new {what}")
        values = {
            "properties": props,
            "geometry_wkb": wkb,
            "geometry_json": kept_geometry_texts([wkb])[0],
            "minx": bounds[0],
            "miny": bounds[1],
            "maxx": bounds[2],
            "maxy": bounds[3],
        }
        c = features_table.c
        if old is None:
            fid = _next_fid(conn, layer_id)
            conn.execute(features_table.insert().values(layer_id=layer_id, fid=fid, **values))
            count = current["feature_count"] + 1
        else:
            conn.execute(
                features_table.update().where(c.layer_id == layer_id, c.fid == fid).values(**values)
            )
            count = current["feature_count"]
        written = _touch_record(
            conn,
            current,
            count=count,
            removed=old.bounds if old is not None and sent.geometry is not None else None,
            added=bounds,
        )
    _remember(_version(layer_id, engine, written), after)
    assert fid is not None
    return Written(*_served(layer_id, fid, props, wkb, after))


def create_feature(
    layer_id: str,
    feature: Any,
    *,
    principal: Principal = ADMIN,
    crs: str | None = None,
    engine: Engine | None = None,
) -> Written:
    """POST: a new feature of the layer (its id is the layer's next one)."""
    return _write(layer_id, None, feature, patch=False, principal=principal, crs=crs,
                  engine=engine, precondition=None)  # fmt: skip


def replace_feature(
    layer_id: str,
    feature_id: str,
    feature: Any,
    *,
    principal: Principal = ADMIN,
    crs: str | None = None,
    engine: Engine | None = None,
    precondition: Callable[[], None] | None = None,
) -> Written:
    """PUT: replace a feature's geometry and properties (fields not sent become null).

    ``precondition`` (the ``If-Match`` check) runs inside the write's transaction, the
    layer locked."""
    return _write(layer_id, feature_id, feature, patch=False, principal=principal, crs=crs,
                  engine=engine, precondition=precondition)  # fmt: skip


def patch_feature(
    layer_id: str,
    feature_id: str,
    patch: Any,
    *,
    principal: Principal = ADMIN,
    crs: str | None = None,
    engine: Engine | None = None,
    precondition: Callable[[], None] | None = None,
) -> Written:
    """PATCH: a JSON merge patch of the feature: the properties sent replace theirs
    (``null`` clears one), a ``geometry`` sent replaces it; the rest stays."""
    return _write(layer_id, feature_id, patch, patch=True, principal=principal, crs=crs,
                  engine=engine, precondition=precondition)  # fmt: skip


def delete_feature(
    layer_id: str,
    feature_id: str,
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
    precondition: Callable[[], None] | None = None,
) -> None:
    """DELETE one feature (NotFound, Forbidden); ``precondition`` (``If-Match``) runs inside
    the transaction, the layer locked."""
    engine = engine or get_engine()
    fid = _fid(layer_id, feature_id)
    with transaction(engine) as conn:
        current = _lock_layer(conn, layer_id)
        old = _read_row(conn, layer_id, fid)
        if precondition is not None:
            precondition()
        if old is None:
            raise _no_feature(layer_id, feature_id)
        _authorise(principal, comuni_of(shapely.from_wkb(old.wkb)),
                   f"feature {fid} of layer {layer_id!r}")  # fmt: skip
        declared = _declared_type(conn, engine, current)
        c = features_table.c
        conn.execute(features_table.delete().where(c.layer_id == layer_id, c.fid == fid))
        count = current["feature_count"] - 1
        written = _touch_record(conn, current, count=count, removed=old.bounds, added=None)
    # A layer of single parts stays one (or empty); one declaring Multi* may not: read again.
    if declared is not None and declared not in _SINGLE:
        _remember(_version(layer_id, engine, written), declared if count else None)
