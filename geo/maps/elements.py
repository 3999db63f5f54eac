"""Map furniture as branca elements: the legend, the boundaries' attribution, per-marker popups.

Apart from :mod:`.style` because branca (folium's templating) is imported with it: only
when a Folium map is drawn (:mod:`.pages` reads these through :func:`geo.lazy.lazy_module`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from branca.element import MacroElement
from jinja2 import Template

if TYPE_CHECKING:
    import folium


class Legend(MacroElement):
    """A legend as a Leaflet control: a title and rows of (colour, label, kind)."""

    _template = Template(
        """
{% macro header(this, kwargs) %}
<style>
.cmm-legend { background: rgba(255,255,255,.92); padding: 6px 10px; font: 12px/1.4 sans-serif;
  max-height: 45vh; overflow-y: auto; border-radius: 4px; }
.cmm-legend h4 { margin: 0 0 4px; font-size: 13px; }
.cmm-legend i { display: inline-block; width: 14px; height: 14px; margin-right: 6px;
  vertical-align: -2px; }
.cmm-legend i.line { height: 0; border-top: 3px dashed; background: none !important;
  vertical-align: 3px; }
.cmm-legend i.dot { border-radius: 50%; }
path.leaflet-interactive:focus { outline: none; }
</style>
{% endmacro %}
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
{{ this.get_name() }}.onAdd = function () {
    var div = L.DomUtil.create("div", "cmm-legend leaflet-bar");
    div.innerHTML = {{ this.html|tojson }};
    L.DomEvent.disableClickPropagation(div);
    return div;
};
{{ this.get_name() }}.addTo({{ this._parent.get_name() }});
{% endmacro %}
"""
    )

    def __init__(
        self,
        title: str,
        items: Sequence[tuple[str, str, str]],
        position: str = "bottomright",
    ) -> None:
        super().__init__()
        self._name = "Legend"
        self.position = position
        rows = "".join(
            f'<div><i class="{html.escape(kind)}" style="background:{html.escape(colour)};'
            f'border-color:{html.escape(colour)}"></i>{html.escape(label)}</div>'
            for colour, label, kind in items
        )
        self.html = f"<h4>{html.escape(title)}</h4>{rows}"


class Attribution(MacroElement):
    """Adds a text to the map's attribution control (boundaries' licence)."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});
{% endmacro %}
"""
    )

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Attribution"
        self.text = text


class BindFeaturePopups(MacroElement):
    """Binds each feature's ``popup`` (HTML) and ``category`` (tooltip) to its own marker.

    ``popup`` is HTML built with every value escaped (:func:`intervention_popup`); the
    ``category`` is user text, so the tooltip shows it with ``textContent``.

    Needed for GeoJson points inside a MarkerCluster: the cluster adds the markers, not
    the GeoJson group, so a popup bound to the group would never open.
    """

    _template = Template(
        """
{% macro script(this, kwargs) %}
{{ this.layer.get_name() }}.eachLayer(function (l) {
    l.bindPopup(l.feature.properties.popup, {maxWidth: 320});
    var tip = document.createElement("span");
    tip.textContent = l.feature.properties.category;
    l.bindTooltip(tip);
});
{% endmacro %}
"""
    )

    def __init__(self, layer: folium.GeoJson) -> None:
        super().__init__()
        self._name = "BindFeaturePopups"
        self.layer = layer
