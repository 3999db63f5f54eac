"""The collection registry: everything the service holds is served the same way.

A *provider* answers OGC API – Features queries for one collection. Its ``query``
mirrors the OGC parameters (bbox, datetime, filter, property filters, sortby,
properties, skipGeometry, limit, offset), already parsed into a :class:`FeatureQuery`.
The API layer only parses requests into that object and formats the result.

Registered now: ``comuni``, ``zone-omogenee``, ``unioni`` (from the territory); the
interventions and uploaded layers register themselves the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geo.crs import CRS84


@dataclass
class FeatureQuery:
    """OGC API – Features query parameters, parsed and validated.

    ``bbox`` is in CRS84 (the API converts ``bbox-crs``); ``filter`` is a parsed CQL2
    expression (see ``geo.cql``), with geometries already in CRS84; ``properties_eq``
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


@dataclass
class QueryResult:
    """Features of one page (GeoJSON dicts, CRS84) and the total number matched."""

    features: list[dict[str, Any]]
    number_matched: int


@dataclass(frozen=True)
class Queryable:
    """A property that can be filtered: name, JSON-schema type, title."""

    name: str
    type: str  # "string" | "number" | "integer" | "boolean" | "datetime"
    title: str = ""
    enum: tuple[Any, ...] | None = None


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


class Registry:
    """Collections by id, in registration order. Factories are built lazily."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], CollectionProvider]] = {}
        self._built: dict[str, CollectionProvider] = {}

    def register(self, collection_id: str, factory: Callable[[], CollectionProvider]) -> None:
        """Add (or replace) a collection, built on first use."""
        self._factories[collection_id] = factory
        self._built.pop(collection_id, None)

    def unregister(self, collection_id: str) -> None:
        """Remove a collection (e.g. a deleted layer)."""
        self._factories.pop(collection_id, None)
        self._built.pop(collection_id, None)

    def __contains__(self, collection_id: object) -> bool:
        return collection_id in self._factories

    def get(self, collection_id: str) -> CollectionProvider | None:
        """The provider of a collection, or None."""
        if collection_id not in self._factories:
            return None
        if collection_id not in self._built:
            self._built[collection_id] = self._factories[collection_id]()
        return self._built[collection_id]

    def ids(self) -> list[str]:
        """Registered collection ids."""
        return list(self._factories)

    def __iter__(self) -> Iterator[CollectionProvider]:
        for cid in list(self._factories):
            provider = self.get(cid)
            if provider is not None:
                yield provider


#: The process-wide registry used by the API.
registry = Registry()
