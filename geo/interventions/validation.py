"""Validation of interventions: every rule in one place, every error with its row.

Two ways in, one set of rules:

* :func:`prepare` — a whole table (file imports): each column's distinct values go through
  the rules once, then the checks across rows (duplicate ids and CUPs) and the geometries
  (one vectorised pass, one spatial join);
* :func:`prepare_one` — one record as plain text values (single-feature writes, OGC API
  Part 4): the same rules, called once each, no table built — a write costs the database,
  not the validation.

A rule (``_rule_*``) takes a cell's text and answers the value to store and the messages of
what is wrong with it; both ways call it, so they answer the same records, links, ids,
content hashes and errors (``tests/interventions/test_validation_single.py`` checks it).
Errors of a row come in one order: source, title, programme, plan lists, comuni, amounts
and codes, texts the store keeps as given, id, geometry, location.

**Spatial join**: an intervention is linked to every comune its geometry touches (a point
covered by the comune, a line or polygon sharing interior with it), plus the comuni it
names; zones and unions follow from the comuni.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely

from geo.interventions.model import (
    AREA_WINDOW,
    COLUMNS,
    EXTRA_COLUMNS,
    GEOMETRY_TYPES,
    TYPE_NAMES,
    InputTable,
    Prepared,
)
from geo.plan import PlanCatalogue
from geo.territory import Territory, get_territory

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_CUP_RE = re.compile(r"^[A-Z0-9]{15}$")
_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_IT_NUMBER = re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$|^\d+,\d+$")
#: A number as an amount may be written once "€", spaces and Italian separators are gone
#: (ASCII digits; ``inf``/``infinity`` parse, to be refused as not finite; ``nan`` does not).
_NUMBER = re.compile(
    r"[ \t\n\r\f\v]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?)"
    r"[ \t\n\r\f\v]*",
    re.IGNORECASE,
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URL_RE = re.compile(r"^https?://\S+$")

#: Columns compared to decide whether an upsert changes a stored row.
_HASHED = (
    "title", "programme", "missions", "objectives", "drivers", "comuni", "comuni_named",
    "geometry_wkb", "precision", "amount_eur", "status", "period", "cup", "source_url",
    "reliability", "remark", "source",
)  # fmt: skip
#: Hashed only when set, so rows without them keep the hash they had before 0003.
_HASHED_EXTRA = EXTRA_COLUMNS
#: Text columns stored as they are (empty → null).
_TEXT_EXTRA = tuple(c for c in EXTRA_COLUMNS if c != "pnrr_amount_eur")
#: Longest text the store's columns hold (``geo.interventions.store.interventions_table``;
#: its other text columns are unbounded, or a rule of their own bounds them).
_MAX_LENGTH = {"component": 20, "submeasure": 40, "implementing_body_cf": 20}
#: Texts stored as given (the programme only when kept verbatim: an open programme).
_STORED_TEXT = (
    "programme", "title", "status", "period", "remark", "source_url", "component",
    "component_title", "submeasure", "summary", "implementing_body", "implementing_body_cf",
)  # fmt: skip
#: The plan lists a row may name: the catalogue's codes each is checked against, and how a
#: given value is normalised first.
_PLAN_LISTS: dict[str, tuple[Callable[[PlanCatalogue], set[str]], Callable[[str], str]]] = {
    "missions": (lambda cat: {m.code for m in cat.missions}, str.upper),
    "objectives": (lambda cat: {o.id for o in cat.objectives}, str.upper),
    "drivers": (lambda cat: {str(d.number) for d in cat.drivers}, str.strip),
}

Messages = tuple[str, ...]
_OK: Messages = ()


class _Errors:
    """Errors of a table, each with its row number; ``bad`` marks the rows that have one."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.items: list[dict[str, Any]] = []
        self.bad = np.zeros(len(rows), dtype=bool)

    def add(self, mask: Any, fieldname: str, message: Any) -> None:
        """Report ``message`` (str, or callable of the row index) for rows in ``mask``."""
        for i in np.flatnonzero(np.asarray(mask)):
            msg = message(i) if callable(message) else message
            self.add_row(int(i), fieldname, msg)

    def add_row(self, i: int, fieldname: str, message: str) -> None:
        """Report ``message`` for row index ``i``."""
        self.items.append({"row": int(self.rows[i]), "field": fieldname, "message": message})
        self.bad[i] = True

    def add_column(self, fieldname: str, messages: list[Messages]) -> None:
        """Report every row's messages of one rule (``messages[i]``: row index ``i``'s)."""
        for i, msgs in enumerate(messages):
            for msg in msgs:
                self.add_row(i, fieldname, msg)


