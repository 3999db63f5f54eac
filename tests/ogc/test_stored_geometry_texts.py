"""The GeoJSON texts the embedded store keeps with its rows (migration 0010): promoted on
the text, they are the bytes the page would write from the WKB; where they could not be
(an empty geometry, one the rounding makes invalid), there is none, and the WKB is used."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo.ogc.encode import geometry_texts, promote_text, stored_geometry_texts
from geo.ogc.geometry import promote_to_multi

rng = np.random.default_rng(12)


def _shapes() -> list[object]:
    pts = rng.uniform([8.7, 45.1], [9.6, 45.7], size=(40, 2)) + rng.normal(0, 1e-9, (40, 2))
    out: list[object] = [shapely.Point(p) for p in pts[:10]]
    out.append(shapely.MultiPoint(pts[10:13]))
    out += [shapely.LineString(pts[k : k + 3]) for k in range(13, 19, 3)]
    out.append(shapely.MultiLineString([pts[20:23], pts[23:26]]))
    out += [shapely.Point(p).buffer(0.01 * (k + 1), 3) for k, p in enumerate(pts[26:32])]
    out.append(shapely.MultiPolygon([shapely.Point(p).buffer(0.002) for p in pts[32:35]]))
    return out


@pytest.mark.parametrize("kind", [None, "MultiPoint", "MultiLineString", "MultiPolygon"])
def test_a_stored_text_promoted_is_what_the_page_writes(kind):
    shapes = [
        g for g in _shapes() if kind is None or kind.endswith(g.geom_type.removeprefix("Multi"))
    ]
    stored = stored_geometry_texts(shapes)
    assert all(t is not None for t in stored)
    promoted, _ = promote_to_multi(shapes, kind)
    assert [promote_text(t, kind) for t in stored] == geometry_texts(promoted)  # type: ignore[arg-type]
    if kind is not None:
        assert all(promote_text(t, kind).startswith(f'{{"type":"{kind}"') for t in stored)  # type: ignore[arg-type]


def test_no_text_where_the_wkb_must_be_encoded():
    # A sliver whose rounding to 6 decimals collapses it: the page snaps it, no text is kept.
    sliver = shapely.Polygon([(9.0, 45.0), (9.0000001, 45.0000001), (9.0, 45.0000002)])
    assert not shapely.is_valid(shapely.transform(sliver, lambda xy: np.round(xy, 6)))
    bow = shapely.Polygon([(9, 45), (9.1, 45.1), (9.1, 45), (9, 45.1), (9, 45)])  # invalid
    got = stored_geometry_texts([None, shapely.Point(), sliver, bow, shapely.Point(9, 45)])
    assert got == [None, None, None, None, '{"type":"Point","coordinates":[9.0,45.0]}']


def test_promote_text_leaves_other_types_alone():
    text = '{"type":"Polygon","coordinates":[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]]}'
    assert promote_text(text, "MultiPoint") == text
    assert promote_text(text, "Polygon") == text
    assert promote_text(text, None) == text
    multi = promote_text(text, "MultiPolygon")
    assert shapely.from_geojson(multi).equals(shapely.MultiPolygon([shapely.from_geojson(text)]))
