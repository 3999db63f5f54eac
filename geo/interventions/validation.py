"""Validation of interventions: every row checked (vectorised), every error with its row.

:func:`prepare` runs the steps in order — source/title, programme → plan lists, comuni
named, amounts and codes, ids, geometry and spatial join — each a small function that
adds its errors to one :class:`_Errors` collector, then builds the records when none
was found. **Spatial join**: an intervention is linked to every comune its geometry
touches (a point covered by the comune, a line or polygon sharing interior with it), plus
the comuni it names; zones and unions follow from the comuni.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely

from geo.interventions.model import (
    AREA_WINDOW,
    EXTRA_COLUMNS,
    GEOMETRY_TYPES,
    TYPE_NAMES,
    InputTable,
    Prepared,
)
from geo.lazy import lazy_module
from geo.plan import PlanCatalogue
from geo.territory import Territory, get_territory

pd = lazy_module("pandas")  # imported on first use (geo.lazy)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_CUP_RE = re.compile(r"^[A-Z0-9]{15}$")
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_IT_NUMBER = re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$|^\d+,\d+$")

#: Columns compared to decide whether an upsert changes a stored row.
_HASHED = (
    "title", "programme", "missions", "objectives", "drivers", "comuni", "comuni_named",
    "geometry_wkb", "precision", "amount_eur", "status", "period", "cup", "source_url",
    "reliability", "remark", "source",
)  # fmt: skip
#: Hashed only when set, so rows without them keep the hash they had before 0003.
_HASHED_EXTRA = EXTRA_COLUMNS
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    f = table.frame
    err = _Errors(table.rows)
    err.items.extend(table.file_errors)
    col = _Columns(src=_check_source_and_title(f, source, err))
    col.programme, col.by_prog = _check_programme(f, ctx.catalogue, open_programmes, err)
    col.missions, col.objectives, col.drivers = _check_plan_lists(f, ctx.catalogue, col, err)
    named_lists, col.named = _check_comuni_named(f, ctx.territory, err)
    _check_values(f, table.rows, col, err)
    col.ids = _check_ids(f, table.rows, col, err)
    has_geom, col.spatial = _check_geometry(table, ctx.territory, err)
    located_badly = np.isin(table.rows, [e["row"] for e in table.file_errors])
    no_loc = ~has_geom & named_lists.map(len).eq(0).to_numpy() & ~located_badly
    err.add(no_loc, "geometry", "no location: give lat/lon, a geometry, or comuni")
    if err.bad.any() or table.file_errors:  # a file error (e.g. bad lat/lon) fails too
        err.items.sort(key=lambda e: (e.get("row") is not None, e.get("row") or 0))
        return Prepared([], err.items)
    records, links = _records(f, table.geometries, has_geom, col, ctx)
    return Prepared(records, [], links)


@dataclass
class _Columns:
    """Checked columns of the input, filled step by step, turned into records at the end."""

    src: pd.Series
    programme: pd.Series = None  # type: ignore[assignment]
    by_prog: dict[str, Any] = field(default_factory=dict)
    missions: list[list[str] | None] = field(default_factory=list)
    objectives: list[list[str] | None] = field(default_factory=list)
    drivers: list[list[str] | None] = field(default_factory=list)
    named: pd.Series = None  # type: ignore[assignment]
    amount: pd.Series = None  # type: ignore[assignment]
    pnrr_amount: pd.Series = None  # type: ignore[assignment]
    reliability: pd.Series = None  # type: ignore[assignment]
    cup: pd.Series = None  # type: ignore[assignment]
    ids: pd.Series = None  # type: ignore[assignment]
    spatial: list[list[str]] = field(default_factory=list)


def _check_source_and_title(f: pd.DataFrame, source: str, err: _Errors) -> pd.Series:
    """The rows' source (default ``source``), lowercase; every row needs a title."""
    src = f["source"].where(f["source"] != "", source).str.lower()
    err.add(~src.str.match(_SOURCE_RE.pattern), "source", "lowercase letters, digits, - or _")
    err.add(f["title"] == "", "title", "missing title")
    return src


