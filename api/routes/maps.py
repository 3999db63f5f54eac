"""Map pages (Folium/Leaflet, offline) and printable PNG/PDF maps.

Thin layer: parse the path and query, call :mod:`geo.maps` / :mod:`geo.maps.printing`, cache
the rendered bytes per data version and answer with an ETag (304 on If-None-Match).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from api.security import maps_policy
from geo import maps
from geo.errors import InvalidParameter, NotFound
from geo.maps import printing
from geo.maps.style import safe_url
from geo.territory import get_territory

router = APIRouter(tags=["maps"])

#: Where scripts/fetch_assets.sh installs Leaflet and its plugins; served at VENDOR_URL.
VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "vendor"
VENDOR_URL = "/static/vendor"
CACHE_SIZE = 128
#: Stands for the CSP nonce in cached pages; each response swaps in the nonce of its ETag
#: (same length). Random per process, so page content cannot guess it.
NONCE_MARK = secrets.token_urlsafe(16)
_NONCE_KEY = secrets.token_bytes(32)


def _nonce(etag: str) -> str:
    """The CSP nonce of one representation: unguessable (keyed HMAC) and fixed per ETag, so
    equal ETags keep equal bytes; any change to the data or query gives a new ETag and a new
    nonce, so content stored or reflected in a page can never know its nonce in advance."""
    digest = hmac.new(_NONCE_KEY, etag.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


class VendorFiles(StaticFiles):
    """The vendored map assets; a missing folder answers 404 instead of failing the app."""

    def __init__(self) -> None:
        super().__init__(directory=VENDOR_DIR, check_dir=False)

    async def check_config(self) -> None:
        if VENDOR_DIR.is_dir():
            await super().check_config()


def vendor_files() -> VendorFiles:
    """ASGI app serving the vendored assets (mount at :data:`VENDOR_URL`)."""
    return VendorFiles()


class RenderCache:
    """In-process LRU of rendered bytes keyed by ETag."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get_or_build(self, etag: str, build: Callable[[], bytes]) -> bytes:
        """Cached bytes of ``etag``, building (once) when absent."""
        with self._lock:
            if etag in self._items:
                self._items.move_to_end(etag)
                return self._items[etag]
        body = build()
        with self._lock:
            self.builds += 1
            self._items[etag] = body
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return body

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


cache = RenderCache()


def _respond(
    request: Request, key: tuple[Any, ...], media_type: str, build: Callable[[], bytes | str]
) -> Response:
    """Answer from the cache with an ETag of (data version, key); 304 when it matches."""
    version = maps.data_version(layer_id=key[1] if key[0] == "layer" else None)
    etag = '"' + hashlib.sha256(repr((version, key)).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    inm = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)

    def _bytes() -> bytes:
        out = build()
        return out.encode("utf-8") if isinstance(out, str) else out

    body = cache.get_or_build(etag, _bytes)
    if media_type == _html_media():
        nonce = _nonce(etag)
        body = body.replace(NONCE_MARK.encode(), nonce.encode())
        headers["Content-Security-Policy"] = maps_policy(request.app.state.settings, nonce)
    if media_type in printing.FORMATS.values():
        ext = "png" if media_type == "image/png" else "pdf"
        headers["Content-Disposition"] = f'inline; filename="{"-".join(map(str, key))}.{ext}"'
    return Response(body, media_type=media_type, headers=headers)


def _split(name: str) -> tuple[str, str | None]:
    """``015146.png`` → (``015146``, ``png``); ``015146`` → (``015146``, None)."""
    stem, dot, ext = name.rpartition(".")
    if dot and ext in printing.FORMATS:
        return stem, ext
    return name, None