def split_list(value: str) -> list[str]:
    """'a; b;;c' → ['a', 'b', 'c'] (the lists a cell may hold: plan codes, comuni)."""
    return [p.strip() for p in value.split(";") if p.strip()] if value else []


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
    #: programme name → programme, as the catalogue spells them
    by_prog: dict[str, Any] = field(default_factory=dict)
    #: plan list name → the codes it may hold
    known: dict[str, set[str]] = field(default_factory=dict)
    #: ISTAT code → index in the territory's arrays
    index_of: dict[str, int] = field(default_factory=dict)


_ctx_lock = threading.Lock()
_ctx: _Context | None = None


def _context() -> _Context:
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            t = get_territory()
            cat = PlanCatalogue.load()
            _ctx = _Context(
                t,
                cat,
                shapely.point_on_surface(t.geometries),
                {p.name: p for p in cat.programmes},
                {name: known(cat) for name, (known, _) in _PLAN_LISTS.items()},
                {str(code): i for i, code in enumerate(t.codes)},
            )
        return _ctx


def derive_id(source: str, programme: str, title: str, comuni: str) -> str:
    """Deterministic id of a row without one (re-importing the same row is idempotent)."""
    digest = hashlib.sha1(f"{source}|{programme}|{title}|{comuni}".encode()).hexdigest()
    return f"{source}-{digest[:12]}"


def cell_text(value: Any) -> str:
    """A JSON value as the text of a cell, as :meth:`InputTable.build` makes it: null/NaN →
    '', a list → 'a;b', an integral float → '1', anything else ``str``; stripped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list | tuple):
        return ";".join(str(x) for x in value).strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --------------------------------------------------------------------------- the rules
# Each takes one cell's text (already stripped) and answers (value, messages); prepare maps
# it over a column's distinct values, prepare_one calls it once.


def _ascii_lower(value: str) -> str:
    """Lowercase of ASCII text; other text unchanged (a code with a non-ASCII letter stays
    wrong instead of being folded into a valid one: 'K' (Kelvin) is no 'k')."""
    return value.lower() if value.isascii() else value


def _ascii_upper(value: str) -> str:
    """Uppercase of ASCII text; other text unchanged ('ſ' is no 'S', 'ß' no 'SS')."""
    return value.upper() if value.isascii() else value


def _rule_source(value: str, default: str) -> tuple[str, Messages]:
    """The row's source (default ``default``), lowercase."""
    src = _ascii_lower(value or default)
    return src, _OK if _SOURCE_RE.match(src) else ("lowercase letters, digits, - or _",)


def _rule_title(value: str) -> Messages:
    return _OK if value else ("missing title",)


def _rule_programme(value: str, ctx: _Context, open_programmes: bool) -> tuple[str, Messages]:
    """The programme as the catalogue spells it ('' when unknown, with suggestions);
    ``open_programmes``: an unknown one is kept verbatim."""
    if value == "":
        return "", ("missing programme",)
    cat = ctx.catalogue
    try:
        return cat.programme(value).name, _OK
    except KeyError as exc:
        if open_programmes:
            return value, _OK
        sugg = [s["name"] for s in (getattr(exc, "details", None) or {}).get("suggestions", [])]
        hint = f"; did you mean {', '.join(sugg[:3])}?" if sugg else ""
        known = ", ".join(p.name for p in cat.programmes)
        return "", (f"unknown programme {value!r}{hint} (known: {known})",)


