"""Texts of the OGC HTML pages: Italian by default, English available, in the templates.

The resources (:mod:`geo.ogc.service`) write their labels in English: link titles such as
"Conformance classes" or "Comuni as HTML" are part of the JSON documents too, where
clients read them. The HTML pages show them in the page's language through
:func:`label`, by exact text or by one of a few composed patterns; anything unknown
(collection titles, which arrive localized already, property names, data) is shown as it
is. The pages' own words are keys of :data:`MESSAGES` read with :func:`text`.

The language itself is negotiated once for the whole UI, by the map application's rule
(``?lang=``, the ``lang`` cookie, ``Accept-Language``: :func:`geo.webapp.i18n.negotiate`),
and reaches the resources as :attr:`geo.ogc.http.OgcRequest.lang`.
"""

from __future__ import annotations

import re
from typing import Any

from geo.ogc.http import LANGUAGES

MESSAGES: dict[str, dict[str, str]] = {
    "it": {
        "nav.label": "Percorso",
        "lang.switch": "English",
        "lang.switch_title": "Switch to English",
        "app.link": "Mappa interattiva",
        "collections.collection": "Collezione",
        "collections.description": "Descrizione",
        "collections.items": "elementi",
        "collections.items_of": "Elementi di {title}",
        "items.count": "{returned} di {matched} elementi.",
        "items.count_over": "{returned} di oltre {limit} elementi.",
        "items.previous": "precedenti",
        "items.next": "successivi",
        "items.pages": "Pagine",
        "map.label": "Mappa degli elementi",
        "links.label": "Collegamenti",
    },
    "en": {
        "nav.label": "Breadcrumbs",
        "lang.switch": "Italiano",
        "lang.switch_title": "Passa all'italiano",
        "app.link": "Interactive map",
        "collections.collection": "Collection",
        "collections.description": "Description",
        "collections.items": "items",
        "collections.items_of": "Items of {title}",
        "items.count": "{returned} of {matched} features.",
        "items.count_over": "{returned} of more than {limit} features.",
        "items.previous": "previous",
        "items.next": "next",
        "items.pages": "Pages",
        "map.label": "Map of the features",
        "links.label": "Links",
    },
}

#: The resources' English labels in Italian (titles of pages, links and facts).
LABELS_IT: dict[str, str] = {
    "Home": "Inizio",
    "Collections": "Collezioni",
    "Conformance": "Conformità",
    "Conformance classes": "Classi di conformità",
    "Items": "Elementi",
    "Feature": "Elemento",
    "Landing page": "Pagina iniziale",
    "This document": "Questo documento",
    "OpenAPI 3.0 definition": "Definizione OpenAPI 3.0",
    "API documentation": "Documentazione dell'API",
    "Tile matrix sets of the vector tiles": "Griglie delle tessere vettoriali",
    "Queryables": "Proprietà interrogabili",
    "Schema": "Schema",
    "Sortables": "Proprietà ordinabili",
    "Metadata": "Metadati",
    "GeoJSON feature schema": "Schema GeoJSON di un elemento",
    "Schema of the features (returnables)": "Schema degli elementi (proprietà restituite)",
    "JSON Schema of one GeoJSON feature": "JSON Schema di un elemento GeoJSON",
    "Metadata record (DCAT-AP_IT, JSON-LD)": "Scheda dei metadati (DCAT-AP_IT, JSON-LD)",
    "Vector tilesets (Mapbox Vector Tiles)": "Tessere vettoriali (Mapbox Vector Tiles)",
    "extent (CRS84)": "estensione (CRS84)",
    "storage CRS": "CRS di archiviazione",
    # api.routes.ogc: the service's description and further resources.
    "Comuni, zone omogenee, unioni di comuni and further layers of the Città metropolitana "
    "di Milano as OGC API – Features (GeoJSON, HTML; CRS84, EPSG:4326, 32632, 3003, 7791, "
    "3857; CQL2 filters).": "Comuni, zone omogenee, unioni di comuni e altri livelli della "
    "Città metropolitana di Milano come OGC API – Features (GeoJSON, HTML; CRS84, "
    "EPSG:4326, 32632, 3003, 7791, 3857; filtri CQL2).",
    "Maps of the territory, interventions and layers": "Mappe del territorio, degli "
    "interventi e dei livelli",
    "Find my zone (comune, zone, union)": "Trova la mia zona (comune, zona, unione)",
    "Comuni with zone, union and neighbours": "Comuni con zona, unione e confinanti",
    "The strategic plan: missions, objectives, drivers": "Il Piano strategico: missioni, "
    "obiettivi, driver",
    "Interventions per zone": "Interventi per zona",
    "Uploaded green-network layers": "Livelli della rete verde caricati",
    "Interactive API documentation": "Documentazione interattiva dell'API",
}

#: Composed labels (``"{title} as HTML"``…): pattern → Italian, groups translated too.
PATTERNS_IT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(.+) as (HTML|JSON)$", re.S), "{0} in {1}"),
    (re.compile(r"^(.+): features$", re.S), "{0}: elementi"),
    (re.compile(r"^Metadata: (.+)$", re.S), "Metadati: {0}"),
    (
        re.compile(r"^(Queryables|Schema|Sortables|GeoJSON feature schema): (.+)$", re.S),
        "{0}: {1}",
    ),
)


def label(lang: str, value: Any) -> Any:
    """A resource's English label in ``lang``; anything else unchanged (never markup)."""
    if lang != "it" or not isinstance(value, str):
        return value
    if value in LABELS_IT:
        return LABELS_IT[value]
    for pattern, template in PATTERNS_IT:
        m = pattern.match(value)
        if m:
            return template.format(*(LABELS_IT.get(g, g) for g in m.groups()))
    return value


def text(lang: str, key: str, **kw: object) -> str:
    """The page's own string ``key`` in ``lang`` (Italian, then the key, as fallbacks)."""
    s = MESSAGES.get(lang, {}).get(key) or MESSAGES[LANGUAGES[0]].get(key) or key
    return s.format(**kw) if kw else s


def template_context(lang: str, switch_href: str) -> dict[str, Any]:
    """What the templates need to speak ``lang``: ``lang`` for ``<html lang>``, ``t(key)``,
    ``label(text)`` and the link to the same page in the other language."""
    lang = lang if lang in LANGUAGES else LANGUAGES[0]
    other = next(x for x in LANGUAGES if x != lang)
    return {
        "lang": lang,
        "other_lang": other,
        "switch_href": switch_href,
        "t": lambda key, **kw: text(lang, key, **kw),
        "label": lambda value: label(lang, value),
    }
