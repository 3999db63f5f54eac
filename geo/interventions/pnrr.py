"""PNRR projects from the national open data (Italia Domani) → interventions.

Reads the Italia Domani CSV layout as published — ``;`` (or ``,``) separated, UTF-8 with
or without BOM, quoted fields, Italian headers matched case-insensitively — either
**joined** (one row per project × comune, like ``pnrr_progetti_mi_2023.csv``) or as the
two national files, **Progetti** and **Localizzazione**, joined by CUP (and by
``Codice Locale Progetto`` when both files have it).

Mapping (one intervention per CUP, ``source = "pnrr"``): id and ``cup`` = CUP; missions =
[Missione] (M1–M6, the plan's missions); programme = *Descrizione Submisura* (kept
verbatim: PNRR sub-measures are outside the plan's programme catalogue) and
``submeasure`` = its code; ``component`` / ``component_title``; title, ``summary``;
``implementing_body`` (+ ``implementing_body_cf``); ``amount_eur`` = Finanziamento
Totale, ``pnrr_amount_eur`` = Finanziamento PNRR; ``as_of`` = Data di Estrazione;
reliability ``A`` (official open data); comuni = every localisation in the 133 comuni,
placed at their representative points (precision ``comune``; a MultiPoint for several).

Messy rows:

* **comune** by ``COD_ISTAT_COMUNE`` (leading zeros restored, ``15146.0`` read as
  ``015146``), else by *Descrizione Comune* through the territory's forgiving name index
  (UPPERCASE, variant apostrophes and accents are fine);
* **skipped, with a reason** (never silently): no CUP, malformed CUP, a mission outside
  M1–M6 (e.g. M7 REPowerEU), ``TUTTI I COMUNI`` and similar (*no single comune*: such a
  project has no place on the map and no comune to count it in), an ISTAT code or a
  name outside the 133 comuni, no comune at all; with two files, a project without
  localisation rows and a localisation row whose CUP is not in the projects file;
* **duplicate rows** of one CUP and comune are merged (counted as ``merged_rows``);
* **conflicting values** among the rows of one CUP: the first row's value is kept and
  a warning is reported (not an error);
* **amounts** ``4.753682e+06``, ``10507.0``, ``1.234.567,89`` and ``€ 1 000`` are read;
  an empty amount is *unknown* (null); a malformed one (``abc``) in a row that would be
  imported is an **error** naming the row and the column, and nothing is written;
* **several local projects** (``Codice Locale Progetto``, e.g. yearly tranches
  ``…_2021`` and ``…_2022``) of one CUP: their amounts are summed, each counted once.

Every input row is either *imported* (it contributes to an intervention, merged rows
included) or *skipped* with a reason: ``rows == imported_rows + skipped``.

Why ~570 lines: it is the whole mapping of one national dataset — reading, column
matching, skips with reasons, merging by CUP and the report — kept in one file so that
the mapping documented above can be checked against the code in one reading. Generic
validation and writing are not here (:mod:`.validation`, :mod:`.store`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from geo.auth import ADMIN, Principal
from geo.errors import ValidationFailed
from geo.interventions.model import ImportReport, InputTable, Prepared
from geo.interventions.store import get_store, upsert
from geo.interventions.validation import prepare
from geo.lazy import lazy_module
from geo.names import name_key
from geo.plan import PlanCatalogue
from geo.territory import Territory, get_territory

pd = lazy_module("pandas")  # imported on first use (geo.lazy)

SOURCE = "pnrr"
EXAMPLES = 5

#: Canonical field → accepted headers (compared with :func:`_header_key`).
HEADERS: dict[str, tuple[str, ...]] = {
    "cup": ("cup", "codice cup", "codice unico di progetto"),
    "local_code": ("codice locale progetto", "codice locale"),
    "mission": ("missione", "codice missione"),
    "mission_title": ("descrizione missione",),
    "component": ("componente", "codice componente"),
    "component_title": ("descrizione componente",),
    "submeasure": ("codice univoco submisura", "codice submisura", "codice univoco misura"),
    "submeasure_title": ("descrizione submisura", "descrizione misura"),
    "title": ("titolo progetto", "titolo"),
    "summary": ("sintesi progetto", "sintesi", "descrizione progetto"),
    "body": ("soggetto attuatore", "denominazione soggetto attuatore"),
    "body_cf": ("codice fiscale soggetto attuatore", "cf soggetto attuatore"),
    "pnrr_amount": ("finanziamento pnrr", "importo finanziamento pnrr"),
    "total_amount": ("finanziamento totale", "importo finanziamento totale", "costo totale"),
    "istat": (
        "cod istat comune",
        "codice istat comune",
        "codice comune",
        "cod comune",
        "istat comune",
        "codice istat",
    ),
    "comune": ("descrizione comune", "comune", "denominazione comune"),
    "as_of": ("data di estrazione", "data estrazione"),
    "status": ("stato progetto", "stato", "stato di avanzamento"),
    "start": ("data inizio", "data di inizio", "data inizio progetto", "data inizio prevista"),
    "end": ("data fine", "data di fine", "data fine progetto", "data fine prevista"),
}
PROJECT_FIELDS = tuple(k for k in HEADERS if k not in ("istat", "comune"))
LOCATION_FIELDS = ("istat", "comune")
#: Per-CUP attributes whose differing values across rows give a warning.
CHECKED = (
    "mission", "component", "component_title", "submeasure", "submeasure_title", "title",
    "summary", "body", "body_cf", "as_of", "status", "start", "end",
)  # fmt: skip
#: Descriptions that mean "not one comune" (compared with name_key).
NOT_ONE_COMUNE = frozenset(
    name_key(s)
    for s in (
        "TUTTI I COMUNI",
        "TUTTI",
        "VARI COMUNI",
        "PIU COMUNI",
        "INTERO TERRITORIO NAZIONALE",
        "TERRITORIO NAZIONALE",
        "NAZIONALE",
        "ITALIA",
        "REGIONE LOMBARDIA",
        "LOMBARDIA",
    )
)

_CUP_RE = re.compile(r"^[A-Z0-9]{15}$")
_IT_NUMBER = re.compile(r"^-?\d{1,3}(\.\d{3})+(,\d+)?$|^-?\d+,\d+$")
_EN_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")


# --------------------------------------------------------------------------- reading


def _header_key(h: str) -> str:
    """'Codice Univoco  Submisura' / 'COD_ISTAT_COMUNE' → 'codice univoco submisura'."""
    return re.sub(r"[^0-9a-z]+", " ", h.replace("\ufeff", "").lower()).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # an export re-saved by a spreadsheet
        return data.decode("cp1252", errors="replace")


def read_csv_frame(data: bytes | str | Path) -> pd.DataFrame:
    """A CSV as text columns (separator sniffed from the header: ``;``, ``,`` or tab)."""
    raw = Path(data).read_bytes() if isinstance(data, str | Path) else data
    text = _decode(raw)
    header = text.split("\n", 1)[0]
    sep = max((";", ",", "\t"), key=header.count)
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, quotechar='"'
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:  # empty, bad quotes
        msg = str(exc).strip() or "no columns"
        raise ValidationFailed(
            f"not a readable CSV: {msg}",
            details=[{"row": None, "field": "file", "message": msg}],
        ) from None


def _canonical(frame: pd.DataFrame, fields: tuple[str, ...], what: str) -> pd.DataFrame:
    """Rename the file's headers to canonical fields; absent optional ones are ''."""
    by_key = {_header_key(c): c for c in frame.columns}
    out = pd.DataFrame(index=frame.index)
    for name in fields:
        col = next((by_key[a] for a in HEADERS[name] if a in by_key), None)
        out[name] = frame[col].str.strip() if col is not None else ""
        out.attrs.setdefault("headers", {})[name] = col
    missing = [n for n in ("cup",) if out.attrs["headers"].get(n) is None]
    if "mission" in fields and out.attrs["headers"]["mission"] is None:
        missing.append("mission")
    if "istat" in fields and not (out.attrs["headers"]["istat"] or out.attrs["headers"]["comune"]):
        missing.append("istat or comune")
    if missing:
        either = HEADERS["istat"] + HEADERS["comune"]
        details = [
            {
                "row": None,
                "field": m,
                "message": f"the {what} file has no {m} column "
                f"(expected one of: {', '.join(HEADERS.get(m, either))})",
            }
            for m in missing
        ]
        raise ValidationFailed(
            f"the {what} file is not in the Italia Domani layout", details=details
        )
    return out