def _html_media() -> str:
    return "text/html; charset=utf-8"


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _interventions_table(features: list[dict[str, Any]]) -> str:
    """HTML table of interventions: title, programme, status, amount, source."""
    if not features:
        return "<h2>Interventi</h2><p>Nessun intervento registrato.</p>"
    rows = []
    for f in features:
        p = f.get("properties") or {}
        url = safe_url(p.get("source_url"))  # http(s) only: never a javascript: link
        link = f'<a href="{_esc(url)}" rel="noopener noreferrer">fonte</a>' if url else ""
        rows.append(
            "<tr>"
            f"<td>{_esc(p.get('title', f.get('id', '')))}</td>"
            f"<td>{_esc(p.get('programme') or '—')}</td>"
            f"<td>{_esc(p.get('status') or '—')}</td>"
            f"<td>{maps._amount(p)}</td>"
            f"<td>{link}</td></tr>"
        )
    return (
        f"<h2>Interventi ({len(features)})</h2>"
        '<table class="cmm-interventions"><tr><th>Titolo</th><th>Programma</th>'
        "<th>Stato</th><th>Importo</th><th>Fonte</th></tr>" + "".join(rows) + "</table>"
    )


def _nav(*links: tuple[str, str]) -> str:
    return " · ".join(f'<a href="{_esc(h)}">{_esc(t)}</a>' for t, h in links)


# ----- index -----------------------------------------------------------------------------


@router.get("/maps", response_class=HTMLResponse, summary="Index of the maps")
def maps_index(request: Request):
    def build() -> str:
        t = get_territory()
        zones = "".join(
            f'<li><a href="/maps/zone-omogenee/{z.id}">{_esc(z.name)}</a> '
            f'({len(z.comuni)} comuni) — <a href="/maps/zone-omogenee/{z.id}.png">PNG</a> · '
            f'<a href="/maps/zone-omogenee/{z.id}.pdf">PDF</a></li>'
            for z in t.zones.values()
        )
        comuni = "".join(
            f'<li><a href="/maps/comuni/{c.istat_code}">{_esc(c.name)}</a></li>'
            for c in sorted(t.comuni_list, key=lambda c: c.name)
        )
        layers = "".join(
            f'<li><a href="/maps/layers/{_esc(lid)}">{_esc(title)}</a></li>'
            for lid, title in maps.available_layers()
        )
        interventions = (
            '<li><a href="/maps/interventions">Interventi del piano strategico</a> '
            '(<a href="/maps/interventions?colour_by=mission">per missione</a>)</li>'
            if maps.interventions_available()
            else ""
        )
        return f"""<!DOCTYPE html>
<html lang="it"><head><meta charset="utf-8"><title>Mappe — Città metropolitana di Milano</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;margin:1em 2em;max-width:60em}}
ul.cols{{columns:4;font-size:14px}}</style></head><body>
<h1>Mappe della Città metropolitana di Milano</h1>
<ul>
<li><a href="/maps/territory">Il territorio: comuni per zona omogenea e unioni</a> —
<a href="/maps/territory.png">PNG</a> · <a href="/maps/territory.pdf">PDF</a></li>
{interventions}
</ul>
<h2>Zone omogenee</h2><ul>{zones}</ul>
{"<h2>Layer della rete verde</h2><ul>" + layers + "</ul>" if layers else ""}
<h2>Comuni ({len(t.comuni_list)})</h2><ul class="cols">{comuni}</ul>
<p><small>{_esc(maps.BOUNDARIES_ATTRIBUTION)}. API: <a href="/docs">/docs</a></small></p>
</body></html>"""

    return _respond(request, ("index",), _html_media(), build)


# ----- territory ---------------------------------------------------------------------------


@router.get("/maps/territory", response_class=HTMLResponse, summary="Map of the territory")
def territory_page(request: Request):
    def build() -> str:
        m = maps.territory_map()
        return maps.render_page(m, title="Territorio — Città metropolitana di Milano",
                                local_assets=VENDOR_URL, nonce=NONCE_MARK)  # fmt: skip

    return _respond(request, ("territory",), _html_media(), build)


