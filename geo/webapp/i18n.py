"""The browser application's strings, Italian by default with English: one catalogue.

``MESSAGES[lang][key]`` holds every UI string of the map application (the page and its
scripts read the same catalogue, sent to the browser as JSON). :func:`negotiate` picks
the language from an explicit choice (``?lang=`` or the ``lang`` cookie) or the
``Accept-Language`` header; :func:`t` formats one string. Other packages (the accounts
pages) keep their own catalogue with the same shape and reuse :func:`negotiate`.
"""

from __future__ import annotations

from geo.ogc.http import LANGUAGES as LANGS  # the service's languages, one list
from geo.ogc.http import negotiate_language

DEFAULT_LANG = LANGS[0]

MESSAGES: dict[str, dict[str, str]] = {
    "it": {
        "app.title": "Web GIS della Città metropolitana di Milano",
        "app.short_title": "Web GIS CMM",
        "app.skip": "Vai alla mappa",
        "lang.switch": "English",
        "lang.switch_title": "Switch to English",
        "session.login": "Accedi",
        "session.logout": "Esci",
        "session.signed_in": "Connesso come {name}",
        "nav.maps": "Mappe",
        "nav.api": "API",
        "nav.ogc": "Catalogo OGC",
        "nav.upload": "Carica un livello",
        "nav.new_intervention": "Nuovo intervento",
        "search.label": "Cerca comune, codice, zona o unione",
        "search.placeholder": "Comune, codice ISTAT o catastale, zona, unione…",
        "search.none": "Nessun risultato per «{q}»",
        "search.kind.comune": "Comune",
        "search.kind.zona": "Zona omogenea",
        "search.kind.unione": "Unione di comuni",
        "search.help": "Usa le frecce per scegliere e Invio per confermare.",
        "tabs.label": "Pannelli",
        "tabs.place": "Luogo",
        "tabs.layers": "Livelli",
        "tabs.interventions": "Interventi",
        "tabs.print": "Stampa",
        "place.intro": "Cerca un comune o fai clic sulla mappa per sapere zona omogenea, "
        "unione, confinanti e interventi.",
        "place.loading": "Caricamento…",
        "place.outside": "Il punto è fuori dalla Città metropolitana di Milano; il comune più "
        "vicino è {name}, a {distance} m.",
        "place.error": "Impossibile caricare i dati: {error}",
        "place.istat": "Codice ISTAT",
        "place.cadastral": "Codice catastale",
        "place.zona": "Zona omogenea",
        "place.confidence": "affidabilità: {level}",
        "place.unione": "Unione di comuni",
        "place.no_unione": "nessuna",
        "place.neighbours": "Comuni confinanti",
        "place.population": "Abitanti",
        "place.area": "Superficie",
        "place.comuni": "Comuni",
        "place.interventions": "Interventi del piano",
        "place.interventions_value": "{count} interventi · {amount} ({per_inhabitant} per "
        "abitante)",
        "place.pnrr": "Finanziamenti PNRR (open data)",
        "place.pnrr_value": "{count} progetti · {amount} ({per_inhabitant} per abitante)",
        "place.pnrr_value_one": "{count} progetto · {amount} ({per_inhabitant} per abitante)",
        "place.interventions_value_one": "{count} intervento · {amount} ({per_inhabitant} per "
        "abitante)",
        "place.no_interventions": "nessun intervento registrato",
        "place.show_interventions": "Mostra gli interventi",
        "place.map_page": "Scheda e mappa stampabile",
        "place.share": "Link a questa vista",
        "place.amount_note": "Importi come dichiarati da ciascuna fonte: indicativi.",
        "place.identify": "Alla posizione cliccata",
        "place.identify_none": "Nessun elemento dei livelli visibili in questo punto.",
        "place.members": "Comuni membri",
        "confidence.high": "alta",
        "confidence.medium-high": "medio-alta",
        "confidence.medium": "media",
        "confidence.low-medium": "medio-bassa",
        "layers.title": "Livelli",
        "layers.base": "Mappa di base",
        "layers.base_none": "Mappa di base non disponibile (rete chiusa).",
        "layers.opacity": "Opacità di {name}",
        "layers.show": "Mostra {name}",
        "layers.metrics": "Indicatori per {unit}",
        "layers.metrics_title": "Indicatori di «{name}»",
        "layers.metric_by": "Aggregazione",
        "layers.by.comune": "comune",
        "layers.by.zona": "zona omogenea",
        "layers.by.unione": "unione",
        "layers.download_csv": "Scarica CSV",
        "layers.download": "Scarica il livello",
        "layers.uploaded": "Livelli caricati",
        "layers.territory": "Territorio",
        "layers.loading": "Caricamento dei livelli…",
        "layers.feature_count": "{count} elementi",
        "metric.share": "Quota coperta (%)",
        "metric.covered_km2": "Superficie coperta (km²)",
        "metric.length_km": "Lunghezza (km)",
        "metric.count": "Numero di elementi",
        "metric.interventions": "Interventi",
        "metric.unit": "Unità",
        "collection.comuni": "Comuni",
        "collection.zone-omogenee": "Zone omogenee",
        "collection.unioni": "Unioni di comuni",
        "collection.interventions": "Interventi del piano strategico",
        "iv.filters": "Filtri",
        "iv.programme": "Programma",
        "iv.mission": "Missione",
        "iv.driver": "Driver",
        "iv.zona": "Zona omogenea",
        "iv.unione": "Unione",
        "iv.comune": "Comune",
        "iv.status": "Stato",
        "iv.source": "Fonte dei dati",
        "iv.amount_min": "Importo minimo (€)",
        "iv.amount_max": "Importo massimo (€)",
        "iv.text": "Testo libero",
        "iv.text_placeholder": "titolo, CUP, soggetto attuatore…",
        "iv.any": "tutti",
        "iv.reset": "Azzera i filtri",
        "iv.count": "{count} interventi",
        "iv.count_one": "{count} intervento",
        "iv.count_of": "{count} interventi su {total}",
        "iv.count_of_one": "{count} intervento su {total}",
        "iv.amount_total": "importo dichiarato: {amount}",
        "iv.partial": "La mappa mostra i {shown} con l'importo maggiore: restringi i filtri o "
        "scarica i dati per averli tutti. Conteggi, importi, tabella e grafici li comprendono "
        "tutti.",
        "iv.zoom": "Zoom sui risultati",
        "iv.download": "Scarica",
        "iv.table": "Tabella degli interventi",
        "iv.col.title": "Titolo",
        "iv.col.programme": "Programma",
        "iv.col.comuni_names": "Comuni",
        "iv.col.status": "Stato",
        "iv.col.amount_eur": "Importo (€)",
        "iv.col.source": "Fonte",
        "iv.sort": "Ordina per {column}",
        "iv.sort_by": "Ordina per",
        "iv.sort_asc": "{column}, crescente",
        "iv.sort_desc": "{column}, decrescente",
        "iv.page": "Pagina {page} di {pages}",
        "iv.prev": "Precedente",
        "iv.next": "Successiva",
        "iv.chart_zona": "Importi per zona omogenea",
        "iv.chart_comune": "Primi 10 comuni per importo",
        "iv.none": "Nessun intervento corrisponde ai filtri.",
        "iv.edit": "Modifica",
        "iv.history": "Cronologia",
        "iv.show_on_map": "Mostra sulla mappa",
        "iv.unavailable": "Gli interventi non sono disponibili in questo momento.",
        "print.title": "Stampa la vista corrente",
        "print.map_title": "Titolo",
        "print.default_title": "Città metropolitana di Milano",
        "print.png": "Stampa PNG",
        "print.pdf": "Stampa PDF",
        "print.subtitle": "Vista della mappa del {date}",
        "print.help": "La stampa comprende titolo, legenda, barra di scala, freccia del nord "
        "e attribuzione, con i livelli visibili.",
        "identify.title": "Elemento di «{layer}»",
        "identify.no_props": "nessun attributo",
        "map.label": "Mappa interattiva",
        "map.attribution": "Confini: ISTAT, openpolis (CC BY 4.0)",
        "common.close": "Chiudi",
        "common.yes": "sì",
        "common.no": "no",
        "common.none": "—",
    },
    "en": {
        "app.title": "Web GIS of the Città metropolitana di Milano",
        "app.short_title": "CMM Web GIS",
        "app.skip": "Skip to the map",
        "lang.switch": "Italiano",
        "lang.switch_title": "Passa all'italiano",
        "session.login": "Sign in",
        "session.logout": "Sign out",
        "session.signed_in": "Signed in as {name}",
        "nav.maps": "Maps",
        "nav.api": "API",
        "nav.ogc": "OGC catalogue",
        "nav.upload": "Upload a layer",
        "nav.new_intervention": "New intervention",
        "search.label": "Search a comune, code, zone or union",
        "search.placeholder": "Comune, ISTAT or cadastral code, zone, union…",
        "search.none": "No result for “{q}”",
        "search.kind.comune": "Comune",
        "search.kind.zona": "Zona omogenea",
        "search.kind.unione": "Union of comuni",
        "search.help": "Use the arrow keys to choose and Enter to confirm.",
        "tabs.label": "Panels",
        "tabs.place": "Place",
        "tabs.layers": "Layers",
        "tabs.interventions": "Interventions",
        "tabs.print": "Print",
        "place.intro": "Search a comune or click on the map to get its zona omogenea, union, "
        "neighbours and interventions.",
        "place.loading": "Loading…",
        "place.outside": "The point is outside the Città metropolitana di Milano; the nearest "
        "comune is {name}, {distance} m away.",
        "place.error": "Could not load the data: {error}",
        "place.istat": "ISTAT code",
        "place.cadastral": "Cadastral code",
        "place.zona": "Zona omogenea",
        "place.confidence": "confidence: {level}",
        "place.unione": "Union of comuni",
        "place.no_unione": "none",
        "place.neighbours": "Neighbouring comuni",
        "place.population": "Inhabitants",
        "place.area": "Area",
        "place.comuni": "Comuni",
        "place.interventions": "Plan interventions",
        "place.interventions_value": "{count} interventions · {amount} ({per_inhabitant} per "
        "inhabitant)",
        "place.pnrr": "PNRR funding (open data)",
        "place.pnrr_value": "{count} projects · {amount} ({per_inhabitant} per inhabitant)",
        "place.pnrr_value_one": "{count} project · {amount} ({per_inhabitant} per inhabitant)",
        "place.interventions_value_one": "{count} intervention · {amount} ({per_inhabitant} per "
        "inhabitant)",
        "place.no_interventions": "no intervention recorded",
        "place.show_interventions": "Show the interventions",
        "place.map_page": "Fact sheet and printable map",
        "place.share": "Link to this view",
        "place.amount_note": "Amounts as each source states them: indicative.",
        "place.identify": "At the clicked point",
        "place.identify_none": "No feature of the visible layers at this point.",
        "place.members": "Member comuni",
        "confidence.high": "high",
        "confidence.medium-high": "medium-high",
        "confidence.medium": "medium",
        "confidence.low-medium": "low-medium",
        "layers.title": "Layers",
        "layers.base": "Base map",
        "layers.base_none": "No base map (closed network).",
        "layers.opacity": "Opacity of {name}",
        "layers.show": "Show {name}",
        "layers.metrics": "Metrics per {unit}",
        "layers.metrics_title": "Metrics of “{name}”",
        "layers.metric_by": "Grouping",
        "layers.by.comune": "comune",
        "layers.by.zona": "zona omogenea",
        "layers.by.unione": "union",
        "layers.download_csv": "Download CSV",
        "layers.download": "Download the layer",
        "layers.uploaded": "Uploaded layers",
        "layers.territory": "Territory",
        "layers.loading": "Loading the layers…",
        "layers.feature_count": "{count} features",
        "metric.share": "Share covered (%)",
        "metric.covered_km2": "Area covered (km²)",
        "metric.length_km": "Length (km)",
        "metric.count": "Number of features",
        "metric.interventions": "Interventions",
        "metric.unit": "Unit",
        "collection.comuni": "Comuni",
        "collection.zone-omogenee": "Zone omogenee",
        "collection.unioni": "Unions of comuni",
        "collection.interventions": "Interventions of the strategic plan",
        "iv.filters": "Filters",
        "iv.programme": "Programme",
        "iv.mission": "Mission",
        "iv.driver": "Driver",
        "iv.zona": "Zona omogenea",
        "iv.unione": "Union",
        "iv.comune": "Comune",
        "iv.status": "Status",
        "iv.source": "Data source",
        "iv.amount_min": "Minimum amount (€)",
        "iv.amount_max": "Maximum amount (€)",
        "iv.text": "Free text",
        "iv.text_placeholder": "title, CUP, implementing body…",
        "iv.any": "all",
        "iv.reset": "Clear the filters",
        "iv.count": "{count} interventions",
        "iv.count_one": "{count} intervention",
        "iv.count_of": "{count} interventions of {total}",
        "iv.count_of_one": "{count} intervention of {total}",
        "iv.amount_total": "stated amount: {amount}",
        "iv.partial": "The map shows the {shown} with the largest amounts: narrow the filters "
        "or download the data to get them all. Counts, amounts, table and charts cover them "
        "all.",
        "iv.zoom": "Zoom to the results",
        "iv.download": "Download",
        "iv.table": "Table of the interventions",
        "iv.col.title": "Title",
        "iv.col.programme": "Programme",
        "iv.col.comuni_names": "Comuni",
        "iv.col.status": "Status",
        "iv.col.amount_eur": "Amount (€)",
        "iv.col.source": "Source",
        "iv.sort": "Sort by {column}",
        "iv.sort_by": "Sort by",
        "iv.sort_asc": "{column}, ascending",
        "iv.sort_desc": "{column}, descending",
        "iv.page": "Page {page} of {pages}",
        "iv.prev": "Previous",
        "iv.next": "Next",
        "iv.chart_zona": "Amounts per zona omogenea",
        "iv.chart_comune": "Top 10 comuni by amount",
        "iv.none": "No intervention matches the filters.",
        "iv.edit": "Edit",
        "iv.history": "History",
        "iv.show_on_map": "Show on the map",
        "iv.unavailable": "The interventions are not available right now.",
        "print.title": "Print the current view",
        "print.map_title": "Title",
        "print.default_title": "Città metropolitana di Milano",
        "print.png": "Print PNG",
        "print.pdf": "Print PDF",
        "print.subtitle": "Map view of {date}",
        "print.help": "The print has a title, legend, scale bar, north arrow and attribution, "
        "with the visible layers.",
        "identify.title": "Feature of “{layer}”",
        "identify.no_props": "no attributes",
        "map.label": "Interactive map",
        "map.attribution": "Boundaries: ISTAT, openpolis (CC BY 4.0)",
        "common.close": "Close",
        "common.yes": "yes",
        "common.no": "no",
        "common.none": "—",
    },
}


