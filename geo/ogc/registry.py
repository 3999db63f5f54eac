"""The collection registry: everything the service holds is served the same way.

A *provider* answers OGC API – Features queries for one collection. Its ``query``
mirrors the OGC parameters (bbox, datetime, filter, property filters, sortby,
properties, skipGeometry, limit, offset), already parsed into a :class:`FeatureQuery`.
The API layer only parses requests into that object and formats the result.

Registered now: ``comuni``, ``zone-omogenee``, ``unioni`` (from the territory); the
interventions and uploaded layers register themselves the same way.

Outages: a provider backed by the store raises :class:`~geo.errors.ServiceUnavailable` while
the database is down; listing the registry skips it (see :meth:`Registry.listing`) so the
landing page and ``/collections`` keep answering with what is available.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import CRS84
from geo.errors import NotFound, ServiceUnavailable
from geo.ogc.geometry import area_of, promote_to_multi
from geo.store import request_memo, store_errors, unavailable

log = logging.getLogger("cmm_geo.ogc")


@dataclass
class FeatureQuery:
    """OGC API – Features query parameters, parsed and validated.

    ``bbox`` is in CRS84 (the API converts ``bbox-crs``); ``filter`` is a parsed CQL2
    expression (see ``geo.ogc.cql``), with geometries already in CRS84; ``properties_eq``
    holds simple ``?name=value`` property filters.
    """

    bbox: tuple[float, float, float, float] | None = None
    datetime_range: tuple[datetime | None, datetime | None] | None = None
    filter: Any | None = None
    properties_eq: dict[str, str] = field(default_factory=dict)
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, ascending)
    properties: list[str] | None = None
    skip_geometry: bool = False
    limit: int = 10
    offset: int = 0
    #: Count the matches exactly up to this many, else ``number_matched`` is None (a store
    #: may ignore it and count exactly); None: always exact (tiles, downloads rely on it).
    count_limit: int | None = None

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the collection (what ``count_limit`` applies to)."""
        return bool(
            self.bbox is not None or self.filter is not None or self.properties_eq
            or self.datetime_range is not None
        )  # fmt: skip


@dataclass
class QueryResult:
    """Features of one page (GeoJSON dicts, CRS84) and the total number matched (None:
    more than the query's ``count_limit``)."""

    features: list[dict[str, Any]]
    number_matched: int | None


@dataclass
class GeojsonPage:
    """One page as the store encoded it: (id, GeoJSON Feature text) per feature, in CRS84 at
    the service's output precision, and the total number matched (see
    :meth:`CollectionProvider.query_geojson`)."""

    features: list[tuple[str, str]]
    number_matched: int | None

    @property
    def returned(self) -> int:
        """How many features the page holds."""
        return len(self.features)

    def json_array(self, head: str) -> str:
        """The features as the JSON array of a FeatureCollection, each closed by its
        ``self`` link: ``head`` (``,"links":[{…,"href":"`` and the items' URL, escaped
        for JSON, without its closing quote) then its id. One string built at once, not a
        fragment per feature (JSON escapes character by character: the link's prefix is
        escaped once)."""
        features = self.features
        ids = "".join([fid for fid, _ in features])
        if plain_ids(ids):  # nothing JSON escapes: each Feature in one join, ~40 % less
            texts = [f'{text[:-1]}{head}{fid}"}}]}}' for fid, text in features]
        else:
            dumps = orjson.dumps
            texts = [text[:-1] + head + dumps(fid).decode()[1:] + "}]}" for fid, text in features]
        return "[" + ",".join(texts) + "]"


def plain_ids(ids: str) -> bool:
    """Whether feature ids (joined) hold nothing JSON would escape: then ``"`` + id + ``"``
    is their JSON text, as orjson writes it."""
    return ids.isascii() and ids.isprintable() and '"' not in ids and "\\" not in ids


@dataclass(frozen=True)
class Queryable:
    """A property that can be filtered: name, JSON-schema type, title.

    ``array``: the property holds a list of values of ``type`` (filter it with the CQL2
    array functions, or ``?name=value`` for membership); ``format``: ``date``,
    ``date-time``, ``uri``… (``type="datetime"`` is a shorthand for string/date-time).
    """

    name: str
    type: str  # "string" | "number" | "integer" | "boolean" | "datetime"
    title: str = ""
    enum: tuple[Any, ...] | None = None
    array: bool = False
    format: str | None = None


