"""The strong ETag of one feature: a hash of what is served, whoever encoded it.

A feature by id is encoded by the store (PostgreSQL writes the JSON, ``ST_AsGeoJSON``)
while a write computes the ETag it answers from Python objects (GEOS writes the geometry):
both must give the same ETag, or the next ``If-Match`` fails for nothing.
"""

from __future__ import annotations

import shapely

from geo.ogc.encode import feature_text
from geo.ogc.http import feature_etag, text_etag

FEATURE = {
    "type": "Feature",
    "id": "7",
    "geometry": shapely.Polygon(
        [(9.504167, 45.601829), (9.504162, 45.601829), (9.504163, 45.60183)]
    ),
    "properties": {"nome": "Parco Nord", "valore": 1.5, "tags": ["a", "b"]},
}


def test_the_etag_is_the_hash_of_the_canonical_text():
    text = feature_text(FEATURE)
    assert text.startswith('{"type":"Feature","id":"7","geometry":{"type":"Polygon"')
    assert feature_etag(FEATURE) == text_etag(text)
    assert feature_etag(FEATURE, "EPSG:32632") == text_etag(text).rstrip('"') + '-EPSG:32632"'


def test_the_etag_ignores_how_the_numbers_and_members_were_written():
    """GEOS prints 9.504162 as ``9.504162000000001``; PostGIS prints ``9.504162``; a store
    may keep properties in its own order (JSONB)."""
    geos = (
        '{"type":"Feature","id":"7","geometry":{"type":"Polygon","coordinates":[[[9.504167,'
        "45.601829],[9.504162000000001,45.601829],[9.504163,45.60183],[9.504167,45.601829]]]},"
        '"properties":{"nome":"Parco Nord","valore":1.5,"tags":["a","b"]}}'
    )
    postgis = (
        '{"type":"Feature","id":"7","geometry":{"type":"Polygon","coordinates":[[[9.504167,'
        "45.601829],[9.504162,45.601829],[9.504163,45.60183],[9.504167,45.601829]]]},"
        '"properties":{"tags":["a","b"],"nome":"Parco Nord","valore":1.5}}'
    )
    assert text_etag(geos) == text_etag(postgis) == feature_etag(FEATURE)


def test_the_etag_changes_with_the_data():
    moved = {**FEATURE, "geometry": shapely.affinity.translate(FEATURE["geometry"], 1e-6)}
    renamed = {**FEATURE, "properties": {**FEATURE["properties"], "nome": "Parco Sud"}}
    other = {**FEATURE, "id": "8"}
    etags = {feature_etag(f) for f in (FEATURE, moved, renamed, other)}
    assert len(etags) == 4
    assert feature_etag({**FEATURE, "geometry": None}) != feature_etag(FEATURE)
