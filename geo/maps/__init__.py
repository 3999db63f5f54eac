"""Maps: Folium pages for the territory, a comune, a zone, interventions and layers; prints.

Where things live:

* :mod:`.pages` — the Folium maps (territory, comune, zone, interventions, layer choropleth);
* :mod:`.style` — palettes, colours, number formats, legend and map furniture;
* :mod:`.data` — what the maps show, read from the OGC collections;
* :mod:`.assets` — self-hosted Leaflet and the HTML page around a map;
* :mod:`.printing` — PNG/PDF prints with title, legend, scale bar, north arrow.
"""

from geo import BOUNDARIES_ATTRIBUTION
from geo.maps.assets import (
    LOCAL_ASSETS,
    UNUSED_ASSETS,
    render_page,
    use_local_assets,
)
from geo.maps.data import (
    LAYER_METRIC,
    NON_LAYER_COLLECTIONS,
    available_layers,
    data_version,
    fetch_interventions,
    interventions_available,
)
from geo.maps.pages import (
    add_interventions,
    base_map,
    choropleth_map,
    comune_map,
    comune_properties,
    comuni_collection,
    intervention_popup,
    interventions_map,
    layer_map,
    territory_map,
    zone_map,
)
from geo.maps.style import (
    CATEGORY_PALETTE,
    CHOROPLETH_PALETTE,
    COORD_DECIMALS,
    MAX_ZOOM,
    MIN_ZOOM,
    NO_DATA_COLOUR,
    OSM_ATTRIBUTION,
    UNION_COLOUR,
    ZONE_PALETTE,
    _amount,
    _fmt_int,
    category_colours,
    category_label,
    choropleth_breaks,
    known_categories,
    light_geometry,
    zone_colours,
)


def __getattr__(name: str) -> object:
    """``Legend``, ``Attribution``, ``BindFeaturePopups`` (branca): imported on first use."""
    if name in ("Attribution", "BindFeaturePopups", "Legend"):
        from geo.maps import elements

        return getattr(elements, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BOUNDARIES_ATTRIBUTION",
    "CATEGORY_PALETTE",
    "CHOROPLETH_PALETTE",
    "COORD_DECIMALS",
    "LAYER_METRIC",
    "LOCAL_ASSETS",
    "MAX_ZOOM",
    "MIN_ZOOM",
    "NON_LAYER_COLLECTIONS",
    "NO_DATA_COLOUR",
    "OSM_ATTRIBUTION",
    "UNION_COLOUR",
    "UNUSED_ASSETS",
    "ZONE_PALETTE",
    "Attribution",
    "BindFeaturePopups",
    "Legend",
    "_amount",
    "_fmt_int",
    "add_interventions",
    "available_layers",
    "base_map",
    "category_colours",
    "category_label",
    "choropleth_breaks",
    "choropleth_map",
    "comune_map",
    "comune_properties",
    "comuni_collection",
    "data_version",
    "fetch_interventions",
    "intervention_popup",
    "interventions_available",
    "interventions_map",
    "known_categories",
    "layer_map",
    "light_geometry",
    "render_page",
    "territory_map",
    "use_local_assets",
    "zone_colours",
    "zone_map",
]