def _check_programme(
    f: pd.DataFrame, cat: PlanCatalogue, open_programmes: bool, err: _Errors
) -> tuple[pd.Series, dict[str, Any]]:
    """Programme names as the catalogue spells them (with suggestions for unknown ones)."""
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
    return programme, {p.name: p for p in cat.programmes}


def _check_plan_lists(
    f: pd.DataFrame, cat: PlanCatalogue, col: _Columns, err: _Errors
) -> tuple[list[list[str] | None], ...]:
    """Explicit missions, objectives and Drivers (None: the programme's defaults)."""
    missions = _plan_lists(f, "missions", err, {m.code for m in cat.missions}, str.upper)
    objectives = _plan_lists(f, "objectives", err, {o.id for o in cat.objectives}, str.upper)
    drivers = _plan_lists(f, "drivers", err, {str(d.number) for d in cat.drivers}, str.strip)
    open_rows = ~col.programme.isin(list(col.by_prog)) & (col.programme != "")
    err.add(
        open_rows & (f["missions"] == ""),
        "missions",
        "a programme outside the plan's catalogue needs its missions",
    )
    return missions, objectives, drivers


def _check_comuni_named(f: pd.DataFrame, t: Territory, err: _Errors) -> tuple[pd.Series, pd.Series]:
    """The comuni each row names (names or codes, forgiving) → ISTAT codes per row."""
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
    return named_lists, named_codes


def _check_values(f: pd.DataFrame, rows: np.ndarray, col: _Columns, err: _Errors) -> None:
    """Amounts, extraction date, reliability, CUP (unique), source URL."""
    col.amount = _amounts(f, "amount_eur", err)
    col.pnrr_amount = _amounts(f, "pnrr_amount_eur", err)
    as_of = f["as_of"]
    err.add((as_of != "") & ~as_of.str.match(_DATE_RE.pattern), "as_of", "not a date YYYY-MM-DD")
    col.reliability = f["reliability"].str.upper()
    err.add(~col.reliability.isin(["", "A", "B", "C"]), "reliability", "must be A, B or C")
    cup = f["cup"].str.upper().str.replace(" ", "", regex=False)
    err.add((cup != "") & ~cup.str.match(_CUP_RE.pattern), "cup", "a CUP has 15 letters/digits")
    dup_cup = (cup != "") & cup.duplicated(keep=False)
    first_cup = _first_rows(cup, dup_cup, rows)
    err.add(dup_cup, "cup", lambda i: f"duplicate CUP {cup[i]} (rows {first_cup[cup[i]]})")
    col.cup = cup
    url = f["source_url"]
    err.add((url != "") & ~url.str.match(r"^https?://\S+$"), "source_url", "not an http(s) URL")


def _check_ids(f: pd.DataFrame, rows: np.ndarray, col: _Columns, err: _Errors) -> pd.Series:
    """Ids as given, or derived deterministically; well-formed and unique."""
    given = f["id"]
    ids = given.copy()
    missing = given == ""
    if missing.any():
        ids[missing] = [
            derive_id(s, p, ti, c)
            for s, p, ti, c in zip(
                col.src[missing],
                col.programme[missing],
                f["title"][missing],
                f["comuni"][missing],
                strict=True,
            )
        ]
    err.add((given != "") & ~given.str.match(_ID_RE.pattern), "id", "letters, digits, . _ : -")
    dup_id = ids.duplicated(keep=False)
    first_id = _first_rows(ids, dup_id, rows)
    err.add(dup_id, "id", lambda i: f"duplicate id {ids[i]} (rows {first_id[ids[i]]})")
    return ids


