"""The intervention form: typed text ↔ a GeoJSON Feature, and errors back beside fields.

The form goes through exactly the API's path (:func:`geo.interventions.create_feature`,
:func:`~geo.interventions.patch_feature`): same validation, same rights, same history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from geo.accounts.messages import error_text, exc_text
from geo.errors import Conflict, GeoError, ValidationFailed

#: Text fields of the form, in order (all plain properties of the intervention).
TEXT_FIELDS = (
    "title",
    "programme",
    "amount_eur",
    "status",
    "period",
    "cup",
    "source_url",
    "reliability",
    "remark",
)
#: Every field name the form posts (anything else is refused).
POSTED = frozenset({*TEXT_FIELDS, "id", "comuni", "placement", "geometry", "csrf_token"})
MAX_FIELD = 5000
MAX_GEOMETRY = 1_000_000


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, list | tuple):
        return "; ".join(str(x) for x in v)
    return str(v)


@dataclass
class InterventionForm:
    """What the form shows or received: texts as typed, chosen comuni, the drawn shape."""

    id: str = ""
    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(TEXT_FIELDS, ""))
    comuni: list[str] = field(default_factory=list)
    placement: str = "map"  # "map" (drawn geometry) | "comune" (representative point)
    geometry: str = ""  # GeoJSON geometry text, as the map script writes it

    @classmethod
    def from_feature(cls, feature: dict[str, Any]) -> InterventionForm:
        """The form of a stored intervention."""
        p = feature["properties"]
        exact = p.get("precision") == "exact"
        return cls(
            id=str(feature["id"]),
            values={f: _text(p.get(f)) for f in TEXT_FIELDS},
            comuni=list(p.get("comuni_named") or ([] if exact else p.get("comuni") or [])),
            placement="map" if exact else "comune",
            geometry=orjson.dumps(feature["geometry"]).decode() if exact else "",
        )

    @classmethod
    def from_post(cls, data: dict[str, list[str]]) -> InterventionForm:
        """The form as posted (``application/x-www-form-urlencoded``, already parsed)."""

        def one(name: str, limit: int = MAX_FIELD) -> str:
            values = data.get(name) or [""]
            return values[-1][:limit].strip()

        placement = one("placement")
        return cls(
            id=one("id", 100),
            values={f: one(f) for f in TEXT_FIELDS},
            comuni=[c.strip() for c in data.get("comuni", [])[:200] if c.strip()],
            placement="comune" if placement == "comune" else "map",
            geometry=one("geometry", MAX_GEOMETRY),
        )

    def _geometry(self) -> dict[str, Any] | None:
        if self.placement == "comune" or not self.geometry:
            return None
        try:
            geom = orjson.loads(self.geometry)
        except orjson.JSONDecodeError:
            geom = None
        if isinstance(geom, dict) and geom.get("type") == "Feature":
            geom = geom.get("geometry")
        if not isinstance(geom, dict) or not isinstance(geom.get("type"), str):
            raise ValidationFailed(
                "geometry: not GeoJSON",
                details=[{"row": 1, "field": "geometry", "message": "not GeoJSON"}],
            )
        return geom

    def new_feature(self) -> dict[str, Any]:
        """The Feature to create (empty fields left out)."""
        props: dict[str, Any] = {k: v for k, v in self.values.items() if v}
        if self.comuni:
            props["comuni"] = "; ".join(self.comuni)
        feat: dict[str, Any] = {
            "type": "Feature",
            "geometry": self._geometry(),
            "properties": props,
        }
        if self.id:
            feat["id"] = self.id
        return feat

    def patch(self, current: dict[str, Any]) -> dict[str, Any]:
        """The merge patch turning ``current`` into the form (an emptied field is removed).

        A new programme brings its own missions, objectives and Drivers.
        """
        props: dict[str, Any] = {k: (v or None) for k, v in self.values.items()}
        props["comuni"] = "; ".join(self.comuni) or None
        if self.values["programme"] != current["properties"].get("programme"):
            props.update(missions=None, objectives=None, drivers=None)
        return {"type": "Feature", "geometry": self._geometry(), "properties": props}


def field_errors(exc: GeoError, lang: str) -> dict[str, list[str]]:
    """Messages per form field (``""`` for the whole form) of a refused write."""
    out: dict[str, list[str]] = {}
    details = exc.details if isinstance(exc.details, list) else []
    for d in details:
        if isinstance(d, dict) and d.get("message"):
            name = str(d.get("field") or "").removeprefix("properties.")
            key = name if name in POSTED else ""
            out.setdefault(key, []).append(error_text(lang, str(d["message"])))
    if not out:
        name = str(exc.extra.get("parameter") or "").removeprefix("properties.")
        if isinstance(exc, Conflict):
            name = "id"
        out[name if name in POSTED else ""] = [exc_text(lang, exc)]
    return out
