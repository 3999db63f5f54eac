"""The intervention model: columns, the input table every importer fills, results.

An intervention has an id, a title, a programme (mapped to missions, objectives and
Drivers by ``data/plan/programmes.csv``), one or many comuni (6-digit ISTAT codes), a
geometry (point, line or polygon, CRS84) with its ``precision`` — ``exact`` when a
source gives it, ``comune`` when it is placed at the representative point
(``shapely.point_on_surface``) of each comune it names — an amount in EUR, status,
period, CUP, source URL, reliability (A/B/C), remark and ``source`` (``documented``
for the reference rows; other importers use their own, e.g. ``pnrr``). Optional PNRR
fields (:data:`EXTRA_COLUMNS`: component, sub-measure, summary, implementing body, PNRR
amount, extraction date) are null for rows whose source has none (migration 0003).

Importers turn rows into an :class:`InputTable`; :func:`geo.interventions.validation.prepare`
turns it into a :class:`Prepared` (records or errors); :func:`geo.interventions.store.upsert`
writes it and answers an :class:`ImportReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo import REPO_DATA_DIR
from geo.errors import ValidationFailed
from geo.lazy import lazy_module

pd = lazy_module("pandas")  # imported on first use (geo.lazy)

DEFAULT_FILE = REPO_DATA_DIR / "interventions" / "interventions.csv"
TOPIC = "interventions"
SEED_KEY = "seed:interventions:documented"

#: Optional columns (PNRR open data; null for other sources).
EXTRA_COLUMNS = (
    "component",
    "component_title",
    "submeasure",
    "summary",
    "implementing_body",
    "implementing_body_cf",
    "pnrr_amount_eur",
    "as_of",
)
#: Text columns of the input table (missing ones are empty strings).
COLUMNS = (
    "id",
    "title",
    "programme",
    "missions",
    "objectives",
    "drivers",
    "comuni",
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
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
#: Geometry type names by shapely type id.
TYPE_NAMES = np.array(
    [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ]
)
#: Rough lon/lat window around the metropolitan city: beyond it, suspect the CRS.
AREA_WINDOW = (8.4, 45.0, 9.9, 45.9)


# --------------------------------------------------------------------------- input


@dataclass
class InputTable:
    """Rows to validate: text columns (``COLUMNS``) and CRS84 geometries (None = absent).

    ``rows`` are the row numbers reported in errors (1-based data rows of the file).
    ``file_errors`` are problems of the whole file (e.g. a missing CRS).
    """

    frame: pd.DataFrame
    geometries: np.ndarray
    rows: np.ndarray
    file_errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls, frame: pd.DataFrame, geometries: np.ndarray | None = None, first_row: int = 1
    ) -> InputTable:
        """Normalise ``frame`` to string columns; geometries default to all-absent."""
        n = len(frame)
        out = pd.DataFrame(index=pd.RangeIndex(n))
        for col in COLUMNS:
            if col in frame.columns:
                s = frame[col].reset_index(drop=True)
                out[col] = _as_text(s)
            else:
                out[col] = ""
        geoms = np.full(n, None, dtype=object) if geometries is None else np.asarray(geometries)
        return cls(out, geoms, np.arange(first_row, first_row + n))


def _as_text(s: pd.Series) -> pd.Series:
    """Any column as stripped strings: NaN/None → '', lists → 'a;b', 1.0 → '1'."""
    if s.dtype == object:

        def conv(v: Any) -> str:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return ""
            if isinstance(v, list | tuple | np.ndarray):
                return ";".join(str(x) for x in v)
            if isinstance(v, float) and v.is_integer():
                return str(int(v))
            return str(v)

        return s.map(conv).str.strip()
    if pd.api.types.is_float_dtype(s):
        return s.map(lambda v: "" if pd.isna(v) else (str(int(v)) if v.is_integer() else repr(v)))
    return s.astype(str).str.strip()


@dataclass
class Prepared:
    """Validated rows, ready for :func:`upsert` (``records``), or the errors found."""

    records: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    links: list[list[tuple[str, bool, bool]]] = field(default_factory=list)

    def raise_for_errors(self, filename: str | None = None) -> None:
        """ValidationFailed (422) listing every error, if any (each naming ``filename``)."""
        if not self.errors:
            return
        errors = [{"file": filename, **e} for e in self.errors] if filename else self.errors
        rows = len({e["row"] for e in errors if e.get("row") is not None})
        message = f"{len(errors)} error(s) in {rows} row(s); nothing was written"
        if filename:
            raise ValidationFailed(f"{filename}: {message}", details=errors, file=filename)
        raise ValidationFailed(message, details=errors)


@dataclass
class ImportReport:
    """What an upsert did."""

    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, ids: bool = False) -> dict[str, Any]:
        """JSON summary (counts; the ids too when ``ids``)."""
        out: dict[str, Any] = {
            "new": len(self.new),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "errors": self.errors,
        }
        if ids:
            out["ids"] = {"new": self.new, "updated": self.updated, "unchanged": self.unchanged}
        return out
