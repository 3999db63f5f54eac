"""The browser map application: ``GET /`` for browsers, its static files, its prints.

``/`` is shared with the OGC landing page: the application's route matches only requests
that prefer HTML and carry no ``f`` parameter (:class:`BrowserRoute`); any other request
falls through to the OGC landing route (``f=json``, a JSON ``Accept``, ``/?f=html``).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.routes.downloads import feature_query
from geo.crs import CRS84
from geo.errors import InvalidParameter, NotFound
from geo.maps import printing
from geo.ogc import negotiate
from geo.ogc import params as P
from geo.ogc.registry import FeatureQuery, registry
from geo.settings import get_settings
from geo.webapp import page, printview
from geo.webapp.i18n import lang_of, t
from geo.webapp.i18n import negotiate as negotiate_lang

LANG_COOKIE = "lang"


def wants_app(scope: Scope) -> bool:
    """A browser asking for ``/``: HTML preferred by Accept and no ``f`` parameter."""
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if any(k == "f" for k, _ in query):
        return False
    return negotiate(None, Headers(scope=scope).get("accept")) == "html"


class BrowserRoute(APIRoute):
    """A route that only matches browsers (see :func:`wants_app`); others fall through."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not wants_app(scope):
            return Match.NONE, {}
        return match, child


router = APIRouter(route_class=BrowserRoute)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def app_page(request: Request) -> HTMLResponse:
    """The map application, in the language asked for (``?lang=``, cookie, Accept-Language)."""
    chosen = lang_of(request.query_params.get("lang") or "")
    lang = negotiate_lang(
        request.headers.get("accept-language"),
        chosen or lang_of(request.cookies.get(LANG_COOKIE) or ""),
    )
    body = page.render_app(lang, request.app.state.settings.tiles_url)
    response = HTMLResponse(
        body,
        headers={
            "Cache-Control": "no-cache",
            "Content-Language": lang,
            "Vary": "Accept, Accept-Language, Cookie",
        },
    )
    if chosen:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


def static_files() -> StaticFiles:
    """The application's JS/CSS (mount at :data:`geo.webapp.page.STATIC_URL`)."""
    return StaticFiles(directory=page.STATIC_DIR)


# ----- print of the current view -------------------------------------------------------------

prints = APIRouter(tags=["maps"])
#: Parameters of a print besides the interventions' filters.
PRINT_PARAMETERS = frozenset({"bbox", "layers", "title", "lang", "filter", "filter-lang"})
MAX_PRINT_LAYERS = 12


def _view_box(text: str) -> tuple[float, float, float, float]:
    """The view's CRS84 ``minx,miny,maxx,maxy``: finite, ordered, on Earth."""
    try:
        nums = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidParameter("bbox", f"{text[:80]!r} is not a list of numbers") from None
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise InvalidParameter("bbox", "give 4 finite numbers: minx,miny,maxx,maxy (CRS84)")
    x0, y0, x1, y1 = nums
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise InvalidParameter("bbox", "minx < maxx and miny < maxy, in degrees (CRS84)")
    return x0, y0, x1, y1


@prints.get(
    "/app/print.{fmt}",
    summary="Print the application's view (bbox, visible layers) as PNG or PDF",
    description=(
        "`bbox` (CRS84 minx,miny,maxx,maxy), `layers` (comma-separated collection ids, as "
        "the layer tree shows them), `title`; the interventions' filters of the items API "
        "apply to the interventions drawn."
    ),
    responses={
        200: {"description": "The print", "content": {"image/png": {}, "application/pdf": {}}}
    },
)
def print_current_view(
    request: Request,
    fmt: str,
    bbox: Annotated[str, Query(description="minx,miny,maxx,maxy in CRS84")],
    layers: Annotated[str, Query(max_length=2000, description="Visible collections")] = "",
    title: Annotated[str, Query(max_length=200)] = "",
):
    if fmt not in printing.FORMATS:
        raise NotFound(f"no print format {fmt!r}; use png or pdf", parameter="fmt")
    box = _view_box(bbox)
    wanted = [x for x in dict.fromkeys(s.strip() for s in layers.split(",")) if x][
        :MAX_PRINT_LAYERS
    ]
    qp = request.query_params
    lang = negotiate_lang(request.headers.get("accept-language"), qp.get("lang"))
    limit = get_settings().max_features
    providers = {}
    for cid in wanted:
        if cid not in printview.TERRITORY:
            providers[cid] = registry.get(cid)  # refreshes the registry's uploaded layers
            if providers[cid] is None:
                raise NotFound(f"no collection {cid!r}", parameter="layers")
    # Colours as the layer tree gives them: by rank among the uploaded layers.
    uploaded = [i for i in registry.ids() if i not in (*printview.TERRITORY, "interventions")]
    overlays: dict[str, tuple[str, str, list]] = {}
    for cid, provider in providers.items():
        if cid == "interventions":
            query = feature_query(provider, qp, PRINT_PARAMETERS, limit)
            colour = printview.INTERVENTION_COLOUR
        else:
            query = FeatureQuery(limit=limit)
            rank = uploaded.index(cid) if cid in uploaded else 0
            colour = printview.LAYER_PALETTE[rank % len(printview.LAYER_PALETTE)]
        query.bbox = P.parse_bbox(bbox, CRS84)  # as the items API reads it
        known = t(lang, f"collection.{cid}")  # the territory's and interventions' own names
        name = known if known != f"collection.{cid}" else provider.title
        overlays[cid] = (name, colour, provider.query(query).features)
    subtitle = t(lang, "print.subtitle", date=date.today().strftime("%d/%m/%Y"))
    body = printview.print_view(
        box, wanted, overlays, title or t(lang, "print.default_title"), subtitle, fmt
    )
    return Response(
        body,
        media_type=printing.FORMATS[fmt],
        headers={"Content-Disposition": f'inline; filename="mappa.{fmt}"'},
    )