#: The interventions' status as the plan's sources write it (English, data/interventions)
#: in Italian: the clerk reads the table in the page's language. A value not listed shows
#: its first words translated when they are (``in progress (2025)`` → ``in corso (2025)``),
#: else as written (the national PNRR data write theirs in Italian).
STATUS_IT = {
    "approved with reserve": "approvato con riserva",
    "awarded": "aggiudicato",
    "completed": "completato",
    "completed (3-year plan)": "completato (piano triennale)",
    "completed (bridge placed)": "completato (ponte posato)",
    "completed (opened)": "completato (aperto al pubblico)",
    "completed (per project page)": "completato (secondo la pagina del progetto)",
    "completing": "in completamento",
    "funded": "finanziato",
    "in progress": "in corso",
    "planned": "programmato",
    "planned/start": "programmato / in avvio",
    "proposal (not confirmed funded)": "proposta (finanziamento non confermato)",
    "started": "avviato",
    "status not stated": "stato non indicato",
    "to be started": "da avviare",
}
MESSAGES["it"].update({f"status.{k}": v for k, v in STATUS_IT.items()})
MESSAGES["en"].update({f"status.{k}": k for k in STATUS_IT})  # as the sources write them


#: Where an intervention's record came from (the ``source`` property), as a reader says it.
SOURCES = {
    "it": {
        "documented": "documenti del piano",
        "pnrr": "open data PNRR",
        "api": "inserito via API",
        "import": "importato da file",
    },
    "en": {
        "documented": "plan documents",
        "pnrr": "PNRR open data",
        "api": "added through the API",
        "import": "imported from a file",
    },
}
for _lang, _names in SOURCES.items():
    MESSAGES[_lang].update({f"source.{k}": v for k, v in _names.items()})


def status_label(lang: str, value: str) -> str:
    """An intervention's status in ``lang`` (see :data:`STATUS_IT`)."""
    messages = MESSAGES.get(lang, {})
    exact = messages.get(f"status.{value}")
    if exact:
        return exact
    head, sep, rest = value.partition(" (")
    base = messages.get(f"status.{head}")
    return f"{base}{sep}{rest}" if base else value


def lang_of(tag: str) -> str | None:
    """``en-GB`` → ``en``; None when not a language of the catalogue."""
    base = tag[:16].strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGS else None


def negotiate(accept_language: str | None, override: str | None = None) -> str:
    """``it`` or ``en``: an explicit choice (``?lang=``, cookie) wins, else Accept-Language
    (by q-value, first wins ties), else Italian."""
    if override:
        chosen = lang_of(override[:16])
        if chosen:
            return chosen
    # The header's q-values are read the way the OGC resources read them (one rule).
    return negotiate_language((accept_language or "")[:512].replace("_", "-"))


def t(lang: str, key: str, **kw: object) -> str:
    """The string ``key`` in ``lang`` (Italian, then the key itself, as fallbacks)."""
    text = MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT_LANG].get(key) or key
    return text.format(**kw) if kw else text