def _rows(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def read_rows(
    file: bytes | str | Path, localisation: bytes | str | Path | None = None
) -> pd.DataFrame:
    """One frame of canonical text columns + ``_row``/``_file`` (+ ``_skip`` for join misses).

    ``_row`` is the 1-based data row of the file (CSV line = row + 1).
    """
    if localisation is None:
        frame = _canonical(read_csv_frame(file), PROJECT_FIELDS + LOCATION_FIELDS, "projects")
        headers = frame.attrs["headers"]
        frame["_row"] = _rows(len(frame))
        frame["_file"] = "projects"
        frame["_skip"] = ""
        frame.attrs["headers"] = headers
        return frame
    proj = _canonical(read_csv_frame(file), PROJECT_FIELDS, "projects")
    loc_raw = read_csv_frame(localisation)
    loc = _canonical(loc_raw, ("cup", "local_code", *LOCATION_FIELDS), "localisation")
    headers = {**proj.attrs["headers"], **{k: loc.attrs["headers"][k] for k in LOCATION_FIELDS}}
    proj["_prow"] = _rows(len(proj))
    loc["_lrow"] = _rows(len(loc))
    key = ["cup"]
    if proj.attrs["headers"]["local_code"] and loc.attrs["headers"]["local_code"]:
        key.append("local_code")
    else:
        loc = loc.drop(columns="local_code")
    for f in (proj, loc):
        f["cup"] = f["cup"].str.upper().str.replace(" ", "", regex=False)
    merged = proj.merge(loc, on=key, how="outer", indicator=True, sort=False)
    merged = merged.sort_values(["_prow", "_lrow"], na_position="last", kind="stable")
    merged = merged.reset_index(drop=True)
    for col in merged.columns:
        if merged[col].dtype == object or pd.api.types.is_string_dtype(merged[col]):
            merged[col] = merged[col].fillna("")
    both = merged["_merge"] == "both"
    merged["_file"] = np.where(merged["_lrow"].notna(), "localisation", "projects")
    merged["_row"] = (
        merged["_lrow"].where(merged["_lrow"].notna(), merged["_prow"]).astype(int).to_numpy()
    )
    merged["_skip"] = np.where(
        both,
        "",
        np.where(merged["_merge"] == "left_only", "no localisation", "not in the projects file"),
    )
    out = merged.drop(columns=["_merge", "_prow", "_lrow"])
    out.attrs["headers"] = headers
    return out


# --------------------------------------------------------------------------- mapping


def parse_amounts(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Amount texts → (floats with NaN for empty, malformed mask).

    Reads ``4.753682e+06``, ``10507.0``, ``1.234.567,89``, ``1234,5``, ``1,234,567.89`` and
    ``€ 1 000``; an empty text is unknown (NaN, not malformed).
    """
    txt = s.str.replace("€", "", regex=False).str.replace(r"[\s\u00a0']", "", regex=True)
    it = txt.str.match(_IT_NUMBER.pattern)
    txt = txt.where(~it, txt.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    en = txt.str.match(_EN_THOUSANDS.pattern)
    txt = txt.where(~en, txt.str.replace(",", "", regex=False))
    values = pd.to_numeric(txt.where(txt != ""), errors="coerce").to_numpy(dtype=float)
    bad = (txt != "").to_numpy() & (np.isnan(values) | (values < 0))
    return values, bad


def _istat(s: pd.Series) -> pd.Series:
    """'15146', '015146', '15146.0' → '015146'; anything else stays as given."""
    code = s.str.replace(r"\.0+$", "", regex=True)
    digits = code.str.fullmatch(r"\d{1,6}")
    return code.where(~digits, code.str.zfill(6))


def _fiscal_code(s: pd.Series) -> pd.Series:
    """A numeric codice fiscale that lost its leading zeros gets its 11 digits back."""
    s = s.str.replace(r"\.0+$", "", regex=True).str.upper()
    short = s.str.fullmatch(r"\d{1,10}")
    return s.where(~short, s.str.zfill(11))


def _iso_date(s: pd.Series) -> pd.Series:
    """'2023-03-01', '01/03/2023', '2023-03-01 00:00:00' → '2023-03-01'; else ''."""
    iso = s.str.extract(r"^(\d{4}-\d{2}-\d{2})", expand=False)
    it = s.str.extract(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", expand=True)
    it_iso = it[2] + "-" + it[1].str.zfill(2) + "-" + it[0].str.zfill(2)
    return iso.fillna(it_iso).fillna("")


@dataclass
class PnrrTable:
    """The file(s) read and mapped: an InputTable (one row per CUP) and what was left out."""

    table: InputTable
    rows: int
    imported_rows: int
    merged_rows: int
    skipped: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    headers: dict[str, str | None] = field(default_factory=dict)

    def skipped_summary(self) -> dict[str, Any]:
        """Skipped rows grouped by reason: counts and the first examples."""
        return _group(self.skipped, "reason")

    def warnings_summary(self) -> dict[str, Any]:
        """Warnings grouped by field: counts and the first examples."""
        return _group(self.warnings, "field")


def _group(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for it in items:
        g = groups.setdefault(it[key], {key: it[key], "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < EXAMPLES:
            g["examples"].append({k: v for k, v in it.items() if k != key})
    ordered = sorted(groups.values(), key=lambda g: -g["count"])
    return {"total": len(items), f"by_{key}": ordered}


def read_pnrr(
    file: bytes | str | Path,
    localisation: bytes | str | Path | None = None,
    *,
    territory: Territory | None = None,
) -> PnrrTable:
    """Read and map the Italia Domani file(s); ValidationFailed lists malformed amounts."""
    t = territory or get_territory()
    f = read_rows(file, localisation)
    headers = f.attrs.get("headers", {})
    f.attrs.clear()  # pandas deep-copies attrs into every groupby slice: slow
    n = len(f)
    reason = f["_skip"].to_numpy(dtype=object).copy()
    detail = np.where(
        reason == "no localisation",
        "the projects file lists it, the localisation file has no row for its CUP",
        np.where(reason != "", "its CUP is not in the projects file", ""),
    ).astype(object)

    def skip(mask: np.ndarray | pd.Series, why: str, msg: Callable[[int], str] | str) -> None:
        idx = np.flatnonzero(np.asarray(mask) & (reason == ""))
        reason[idx] = why
        for i in idx:
            detail[i] = msg(i) if callable(msg) else msg

    cup = f["cup"].str.upper().str.replace(" ", "", regex=False)
    skip(cup == "", "no CUP", "the row has no CUP (the stable id of a project)")
    skip(~cup.str.match(_CUP_RE.pattern), "malformed CUP", lambda i: f"malformed CUP {cup[i]!r}")
    mission = f["mission"].str.upper().str.replace(" ", "", regex=False)
    known = {m.code for m in PlanCatalogue.load().missions}
    skip(
        ~mission.isin(known),
        "mission not in the plan",
        lambda i: (
            f"mission {f['mission'][i]!r} is not one of the plan's missions "
            f"({', '.join(sorted(known))})"
        ),
    )

    # --- comune: ISTAT code, else the name
    code = _istat(f["istat"])
    name = f["comune"]
    in_territory = code.isin(list(t.comuni))
    skip(
        (code != "") & ~in_territory,
        "outside the 133 comuni",
        lambda i: f"ISTAT {code[i]} ({name[i] or 'no name'}) is not one of the 133 comuni",
    )
    resolved = code.where(in_territory, "")
    by_name = (code == "") & (name != "")
    name_codes = {v: t.name_index.get(v) for v in name[by_name].unique()}
    resolved = resolved.where(~by_name, name.map(lambda v: name_codes.get(v) or ""))
    all_of = by_name & name.map(lambda v: name_key(v) in NOT_ONE_COMUNE)
    skip(all_of, "no single comune", lambda i: f"no single comune: {name[i]!r}")
    unknown = by_name & (resolved == "")
    skip(
        unknown,
        "outside the 133 comuni",
        lambda i: f"no ISTAT code and {name[i]!r} is not one of the 133 comuni",
    )
    skip((code == "") & (name == ""), "no comune", "neither an ISTAT code nor a comune name")

    keep = reason == ""
    skipped = [
        {
            "reason": str(reason[i]),
            "row": int(f["_row"][i]),
            "file": str(f["_file"][i]),
            "cup": str(cup[i]),
            "detail": str(detail[i]),
        }
        for i in np.flatnonzero(~keep)
    ]

    # --- amounts of the kept rows (malformed → errors, all-or-nothing)
    k = f[keep].assign(cup=cup[keep], mission=mission[keep], code=resolved[keep])
    k = k.reset_index(drop=True)
    errors: list[dict[str, Any]] = []
    amounts: dict[str, np.ndarray] = {}
    for col in ("pnrr_amount", "total_amount"):
        vals, bad = parse_amounts(k[col])
        amounts[col] = vals
        label = headers.get(col) or col
        for i in np.flatnonzero(bad):
            errors.append(
                {
                    "row": int(k["_row"][i]),
                    "file": str(k["_file"][i]),
                    "field": label,
                    "message": f"not an amount in EUR: {k[col][i]!r}",
                }
            )
    if errors:
        raise ValidationFailed(
            f"{len(errors)} malformed amount(s); nothing was written", details=errors
        )
    k["pnrr_v"], k["total_v"] = amounts["pnrr_amount"], amounts["total_amount"]
    k["as_of"] = _iso_date(k["as_of"])
    return _build(k, n, skipped, headers, t)


def _build(
    k: pd.DataFrame,
    n: int,
    skipped: list[dict[str, Any]],
    headers: dict[str, str | None],
    t: Territory,
) -> PnrrTable:
    """Group the kept rows by CUP into one InputTable row each."""
    warnings: list[dict[str, Any]] = []
    g = k.groupby("cup", sort=False)
    first = g.first()
    rows_of = g["_row"].agg(list)
    # conflicting attributes: first value kept, one warning per CUP and field
    counts = g[list(CHECKED)].nunique()
    for col in CHECKED:
        for c in counts.index[counts[col] > 1]:
            vals = list(dict.fromkeys(k.loc[g.indices[c], col]))
            warnings.append(
                {
                    "field": headers.get(col) or col,
                    "cup": c,
                    "rows": rows_of[c][:10],
                    "values": vals[:5],
                    "kept": vals[0],
                }
            )
    # amounts: once per local project (tranche), summed per CUP
    lk = k.groupby(["cup", "local_code"], sort=False)
    tranche = lk[["pnrr_v", "total_v"]].first()
    for col, label in (("pnrr_v", "pnrr_amount"), ("total_v", "total_amount")):
        nun = lk[col].nunique()
        for c, lc in nun.index[nun > 1]:
            vals = list(dict.fromkeys(k.loc[lk.indices[(c, lc)], col].tolist()))
            warnings.append(
                {
                    "field": headers.get(label) or label,
                    "cup": c,
                    "rows": rows_of[c][:10],
                    "values": vals[:5],
                    "kept": vals[0],
                }
            )
    sums = tranche.groupby(level=0, sort=False).sum(min_count=1)
    locals_ = tranche.reset_index().groupby("cup", sort=False)["local_code"].agg(list)
    comuni = k.drop_duplicates(["cup", "code"]).groupby("cup", sort=False)["code"].agg(list)
    pairs = int((~k.duplicated(["cup", "code"])).sum())
    merged_rows = len(k) - pairs

    def money(v: float) -> str:
        return "" if np.isnan(v) else f"{v:.6f}"  # never read as an Italian 1.234

    title = first["title"].where(first["title"] != "", first["summary"].str.slice(0, 200))
    title = title.where(title != "", "Progetto PNRR " + first.index.to_series())
    programme = first["submeasure_title"]
    for fallback in (first["submeasure"], first["component_title"], "PNRR " + first["mission"]):
        programme = programme.where(programme != "", fallback)
    period = np.where(
        (first["start"] != "") | (first["end"] != ""),
        first["start"].str.slice(0, 10) + " – " + first["end"].str.slice(0, 10),
        "",
    )
    n_local = locals_.map(len)
    remark = np.where(
        n_local > 1,
        "amounts summed over "
        + n_local.astype(str)
        + " local projects: "
        + locals_.map(lambda v: ", ".join(v)),
        "",
    )
    frame = pd.DataFrame(
        {
            "id": first.index,
            "cup": first.index,
            "title": title.to_numpy(),
            "programme": programme.to_numpy(),
            "missions": first["mission"].to_numpy(),
            "comuni": comuni.map(";".join).reindex(first.index).to_numpy(),
            "amount_eur": sums["total_v"].reindex(first.index).map(money).to_numpy(),
            "pnrr_amount_eur": sums["pnrr_v"].reindex(first.index).map(money).to_numpy(),
            "status": first["status"].to_numpy(),
            "period": period,
            "reliability": "A",
            "remark": remark,
            "source": SOURCE,
            "component": first["component"].str.upper().to_numpy(),
            "component_title": first["component_title"].to_numpy(),
            "submeasure": first["submeasure"].to_numpy(),
            "summary": first["summary"].to_numpy(),
            "implementing_body": first["body"].to_numpy(),
            "implementing_body_cf": _fiscal_code(first["body_cf"]).to_numpy(),
            "as_of": first["as_of"].to_numpy(),
        }
    )
    table = InputTable.build(frame)
    table.rows = np.array([r[0] for r in rows_of.reindex(first.index)], dtype=int)
    return PnrrTable(
        table=table,
        rows=n,
        imported_rows=len(k),
        merged_rows=merged_rows,
        skipped=skipped,
        warnings=warnings,
        headers=headers,
    )


# --------------------------------------------------------------------------- importing


def prepare_pnrr(pt: PnrrTable) -> Prepared:
    """Validate the mapped rows with the interventions machinery (source ``pnrr``)."""
    return prepare(pt.table, source=SOURCE, open_programmes=True)


@dataclass
class PnrrReport:
    """What an import did, row by row and project by project."""

    pnrr: PnrrTable
    upsert: ImportReport | None  # None on a dry run

    def to_dict(self, *, ids: bool = False) -> dict[str, Any]:
        """JSON summary: rows, projects new/updated/unchanged, skips and warnings."""
        p, u = self.pnrr, self.upsert
        out: dict[str, Any] = {
            "rows": p.rows,
            "imported_rows": p.imported_rows,
            "merged_rows": p.merged_rows,
            "skipped_rows": len(p.skipped),
            "projects": len(p.table.frame),
            "dry_run": u is None,
            "new": len(u.new) if u else None,
            "updated": len(u.updated) if u else None,
            "unchanged": len(u.unchanged) if u else None,
            "skipped": p.skipped_summary(),
            "warnings": p.warnings_summary(),
        }
        if ids and u is not None:
            out["ids"] = {"new": u.new, "updated": u.updated, "unchanged": u.unchanged}
        return out


def import_pnrr(
    file: bytes | str | Path,
    localisation: bytes | str | Path | None = None,
    *,
    engine: Engine | None = None,
    principal: Principal = ADMIN,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PnrrReport:
    """Read, map, validate and upsert (all-or-nothing, idempotent by CUP)."""
    pt = read_pnrr(file, localisation)
    prepared = prepare_pnrr(pt)
    prepared.raise_for_errors()
    if dry_run:
        return PnrrReport(pt, None)
    report = upsert(prepared, engine=get_store(engine), principal=principal, progress=progress)
    return PnrrReport(pt, report)