def _rule_plan_list(value: str, name: str, ctx: _Context) -> tuple[list[str] | None, Messages]:
    """Explicit missions, objectives or Drivers (None: not given, the programme's apply)."""
    lst = split_list(value)
    if not lst:
        return None, _OK
    norm = _PLAN_LISTS[name][1]
    vals = [norm(v) for v in lst]
    unknown = [v for v in vals if v not in ctx.known[name]]
    return vals, (f"unknown {name}: {', '.join(unknown)}",) if unknown else _OK


def _rule_open_programme(programme: str, missions: str, ctx: _Context) -> Messages:
    """A programme outside the catalogue (kept verbatim) must name its missions."""
    if programme and programme not in ctx.by_prog and missions == "":
        return ("a programme outside the plan's catalogue needs its missions",)
    return _OK


def _rule_comuni(value: str, t: Territory) -> tuple[list[str], list[str], Messages]:
    """The comuni a row names (names or codes, forgiving): the tokens as given, their ISTAT
    codes (each once), and one message per unknown token, with suggestions."""
    tokens = split_list(value)
    codes: dict[str, None] = {}
    msgs: list[str] = []
    for tok in dict.fromkeys(tokens):
        code = resolve_comune(tok, t)
        if code is not None:
            codes[code] = None
            continue
        sugg = [s["name"] for s in t.name_index.suggest(tok, limit=3)]
        hint = f"; did you mean {', '.join(sugg)}?" if sugg else ""
        msgs.append(f"unknown comune {tok!r} (not one of the 133 comuni){hint}")
    return tokens, list(codes), tuple(msgs)


def _rule_amount(value: str) -> tuple[float | None, Messages]:
    """Amounts in EUR: '1234.5', '1.234,5', '4.7e+06', '€ 1 000' → float; '' → None."""
    txt = value.replace("€", "").replace(" ", "")
    if _IT_NUMBER.match(txt):
        txt = txt.replace(".", "").replace(",", ".")
    if txt == "":
        return None, _OK
    if not _NUMBER.fullmatch(txt):
        return None, (f"not a number: {value!r}",)
    amount = float(txt) + 0.0  # -0 is 0
    msgs: list[str] = []
    if math.isinf(amount):
        msgs.append(f"not a finite number: {value!r}")
    if amount < 0:
        msgs.append("negative amount")
    return amount, tuple(msgs)


def _rule_as_of(value: str) -> Messages:
    return ("not a date YYYY-MM-DD",) if value and not _DATE_RE.match(value) else _OK


def _rule_reliability(value: str) -> tuple[str, Messages]:
    rel = _ascii_upper(value)
    return rel, _OK if rel in ("", "A", "B", "C") else ("must be A, B or C",)


def _rule_cup(value: str) -> tuple[str, Messages]:
    """The CUP uppercase without spaces (its uniqueness is a check across rows)."""
    cup = _ascii_upper(value).replace(" ", "")
    return cup, ("a CUP has 15 letters/digits",) if cup and not _CUP_RE.match(cup) else _OK


def _rule_source_url(value: str) -> Messages:
    return ("not an http(s) URL",) if value and not _URL_RE.match(value) else _OK


def _rule_stored_text(value: str, name: str) -> Messages:
    """A text stored as given fits every backend: no NUL character (PostgreSQL refuses
    it in text), no longer than its column."""
    msgs = []
    if "\x00" in value:
        msgs.append("contains a NUL character (U+0000)")
    limit = _MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        msgs.append(f"at most {limit} characters")
    return tuple(msgs)


def _rule_id(given: str) -> Messages:
    """A given id (a derived one is always well formed; uniqueness is across rows)."""
    return ("letters, digits, . _ : -",) if given and not _ID_RE.match(given) else _OK


def _rule_location(has_geometry: bool, named: list[str]) -> Messages:
    if has_geometry or named:
        return _OK
    return ("no location: give lat/lon, a geometry, or comuni",)


def _distinct(values: list[str], rule: Callable[[str], Any]) -> list[Any]:
    """``rule`` of every value, computed once per distinct value (columns repeat a lot)."""
    seen: dict[str, Any] = {}
    out = []
    for v in values:
        got = seen.get(v, seen)
        if got is seen:
            got = seen[v] = rule(v)
        out.append(got)
    return out