@router.get("/maps/territory.{fmt}", summary="Printable map of the territory (png or pdf)")
def territory_print(request: Request, fmt: str):
    if fmt not in printing.FORMATS:
        raise NotFound(f"no print format {fmt!r}; use png or pdf", parameter="fmt")
    return _respond(request, ("territory", fmt), printing.FORMATS[fmt],
                    lambda: printing.print_territory(fmt))  # fmt: skip


# ----- comune ------------------------------------------------------------------------------


@router.get("/maps/comuni/{name}", summary="A comune's map page, or its print (.png/.pdf)")
def comune_page(request: Request, name: str):
    code, fmt = _split(name)
    t = get_territory()
    if code not in t.comuni:  # a name (any spelling) or a cadastral code: go to its code
        from geo.territory.lookup import find_comune

        found = find_comune(code)["comune"]["istat_code"]  # NotFound with suggestions
        return RedirectResponse(f"/maps/comuni/{found}" + (f".{fmt}" if fmt else ""), 308)
    if fmt is not None:
        return _respond(request, ("comune", code, fmt), printing.FORMATS[fmt],
                        lambda: printing.print_comune(code, fmt))  # fmt: skip

    def build() -> str:
        c = t.comuni[code]
        zone = t.zones[c.zona_id]
        union = t.unione_of(c)
        feats = maps.fetch_interventions({"comune": code})
        m = maps.comune_map(code, interventions=feats)
        nb = ", ".join(
            f'<a href="/maps/comuni/{n}">{_esc(t.comuni[n].name)}</a>' for n in t.neighbours[code]
        )
        before = (
            f"<h1>{_esc(c.name)}</h1><p>ISTAT {code} · zona omogenea "
            f'<a href="/maps/zone-omogenee/{zone.id}">{_esc(zone.name)}</a>'
            + (f" · {_esc(union.name)}" if union else "")
            + f" · {maps._fmt_int(c.population)} abitanti · {c.area_km2:.2f} km²</p>"
        )
        after = (
            f"<p>Confinanti: {nb}</p>"
            + (_interventions_table(feats) if feats is not None else "")
            + "<p>"
            + _nav(
                ("Tutte le mappe", "/maps"),
                ("API: comune", f"/comuni/{code}"),
                ("API: zona", f"/zone-omogenee/{zone.id}"),
                *([("API: unione", f"/unioni/{union.id}")] if union else []),
                *(
                    [("API: interventi", f"/collections/interventions/items?comune={code}")]
                    if feats is not None
                    else []
                ),
                ("Stampa PNG", f"/maps/comuni/{code}.png"),
                ("Stampa PDF", f"/maps/comuni/{code}.pdf"),
            )
            + f"</p><p><small>{_esc(maps.BOUNDARIES_ATTRIBUTION)}</small></p>"
        )
        return maps.render_page(m, title=f"{c.name} — mappa", before=before, after=after,
                                local_assets=VENDOR_URL, nonce=NONCE_MARK)  # fmt: skip

    return _respond(request, ("comune", code), _html_media(), build)


# ----- zone --------------------------------------------------------------------------------


