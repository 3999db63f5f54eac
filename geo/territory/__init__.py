"""The territory: 133 comuni, 7 zone omogenee + Milano, unioni di comuni.

Where things live:

* :mod:`.model` — :class:`Territory` (comuni, zones, unions, neighbours, name index),
  loaded once from ``data/boundaries`` and ``data/territory``;
* :mod:`.lookup` — **find my zone**: by name (forgiving), ISTAT or cadastral code,
  or a point in any supported CRS, one at a time or in batches;
* :mod:`.boundaries` — rebuilds ``data/boundaries/comuni.geojson`` from ISTAT/openpolis;
* :mod:`.collections` — the ``comuni``, ``zone-omogenee`` and ``unioni`` OGC collections.
"""

from geo.territory.model import (
    BOUNDARIES_FILE,
    NEIGHBOUR_MIN_SHARED_M,
    NEIGHBOUR_TOLERANCE_M,
    TERRITORY_DIR,
    Comune,
    Group,
    Territory,
    get_territory,
    load_territory,
    slug,
    to_metric,
)

__all__ = [
    "BOUNDARIES_FILE",
    "NEIGHBOUR_MIN_SHARED_M",
    "NEIGHBOUR_TOLERANCE_M",
    "TERRITORY_DIR",
    "Comune",
    "Group",
    "Territory",
    "get_territory",
    "load_territory",
    "slug",
    "to_metric",
]