# --------------------------------------------------------------------------- a table


def prepare(
    table: InputTable, *, source: str = "import", open_programmes: bool = False
) -> Prepared:
    """Validate every row and build records; all errors with row numbers.

    ``open_programmes``: a programme outside the plan's catalogue (e.g. a PNRR
    sub-measure) is kept verbatim instead of being an error; such rows must name their
    missions, and their objectives and Drivers default to none.
    """
    ctx = _context()
    f = table.frame
    text = {c: f[c].tolist() for c in COLUMNS}
    err = _Errors(table.rows)
    err.items.extend(table.file_errors)
    src, msgs = _unzip(_distinct(text["source"], lambda v: _rule_source(v, source)))
    err.add_column("source", msgs)
    err.add_column("title", _distinct(text["title"], _rule_title))
    programme, msgs = _unzip(
        _distinct(text["programme"], lambda v: _rule_programme(v, ctx, open_programmes))
    )
    err.add_column("programme", msgs)
    plan: dict[str, list[list[str] | None]] = {}
    for name in _PLAN_LISTS:
        plan[name], msgs = _unzip(
            _distinct(text[name], lambda v, name=name: _rule_plan_list(v, name, ctx))
        )
        err.add_column(name, msgs)
    err.add_column(
        "missions",
        [_rule_open_programme(p, m, ctx) for p, m in zip(programme, text["missions"], strict=True)],
    )
    comuni = _distinct(text["comuni"], lambda v: _rule_comuni(v, ctx.territory))
    err.add_column("comuni", [c[2] for c in comuni])
    amount, msgs = _unzip(_distinct(text["amount_eur"], _rule_amount))
    err.add_column("amount_eur", msgs)
    pnrr_amount, msgs = _unzip(_distinct(text["pnrr_amount_eur"], _rule_amount))
    err.add_column("pnrr_amount_eur", msgs)
    err.add_column("as_of", _distinct(text["as_of"], _rule_as_of))
    reliability, msgs = _unzip(_distinct(text["reliability"], _rule_reliability))
    err.add_column("reliability", msgs)
    cup, msgs = _unzip(_distinct(text["cup"], _rule_cup))
    err.add_column("cup", msgs)
    _unique(cup, table.rows, err, "cup", "duplicate CUP")
    err.add_column("source_url", _distinct(text["source_url"], _rule_source_url))
    for name in _STORED_TEXT:
        vals = programme if name == "programme" else text[name]
        limit = _MAX_LENGTH.get(name)
        # the rule on every row only when one may fail it (one pass in C for the column)
        if "\x00" in "".join(vals) or (limit and max(map(len, vals), default=0) > limit):
            err.add_column(name, [_rule_stored_text(v, name) for v in vals])
    ids = [
        given or derive_id(s, p, ti, c)
        for given, s, p, ti, c in zip(
            text["id"], src, programme, text["title"], text["comuni"], strict=True
        )
    ]
    err.add_column("id", [_rule_id(given) for given in text["id"]])
    _unique(ids, table.rows, err, "id", "duplicate id")
    geoms = table.geometries
    has_geom, spatial = _check_geometry(geoms, ctx.territory, err)
    located_badly = {e.get("row") for e in table.file_errors}
    err.add_column(
        "geometry",
        [
            _OK if row in located_badly else _rule_location(g, c[0])
            for row, g, c in zip(table.rows.tolist(), has_geom.tolist(), comuni, strict=True)
        ],
    )
    if err.bad.any() or table.file_errors:  # a file error (e.g. bad lat/lon) fails too
        err.items.sort(key=lambda e: (e.get("row") is not None, e.get("row") or 0))
        return Prepared([], err.items)
    final = _located(geoms, has_geom, [c[1] for c in comuni], ctx)
    wkb = shapely.to_wkb(final, output_dimension=2).tolist()
    bounds = shapely.bounds(final).tolist()
    gtypes = TYPE_NAMES[shapely.get_type_id(final)].tolist()
    records: list[dict[str, Any]] = []
    links: list[list[tuple[str, bool, bool]]] = []
    for i in range(len(f)):
        rec, lk = _record(
            {
                **{c: text[c][i] for c in ("title", "status", "period", "remark", "source_url")},
                **{c: text[c][i] for c in _TEXT_EXTRA},
                "id": ids[i],
                "programme": programme[i],
                "missions": plan["missions"][i],
                "objectives": plan["objectives"][i],
                "drivers": plan["drivers"][i],
                "amount_eur": amount[i],
                "pnrr_amount_eur": pnrr_amount[i],
                "cup": cup[i],
                "reliability": reliability[i],
                "source": src[i],
            },
            comuni[i][1],
            spatial[i],
            (wkb[i], gtypes[i], bounds[i], not has_geom[i]),
            ctx,
        )
        records.append(rec)
        links.append(lk)
    return Prepared(records, [], links)


