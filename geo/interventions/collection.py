"""The ``interventions`` collection (OGC API – Features), read from the store.

Property filters (``?name=value``, the provider's ``properties_eq``):

* list-valued properties — ``missions``, ``objectives``, ``drivers``, ``comuni``,
  ``comuni_names``, ``zone``, ``unioni`` — match when the value is **one of** the list;
* ``comuni``/``comune`` accept an ISTAT code, cadastral code or a forgiving name;
  ``zone``/``zona`` and ``unioni``/``unione`` an id or a name; ``missions``/``mission``
  ``m2`` or ``M2``; ``programme`` a name or an alias;
* ``amount_min`` / ``amount_max`` (EUR, inclusive) select an amount range (rows without
  an amount never match a range);
* ``text`` (not a property: a search) matches when the title, the CUP or the implementing
  body contains it, in any case (both lower-cased as Unicode does it, which the store
  does in SQL: PostgreSQL through ICU, SQLite through a function of ours), so the map
  application's search box is one indexed-scan query, not a filter evaluated in Python;
* every other property: equality of its text.

The registered collection answers every query in the store
(:mod:`geo.interventions.sql_collection`, same rules); :class:`InterventionsProvider`, an
in-memory copy rebuilt whenever the store's ``interventions`` revision changes, remains as
the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from geo.errors import InvalidParameter
from geo.names import name_key
from geo.ogc.registry import (
    FeatureQuery,
    MemoryProvider,
    Queryable,
    QueryResult,
    Registry,
    SnapshotProvider,
    registry,
)
from geo.plan import PlanCatalogue
from geo.territory import Territory, get_territory

COLLECTION_ID = "interventions"
LIST_PROPERTIES = ("missions", "objectives", "drivers", "comuni", "comuni_names", "zone", "unioni")
ALIASES = {
    "comune": "comuni",
    "zona": "zone",
    "unione": "unioni",
    "mission": "missions",
    "driver": "drivers",
    "objective": "objectives",
}
RANGE = ("amount_min", "amount_max")
#: The search parameter, and the properties it looks in.
TEXT = "text"
TEXT_FIELDS = ("title", "cup", "implementing_body")


_queryables_memo: dict[tuple[int, str], tuple[Queryable, ...]] = {}


def _queryables() -> list[Queryable]:
    """The queryables (built once per catalogue and territory: every request checks them)."""
    cat = PlanCatalogue.load()
    t = get_territory()
    key = (id(cat), t.version)
    got = _queryables_memo.get(key)
    if got is None:
        got = _queryables_memo[key] = tuple(_build_queryables(cat, t))
    return list(got)


def _build_queryables(cat: PlanCatalogue, t: Territory) -> list[Queryable]:
    s = "string"
    out = [
        Queryable("id", s, "Identifier"),
        Queryable("title", s, "Title"),
        Queryable("programme", s, "Programme", tuple(p.name for p in cat.programmes)),
        Queryable("missions", s, "PNRR mission (one of)", tuple(m.code for m in cat.missions)),
        Queryable("objectives", s, "Objective of the plan (one of)"),
        Queryable("drivers", "integer", "Driver (one of)", tuple(d.number for d in cat.drivers)),
        Queryable("comuni", s, "ISTAT code of a comune it touches or names (one of)"),
        Queryable("comuni_names", s, "Name of a comune (one of)"),
        Queryable("zone", s, "Zona omogenea id (one of)", tuple(t.zones)),
        Queryable("unioni", s, "Union of comuni id (one of)", tuple(t.unions)),
        Queryable("amount_eur", "number", "Amount in EUR as the source states it"),
        Queryable("amount_min", "number", "Minimum amount in EUR (inclusive)"),
        Queryable("amount_max", "number", "Maximum amount in EUR (inclusive)"),
        Queryable("status", s, "Status as of the source's date"),
        Queryable("period", s, "Period"),
        Queryable("cup", s, "CUP (Codice Unico di Progetto)"),
        Queryable("reliability", s, "A official/two sources, B one, C inferred", ("A", "B", "C")),
        Queryable("source", s, "Where the row comes from (documented, api, import, pnrr, …)"),
        Queryable("precision", s, "exact, or comune (placed at the comune)", ("exact", "comune")),
        Queryable("component", s, "PNRR component code (e.g. M1C1)"),
        Queryable("submeasure", s, "PNRR sub-measure code (e.g. M1C1I1.02.00)"),
        Queryable("implementing_body", s, "PNRR implementing body (soggetto attuatore)"),
        Queryable("pnrr_amount_eur", "number", "PNRR share of the funding in EUR"),
        Queryable("as_of", s, "Extraction date of the PNRR open data", format="date"),
        Queryable("created", "datetime", "When it was first stored (UTC)"),
        Queryable("updated", "datetime", "When it was last changed (UTC)"),
        *(Queryable(alias, s, f"alias of {name}") for alias, name in ALIASES.items()),
    ]
    # List-valued properties (and their aliases) are arrays: CQL2 A_CONTAINS and friends.
    lists = set(LIST_PROPERTIES) | set(ALIASES)
    return [replace(q, array=True) if q.name in lists else q for q in out]


class InterventionsProvider(SnapshotProvider):
    """Interventions from the store; an in-memory index rebuilt on every data change."""

    id = COLLECTION_ID
    title = "Interventions of the strategic plan"
    description = (
        "Localised interventions of the Piano strategico (PNRR PUI SPUGNA, CAMBIO, MICA, "
        "COME IN, PINQUA, school buildings, forestation, employment centres, Bando "
        "Periferie, Idroscalo, Biciplan) with programme, missions, Drivers, comuni, amount, "
        "status, CUP, source and reliability, and the PNRR projects of the national open data "
        "(source=pnrr: component, sub-measure, implementing body, PNRR share). Amounts are "
        "as each source states them (PNRR share or total): do not add them up as one "
        "measure. precision=comune: placed at the representative point of its comune(s)."
    )
    keywords = ("PNRR", "Piano strategico", "interventi", "Città metropolitana di Milano")
    extra_parameters = (TEXT,)
    translations = {  # noqa: RUF012 - read only
        "it": (
            "Interventi del Piano strategico",
            "Interventi localizzati del Piano strategico (PNRR PUI SPUGNA, CAMBIO, MICA, COME "
            "IN, PINQUA, edilizia scolastica, forestazione, centri per l'impiego, Bando "
            "Periferie, Idroscalo, Biciplan) con programma, missioni, driver, comuni, importo, "
            "stato, CUP, fonte e affidabilità, e i progetti PNRR degli open data nazionali "
            "(source=pnrr). Gli importi sono quelli dichiarati da ciascuna fonte (quota PNRR o "
            "totale): non sommarli come un'unica misura. precision=comune: collocato nel punto "
            "rappresentativo del suo comune.",
        ),
        "en": (title, description),
    }

    def __init__(self, engine=None) -> None:
        super().__init__()
        self._engine = engine

    def _source(self):
        from geo.interventions.store import snapshot

        snap = snapshot(self._engine)
        return snap.revision, snap

    def _build(self, snap) -> MemoryProvider:
        feats = [
            {"id": fid, "properties": snap.properties[i], "geometry": snap.geometries[i]}
            for i, fid in enumerate(snap.ids)
        ]
        inner = MemoryProvider(
            COLLECTION_ID,
            self.title,
            feats,
            version=f"r{snap.revision}-{get_territory().version}",
            last_modified=snap.last_modified,
            description=self.description,
            keywords=self.keywords,
            queryables=_queryables(),
            geometry_type="MultiPoint",  # points and multi-points: one type for GIS clients
        )
        for alias, name in ALIASES.items():  # so filters may use the singular too
            if name in inner.table.columns:
                inner.table.columns[alias] = inner.table.columns[name]
        return inner

    def queryables(self) -> list[Queryable]:
        """Filterable properties (see the module docstring)."""
        return _queryables()

    def extent(self) -> tuple[float, float, float, float]:
        """Bounds of all interventions (the metropolitan city when there are none)."""
        inner = self._current()
        if len(inner.ids):
            return inner.extent()
        import shapely

        return tuple(float(v) for v in shapely.total_bounds(get_territory().geometries))  # type: ignore[return-value]

    def query(self, q: FeatureQuery) -> QueryResult:
        """One page of matching interventions and the number matched."""
        inner = self._current()
        rest, mask = self._special_filters(inner, q.properties_eq)
        idx = inner.select(replace(q, properties_eq=rest))
        if mask is not None:
            idx = idx[mask[idx]]
        page = idx[q.offset : q.offset + q.limit]
        return QueryResult(
            features=[inner.feature(int(i), q.properties, q.skip_geometry) for i in page],
            number_matched=len(idx),
        )

    def _special_filters(
        self, inner: MemoryProvider, eq: dict[str, str]
    ) -> tuple[dict[str, str], np.ndarray | None]:
        n = len(inner.ids)
        rest: dict[str, str] = {}
        mask: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        for key, raw in eq.items():
            name = ALIASES.get(key, key)
            if name in RANGE:
                try:
                    limit = float(raw)
                except ValueError:
                    raise InvalidParameter(key, f"not a number: {raw!r}") from None
                amounts = np.array(
                    [
                        np.nan if v is None else v
                        for v in inner.table.columns.get(
                            "amount_eur", np.full(n, None, dtype=object)
                        )
                    ],
                    dtype=float,
                )
                with np.errstate(invalid="ignore"):
                    both(amounts >= limit if name == "amount_min" else amounts <= limit)
            elif name == TEXT:
                needle = raw.strip().lower()
                found = np.zeros(n, dtype=bool)
                for field in TEXT_FIELDS:
                    col = inner.table.columns.get(field, np.full(n, None, dtype=object))
                    found |= np.array([needle in str(v or "").lower() for v in col], dtype=bool)
                both(found)
            elif name in LIST_PROPERTIES:
                wanted = self._normalise(name, raw)
                col = inner.table.columns.get(name)
                if col is None:
                    both(np.zeros(n, dtype=bool))
                else:
                    both(np.array([wanted in (v or ()) for v in col], dtype=bool))
            elif name == "programme":
                try:
                    rest[name] = PlanCatalogue.load().programme(raw).name
                except KeyError:
                    rest[name] = raw
            else:
                rest[name] = raw
        return rest, mask

    @staticmethod
    def _normalise(name: str, raw: str) -> Any:
        t = get_territory()
        v = raw.strip()
        if name == "comuni":
            from geo.interventions.validation import resolve_comune

            return resolve_comune(v, t) or v
        if name == "comuni_names":
            code = t.name_index.get(v)
            return t.comuni[code].name if code else v
        if name in ("zone", "unioni"):
            groups = t.zones if name == "zone" else t.unions
            for g in groups.values():
                if name_key(v) in (name_key(g.id), name_key(g.name), name_key(g.short_name or "")):
                    return g.id
            return v
        if name == "missions":
            return v.upper()
        if name == "objectives":
            return v.upper()
        if name == "drivers":
            return int(v) if v.isdigit() else v
        return v


def register(reg: Registry | None = None, engine=None) -> None:
    """Register the ``interventions`` collection (lazily built), answered by the store
    (:class:`geo.interventions.sql_collection.InterventionsSqlProvider`); the in-memory
    :class:`InterventionsProvider` stays as the reference the tests compare it with."""
    from geo.interventions.sql_collection import InterventionsSqlProvider

    (reg if reg is not None else registry).register(
        COLLECTION_ID, lambda: InterventionsSqlProvider(engine)
    )
