"""Turn FastAPI's OpenAPI 3.1 document into OpenAPI 3.0.3 (for GDAL, OWSLib, QGIS)."""

from __future__ import annotations

import copy
from typing import Any

_DROP = {"$schema", "contentMediaType", "contentEncoding", "examples", "const", "$id"}


def _schema(node: Any) -> Any:
    """Convert one JSON Schema (2020-12 flavour) to the OpenAPI 3.0 schema object."""
    if isinstance(node, list):
        return [_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs", "definitions"):
            out[key] = {k: _schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_schema(v) for v in value]
        else:
            out[key] = value
    if "const" in node:
        out["enum"] = [node["const"]]
    if "examples" in node and isinstance(node["examples"], list) and node["examples"]:
        out["example"] = node["examples"][0]
    if node.get("contentMediaType") or node.get("contentEncoding") == "base64":
        out["format"] = "binary"
    for k in _DROP:
        out.pop(k, None)
    t = out.get("type")
    if isinstance(t, list):
        kinds = [k for k in t if k != "null"]
        out["type"] = kinds[0] if kinds else "string"
        if "null" in t:
            out["nullable"] = True
    for key in ("anyOf", "oneOf"):
        alts = out.get(key)
        if isinstance(alts, list) and any(a == {"type": "null"} for a in alts):
            rest = [a for a in alts if a != {"type": "null"}]
            del out[key]
            out["nullable"] = True
            if len(rest) == 1:
                only = rest[0]
                if "$ref" in only:
                    out["allOf"] = [only]
                else:
                    out.update({k: v for k, v in only.items() if k not in out})
            elif rest:
                out[key] = rest
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        v = out.get(bound)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[plain] = v
            out[bound] = True
    return out


def _walk(node: Any) -> Any:
    """Convert every ``schema`` found in paths and components."""
    if isinstance(node, list):
        return [_walk(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "schema":
            out[key] = _schema(value)
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        else:
            out[key] = _walk(value)
    return out


def to_openapi30(doc: dict[str, Any]) -> dict[str, Any]:
    """A 3.0.3 copy of a 3.1 document."""
    d = copy.deepcopy(doc)
    d["openapi"] = "3.0.3"
    d.pop("jsonSchemaDialect", None)
    d.pop("webhooks", None)
    d["paths"] = _walk(d.get("paths", {}))
    comps = d.get("components", {})
    if "schemas" in comps:
        comps["schemas"] = {k: _schema(v) for k, v in comps["schemas"].items()}
    for section in ("parameters", "requestBodies", "responses"):
        if section in comps:
            comps[section] = _walk(comps[section])
    return d
