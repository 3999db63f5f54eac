"""Interventions of the strategic plan and of the PNRR open data.

Where things live:

* :mod:`.model` — columns, the :class:`InputTable` importers fill, results;
* :mod:`.validation` — :func:`prepare`: every row validated, spatial join to comuni;
* :mod:`.reading` — CSV / GeoJSON / GeoPackage files → :class:`InputTable`;
* :mod:`.store` — tables, all-or-nothing :func:`upsert`, :func:`delete`, seed, reads;
* :mod:`.features` — single-feature create / replace / patch (OGC API Part 4);
* :mod:`.collection` — the ``interventions`` OGC collection (filters on plan fields);
* :mod:`.stats` — totals per comune, zona, unione, programme, mission;
* :mod:`.pnrr` — import of the national PNRR open data (Italia Domani);
* :mod:`.cli` — ``cmm-geo import …``.

The names below are the package's public face (notebooks use ``from geo import
interventions as iv``).
"""

from geo.errors import ValidationFailed
from geo.interventions.features import (
    create_feature,
    patch_feature,
    replace_feature,
    table_from_features,
)
from geo.interventions.model import (
    COLUMNS,
    DEFAULT_FILE,
    EXTRA_COLUMNS,
    SEED_KEY,
    TOPIC,
    ImportReport,
    InputTable,
    Prepared,
)
from geo.interventions.store import (
    Snapshot,
    delete,
    get_feature,
    get_store,
    interventions_table,
    links_table,
    seed,
    snapshot,
    upsert,
)
from geo.interventions.validation import derive_id, prepare, resolve_comune

__all__ = [
    "COLUMNS",
    "DEFAULT_FILE",
    "EXTRA_COLUMNS",
    "SEED_KEY",
    "TOPIC",
    "ImportReport",
    "InputTable",
    "Prepared",
    "Snapshot",
    "ValidationFailed",
    "create_feature",
    "delete",
    "derive_id",
    "get_feature",
    "get_store",
    "interventions_table",
    "links_table",
    "patch_feature",
    "prepare",
    "replace_feature",
    "resolve_comune",
    "seed",
    "snapshot",
    "table_from_features",
    "upsert",
]
