"""Interventions of the strategic plan: model, validation, spatial join, storage.

An intervention has an id, a title, a programme (mapped to missions, objectives and
Drivers by ``data/plan/programmes.csv``), one or many comuni (6-digit ISTAT codes), a
geometry (point, line or polygon, CRS84) with its ``precision`` — ``exact`` when a
source gives it, ``comune`` when it is placed at the representative point
(``shapely.point_on_surface``) of each comune it names — an amount in EUR, status,
period, CUP, source URL, reliability (A/B/C), remark and ``source`` (``documented``
for the reference rows; other importers use their own, e.g. ``pnrr``). Optional PNRR
fields (:data:`EXTRA_COLUMNS`: component, sub-measure, summary, implementing body, PNRR
amount, extraction date) are null for rows whose source has none (migration 0003).

**Spatial join**: an intervention is linked to every comune its geometry touches (a
point covered by the comune, a line or polygon sharing interior with it), plus the
comuni it names; zones and unions follow from the comuni.

**Import machinery** (reusable by any importer): turn rows into a
:class:`InputTable` (string columns + CRS84 geometries), call :func:`prepare` (vectorised
validation: every error with its row number) and :func:`upsert` (all-or-nothing in
one transaction, idempotent by id, returning an :class:`ImportReport`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from geo import REPO_DATA_DIR
from geo.errors import Conflict, DataError, Forbidden, InvalidParameter, NotFound, ValidationFailed
from geo.plan import PlanCatalogue
from geo.store import bump_revision, get_engine, get_meta, metadata, revision, set_meta, utcnow
from geo.territory import Territory, get_territory

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

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_CUP_RE = re.compile(r"^[A-Z0-9]{15}$")
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_IT_NUMBER = re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$|^\d+,\d+$")

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

#: Columns compared to decide whether an upsert changes a stored row.
_HASHED = (
    "title", "programme", "missions", "objectives", "drivers", "comuni", "comuni_named",
    "geometry_wkb", "precision", "amount_eur", "status", "period", "cup", "source_url",
    "reliability", "remark", "source",
)  # fmt: skip
#: Hashed only when set, so rows without them keep the hash they had before 0003.
_HASHED_EXTRA = EXTRA_COLUMNS
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


# --------------------------------------------------------------------------- validation


@dataclass
class Prepared:
    """Validated rows, ready for :func:`upsert` (``records``), or the errors found."""

    records: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    links: list[list[tuple[str, bool, bool]]] = field(default_factory=list)

    def raise_for_errors(self) -> None:
        """ValidationFailed (422) listing every error, if any."""
        if self.errors:
            n = len(self.errors)
            rows = len({e["row"] for e in self.errors if e.get("row") is not None})
            raise ValidationFailed(
                f"{n} error(s) in {rows} row(s); nothing was written", details=self.errors
            )


class _Errors:
    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.items: list[dict[str, Any]] = []
        self.bad = np.zeros(len(rows), dtype=bool)

    def add(self, mask: np.ndarray | pd.Series, fieldname: str, message: Any) -> None:
        """Report ``message`` (str, or callable of the row index) for rows in ``mask``."""
        for i in np.flatnonzero(np.asarray(mask)):
            msg = message(i) if callable(message) else message
            self.items.append({"row": int(self.rows[i]), "field": fieldname, "message": msg})
            self.bad[i] = True


def _split(s: pd.Series) -> pd.Series:
    """'a; b;;c' → ['a', 'b', 'c'] per row."""
    return pd.Series(
        [[p.strip() for p in v.split(";") if p.strip()] if v else [] for v in s.tolist()],
        index=s.index,
        dtype=object,
    )


def resolve_comune(token: str, territory: Territory) -> str | None:
    """ISTAT code (4–6 digits), cadastral code or forgiving name → ISTAT code, or None."""
    t = token.strip()
    if t.isdigit() and 4 <= len(t) <= 6:
        code = t.zfill(6)
        return code if code in territory.comuni else None
    if len(t) == 4 and t[0].isalpha() and t[1:].isdigit() and t.upper() in territory.by_cadastral:
        return territory.by_cadastral[t.upper()]
    return territory.name_index.get(t)


@dataclass
class _Context:
    territory: Territory
    catalogue: PlanCatalogue
    rep_points: np.ndarray


_ctx_lock = threading.Lock()
_ctx: _Context | None = None


def _context() -> _Context:
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            t = get_territory()
            _ctx = _Context(t, PlanCatalogue.load(), shapely.point_on_surface(t.geometries))
        return _ctx


def derive_id(source: str, programme: str, title: str, comuni: str) -> str:
    """Deterministic id of a row without one (re-importing the same row is idempotent)."""
    digest = hashlib.sha1(f"{source}|{programme}|{title}|{comuni}".encode()).hexdigest()
    return f"{source}-{digest[:12]}"


def prepare(
    table: InputTable, *, source: str = "import", open_programmes: bool = False
) -> Prepared:
    """Validate every row (vectorised) and build records; all errors with row numbers.

    ``open_programmes``: a programme outside the plan's catalogue (e.g. a PNRR
    sub-measure) is kept verbatim instead of being an error; such rows must name their
    missions, and their objectives and Drivers default to none.
    """
    ctx = _context()
    t, cat = ctx.territory, ctx.catalogue
    f = table.frame
    n = len(f)
    err = _Errors(table.rows)
    err.items.extend(table.file_errors)

    # --- source, title, id
    src = f["source"].where(f["source"] != "", source).str.lower()
    err.add(~src.str.match(_SOURCE_RE.pattern), "source", "lowercase letters, digits, - or _")
    err.add(f["title"] == "", "title", "missing title")

    # --- programme → missions, objectives, drivers (the catalogue's mapping)
    prog_name: dict[str, str] = {}
    for value in f["programme"].unique():
        if value == "":
            continue
        try:
            prog_name[value] = cat.programme(value).name
        except KeyError as exc:
            if open_programmes:
                prog_name[value] = value
                continue
            sugg = [s["name"] for s in (getattr(exc, "details", None) or {}).get("suggestions", [])]
            hint = f"; did you mean {', '.join(sugg[:3])}?" if sugg else ""
            prog_name[value] = ""
            known = ", ".join(p.name for p in cat.programmes)
            err.add(
                f["programme"] == value,
                "programme",
                f"unknown programme {value!r}{hint} (known: {known})",
            )
    err.add(f["programme"] == "", "programme", "missing programme")
    programme = f["programme"].map(lambda v: prog_name.get(v, ""))
    by_prog = {p.name: p for p in cat.programmes}

    missions = _plan_lists(f, "missions", err, {m.code for m in cat.missions}, str.upper)
    objectives = _plan_lists(f, "objectives", err, {o.id for o in cat.objectives}, str.upper)
    drivers = _plan_lists(f, "drivers", err, {str(d.number) for d in cat.drivers}, str.strip)
    open_rows = ~programme.isin(list(by_prog)) & (programme != "")
    err.add(
        open_rows & (f["missions"] == ""),
        "missions",
        "a programme outside the plan's catalogue needs its missions",
    )

    # --- comuni named
    named_lists = _split(f["comuni"])
    tokens = {tok for lst in named_lists for tok in lst}
    code_of = {tok: resolve_comune(tok, t) for tok in tokens}
    for tok, code in code_of.items():
        if code is None:
            sugg = [s["name"] for s in t.name_index.suggest(tok, limit=3)]
            hint = f"; did you mean {', '.join(sugg)}?" if sugg else ""
            err.add(
                named_lists.map(lambda lst, tok=tok: tok in lst),
                "comuni",
                f"unknown comune {tok!r} (not one of the 133 comuni){hint}",
            )
    named_codes = named_lists.map(
        lambda lst: list(dict.fromkeys(code_of[x] for x in lst if code_of[x]))
    )

    # --- amount, reliability, cup, url
    amount = _amounts(f, "amount_eur", err)
    pnrr_amount = _amounts(f, "pnrr_amount_eur", err)
    as_of = f["as_of"]
    err.add((as_of != "") & ~as_of.str.match(_DATE_RE.pattern), "as_of", "not a date YYYY-MM-DD")
    reliability = f["reliability"].str.upper()
    err.add(~reliability.isin(["", "A", "B", "C"]), "reliability", "must be A, B or C")
    cup = f["cup"].str.upper().str.replace(" ", "", regex=False)
    err.add((cup != "") & ~cup.str.match(_CUP_RE.pattern), "cup", "a CUP has 15 letters/digits")
    dup_cup = (cup != "") & cup.duplicated(keep=False)
    first_cup = _first_rows(cup, dup_cup, table.rows)
    err.add(dup_cup, "cup", lambda i: f"duplicate CUP {cup[i]} (rows {first_cup[cup[i]]})")
    url = f["source_url"]
    err.add((url != "") & ~url.str.match(r"^https?://\S+$"), "source_url", "not an http(s) URL")

    # --- ids (given, or derived deterministically)
    given = f["id"]
    ids = given.copy()
    missing = given == ""
    if missing.any():
        ids[missing] = [
            derive_id(s, p, ti, c)
            for s, p, ti, c in zip(
                src[missing],
                programme[missing],
                f["title"][missing],
                f["comuni"][missing],
                strict=True,
            )
        ]
    err.add((given != "") & ~given.str.match(_ID_RE.pattern), "id", "letters, digits, . _ : -")
    dup_id = ids.duplicated(keep=False)
    first_id = _first_rows(ids, dup_id, table.rows)
    err.add(dup_id, "id", lambda i: f"duplicate id {ids[i]} (rows {first_id[ids[i]]})")

    # --- geometry: validity, plausibility, spatial join
    geoms = table.geometries
    has_geom = np.array([g is not None for g in geoms], dtype=bool)
    gi = np.flatnonzero(has_geom)
    gvals = geoms[gi] if len(gi) else np.array([], dtype=object)
    spatial_codes: list[list[str]] = [[] for _ in range(n)]
    if len(gi):
        types = shapely.get_type_id(gvals)
        names = TYPE_NAMES[types]
        ok = np.isin(names, list(GEOMETRY_TYPES))
        err.add(_at(n, gi[~ok]), "geometry", lambda i: f"unsupported type {geoms[i].geom_type}")
        empty = shapely.is_empty(gvals)
        err.add(_at(n, gi[ok & empty]), "geometry", "empty geometry")
        valid = shapely.is_valid(gvals)
        bad = ok & ~empty & ~valid
        if bad.any():
            reasons = dict(zip(gi[bad], shapely.is_valid_reason(gvals[bad]), strict=True))
            err.add(_at(n, gi[bad]), "geometry", lambda i: f"invalid geometry: {reasons[i]}")
        good = ok & ~empty & valid
        b = shapely.bounds(gvals)
        w = AREA_WINDOW
        inside = (b[:, 0] >= w[0]) & (b[:, 1] >= w[1]) & (b[:, 2] <= w[2]) & (b[:, 3] <= w[3])
        swapped = (b[:, 0] >= w[1]) & (b[:, 2] <= w[3]) & (b[:, 1] >= w[0]) & (b[:, 3] <= w[2])
        far = good & ~inside
        err.add(
            _at(n, gi[far]),
            "geometry",
            lambda i: (
                "coordinates far from the Città metropolitana di Milano"
                + (
                    " (latitude and longitude swapped?)"
                    if swapped[np.searchsorted(gi, i)]
                    else " (wrong or missing CRS? coordinates must be lon/lat, CRS84)"
                )
            ),
        )
        join = good & inside
        jidx = gi[join]
        if len(jidx):
            src_i, com_i = t.tree.query(geoms[jidx], predicate="intersects")
            gsel = geoms[jidx][src_i]
            areal = shapely.get_dimensions(gsel) > 0
            keep = ~areal | shapely.relate_pattern(gsel, t.geometries[com_i], "T********")
            for a, c in zip(jidx[src_i[keep]], com_i[keep], strict=True):
                spatial_codes[a].append(str(t.codes[c]))
            touched = np.zeros(n, dtype=bool)
            touched[jidx[src_i[keep]]] = True
            outside = _at(n, jidx) & ~touched
            err.add(outside, "geometry", "outside the 133 comuni of the Città metropolitana")
    located_badly = np.isin(table.rows, [e["row"] for e in table.file_errors])
    no_loc = ~has_geom & named_lists.map(len).eq(0).to_numpy() & ~located_badly
    err.add(no_loc, "geometry", "no location: give lat/lon, a geometry, or comuni")

    if err.bad.any():
        err.items.sort(key=lambda e: (e.get("row") is not None, e.get("row") or 0))
        return Prepared([], err.items)

    # --- records
    placed = ~has_geom
    final = geoms.copy()
    index_of = {code: i for i, code in enumerate(t.codes)}
    named_all = named_codes.tolist()
    for i in np.flatnonzero(placed):
        pts = ctx.rep_points[[index_of[c] for c in named_all[i]]]
        final[i] = pts[0] if len(pts) == 1 else shapely.multipoints(pts)
    wkb = shapely.to_wkb(final, output_dimension=2)
    bounds = shapely.bounds(final)
    gtypes = shapely.get_type_id(final)
    tnames = TYPE_NAMES
    records: list[dict[str, Any]] = []
    links: list[list[tuple[str, bool, bool]]] = []
    amounts = amount.to_numpy()
    # plain lists: indexing pandas Series per element would dominate the loop
    programme_l, named_l, ids_l, src_l = (
        programme.tolist(),
        named_codes.tolist(),
        ids.tolist(),
        src.tolist(),
    )
    title_l, status_l, period_l, remark_l = (
        f[c].tolist() for c in ("title", "status", "period", "remark")
    )
    cup_l, url_l, rel_l = cup.tolist(), url.tolist(), reliability.tolist()
    text_extra = [c for c in EXTRA_COLUMNS if c != "pnrr_amount_eur"]
    extra_l = {c: f[c].tolist() for c in text_extra}
    pnrr_l = pnrr_amount.to_numpy()
    for i in range(n):
        prog = by_prog.get(programme_l[i]) or _open_programme(programme_l[i])
        named = named_l[i]
        spatial = list(dict.fromkeys(spatial_codes[i]))
        allc = sorted(set(named) | set(spatial))
        a = amounts[i]
        rec = {
            "id": ids_l[i],
            "title": title_l[i],
            "programme": prog.name,
            "missions": missions[i] if missions[i] is not None else list(prog.missions),
            "objectives": objectives[i] if objectives[i] is not None else list(prog.objectives),
            "drivers": [int(d) for d in drivers[i]]
            if drivers[i] is not None
            else list(prog.drivers),
            "comuni": allc,
            "comuni_named": named,
            "geometry_wkb": wkb[i],
            "geometry_type": str(tnames[gtypes[i]]),
            "precision": "comune" if placed[i] else "exact",
            "minx": float(bounds[i, 0]),
            "miny": float(bounds[i, 1]),
            "maxx": float(bounds[i, 2]),
            "maxy": float(bounds[i, 3]),
            "amount_eur": None if np.isnan(a) else float(a),
            "status": status_l[i] or None,
            "period": period_l[i] or None,
            "cup": cup_l[i] or None,
            "source_url": url_l[i] or None,
            "reliability": rel_l[i] or None,
            "remark": remark_l[i] or None,
            "source": src_l[i],
            **{c: extra_l[c][i] or None for c in text_extra},
            "pnrr_amount_eur": None if np.isnan(pnrr_l[i]) else float(pnrr_l[i]),
        }
        rec["content_hash"] = _hash(rec)
        records.append(rec)
        links.append([(c, c in named, c in spatial) for c in allc])
    return Prepared(records, [], links)


def _amounts(f: pd.DataFrame, col: str, err: _Errors) -> pd.Series:
    """Amounts in EUR: '1234.5', '1.234,5', '4.7e+06', '€ 1 000' → float; '' → NaN."""
    txt = f[col].str.replace("€", "", regex=False).str.replace(" ", "")
    it = txt.str.match(_IT_NUMBER.pattern)
    txt = txt.where(~it, txt.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    amount = pd.to_numeric(txt.where(txt != ""), errors="coerce")
    err.add((txt != "") & amount.isna(), col, lambda i: f"not a number: {f[col][i]!r}")
    err.add(amount < 0, col, "negative amount")
    return amount


def _open_programme(name: str) -> Any:
    """A programme outside the catalogue: no default missions, objectives or Drivers."""
    from types import SimpleNamespace

    return SimpleNamespace(name=name, missions=(), objectives=(), drivers=())


def _at(n: int, idx: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def _first_rows(values: pd.Series, dup: pd.Series, rows: np.ndarray) -> dict[str, str]:
    out: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(dup.to_numpy()):
        out[values[i]].append(int(rows[i]))
    return {k: ", ".join(map(str, v[:10])) + ("…" if len(v) > 10 else "") for k, v in out.items()}


def _plan_lists(
    f: pd.DataFrame, col: str, err: _Errors, known: set[str], norm
) -> list[list[str] | None]:
    """Explicit missions/objectives/drivers of a row (validated), None when not given."""
    lists = _split(f[col])
    out: list[list[str] | None] = []
    for i, lst in enumerate(lists):
        if not lst:
            out.append(None)
            continue
        vals = [norm(v) for v in lst]
        unknown = [v for v in vals if v not in known]
        if unknown:
            err.add(_at(len(f), np.array([i])), col, f"unknown {col}: {', '.join(unknown)}")
        out.append(vals)
    return out


def _hash(rec: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for k in _HASHED:
        v = rec[k]
        h.update(v if isinstance(v, bytes) else orjson.dumps(v))
        h.update(b"\x00")
    for k in _HASHED_EXTRA:
        if rec.get(k) is not None:
            h.update(k.encode() + b"=" + orjson.dumps(rec[k]) + b"\x00")
    return h.hexdigest()


# --------------------------------------------------------------------------- writing


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


@dataclass(frozen=True)
class Principal:
    """Who writes: the administrator, or the editor of one comune."""

    role: str  # "admin" | "editor"
    comune: str | None = None
    token_id: str | None = None

    def may_write(self, comuni: list[str]) -> bool:
        """Editors may only write interventions located in their own comune."""
        return self.role == "admin" or (bool(comuni) and set(comuni) == {self.comune})


ADMIN = Principal("admin")
_CHUNK = 2000


def upsert(
    prepared: Prepared,
    *,
    engine: Engine | None = None,
    principal: Principal = ADMIN,
    conn: Connection | None = None,
    progress=None,
) -> ImportReport:
    """Insert or update all records in one transaction (all-or-nothing), by id.

    Raises ValidationFailed when ``prepared`` has errors, Forbidden when an editor
    writes outside their comune. ``progress(n)`` is called as records are written.
    """
    prepared.raise_for_errors()
    if conn is None:
        engine = engine or get_store()
        with engine.begin() as c:
            return upsert(prepared, principal=principal, conn=c, progress=progress)
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
    if progress:
        progress(len(report.unchanged))
    for k in range(0, len(new_recs), _CHUNK):
        conn.execute(it.insert(), new_recs[k : k + _CHUNK])
        if progress:
            progress(len(new_recs[k : k + _CHUNK]))
    if upd_recs:
        cols = {c: sa.bindparam(c) for c in records[0] if c != "id"}
        stmt = (
            it.update()
            .where(it.c.id == sa.bindparam("b_id"))
            .values(**cols, updated_at=sa.bindparam("updated_at"))
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
        name = get_territory().comuni[principal.comune].name if principal.comune else "?"
        raise Forbidden(
            f"an editor of {name} may only write interventions located in {name}; "
            f"{len(bad)} are (also) elsewhere",
            details=bad[:100],
        )


def delete(intervention_id: str, *, principal: Principal = ADMIN, engine: Engine | None = None):
    """Delete one intervention (NotFound, Forbidden)."""
    engine = engine or get_store()
    it = interventions_table
    with engine.begin() as conn:
        row = conn.execute(sa.select(it.c.comuni).where(it.c.id == intervention_id)).first()
        if row is None:
            raise NotFound(f"no intervention with id {intervention_id!r}")
        if not principal.may_write(row.comuni):
            raise Forbidden("an editor may only delete interventions located in their comune")
        conn.execute(links_table.delete().where(links_table.c.intervention_id == intervention_id))
        conn.execute(it.delete().where(it.c.id == intervention_id))
        bump_revision(conn, TOPIC)


# --------------------------------------------------------------------------- store + seed

_ready: set[int] = set()
_ready_lock = threading.Lock()


def get_store(engine: Engine | None = None) -> Engine:
    """The migrated engine, with the documented interventions seeded once."""
    engine = engine or get_engine()
    with _ready_lock:
        if id(engine) not in _ready:
            seed(engine)
            _ready.add(id(engine))
    return engine


def seed(engine: Engine) -> ImportReport | None:
    """Load the 104 documented interventions on first start (once per store)."""
    from geo.interventions_io import read_file

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(764022)")
        if get_meta(conn, SEED_KEY):
            return None
        table = read_file(DEFAULT_FILE)
        prepared = prepare(table, source="documented")
        if prepared.errors:
            raise DataError(f"{DEFAULT_FILE.name}: {prepared.errors[:5]}")
        report = upsert(prepared, conn=conn)
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


def _properties(r: Any, t: Territory) -> dict[str, Any]:
    comuni = [c for c in r.comuni if c in t.comuni]
    zone = sorted({t.comuni[c].zona_id for c in comuni})
    unioni = sorted({t.comuni[c].unione_id for c in comuni if t.comuni[c].unione_id})
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
        "comuni_names": [t.comuni[c].name for c in comuni],
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


def get_feature(intervention_id: str, engine: Engine | None = None) -> dict[str, Any] | None:
    """One intervention as a GeoJSON Feature, or None."""
    snap = snapshot(engine)
    i = snap.by_id.get(intervention_id)
    return None if i is None else snap.feature(i)


# --------------------------------------------------------------------------- feature writes


def table_from_features(features: list[dict[str, Any]]) -> InputTable:
    """InputTable from GeoJSON Features (properties + CRS84 geometry, id from the feature)."""
    rows, geoms = [], []
    for feat in features:
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise InvalidParameter("body", "expected a GeoJSON Feature")
        props = dict(feat.get("properties") or {})
        if feat.get("id") is not None and not props.get("id"):
            props["id"] = str(feat["id"])
        rows.append(props)
        g = feat.get("geometry")
        if g is None:
            geoms.append(None)
            continue
        try:
            geoms.append(shapely.geometry.shape(g))
        except Exception as exc:
            raise ValidationFailed(
                "bad geometry", details=[{"row": 1, "field": "geometry", "message": str(exc)}]
            ) from exc
    frame = pd.DataFrame(rows, columns=sorted({k for r in rows for k in r} | set(COLUMNS)))
    return InputTable.build(frame, np.array(geoms, dtype=object))


def create_feature(
    feature: dict[str, Any], *, principal: Principal = ADMIN, engine: Engine | None = None
) -> dict[str, Any]:
    """POST: a new intervention (Conflict if the id exists). Returns the stored feature."""
    prepared = prepare(table_from_features([feature]), source="api")
    prepared.raise_for_errors()
    engine = get_store(engine)
    rid = prepared.records[0]["id"]
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(interventions_table.c.id).where(interventions_table.c.id == rid)
        ).first()
        if exists:
            raise Conflict(f"an intervention with id {rid!r} exists; use PUT or PATCH")
        upsert(prepared, principal=principal, conn=conn)
    feat = get_feature(rid, engine)
    assert feat is not None
    return feat


def replace_feature(
    intervention_id: str,
    feature: dict[str, Any],
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """PUT: replace an existing intervention entirely (NotFound if absent)."""
    engine = get_store(engine)
    current = get_feature(intervention_id, engine)
    if current is None:
        raise NotFound(f"no intervention with id {intervention_id!r}")
    body_id = feature.get("id") or (feature.get("properties") or {}).get("id")
    if body_id is not None and str(body_id) != intervention_id:
        raise InvalidParameter("id", f"the body's id {body_id!r} differs from the URL's")
    feature = {**feature, "id": intervention_id}
    props = dict(feature.get("properties") or {})
    props.setdefault("source", current["properties"]["source"])
    feature["properties"] = props
    prepared = prepare(table_from_features([feature]), source="api")
    upsert(prepared, principal=principal, engine=engine)
    return get_feature(intervention_id, engine) or {}


def patch_feature(
    intervention_id: str,
    patch: dict[str, Any],
    *,
    principal: Principal = ADMIN,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """PATCH: merge ``patch`` (JSON merge patch of a Feature) into the stored intervention.

    A placed geometry (precision ``comune``) is placed again from the new comuni unless
    the patch gives a geometry.
    """
    engine = get_store(engine)
    current = get_feature(intervention_id, engine)
    if current is None:
        raise NotFound(f"no intervention with id {intervention_id!r}")
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
    prepared = prepare(table_from_features([merged]), source="api")
    upsert(prepared, principal=principal, engine=engine)
    return get_feature(intervention_id, engine) or {}