class CollectionProvider(ABC):
    """One collection; subclasses implement ``query``, ``get`` and metadata."""

    id: str
    title: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    storage_crs: str = CRS84
    item_type: str = "feature"
    #: Name of the datetime property, if the collection has time.
    datetime_property: str | None = None
    attribution: str | None = None
    #: Query parameters accepted as property filters (``properties_eq``) besides the
    #: queryables, e.g. aliases or ranges; any other unknown parameter is a 400.
    extra_parameters: tuple[str, ...] = ()
    #: CRS URIs the collection is offered in (first = default); None: every supported CRS.
    crs: list[str] | None = None
    #: The one geometry type of its features (``MultiPolygon``…; see geo.ogc.geometry).
    geometry_type: str | None = None
    #: Licence of the data: (title, URL), published as a ``license`` link.
    license: tuple[str, str] | None = None
    #: Title and description per language (``{"en": ("Title", "Description")}``), served
    #: by Accept-Language; the plain ``title``/``description`` otherwise.
    translations: dict[str, tuple[str, str]] = {}  # noqa: RUF012 - never mutated

    def localized(self, lang: str) -> tuple[str, str]:
        """(title, description) in ``lang`` when translated."""
        return self.translations.get(lang, (self.title, self.description))

    def property_names(self) -> list[str]:
        """Names of the properties its features carry (default: the queryables)."""
        return [q.name for q in self.queryables()]

    @abstractmethod
    def version(self) -> str:
        """A token that changes whenever the collection's data changes (for ETags)."""

    @abstractmethod
    def last_modified(self) -> datetime:
        """When the data last changed (UTC)."""

    @abstractmethod
    def queryables(self) -> list[Queryable]:
        """The properties that can be filtered and sorted."""

    @abstractmethod
    def extent(self) -> tuple[float, float, float, float]:
        """Spatial extent in CRS84."""

    def temporal_extent(self) -> tuple[datetime | None, datetime | None] | None:
        """Temporal extent, when the collection has time."""
        return None

    @abstractmethod
    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q`` (one page) and the number matched."""

    @abstractmethod
    def get(self, feature_id: str) -> dict[str, Any] | None:
        """One feature by id, or None."""

    def get_geojson(self, feature_id: str) -> str | None:
        """One feature by id as its canonical text (``geo.ogc.encode.feature_text``), or
        None. A store that encodes features itself answers without Python objects."""
        from geo.ogc.encode import feature_text

        feature = self.get(feature_id)
        return None if feature is None else feature_text(feature)

    def query_geojson(self, q: FeatureQuery) -> GeojsonPage | None:
        """The page of :meth:`query` already encoded as GeoJSON by the store, or None when
        this collection cannot (the caller then uses :meth:`query`). The same features and
        properties as :meth:`query`; only the encoding moves (into the database)."""
        return None


class SnapshotProvider(CollectionProvider):
    """A provider served from a :class:`MemoryProvider` rebuilt whenever its source changes.

    Subclasses implement ``_source()`` (a cheap stamp of the source's state, and the
    source itself) and ``_build(source)``; every query is answered by the in-memory
    provider of the current stamp. The stored interventions and layers work this way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inner: MemoryProvider | None = None
        self._stamp: Any = None

    @abstractmethod
    def _source(self) -> tuple[Any, Any]:
        """(stamp, source): the stamp changes whenever the data does."""

    @abstractmethod
    def _build(self, source: Any) -> MemoryProvider:
        """The in-memory provider of ``source``."""

    def _current(self) -> MemoryProvider:

        with store_errors():  # database down → ServiceUnavailable, whatever the backend
            stamp, source = self._source()
        with self._lock:
            if self._inner is None or self._stamp != stamp:
                self._inner = self._build(source)
                self._stamp = stamp
            return self._inner

    def version(self) -> str:
        """Changes with every change of the source."""
        return self._current().version()

    def last_modified(self) -> datetime:
        """When the source last changed."""
        return self._current().last_modified()

    def queryables(self) -> list[Queryable]:
        """The queryables of the current data."""
        return self._current().queryables()

    def property_names(self) -> list[str]:
        """The properties of the current data."""
        return self._current().property_names()

    def property_values(self, name: str) -> np.ndarray:
        """Values of a property in the current data."""
        return self._current().property_values(name)

    @property
    def geometry_type(self) -> str | None:  # type: ignore[override]
        """The one geometry type of the current data."""
        return self._current().geometry_type

    def extent(self) -> tuple[float, float, float, float]:
        """Bounds of the current data (CRS84)."""
        return self._current().extent()

    def query(self, q: FeatureQuery) -> QueryResult:
        """Features matching ``q``."""
        return self._current().query(q)

    def get(self, feature_id: str) -> dict[str, Any] | None:
        """One feature by id."""
        return self._current().get(feature_id)


