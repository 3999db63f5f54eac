"""The ASGI application: ``api.main:app``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from api.errors import install_error_handlers
from api.responses import JSONResponse
from api.routes import lookup, territory
from geo import BOUNDARIES_ATTRIBUTION, __version__
from geo.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; routers are attached per capability."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Web GIS della Città metropolitana di Milano",
        version=__version__,
        description=(
            "The 133 comuni of the Città metropolitana di Milano, their zone omogenee and "
            "unions of comuni, the strategic plan's interventions and green-network layers. "
            f"{BOUNDARIES_ATTRIBUTION}."
        ),
        default_response_class=JSONResponse,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Content-Crs", "Link"],
        )
    app.add_middleware(GZipMiddleware, minimum_size=1024)

    app.include_router(territory.router)
    app.include_router(lookup.router)
    # Routers of further capabilities: one line each, below this marker.
    from api.routes import interventions as iv_routes  # interventions, imports, stats
    from api.routes import plan as plan_routes  # plan catalogue as JSON

    app.include_router(iv_routes.router)
    app.include_router(plan_routes.router)
    from api.routes import maps as map_routes  # maps: pages, prints, vendored Leaflet

    app.include_router(map_routes.router)
    app.mount(map_routes.VENDOR_URL, map_routes.vendor_files(), name="vendor")
    from api.routes import ogc as ogc_routes  # OGC API – Features + response cache

    ogc_routes.install(app, settings)
    from api.routes import layers as layer_routes  # green-network layers (issue 5)

    app.include_router(layer_routes.router)

    @app.get("/", tags=["service"], summary="What this service is")
    async def root():
        return {
            "title": app.title,
            "description": app.description,
            "attribution": BOUNDARIES_ATTRIBUTION,
            "links": [
                {"rel": "service-doc", "href": "/docs"},
                {"rel": "service-desc", "href": "/openapi.json"},
                {"rel": "data", "href": "/comuni"},
                {"rel": "data", "href": "/zone-omogenee"},
                {"rel": "data", "href": "/unioni"},
                {"rel": "lookup", "href": "/lookup?q=Milano"},
            ],
        }

    return app


app = create_app()