def _unzip(pairs: list[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    """[(value, messages), …] → ([value, …], [messages, …])."""
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _unique(values: list[str], rows: np.ndarray, err: _Errors, fieldname: str, what: str) -> None:
    """Every row whose (non-empty) value another row has too: '{what} X (rows 3, 9)'."""
    at: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        if v:
            at[v].append(i)
    for v, idx in at.items():
        if len(idx) < 2:
            continue
        nums = [int(rows[i]) for i in idx]
        listed = ", ".join(map(str, nums[:10])) + ("…" if len(nums) > 10 else "")
        for i in idx:
            err.add_row(i, fieldname, f"{what} {v} (rows {listed})")


# --------------------------------------------------------------------------- one record


def prepare_one(
    values: Mapping[str, str],
    geometry: Any = None,
    *,
    source: str = "import",
    open_programmes: bool = False,
    row: int = 1,
) -> Prepared:
    """Validate one record and build it: what :func:`prepare` answers for a table of this
    one row (same record, links, id, content hash and errors), with no table built.

    ``values``: the text of each column (``COLUMNS``; missing ones are ''), as
    :func:`cell_text` makes it; ``geometry``: a CRS84 shapely geometry or None.
    """
    ctx = _context()
    v = {c: values.get(c, "") for c in COLUMNS}
    err = _Errors(np.array([row]))

    def report(fieldname: str, msgs: Messages) -> None:
        for msg in msgs:
            err.add_row(0, fieldname, msg)

    src, msgs = _rule_source(v["source"], source)
    report("source", msgs)
    report("title", _rule_title(v["title"]))
    programme, msgs = _rule_programme(v["programme"], ctx, open_programmes)
    report("programme", msgs)
    plan: dict[str, list[str] | None] = {}
    for name in _PLAN_LISTS:
        plan[name], msgs = _rule_plan_list(v[name], name, ctx)
        report(name, msgs)
    report("missions", _rule_open_programme(programme, v["missions"], ctx))
    tokens, named, msgs = _rule_comuni(v["comuni"], ctx.territory)
    report("comuni", msgs)
    amount, msgs = _rule_amount(v["amount_eur"])
    report("amount_eur", msgs)
    pnrr_amount, msgs = _rule_amount(v["pnrr_amount_eur"])
    report("pnrr_amount_eur", msgs)
    report("as_of", _rule_as_of(v["as_of"]))
    reliability, msgs = _rule_reliability(v["reliability"])
    report("reliability", msgs)
    cup, msgs = _rule_cup(v["cup"])
    report("cup", msgs)
    report("source_url", _rule_source_url(v["source_url"]))
    for name in _STORED_TEXT:
        report(name, _rule_stored_text(programme if name == "programme" else v[name], name))
    rid = v["id"] or derive_id(src, programme, v["title"], v["comuni"])
    report("id", _rule_id(v["id"]))
    geoms = np.empty(1, dtype=object)
    geoms[0] = geometry
    has_geom, spatial = _check_geometry(geoms, ctx.territory, err)
    report("geometry", _rule_location(bool(has_geom[0]), tokens))
    if err.items:
        return Prepared([], err.items)
    final = _located(geoms, has_geom, [named], ctx)[0]
    rec, lk = _record(
        {
            **{c: v[c] for c in ("title", "status", "period", "remark", "source_url")},
            **{c: v[c] for c in _TEXT_EXTRA},
            "id": rid,
            "programme": programme,
            **plan,
            "amount_eur": amount,
            "pnrr_amount_eur": pnrr_amount,
            "cup": cup,
            "reliability": reliability,
            "source": src,
        },
        named,
        spatial[0],
        (
            shapely.to_wkb(final, output_dimension=2),
            str(TYPE_NAMES[shapely.get_type_id(final)]),
            shapely.bounds(final).tolist(),
            not has_geom[0],
        ),
        ctx,
    )
    return Prepared([rec], [], [lk])


# --------------------------------------------------------------------------- shared steps


def _check_geometry(
    geoms: np.ndarray, t: Territory, err: _Errors
) -> tuple[np.ndarray, list[list[str]]]:
    """Type, emptiness, validity and plausibility of the geometries; the spatial join.

    Returns which rows have a geometry and, per row, the comuni it touches (a point
    covered by the comune, a line or polygon sharing interior with it).
    """
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


def _located(
    geoms: np.ndarray, has_geom: np.ndarray, named: list[list[str]], ctx: _Context
) -> np.ndarray:
    """The geometries to store: a row without one is placed at the representative point
    of each comune it names (a point, or a multipoint for several)."""
    final = geoms.copy()
    for i in np.flatnonzero(~has_geom):
        pts = ctx.rep_points[[ctx.index_of[c] for c in named[i]]]
        final[i] = pts[0] if len(pts) == 1 else shapely.multipoints(pts)
    return final


def _record(
    v: dict[str, Any],
    named: list[str],
    spatial: list[str],
    geometry: tuple[bytes, str, list[float], bool],
    ctx: _Context,
) -> tuple[dict[str, Any], list[tuple[str, bool, bool]]]:
    """A row of the store (with its content hash) and its links to comuni (code, named,
    spatial). ``v``: the checked values (plan lists None when not given: the programme's
    apply); ``geometry``: WKB, type name, bounds, placed at its comuni or not."""
    prog = ctx.by_prog.get(v["programme"]) or _open_programme(v["programme"])
    spatial = list(dict.fromkeys(spatial))
    allc = sorted(set(named) | set(spatial))
    wkb, gtype, (minx, miny, maxx, maxy), placed = geometry
    missions, objectives, drivers = v["missions"], v["objectives"], v["drivers"]
    amount, pnrr = v["amount_eur"], v["pnrr_amount_eur"]
    rec = {
        "id": v["id"],
        "title": v["title"],
        "programme": prog.name,
        "missions": missions if missions is not None else list(prog.missions),
        "objectives": objectives if objectives is not None else list(prog.objectives),
        "drivers": [int(d) for d in drivers] if drivers is not None else list(prog.drivers),
        "comuni": allc,
        "comuni_named": named,
        "geometry_wkb": wkb,
        "geometry_type": gtype,
        "precision": "comune" if placed else "exact",
        "minx": float(minx),
        "miny": float(miny),
        "maxx": float(maxx),
        "maxy": float(maxy),
        "amount_eur": None if amount is None else float(amount),
        "status": v["status"] or None,
        "period": v["period"] or None,
        "cup": v["cup"] or None,
        "source_url": v["source_url"] or None,
        "reliability": v["reliability"] or None,
        "remark": v["remark"] or None,
        "source": v["source"],
        **{c: v[c] or None for c in _TEXT_EXTRA},
        "pnrr_amount_eur": None if pnrr is None else float(pnrr),
    }
    rec["content_hash"] = _hash(rec)
    return rec, [(c, c in named, c in spatial) for c in allc]


def _open_programme(name: str) -> Any:
    """A programme outside the catalogue: no default missions, objectives or Drivers."""
    from types import SimpleNamespace

    return SimpleNamespace(name=name, missions=(), objectives=(), drivers=())


def _at(n: int, idx: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


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
