"""The browser map application served at ``/``: domain-free page, strings and exports.

Where things live:

* :mod:`.i18n` — the UI strings (Italian default, English), language negotiation;
* :mod:`.page` — the server-rendered page (``templates/app.html``) around the ES modules
  in ``static/`` (served at ``/app/static/``) that read the service's own OGC API,
  ``/lookup`` and ``/stats``;
* :mod:`.export` — a collection's features as GeoJSON, CSV or GeoPackage (downloads);
* :mod:`.printview` — a PNG/PDF print of the current view (bbox and layers), drawn with
  the furniture of :mod:`geo.maps.printing`.
"""