class Registry:
    """Collections by id, in registration order. Factories are built lazily."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], CollectionProvider]] = {}
        self._built: dict[str, CollectionProvider] = {}
        self._refreshers: list[Callable[[], Any]] = []
        self._static: set[str] = set()

    def register(
        self,
        collection_id: str,
        factory: Callable[[], CollectionProvider],
        *,
        static: bool = False,
    ) -> None:
        """Add (or replace) a collection, built on first use.

        ``static``: its data never changes while the process runs and needs no store (the
        territory), so serving it never waits for the refreshers or the database.
        """
        self._factories[collection_id] = factory
        self._built.pop(collection_id, None)
        if static:
            self._static.add(collection_id)
        else:
            self._static.discard(collection_id)

    def is_static(self, collection_id: str) -> bool:
        """True for collections whose version needs no store (see :meth:`register`)."""
        return collection_id in self._static

    def unregister(self, collection_id: str) -> None:
        """Remove a collection (e.g. a deleted layer)."""
        self._factories.pop(collection_id, None)
        self._built.pop(collection_id, None)
        self._static.discard(collection_id)

    def add_refresher(self, refresh: Callable[[], Any]) -> None:
        """Call ``refresh`` before listing and on an unknown id (e.g. to register the stored
        layers); it may fail while the database is down, and is simply tried again later."""
        if refresh not in self._refreshers:
            self._refreshers.append(refresh)

    def refresh(self) -> None:
        """Run the refreshers; a database outage only postpones them. Within a request
        (``geo.store.request_revisions``) they run once: they depend on the store's
        revisions alone, which a request reads once, and a request looks collections up
        several times."""

        memo = request_memo()
        done = ("registry refreshed", id(self))
        if memo is not None and done in memo:
            return
        complete = True
        for refresh in list(self._refreshers):
            try:
                refresh()
            except Exception as exc:
                if unavailable(exc) is None:
                    raise
                complete = False
                log.info("collections not refreshed: the database is unavailable")
        if memo is not None and complete:
            memo[done] = True

    def __contains__(self, collection_id: object) -> bool:
        return collection_id in self._factories

    def get(self, collection_id: str) -> CollectionProvider | None:
        """The provider of a collection, or None; ServiceUnavailable when its store is down.

        Every collection that is not static is looked up after the refreshers ran (one
        revision read per request, see ``geo.store.request_revisions``), so a layer added or
        deleted through another worker or replica is served, or 404, at once.
        """
        if collection_id not in self._static and self._refreshers:
            self.refresh()
        return self._provider(collection_id)

    def peek(self, collection_id: str) -> CollectionProvider | None:
        """The provider as last registered, without running the refreshers (which may
        read the store): what a read on the event loop starts from, checked afterwards."""
        return self._provider(collection_id)

    def _provider(self, collection_id: str) -> CollectionProvider | None:
        factory = self._factories.get(collection_id)
        if factory is None:
            return None
        provider = self._built.get(collection_id)
        if provider is None:
            with store_errors():
                provider = factory()
            self._built[collection_id] = provider
        return provider

    def ids(self) -> list[str]:
        """Registered collection ids."""
        return list(self._factories)

    def listing(self) -> tuple[list[CollectionProvider], list[str]]:
        """(the providers that could be built, the ids whose store is unavailable)."""
        self.refresh()
        providers: list[CollectionProvider] = []
        down: list[str] = []
        for cid in list(self._factories):
            try:
                provider = self._provider(cid)
            except ServiceUnavailable:
                down.append(cid)
                continue
            except NotFound:  # deleted meanwhile (another worker): not listed
                continue
            if provider is not None:
                providers.append(provider)
        return providers, down

    def __iter__(self) -> Iterator[CollectionProvider]:
        """The collections that can be served now (those whose store is down are skipped)."""
        return iter(self.listing()[0])


#: The process-wide registry used by the API.
registry = Registry()


def registry_version(reg: Registry | None = None) -> str:
    """A token over every collection's id and version (for the landing page, /collections)."""
    import hashlib

    reg = reg if reg is not None else registry
    h = hashlib.sha256()
    providers, down = reg.listing()
    for provider in providers:
        try:
            version = provider.version()
        except ServiceUnavailable:
            version = "unavailable"  # changes again when the store is back
        except NotFound:
            version = "deleted"
        h.update(f"{provider.id}\0{version}\0".encode())
    for cid in down:
        h.update(f"{cid}\0unavailable\0".encode())
    return h.hexdigest()[:16]