def _check_geometry(
    table: InputTable, t: Territory, err: _Errors
) -> tuple[np.ndarray, list[list[str]]]:
    """Type, emptiness, validity and plausibility of the geometries; the spatial join.

    Returns which rows have a geometry and, per row, the comuni it touches (a point
    covered by the comune, a line or polygon sharing interior with it).
    """
    geoms = table.geometries
    n = len(geoms)
    has_geom = np.array([g is not None for g in geoms], dtype=bool)
    gi = np.flatnonzero(has_geom)
    spatial_codes: list[list[str]] = [[] for _ in range(n)]
    if not len(gi):
        return has_geom, spatial_codes
    gvals = geoms[gi]
    names = TYPE_NAMES[shapely.get_type_id(gvals)]
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
    err.add(
        _at(n, gi[good & ~inside]),
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
    jidx = gi[good & inside]
    if len(jidx):
        touched = np.zeros(n, dtype=bool)
        for a, codes in zip(jidx, spatial_comuni(geoms[jidx], t), strict=True):
            spatial_codes[a].extend(codes)
            touched[a] = bool(codes)
        outside = _at(n, jidx) & ~touched
        err.add(outside, "geometry", "outside the 133 comuni of the Città metropolitana")
    return has_geom, spatial_codes


def spatial_comuni(geoms: np.ndarray, t: Territory | None = None) -> list[list[str]]:
    """Per CRS84 geometry, the ISTAT codes of the comuni it lies in: a point covered by the
    comune, a line or polygon sharing interior with it (a polygon along a border does not
    reach the neighbour). The one rule of "where a feature lies" for who may edit it
    (interventions, and the features of uploaded layers, :mod:`geo.layers.editing`)."""
    t = t or get_territory()
    out: list[list[str]] = [[] for _ in range(len(geoms))]
    if not len(geoms):
        return out
    src_i, com_i = t.tree.query(geoms, predicate="intersects")
    gsel = geoms[src_i]
    areal = shapely.get_dimensions(gsel) > 0
    keep = ~areal | shapely.relate_pattern(gsel, t.geometries[com_i], "T********")
    for a, c in zip(src_i[keep], com_i[keep], strict=True):
        out[a].append(str(t.codes[c]))
    return out


def _records(
    f: pd.DataFrame, geoms: np.ndarray, has_geom: np.ndarray, col: _Columns, ctx: _Context
) -> tuple[list[dict[str, Any]], list[list[tuple[str, bool, bool]]]]:
    """Records for the store (rows without geometry placed at their comuni) and links."""
    n = len(f)
    t = ctx.territory
    placed = ~has_geom
    final = geoms.copy()
    index_of = {code: i for i, code in enumerate(t.codes)}
    named_all = col.named.tolist()
    for i in np.flatnonzero(placed):
        pts = ctx.rep_points[[index_of[c] for c in named_all[i]]]
        final[i] = pts[0] if len(pts) == 1 else shapely.multipoints(pts)
    wkb = shapely.to_wkb(final, output_dimension=2)
    bounds = shapely.bounds(final)
    gtypes = shapely.get_type_id(final)
    records: list[dict[str, Any]] = []
    links: list[list[tuple[str, bool, bool]]] = []
    amounts = col.amount.to_numpy()
    # plain lists: indexing pandas Series per element would dominate the loop
    programme_l, ids_l, src_l = col.programme.tolist(), col.ids.tolist(), col.src.tolist()
    title_l, status_l, period_l, remark_l, url_l = (
        f[c].tolist() for c in ("title", "status", "period", "remark", "source_url")
    )
    cup_l, rel_l = col.cup.tolist(), col.reliability.tolist()
    text_extra = [c for c in EXTRA_COLUMNS if c != "pnrr_amount_eur"]
    extra_l = {c: f[c].tolist() for c in text_extra}
    pnrr_l = col.pnrr_amount.to_numpy()
    missions, objectives, drivers = col.missions, col.objectives, col.drivers
    for i in range(n):
        prog = col.by_prog.get(programme_l[i]) or _open_programme(programme_l[i])
        named = named_all[i]
        spatial = list(dict.fromkeys(col.spatial[i]))
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
            "geometry_type": str(TYPE_NAMES[gtypes[i]]),
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
    return records, links


def _amounts(f: pd.DataFrame, col: str, err: _Errors) -> pd.Series:
    """Amounts in EUR: '1234.5', '1.234,5', '4.7e+06', '€ 1 000' → float; '' → NaN."""
    txt = f[col].str.replace("€", "", regex=False).str.replace(" ", "")
    it = txt.str.match(_IT_NUMBER.pattern)
    txt = txt.where(~it, txt.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    amount = pd.to_numeric(txt.where(txt != ""), errors="coerce")
    err.add((txt != "") & amount.isna(), col, lambda i: f"not a number: {f[col][i]!r}")
    err.add(np.isinf(amount), col, lambda i: f"not a finite number: {f[col][i]!r}")
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
