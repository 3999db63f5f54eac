"""Single-feature writes (OGC API – Features Part 4): create, replace, merge-patch.

Each goes through the same rules as an import (:func:`prepare_feature`: the one-record way
of :mod:`.validation`, no table built) and the same all-or-nothing upsert.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Engine

from geo.auth import ADMIN, Principal
from geo.errors import InvalidParameter, NotFound, ValidationFailed
from geo.interventions.model import COLUMNS, InputTable, Prepared
from geo.interventions.store import get_feature, get_store, upsert
from geo.interventions.validation import cell_text, prepare_one
from geo.lazy import lazy_module
from geo.store import transaction

pd = lazy_module("pandas")  # imported on first use (geo.lazy)

#: Members of a Feature a write may send (``bbox``/``links`` as a GET answered them: ignored).
FEATURE_KEYS = frozenset({"type", "id", "geometry", "properties", "bbox", "links"})
#: Properties a GET answers that a client may send back unchanged but cannot set (ignored).
READ_ONLY = frozenset(
    {
        "comuni_names",
        "comuni_named",
        "zone",
        "unioni",
        "precision",
        "precision_note",
        "created",
        "updated",
    }
)
WRITABLE = frozenset(COLUMNS)


def _fail(fieldname: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{fieldname}: {message}; nothing was written",
        details=[{"row": 1, "field": fieldname, "message": message}],
        parameter=fieldname,
    )


def check_feature(feat: Any, *, patch: bool = False) -> None:
    """422 naming every unknown member or property (a typo must not be silently dropped)."""
    props = check_members(feat, patch=patch)
    bad = sorted(k for k in props if k not in WRITABLE and k not in READ_ONLY)
    if bad:
        raise _fail(
            f"properties.{bad[0]}",
            f"unknown propert{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)} "
            f"(writable: {', '.join(sorted(WRITABLE))})",
        )
    for k, v in props.items():
        if k in WRITABLE and not _scalar_or_list(v):
            raise _fail(f"properties.{k}", "expected text, a number, or a list of them")


def check_members(
    feat: Any, *, patch: bool = False, writable: Collection[str] = WRITABLE
) -> dict[str, Any]:
    """The properties a Feature (or a merge patch of one) sends; 422 naming a member that is
    not a Feature's (``writable``: property names to hint at), a ``properties`` that is not
    an object, a ``geometry`` that is neither an object nor null. Shared with the writes of
    uploaded layers (:mod:`geo.layers.editing`)."""
    what = "a merge patch of a Feature" if patch else "a GeoJSON Feature"
    if not isinstance(feat, dict):
        raise _fail("body", f"expected {what} object")
    kind = feat.get("type")
    if kind != "Feature" and not (patch and "type" not in feat):  # a patch may omit it
        raise _fail("type", f'expected "Feature", got {feat.get("type")!r}')
    unknown = sorted(set(feat) - FEATURE_KEYS)
    if unknown:
        hint = [k for k in unknown if k in writable]
        raise _fail(
            unknown[0],
            f"unknown member(s) {', '.join(unknown)} of {what}"
            + (f'; put {", ".join(hint)} inside "properties"' if hint else "")
            + f" (accepted: {', '.join(sorted(FEATURE_KEYS))})",
        )
    props = feat.get("properties")
    if props is not None and not isinstance(props, dict):
        raise _fail("properties", "expected an object")
    geometry = feat.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise _fail("geometry", "expected a GeoJSON geometry object or null")
    return props or {}


def _scalar_or_list(v: Any) -> bool:
    if isinstance(v, list | tuple):
        return all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in v)
    return v is None or isinstance(v, str | int | float | bool)


def feature_input(feat: Any) -> tuple[dict[str, Any], Any]:
    """The writable properties of a Feature (its ``id`` when the properties have none) and
    its geometry as shapely (None when null); 422 on an unknown member or property, or a
    geometry shapely cannot read."""
    check_feature(feat)
    props = {k: v for k, v in (feat.get("properties") or {}).items() if k in WRITABLE}
    if feat.get("id") is not None and not props.get("id"):
        props["id"] = str(feat["id"])
    g = feat.get("geometry")
    if g is None:
        return props, None
    try:
        return props, shapely.geometry.shape(g)
    except Exception as exc:
        raise ValidationFailed(
            "bad geometry", details=[{"row": 1, "field": "geometry", "message": str(exc)}]
        ) from exc


def table_from_features(features: list[dict[str, Any]]) -> InputTable:
    """InputTable from GeoJSON Features (properties + CRS84 geometry, id from the feature)."""
    rows, geoms = [], []
    for feat in features:
        props, geom = feature_input(feat)
        rows.append(props)
        geoms.append(geom)
    frame = pd.DataFrame(rows, columns=sorted({k for r in rows for k in r} | set(COLUMNS)))
    return InputTable.build(frame, np.array(geoms, dtype=object))


def prepare_feature(feature: dict[str, Any], *, source: str = "api") -> Prepared:
    """One Feature validated and turned into a record: what ``prepare(table_from_features(
    [feature]))`` answers, without building a table (a write's cost is its database work)."""
    props, geom = feature_input(feature)
    return prepare_one({k: cell_text(props.get(k)) for k in COLUMNS}, geom, source=source)


def create_feature(
    feature: dict[str, Any], *, principal: Principal = ADMIN, engine: Engine | None = None
) -> dict[str, Any]:
    """POST: a new intervention (Conflict if the id exists). Returns the stored feature."""
    prepared = prepare_feature(feature)
    prepared.raise_for_errors()
    engine = get_store(engine)
    rid = prepared.records[0]["id"]
    _ensure_kept(engine)
    with transaction(engine) as conn:
        upsert(prepared, principal=principal, conn=conn, new_only=True)
        return _stored(rid, conn)


def _locked(
    conn, intervention_id: str, precondition: Callable[[], None] | None
) -> dict[str, Any] | None:
    """Inside the write's transaction: read the stored intervention and lock its row (one
    statement), then check ``precondition`` (``If-Match``), so no other write can slip
    between the check and this one."""
    current = get_feature(intervention_id, conn=conn, for_update=True)
    if precondition is not None:
        precondition()
    return current


def replace_feature(
    intervention_id: str,
    feature: dict[str, Any],
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
    precondition: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """PUT: replace an existing intervention entirely (NotFound if absent).

    ``precondition`` (e.g. the ``If-Match`` check) runs inside the write's transaction,
    after the row is locked."""
    engine = get_store(engine)
    _ensure_kept(engine)
    with transaction(engine) as conn:
        current = _locked(conn, intervention_id, precondition)
        return _replace(intervention_id, feature, principal, current, conn)


def _replace(intervention_id, feature, principal, current, conn) -> dict[str, Any]:
    if current is None:
        raise NotFound(f"no intervention with id {intervention_id!r}")
    check_feature(feature)
    body_id = feature.get("id") or (feature.get("properties") or {}).get("id")
    if body_id is not None and str(body_id) != intervention_id:
        raise InvalidParameter("id", f"the body's id {body_id!r} differs from the URL's")
    feature = {**feature, "id": intervention_id}
    props = dict(feature.get("properties") or {})
    props.setdefault("source", current["properties"]["source"])
    feature["properties"] = props
    prepared = prepare_feature(feature)
    upsert(prepared, principal=principal, conn=conn)
    return _stored(intervention_id, conn)


def patch_feature(
    intervention_id: str,
    patch: dict[str, Any],
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
    precondition: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """PATCH: merge ``patch`` (JSON merge patch of a Feature) into the stored intervention.

    A placed geometry (precision ``comune``) is placed again from the new comuni unless
    the patch gives a geometry. The stored intervention is read, merged and written in one
    transaction with the row locked (``precondition`` runs there too).
    """
    engine = get_store(engine)
    _ensure_kept(engine)
    with transaction(engine) as conn:
        current = _locked(conn, intervention_id, precondition)
        return _patch(intervention_id, patch, principal, current, conn)


def _patch(intervention_id, patch, principal, current, conn) -> dict[str, Any]:
    if current is None:
        raise NotFound(f"no intervention with id {intervention_id!r}")
    check_feature(patch, patch=True)
    body_id = patch.get("id")
    if body_id is not None and str(body_id) != intervention_id:
        raise InvalidParameter("id", f"the body's id {body_id!r} differs from the URL's")
    props = {
        k: v for k, v in current["properties"].items() if k in COLUMNS and k not in ("comuni",)
    }
    props["comuni"] = current["properties"]["comuni_named"] or current["properties"]["comuni"]
    for k, v in (patch.get("properties") or {}).items():
        if v is None:
            props.pop(k, None)
        else:
            props[k] = v
    if "geometry" in patch:
        geometry = patch["geometry"]
    elif current["properties"]["precision"] == "exact":
        geometry = current["geometry"]
    else:
        geometry = None
    merged = {"type": "Feature", "id": intervention_id, "geometry": geometry, "properties": props}
    prepared = prepare_feature(merged)
    upsert(prepared, principal=principal, conn=conn)
    return _stored(intervention_id, conn)


def _ensure_kept(engine: Engine) -> None:
    """Before a write's transaction: the layout of the kept properties checked, so the write
    keeps its row's text even in a process that has served no page yet (it may write
    itself: never inside the transaction)."""
    from geo.interventions.sql_collection import ensure_properties_layout

    ensure_properties_layout(engine)


def _stored(intervention_id: str, conn) -> dict[str, Any]:
    """The intervention as this transaction wrote it (read on the write's connection)."""
    return get_feature(intervention_id, conn=conn) or {}