class MemoryTable:
    """Columns of properties plus geometries, what ``geo.ogc.cql`` filters evaluate against."""

    def __init__(self, columns: dict[str, np.ndarray], geometries: np.ndarray) -> None:
        self.columns = columns
        self.geometries = geometries

    def column(self, name: str) -> np.ndarray:
        """Values of one property (object array; None where absent)."""
        return self.columns[name]

    def geometry_column(self) -> np.ndarray:
        """The shapely geometries, CRS84."""
        return self.geometries

    def __len__(self) -> int:
        return len(self.geometries)


def _json_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "string"
    if kinds <= {bool}:
        return "boolean"
    if kinds <= {int}:
        return "integer"
    if kinds <= {int, float}:
        return "number"
    if kinds <= {datetime}:
        return "datetime"
    return "string"


def _sort_key(value: Any) -> tuple[int, Any]:
    """Nulls last; numbers and strings each in their own order."""
    if value is None:
        return (2, 0)
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


class MemoryProvider(CollectionProvider):
    """A collection held in memory, answering every FeatureQuery with numpy and shapely.

    Build one from GeoJSON-like features ``{"id", "properties", "geometry"}`` (geometry a
    shapely geometry or a GeoJSON mapping, CRS84) whenever the owner's data version
    changes, and register it. bbox uses an STRtree; filters are evaluated column-wise.
    """

    def __init__(
        self,
        collection_id: str,
        title: str,
        features: list[dict[str, Any]],
        *,
        version: str,
        last_modified: datetime,
        description: str = "",
        keywords: tuple[str, ...] = (),
        queryables: list[Queryable] | None = None,
        datetime_property: str | None = None,
        attribution: str | None = None,
        storage_crs: str = CRS84,
        geometry_type: str | None = None,
        license: tuple[str, str] | None = None,
        translations: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.id = collection_id
        self.license = license
        self.translations = translations or {}
        self.title = title
        self.description = description
        self.keywords = keywords
        self.datetime_property = datetime_property
        self.attribution = attribution
        self.storage_crs = storage_crs
        self._version = version
        self._last_modified = last_modified
        self.ids = [str(f["id"]) for f in features]
        self._index = {fid: i for i, fid in enumerate(self.ids)}
        geoms = [f.get("geometry") for f in features]
        # One geometry type per collection (Point+MultiPoint → MultiPoint…).
        self.geometries, self.geometry_type = promote_to_multi(
            [g if g is None or isinstance(g, BaseGeometry) else shapely.geometry.shape(g)
             for g in geoms],
            geometry_type,
        )  # fmt: skip
        self.props: list[dict[str, Any]] = [dict(f.get("properties") or {}) for f in features]
        names: list[str] = []
        for p in self.props:
            names.extend(k for k in p if k not in names)
        columns: dict[str, np.ndarray] = {}
        for name in names:
            col = np.empty(len(self.props), dtype=object)
            col[:] = [p.get(name) for p in self.props]
            columns[name] = col
        self._names = names
        self.table = MemoryTable(columns, self.geometries)
        self._strings = {name: np.array([str(v) for v in col]) for name, col in columns.items()}
        self._queryables = queryables or [
            Queryable(name, _json_type(list(col))) for name, col in columns.items()
        ]
        self.tree = shapely.STRtree(self.geometries)
        valid = self.geometries[~shapely.is_missing(self.geometries)]
        self._extent = (
            tuple(float(v) for v in shapely.total_bounds(valid))
            if len(valid)
            else (-180.0, -90.0, 180.0, 90.0)
        )

    def version(self) -> str:
        """The owner's data version."""
        return self._version

    def last_modified(self) -> datetime:
        """When the owner's data last changed."""
        return self._last_modified

    def queryables(self) -> list[Queryable]:
        """Declared or inferred queryables; a property holding lists is an array."""
        return [
            replace(q, array=True) if not q.array and self._holds_lists(q.name) else q
            for q in self._queryables
        ]

    def _holds_lists(self, name: str) -> bool:
        col = self.table.columns.get(name)
        return col is not None and any(isinstance(v, list | tuple) for v in col)

    def property_names(self) -> list[str]:
        """The properties features carry, in order of first appearance."""
        return list(self._names)

    def property_values(self, name: str) -> np.ndarray:
        """Every feature's value of a property (None where absent), for describing it."""
        return self.table.columns[name]

    def extent(self) -> tuple[float, float, float, float]:
        """Bounds of all geometries, CRS84."""
        return self._extent  # type: ignore[return-value]

    def temporal_extent(self) -> tuple[datetime | None, datetime | None] | None:
        """Min and max of the datetime property, if any."""
        if not self.datetime_property or self.datetime_property not in self.table.columns:
            return None
        values = [_as_datetime(v) for v in self.table.columns[self.datetime_property]]
        present = [v for v in values if v is not None]
        return (min(present), max(present)) if present else (None, None)

    def select(self, q: FeatureQuery) -> np.ndarray:
        """Row indices matching ``q`` in output order (all pages)."""
        n = len(self.ids)
        mask = np.ones(n, dtype=bool)
        if q.bbox is not None:
            hits = self.tree.query(area_of(q.bbox), predicate="intersects")
            bbox_mask = np.zeros(n, dtype=bool)
            bbox_mask[hits] = True
            mask &= bbox_mask
        for name, value in q.properties_eq.items():
            strings = self._strings.get(name)
            if strings is None:
                mask[:] = False
            else:
                mask &= strings == value
        if q.filter is not None:
            mask &= q.filter.evaluate(self.table)
        if q.datetime_range is not None and self.datetime_property:
            mask &= self._in_time(q.datetime_range)
        idx = np.flatnonzero(mask)
        for name, ascending in reversed(q.sortby):
            col = self.table.columns.get(name)
            if col is None:
                continue
            keys = [_sort_key(col[i]) for i in idx]
            order = sorted(range(len(idx)), key=keys.__getitem__, reverse=not ascending)
            if not ascending:  # nulls last in both directions
                nulls = [k for k in order if keys[k][0] == 2]
                order = [k for k in order if keys[k][0] != 2] + nulls
            idx = idx[np.array(order, dtype=int)] if len(order) else idx
        return idx

    def _in_time(self, rng: tuple[datetime | None, datetime | None]) -> np.ndarray:
        start, end = rng
        out = []
        for v in self.table.columns[self.datetime_property or ""]:
            t = _as_datetime(v)
            out.append(
                t is not None and (start is None or t >= start) and (end is None or t <= end)
            )
        return np.array(out, dtype=bool)

    def feature(
        self, i: int, properties: list[str] | None = None, skip_geometry: bool = False
    ) -> dict[str, Any]:
        """Row ``i`` as a GeoJSON-like feature (geometry a shapely object, CRS84)."""
        props = self.props[i]
        if properties is not None:
            props = {k: props[k] for k in properties if k in props}
        return {
            "type": "Feature",
            "id": self.ids[i],
            "geometry": None if skip_geometry else self.geometries[i],
            "properties": props,
        }

    def query(self, q: FeatureQuery) -> QueryResult:
        """One page of matching features and the number matched."""
        idx = self.select(q)
        page = idx[q.offset : q.offset + q.limit]
        return QueryResult(
            features=[self.feature(int(i), q.properties, q.skip_geometry) for i in page],
            number_matched=len(idx),
        )

    def get(self, feature_id: str) -> dict[str, Any] | None:
        """One feature by id."""
        i = self._index.get(feature_id)
        return None if i is None else self.feature(i)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        from datetime import UTC

        t = t.replace(tzinfo=UTC)
    return t
