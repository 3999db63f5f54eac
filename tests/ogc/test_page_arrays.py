"""A page's features written as the JSON array of a response, each with its ``self`` link:
SQLite's pages write it in one pass from their rows (``SqliteGeojson.json_array``); it is
the array the service writes from the features' own texts, byte for byte, and the array
orjson writes of the features as objects."""

from __future__ import annotations

import orjson
import pytest
import shapely

from geo.ogc.registry import GeojsonPage
from geo.ogc.sql import RowsPage, SqliteGeojson

HREF = "https://gis.example/collections/x/items/"
LINK = ',"links":[{"rel":"self","type":"application/geo+json","href":'
HEAD = LINK + orjson.dumps(HREF).decode()[:-1]


def _spec(geometry: bool = True, kind: str | None = "MultiPoint") -> SqliteGeojson:
    # columns: id, kept properties' text, one member (a JSON object's text), stored
    # geometry text, WKB where that is NULL
    return SqliteGeojson(
        select=None,  # type: ignore[arg-type]  # not read by the writers
        members=(None,),
        geometry=geometry,
        geometry_type=kind,
        stored=True,
        kept=True,
    )


def _rows(ids: list[str]) -> list[tuple[object, ...]]:
    point = '{"type":"Point","coordinates":[9.1,45.4]}'
    line = '{"type":"LineString","coordinates":[[9.1,45.4],[9.2,45.5]]}'
    wkb = shapely.to_wkb(shapely.Point(9.25, 45.45))
    shapes = [
        ('{"x":1,"t":"a \\" b"}', None, point, None),  # kept text, stored Point: promoted
        (None, '{"y":"è","z":[1,2]}', None, wkb),  # members' text, WKB only
        ("{}", None, None, None),  # no properties, no geometry
        ('{"k":null}', None, line, None),  # stored, another type: as it is
    ]
    return [(fid, *shapes[k % len(shapes)]) for k, fid in enumerate(ids)]


def _expected(page: GeojsonPage) -> list[dict[str, object]]:
    out = []
    for fid, text in page.features:
        feature = orjson.loads(text)
        feature["links"] = [{"rel": "self", "type": "application/geo+json", "href": HREF + fid}]
        out.append(feature)
    return out


@pytest.mark.parametrize(
    "ids",
    [
        ["b-0000001", "b-0000002", "b-0000003", "b-0000004", "b-0000005"],
        ['q"1', "b\\2", "ü-3", "tab\t4"],  # ids JSON escapes: the general path
        [],
    ],
)
@pytest.mark.parametrize("geometry", [True, False])
def test_the_array_written_from_rows_is_the_array_of_the_features(ids, geometry):
    spec = _spec(geometry)
    rows = _rows(ids)
    page = RowsPage(spec, rows, None)
    written = page.json_array(HEAD)
    from_texts = GeojsonPage(spec.render(rows), None).json_array(HEAD)
    assert written == from_texts
    assert orjson.loads(written) == _expected(page)
    assert page.returned == len(ids) == len(page.features)
    if ids and geometry:
        first = orjson.loads(written)[0]["geometry"]
        assert first == {"type": "MultiPoint", "coordinates": [[9.1, 45.4]]}


def test_the_size_of_a_page_counts_its_texts_and_shapes_not_its_members():
    spec = _spec()
    rows = _rows(["a", "b", "c", "d"])
    size = spec.text_size(rows)
    texts = [r[1] for r in rows] + [r[3] for r in rows] + [r[4] for r in rows]
    assert size == sum(len(t) for t in texts if t)
    assert spec.text_size([]) == 0
