"""OGC API – Tiles: every collection as Mapbox Vector Tiles, so big layers stay fast on maps.

A tile is a bbox query to the collection's provider (pushed down to the store where the
provider does that), then array work with shapely: reprojection to the tile matrix set's CRS
(EPSG:3857, or none for CRS84), clipping to the tile plus a buffer of ``BUFFER`` tile units,
simplification to a fraction of a pixel, and the MVT encoding (``mapbox-vector-tile``,
coordinates quantised to ``EXTENT``). An empty tile is ``None`` (the API answers 204, as
the standard allows). Every tile's ETag is derived from the collection's data version and
the tile's address, so it is known before encoding, identical in every worker, and changes
only when the data does.

Tile matrix sets come from ``morecantile``: ``WebMercatorQuad``, the one web maps and GDAL's
MVT driver use, and ``WorldCRS84Quad``, the one GDAL's OGCAPI driver picks by default. That
driver (GDAL ≥ 3.7; Debian 12's 3.6.2 is built without its vector-tile code) computes the
tiles of each zoom level from the collection's extent, which is in CRS84, without
reprojecting it to the tile matrix set's CRS: in WebMercatorQuad it reads only zoom levels
0–2, in WorldCRS84Quad every level. Documents follow OGC API – Tiles 1.0 (20-057) and the
Tile Matrix Set and Tileset Metadata standard 2.0 (17-083r4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mapbox_vector_tile
import morecantile
import numpy as np
import orjson
import shapely

from geo.crs import CRS84, transformer_xy
from geo.errors import InvalidParameter, NotFound, quoted
from geo.ogc.registry import CollectionProvider, FeatureQuery

_T = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
_TMS = "http://www.opengis.net/spec/tms/2.0/conf/"
#: Conformance classes of OGC API – Tiles and TMS 2.0 implemented here and in api/routes/tiles.
CONFORMANCE: tuple[str, ...] = (
    _T + "core",
    _T + "tileset",
    _T + "tilesets-list",
    _T + "geodata-tilesets",
    _T + "mvt",
    _T + "oas30",
    _TMS + "tilematrixset",
    _TMS + "json-tilematrixset",
    _TMS + "tilesetmetadata",
    _TMS + "json-tilesetmetadata",
)

MVT = "application/vnd.mapbox-vector-tile"
#: Link relations of OGC API – Tiles.
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
REL_TILESET = "http://www.opengis.net/def/rel/ogc/1.0/tileset"

#: Tile matrix sets offered (ids as in the OGC registry); the first is the web maps' one.
TILE_MATRIX_SETS = ("WebMercatorQuad", "WorldCRS84Quad")
#: Zoom levels tiles are served for (tileMatrix), and listed in tileMatrixSetLimits.
MIN_ZOOM, MAX_ZOOM = 0, 22
#: Tile coordinate space and the buffer around a tile kept for seamless rendering.
EXTENT = 4096
BUFFER = 64
#: Simplification tolerance, in pixels of a 256-pixel tile (a quarter pixel: invisible).
SIMPLIFY_PX = 0.25
#: Most features a tile carries; beyond, the tile says so in its ``truncated`` layer.
MAX_FEATURES = 20_000


@lru_cache
def tile_matrix_set(tms_id: str) -> morecantile.TileMatrixSet:
    """The tile matrix set ``tms_id`` (404 when not offered)."""
    if tms_id not in TILE_MATRIX_SETS:
        offered = ", ".join(TILE_MATRIX_SETS)
        raise NotFound(
            f"no tile matrix set {tms_id!r}; offered: {offered}",
            it=f"nessuna griglia di tile (tile matrix set) {quoted(tms_id)}; disponibili: "
            + offered,
            parameter="tileMatrixSetId",
        )
    return morecantile.tms.get(tms_id)


def tile_matrix_set_document(tms_id: str) -> dict[str, Any]:
    """The TMS 2.0 JSON of ``tms_id`` (as morecantile models it), plus the TMS 1.0 names.

    GDAL up to 3.6 (Debian 12) reads only the 1.0 names (``identifier``, ``supportedCRS``,
    ``boundingBox`` corners, each matrix's ``identifier`` and ``topLeftCorner``); 2.0
    clients ignore members they do not know, so both read the same document.
    """
    tms = tile_matrix_set(tms_id)
    doc = tms.model_dump(exclude_none=True, mode="json")
    crs = str(doc["crs"])
    left, bottom, right, top = tms.xy_bbox
    doc["identifier"] = doc.get("id", tms_id)
    doc["supportedCRS"] = crs
    doc.setdefault("boundingBox", {"lowerLeft": [left, bottom], "upperRight": [right, top]})
    doc["boundingBox"].update(
        {"type": "BoundingBoxType", "crs": crs, "lowerCorner": [left, bottom],
         "upperCorner": [right, top]}
    )  # fmt: skip
    for m in doc["tileMatrices"]:
        m["identifier"] = m["id"]
        m["topLeftCorner"] = m["pointOfOrigin"]
    return doc


def tile_matrix_sets_list(url: Any) -> dict[str, Any]:
    """``/tileMatrixSets``: id, title, uri and links of each offered set."""
    out = []
    for tms_id in TILE_MATRIX_SETS:
        tms = tile_matrix_set(tms_id)
        href = url(f"/tileMatrixSets/{tms_id}")
        out.append(
            {
                "id": tms_id,
                "title": tms.title or tms_id,
                "uri": str(tms.uri),
                "links": [{"rel": "self", "type": "application/json", "href": href},
                          {"rel": REL_TILING_SCHEME, "type": "application/json", "href": href}],
            }
        )  # fmt: skip
    return {"tileMatrixSets": out, "links": [
        {"rel": "self", "type": "application/json", "href": url("/tileMatrixSets")}
    ]}  # fmt: skip


@dataclass(frozen=True)
class TileAddress:
    """A validated tile: tile matrix set, zoom (tileMatrix), row and column."""

    tms_id: str
    z: int
    row: int
    col: int

    @classmethod
    def parse(cls, tms_id: str, z: str, row: str, col: str) -> TileAddress:
        """Check the address: 400 for what is not a number, 404 outside the tile matrix.

        The column may end in ``.mvt`` or ``.pbf``: GDAL's MVT driver recognises a tile URL
        by that suffix (``ogrinfo /vsicurl/…/12/1465/2152.pbf -oo Z=12 -oo X=2152 -oo Y=1465``).
        """
        tms = tile_matrix_set(tms_id)
        for suffix in (".mvt", ".pbf"):
            col = col.removesuffix(suffix)
        values = []
        for name, raw in (("tileMatrix", z), ("tileRow", row), ("tileCol", col)):
            if not raw.isdigit() or len(raw) > 9:
                raise InvalidParameter(
                    name,
                    f"{name} must be a whole number ≥ 0, got {raw!r}",
                    it=f"serve un numero intero ≥ 0, non {quoted(raw)}",
                )
            values.append(int(raw))
        zi, ri, ci = values
        if not MIN_ZOOM <= zi <= _max_zoom(tms):
            raise NotFound(
                f"tileMatrix {zi} is not served; zoom levels {MIN_ZOOM}–{_max_zoom(tms)}",
                it=f"livello di zoom {zi} non disponibile; livelli serviti: da {MIN_ZOOM} a "
                f"{_max_zoom(tms)}",
                parameter="tileMatrix",
            )
        matrix = tms.matrix(zi)
        if ri >= matrix.matrixHeight or ci >= matrix.matrixWidth:
            raise NotFound(
                f"tile {zi}/{ri}/{ci} is outside the tile matrix ({matrix.matrixHeight} rows, "
                f"{matrix.matrixWidth} columns)",
                it=f"la tile {zi}/{ri}/{ci} è fuori dalla griglia del livello {zi} "
                f"({matrix.matrixHeight} righe, {matrix.matrixWidth} colonne)",
                parameter="tileRow" if ri >= matrix.matrixHeight else "tileCol",
            )
        return cls(tms_id, zi, ri, ci)


def tile_etag(version: str, t: TileAddress) -> str:
    """Strong ETag of a tile: the data version and the address, known before encoding."""
    key = f"{version}/{t.tms_id}/{t.z}/{t.row}/{t.col}".encode()
    return '"t' + hashlib.blake2b(key, digest_size=12).hexdigest() + '"'


def _max_zoom(tms: morecantile.TileMatrixSet) -> int:
    """The deepest tile matrix served in ``tms``."""
    return min(MAX_ZOOM, tms.maxzoom)


def _crs(tms: morecantile.TileMatrixSet) -> str:
    """The URI of the tile matrix set's CRS."""
    return str(tms.crs.root if hasattr(tms.crs, "root") else tms.crs)


def _limits(extent: tuple[float, float, float, float], tms: morecantile.TileMatrixSet) -> list:
    """tileMatrixSetLimits covering ``extent`` (CRS84) at every served zoom."""
    w, s, e, n = extent
    out = []
    for z in range(MIN_ZOOM, _max_zoom(tms) + 1):
        ul = tms.tile(max(w, -180.0), min(n, 85.0511), z)
        lr = tms.tile(min(e, 180.0), max(s, -85.0511), z)
        out.append(
            {"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y,
             "minTileCol": ul.x, "maxTileCol": lr.x}
        )  # fmt: skip
    return out


def tileset(p: CollectionProvider, tms_id: str, url: Any) -> dict[str, Any]:
    """The tileset metadata of one collection in one tile matrix set (TMS 2.0 JSON)."""
    tms = tile_matrix_set(tms_id)
    base = f"/collections/{p.id}/tiles/{tms_id}"
    template = url(base) + "/{tileMatrix}/{tileRow}/{tileCol}"
    return {
        "title": f"{p.title} ({tms_id})",
        "description": p.description,
        "dataType": "vector",
        "crs": _crs(tms),
        "tileMatrixSetURI": str(tms.uri),
        # The TMS document itself (the draft's name, which GDAL up to 3.6 reads).
        "tileMatrixSetDefinition": url(f"/tileMatrixSets/{tms_id}"),
        "tileMatrixSetLimits": _limits(p.extent(), tms),
        "layers": [
            {
                "id": p.id,
                "title": p.title,
                "dataType": "vector",
                "geometryDimension": _dimension(getattr(p, "geometry_type", None)),
                "minTileMatrix": str(MIN_ZOOM),
                "maxTileMatrix": str(_max_zoom(tms)),
            }
        ],
        "links": [
            {"rel": "self", "type": "application/json", "href": url(base)},
            {"rel": REL_TILING_SCHEME, "type": "application/json",
             "href": url(f"/tileMatrixSets/{tms_id}")},
            {"rel": "item", "type": MVT, "href": template, "templated": True},
            {"rel": "collection", "type": "application/json", "href": url(f"/collections/{p.id}")},
        ],
    }  # fmt: skip


def tilesets(p: CollectionProvider, url: Any) -> dict[str, Any]:
    """``/collections/{id}/tiles``: the collection's tilesets (one per tile matrix set)."""
    sets = []
    for tms_id in TILE_MATRIX_SETS:
        tms = tile_matrix_set(tms_id)
        href = url(f"/collections/{p.id}/tiles/{tms_id}")
        sets.append(
            {
                "title": f"{p.title} ({tms_id})",
                "dataType": "vector",
                "crs": _crs(tms),
                "tileMatrixSetURI": str(tms.uri),
                "links": [
                    {"rel": "self", "type": "application/json", "href": href},
                    {"rel": REL_TILESET, "type": "application/json", "href": href},
                    {"rel": REL_TILING_SCHEME, "type": "application/json",
                     "href": url(f"/tileMatrixSets/{tms_id}")},
                    {"rel": "item", "type": MVT,
                     "href": href + "/{tileMatrix}/{tileRow}/{tileCol}", "templated": True},
                ],
            }
        )  # fmt: skip
    self_href = url(f"/collections/{p.id}/tiles")
    return {"tilesets": sets, "links": [{"rel": "self", "type": "application/json",
                                          "href": self_href}]}  # fmt: skip


def _dimension(geometry_type: str | None) -> int | None:
    if not geometry_type:
        return None
    g = geometry_type.lower()
    return 0 if "point" in g else 1 if "line" in g else 2 if "polygon" in g else None


def _scalar(value: Any) -> Any:
    """A property value MVT can carry (lists joined, objects as JSON), or None to drop."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v is not None)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


async def prefetch_tile(p: CollectionProvider, t: TileAddress) -> bool:
    """On the event loop: what :func:`render_tile` will read, when the store encodes the
    tile (PostGIS, WebMercatorQuad) and can read it there (``prefetch_tile``); False
    otherwise (then a thread reads it)."""
    ahead = getattr(p, "prefetch_tile", None)
    if ahead is None or t.tms_id != "WebMercatorQuad" or not getattr(p, "tile_properties", ()):
        return False
    return bool(await ahead(t.z, t.col, t.row, extent=EXTENT, buffer=BUFFER, limit=MAX_FEATURES))


def render_tile(p: CollectionProvider, t: TileAddress, *, native: bool = True) -> bytes | None:
    """The MVT bytes of tile ``t`` of collection ``p``, or None when it holds no feature.

    One layer named after the collection; each feature keeps its properties (lists joined
    with ", ") plus ``id``, and an integer MVT id when its id is a number. A collection in
    PostGIS that declares ``tile_properties`` is encoded by the database (``ST_AsMVT``, on
    the spatial index), unless ``native`` is False; it then carries those properties only,
    on both paths, so the two encodings hold the same features and values. Coordinates are
    in the tile matrix set's CRS (the database encodes WebMercatorQuad only).
    """
    tile_properties = getattr(p, "tile_properties", ())
    mercator = t.tms_id == "WebMercatorQuad"
    if native and mercator and tile_properties and hasattr(p, "postgis_tile"):
        try:
            return p.postgis_tile(
                t.z, t.col, t.row, extent=EXTENT, buffer=BUFFER, limit=MAX_FEATURES
            )
        except NotImplementedError:  # the embedded store: the Python encoder below
            pass
    tms = tile_matrix_set(t.tms_id)
    tms_crs = _crs(tms)
    xy = tms.xy_bounds(t.col, t.row, t.z)
    width = xy.right - xy.left
    pad = width * BUFFER / EXTENT
    to_lonlat = transformer_xy(tms_crs, CRS84)
    lon0, lat0 = to_lonlat.transform(xy.left - pad, xy.bottom - pad)
    lon1, lat1 = to_lonlat.transform(xy.right + pad, xy.top + pad)
    # The buffer of an edge tile reaches past the world's edge in CRS84.
    lon0, lat0, lon1, lat1 = max(lon0, -180.0), max(lat0, -90.0), min(lon1, 180.0), min(lat1, 90.0)
    wanted = list(tile_properties) if tile_properties else None
    result = p.query(
        FeatureQuery(bbox=(lon0, lat0, lon1, lat1), limit=MAX_FEATURES, properties=wanted)
    )
    feats = [f for f in result.features if f.get("geometry") is not None]
    if not feats:
        return None
    geoms = np.array([f["geometry"] for f in feats], dtype=object)
    if tms_crs != CRS84:
        to_tms = transformer_xy(CRS84, tms_crs)
        geoms = shapely.transform(
            geoms, lambda c: np.column_stack(to_tms.transform(c[:, 0], c[:, 1]))
        )
    geoms = shapely.clip_by_rect(
        geoms, xy.left - pad, xy.bottom - pad, xy.right + pad, xy.top + pad
    )
    tolerance = width / 256 * SIMPLIFY_PX
    geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
    keep = ~(shapely.is_empty(geoms) | shapely.is_missing(geoms))
    if not keep.any():
        return None
    # To tile units in one vectorised pass (the encoder then only rounds and packs).
    scale = np.array([EXTENT / width, EXTENT / (xy.top - xy.bottom)])
    origin = np.array([xy.left, xy.bottom])
    geoms = _to_tile_grid(geoms, origin, scale)
    features = []
    for f, g in zip(np.asarray(feats, dtype=object)[keep], geoms[keep], strict=True):
        props = {
            k: v for k, v in ((k, _scalar(v)) for k, v in f["properties"].items()) if v is not None
        }
        fid = f.get("id")
        props["id"] = str(fid)
        feature: dict[str, Any] = {"geometry": g, "properties": props}
        if isinstance(fid, int) or (isinstance(fid, str) and fid.isdigit() and len(fid) < 19):
            feature["id"] = int(fid)
        features.append(feature)
    layers = [{"name": p.id, "features": features}]
    if result.number_matched > MAX_FEATURES:
        layers.append({"name": "truncated", "features": [{
            "geometry": shapely.Point(0, 0),
            "properties": {"matched": result.number_matched, "kept": MAX_FEATURES}}]})  # fmt: skip
    return mapbox_vector_tile.encode(layers, default_options=ENCODE_OPTIONS)


#: The encoder's options: polygons come oriented (:func:`_to_tile_grid`), so its own
#: per-feature winding check is left out.
ENCODE_OPTIONS = {"extents": EXTENT, "y_coord_down": False, "check_winding_order": False}


def _to_tile_grid(geoms: np.ndarray, origin: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Geometries in tile units, rounded to the grid and their polygons oriented as the
    encoder's winding check would leave them (exterior rings clockwise, y up), all at
    once: that check rebuilt each polygon in Python, ~40 % of a tile of 5,000 small parks
    (the same bytes: ``tests/ogc/test_tiles.py``)."""
    on_grid = shapely.transform(geoms, lambda c: np.round((c - origin) * scale))
    return shapely.orient_polygons(on_grid, exterior_cw=True)
