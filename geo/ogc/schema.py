"""Schemas of a collection's features (OGC API – Features Part 5 / Common Part 3, 23-058r2).

One description of each property — :func:`describe_properties`, from the provider's
queryables, completed from the data for properties not declared — gives every schema the
service publishes, so they cannot disagree:

* :func:`returnables_schema` — ``/collections/{id}/schema``: the properties of the features
  as returned (``x-ogc-role`` ``id`` and ``primary-geometry``, ``x-ogc-propertySeq``,
  numbers stay numbers, ``format: date``/``date-time``/``uri``, ``enum`` where the values
  are a closed list, arrays of strings or numbers, ``null`` allowed where data is missing);
* :func:`queryables_schema` — ``/collections/{id}/queryables`` (Part 3 and Part 5);
* :func:`sortables_schema` — ``/collections/{id}/sortables``: scalar, non-spatial
  properties only;
* :func:`geojson_feature_schema` — the JSON Schema of one GeoJSON feature of the
  collection, linked as ``describedby``: GDAL's OAPIF driver reads field types from it (a
  ``describedby`` link typed ``application/schema+json`` whose ``properties.properties``
  lists the fields), so amounts arrive as Real even when the first page has none. There
  list-valued properties are declared as text, so every GDAL export (Shapefile,
  GeoPackage, CSV) keeps them, as GDAL's ``(2:M1,M2)``; the GeoJSON keeps them as arrays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from geo.ogc.geometry import geometry_format
from geo.ogc.registry import CollectionProvider, Queryable

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Properties the service sets itself: returned, never taken from a client.
READ_ONLY = frozenset({"created", "updated"})

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_URI = re.compile(r"^https?://\S+$")


def infer_queryable(name: str, values: Iterable[Any]) -> Queryable:
    """A property's type from its values: numbers, booleans, lists, and strings that are all
    dates, date-times or URLs (``format``)."""
    present = [v for v in values if v is not None]
    array = bool(present) and all(isinstance(v, list | tuple) for v in present)
    items = [x for v in present for x in v] if array else present
    kinds = {type(v) for v in items}
    fmt = None
    if not kinds or kinds <= {str}:
        kind = "string"
        strings = [str(v) for v in items]
        for pattern, f in ((_DATE, "date"), (_DATE_TIME, "date-time"), (_URI, "uri")):
            if strings and all(pattern.match(s) for s in strings):
                fmt = f
                break
    elif kinds <= {bool}:
        kind = "boolean"
    elif kinds <= {int}:
        kind = "integer"
    elif kinds <= {int, float}:
        kind = "number"
    elif kinds <= {datetime}:
        kind, fmt = "string", "date-time"
    elif kinds <= {date}:
        kind, fmt = "string", "date"
    else:
        kind = "string"
    return Queryable(name, kind, array=array, format=fmt)


def describe_properties(p: CollectionProvider) -> list[tuple[Queryable, bool]]:
    """(description, nullable) of every property the features carry, in order: the
    declared queryable when there is one (its array-ness and format completed from the
    data), else what the data says."""
    declared = {q.name: q for q in p.queryables()}
    values = getattr(p, "property_values", None)
    out: list[tuple[Queryable, bool]] = []
    for name in p.property_names():
        col = list(values(name)) if values is not None else []
        q = declared.get(name)
        seen = infer_queryable(name, col)
        if q is None:
            q = seen
        else:
            if seen.array and not q.array:
                q = replace(q, array=True)
            if q.format is None and q.type == "string" and seen.format in ("date", "date-time"):
                q = replace(q, format=seen.format)
        nullable = not col or any(v is None for v in col)
        out.append((q, nullable))
    return out


def value_schema(q: Queryable, *, nullable: bool = False) -> dict[str, Any]:
    """The JSON Schema of one property's values."""
    base: dict[str, Any] = {}
    if q.type == "datetime":
        base.update(type="string", format="date-time")
    else:
        base["type"] = q.type
        if q.format:
            base["format"] = q.format
    if q.enum:
        base["enum"] = list(q.enum)
    if q.array:
        schema: dict[str, Any] = {"type": "array", "items": base}
    else:
        schema = base
    if nullable:
        schema = {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _geometry(p: CollectionProvider) -> dict[str, Any]:
    return {
        "title": "Geometry",
        "format": geometry_format(p.geometry_type),
        "x-ogc-role": "primary-geometry",
    }


def _document(url: str, p: CollectionProvider, props: dict[str, Any], **extra: Any) -> dict:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": url,
        "type": "object",
        "title": p.title,
        "description": p.description,
        "properties": props,
        **extra,
    }


def returnables_schema(p: CollectionProvider, url: str) -> dict[str, Any]:
    """``/collections/{id}/schema``: the features' properties as returned (Part 5)."""
    props: dict[str, Any] = {
        "id": {"title": "Feature id", "type": "string", "x-ogc-role": "id", "readOnly": True},
        "geometry": _geometry(p),
    }
    required = ["id"]
    for q, nullable in describe_properties(p):
        if q.name in ("id", "geometry"):
            continue  # the feature's own id and geometry (listed above)
        schema = {"title": q.title or q.name, **value_schema(q, nullable=nullable)}
        if q.name in READ_ONLY:
            schema["readOnly"] = True
        props[q.name] = schema
        if not nullable:
            required.append(q.name)
    for seq, schema in enumerate(props.values(), start=1):
        schema["x-ogc-propertySeq"] = seq
    return _document(url, p, props, required=required)


def queryables_schema(
    p: CollectionProvider, url: str, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """``/collections/{id}/queryables``: what filters may name (Part 3, Part 5)."""
    props: dict[str, Any] = {"geometry": _geometry(p)}
    for q in p.queryables():
        props[q.name] = {"title": q.title or q.name, **value_schema(q)}
    return _document(url, p, props, additionalProperties=False)


def sortables(p: CollectionProvider) -> list[Queryable]:
    """Properties ``sortby`` accepts: those the features carry with one value each."""
    carried = set(p.property_names())
    return [q for q in p.queryables() if q.name in carried and not q.array]


def sortables_schema(p: CollectionProvider, url: str) -> dict[str, Any]:
    """``/collections/{id}/sortables``: scalar, non-spatial properties (Part 5)."""
    props = {q.name: {"title": q.title or q.name, **value_schema(q)} for q in sortables(p)}
    return _document(url, p, props, additionalProperties=False)


def geojson_feature_schema(p: CollectionProvider, url: str) -> dict[str, Any]:
    """One GeoJSON feature of the collection as JSON Schema, with one plain ``type`` per
    property: what GDAL's OAPIF driver reads to type its fields (``describedby``)."""
    fields: dict[str, Any] = {}
    for q, _nullable in describe_properties(p):
        if q.name == "id":
            continue  # GDAL takes the field "id" from the features themselves
        if q.array:
            # Lists as text: GDAL then writes them to Shapefile and GeoPackage (as
            # "(2:M1,M2)"), where a StringList field would be dropped or refused.
            schema: dict[str, Any] = {"type": "string", "description": "a list, as text"}
        else:
            schema = value_schema(q)
        fields[q.name] = {"title": q.title or q.name, **schema}
    geometry_type = p.geometry_type
    geometry: dict[str, Any] = {"type": "object", "required": ["type"]}
    if geometry_type and geometry_type != "GeometryCollection":
        geometry["properties"] = {"type": {"type": "string", "enum": [geometry_type]}}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": url,
        "title": f"{p.title}: GeoJSON feature",
        "description": "Null-valued properties are sent as null.",
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": geometry,
            "properties": {"type": "object", "properties": fields},
        },
    }