@router.get("/maps/zone-omogenee/{name}", summary="A zona omogenea's map page, or its print")
def zone_page(request: Request, name: str):
    zid, fmt = _split(name)
    t = get_territory()
    if zid not in t.zones:
        raise NotFound(
            f"no zona omogenea {zid!r}; known: {', '.join(t.zones)}", parameter="zona_id"
        )
    if fmt is not None:
        return _respond(request, ("zona", zid, fmt), printing.FORMATS[fmt],
                        lambda: printing.print_zone(zid, fmt))  # fmt: skip

    def build() -> str:
        zone = t.zones[zid]
        feats = maps.fetch_interventions({"zona": zid})
        m = maps.zone_map(zid, interventions=feats)
        comuni = ", ".join(
            f'<a href="/maps/comuni/{c}">{_esc(t.comuni[c].name)}</a>' for c in zone.comuni
        )
        before = (
            f"<h1>Zona omogenea {_esc(zone.name)}</h1><p>{len(zone.comuni)} comuni · "
            f"{maps._fmt_int(zone.population)} abitanti · {zone.area_km2:.1f} km²</p>"
        )
        after = (
            f"<p>Comuni: {comuni}</p>"
            + (_interventions_table(feats) if feats is not None else "")
            + "<p>"
            + _nav(
                ("Tutte le mappe", "/maps"),
                ("API: zona", f"/zone-omogenee/{zid}"),
                ("Stampa PNG", f"/maps/zone-omogenee/{zid}.png"),
                ("Stampa PDF", f"/maps/zone-omogenee/{zid}.pdf"),
            )
            + f"</p><p><small>{_esc(maps.BOUNDARIES_ATTRIBUTION)}</small></p>"
        )
        return maps.render_page(m, title=f"Zona {zone.name} — mappa", before=before, after=after,
                                local_assets=VENDOR_URL, nonce=NONCE_MARK)  # fmt: skip

    return _respond(request, ("zona", zid), _html_media(), build)


# ----- interventions -------------------------------------------------------------------------


@router.get("/maps/interventions", response_class=HTMLResponse, summary="Map of interventions")
def interventions_page(
    request: Request,
    programme: str | None = Query(None),
    mission: str | None = Query(None),
    driver: str | None = Query(None),
    status: str | None = Query(None),
    comune: str | None = Query(None),
    zona: str | None = Query(None),
    unione: str | None = Query(None),
    source: str | None = Query(None, description="documented, pnrr, …"),
    colour_by: str = Query("programme", pattern="^(programme|mission)$"),
):
    if not maps.interventions_available():
        raise NotFound("the interventions are not available on this service")
    filters = {
        k: v
        for k, v in {
            "programme": programme, "mission": mission, "driver": driver, "status": status,
            "comune": comune, "zona": zona, "unione": unione, "source": source,
        }.items()
        if v not in (None, "")
    }  # fmt: skip

    def build() -> str:
        try:
            feats = maps.fetch_interventions(filters, optional=False) or []
        except ValueError as exc:
            raise InvalidParameter("filter", str(exc)) from exc
        m = maps.interventions_map(feats, colour_by=colour_by)
        shown = ", ".join(f"{k}={v}" for k, v in filters.items()) or "tutti"
        before = (
            f"<h1>Interventi del piano strategico</h1><p>Filtri: {_esc(shown)} · "
            f'<span class="cmm-count">{len(feats)}</span> interventi · '
            + _nav(("Tutte le mappe", "/maps"), ("API", "/collections/interventions/items"))
            + "</p>"
        )
        return maps.render_page(
            m,
            title="Interventi — mappa",
            before=before,
            after=_interventions_table(feats),
            local_assets=VENDOR_URL,
            nonce=NONCE_MARK,
        )

    key = ("interventions", colour_by, tuple(sorted(filters.items())))
    return _respond(request, key, _html_media(), build)


# ----- layers --------------------------------------------------------------------------------


@router.get("/maps/layers/{layer_id}", response_class=HTMLResponse, summary="A green layer map")
def layer_page(request: Request, layer_id: str):
    if layer_id not in dict(maps.available_layers()):
        raise NotFound(f"no layer {layer_id!r}", parameter="layer_id")

    def build() -> str:
        m, title = maps.layer_map(layer_id)
        before = (
            f"<h1>{_esc(title)}</h1><p>"
            + _nav(("Tutte le mappe", "/maps"), ("API", f"/collections/{layer_id}"))
            + "</p>"
        )
        return maps.render_page(m, title=f"{title} — mappa", before=before,
                                local_assets=VENDOR_URL, nonce=NONCE_MARK)  # fmt: skip

    return _respond(request, ("layer", layer_id), _html_media(), build)
