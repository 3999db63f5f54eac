"""The ASGI application: ``api.main:app``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

import api.routes.accounts as accounts  # sign-in, users
import api.routes.editing as editing  # edit forms, history, upload
import api.routes.layer_items as layer_items  # Part 4 writes of uploaded layers' features
import api.routes.tiles as tiles  # OGC API – Tiles (vector tiles)
from api import openapi_docs
from api.errors import install_error_handlers
from api.ogc_cache import FrontDoor
from api.ogc_lane import FeaturesLane
from api.page_language import PageLanguageMiddleware
from api.responses import JSONResponse
from api.routes import app as webapp
from api.routes import downloads, interventions, layers, lookup, maps, ogc, plan, suggest, territory
from api.security import SecurityMiddleware
from geo import BOUNDARIES_ATTRIBUTION, __version__
from geo.settings import Settings, get_settings
from geo.territory import nearest

log = logging.getLogger("cmm_geo")


def _prepare_store() -> None:
    """What the store needs once per process — the documented interventions seeded, the
    comuni mirrored — done before the first request: done lazily, it ran inside requests
    that hold a pooled connection, and under a burst of first requests every connection
    was held by a request waiting for the one doing it, which needed one more."""
    from geo.interventions.store import get_store
    from geo.store import unavailable
    from geo.territory.mirror import ensure_mirror

    try:
        ensure_mirror(get_store())
    except Exception as exc:  # the database is down: the requests will say so (503)
        if unavailable(exc) is None:
            raise
        log.warning("store not prepared at start-up: %s", unavailable(exc))


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_prepare_store)
    # What start-up built (the territory, the routes, the store's metadata) lives as long
    # as the process: out of the collector's sight, a full collection no longer walks it.
    gc.collect()
    gc.freeze()
    yield
    from geo.store.aio import close_loop_readers

    await close_loop_readers()


class App(FastAPI):
    """FastAPI with a front door (``api.ogc_cache.FrontDoor``): a cache hit of the
    territory is answered before the middleware stack, with the headers it would add."""

    _front: FrontDoor | None = None
    _front_of: Any = None  # the built middleware stack the door was found in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stack = self.middleware_stack  # built by the first request
        if stack is not None and scope["type"] == "http":
            if self._front_of is not stack:
                self._front, self._front_of = FrontDoor.of(stack), stack
            if self._front is not None:
                scope["app"] = self  # as Starlette sets it (the lane reads the app's state)
                if self.root_path:
                    scope["root_path"] = self.root_path
                if await self._front.answered(scope, send):
                    return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; routers are attached per capability."""
    settings = settings or get_settings()
    app = App(
        title="Web GIS della Città metropolitana di Milano",
        version=__version__,
        description=(
            "The 133 comuni of the Città metropolitana di Milano, their zone omogenee and "
            "unions of comuni, the strategic plan's interventions and green-network layers. "
            f"{BOUNDARIES_ATTRIBUTION}."
        ),
        default_response_class=JSONResponse,
        openapi_url="/openapi.json",
        docs_url=None,  # served by api.openapi_docs with the self-hosted Swagger UI
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    nearest.warm_in_background()  # the batch lookups' index of outlines, off the start-up path
    install_error_handlers(app)
    # Innermost: items pages and features in one threadpool hop (declines all else).
    app.add_middleware(FeaturesLane)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Content-Crs", "Link"],
        )
    # Level 4, not Starlette's 9: on GeoJSON and CSV it compresses ~3× faster for ~4 % more
    # bytes (the response cache keeps its own copies gzipped once, at level 6).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=4)

    # One router per capability; the OGC routes also put the response cache in front.
    app.include_router(territory.router)
    app.include_router(suggest.router)  # /lookup/suggest
    app.include_router(lookup.router)
    app.include_router(interventions.router)
    app.include_router(layer_items.router)  # after the interventions' own paths
    app.include_router(plan.router)
    app.include_router(layers.router)
    app.include_router(maps.router)
    app.mount(maps.VENDOR_URL, maps.vendor_files(), name="vendor")
    # The browser application: "/" for browsers (before the OGC landing page), its files.
    app.include_router(webapp.router)
    app.include_router(webapp.prints)
    app.include_router(downloads.router)
    app.include_router(tiles.router)
    app.mount(webapp.page.STATIC_URL, webapp.static_files(), name="app-static")
    app.include_router(accounts.router)  # sign-in, session, users (/app/login, /app/users)
    app.include_router(editing.router)  # intervention forms, history, layer upload (/app/…)
    ogc.install(app, settings)  # "/" is the OGC landing page
    # Outside the OGC response cache: ?lang= / the lang cookie become Accept-Language.
    app.add_middleware(PageLanguageMiddleware)
    openapi_docs.install(app)  # real response schemas and every status code
    # Outermost: headers on every response, 414 before routing.
    app.add_middleware(SecurityMiddleware, settings=settings)

    return app


app = create_app()
