"""``geo.ogc.http.OgcRequest.url``: the links of a page, each the request's query with a
few parameters changed, encoded as ``urllib.parse.urlencode`` encodes them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from geo.ogc.http import OgcRequest

QUERIES = [
    [],
    [("f", "json"), ("limit", "10")],
    [("a", "1"), ("f", "json"), ("a", "x y")],  # repeated: the last value, first place
    [("filter", "amount_eur > 5 AND title LIKE 'Città%' OR x = 'a&b=c'"), ("f", "html")],
    [("bbox-crs", "http://www.opengis.net/def/crs/EPSG/0/3003"), ("bbox", "1,2,3,4")],
    [("filter", "é" * 200), ("lang", "en")],  # long values are not remembered
]
CHANGES = [
    {},
    {"f": "html"},
    {"offset": 100, "limit": 10, "f": "json"},
    {"a": None, "filter": None},
    {"bbox_crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "filter_lang": "cql2-text"},
]


def _expected(query: list[tuple[str, str]], changes: dict[str, object]) -> str:
    params = dict(query)
    for k, v in changes.items():
        key = k.replace("_", "-") if k in ("bbox_crs", "filter_lang", "filter_crs") else k
        if v is None:
            params.pop(key, None)
        else:
            params[key] = str(v)
    return "https://gis.example/api/p" + ("?" + urlencode(params) if params else "")


@pytest.mark.parametrize("query", QUERIES)
def test_each_link_is_the_query_changed_and_encoded(query: list[tuple[str, str]]) -> None:
    req = OgcRequest("https://gis.example/api", "/p", query)
    for _ in range(2):  # the encoded query is reused: the second round answers alike
        for changes in CHANGES:
            url = req.url(**changes)
            assert url == _expected(query, changes)
            decoded = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
            assert decoded == {
                k: v for k, v in _expected_pairs(query, changes).items() if v is not None
            }


def _expected_pairs(query: list[tuple[str, str]], changes: dict[str, object]) -> dict:
    params: dict[str, object] = dict(query)
    for k, v in changes.items():
        key = k.replace("_", "-") if k in ("bbox_crs", "filter_lang", "filter_crs") else k
        params[key] = None if v is None else str(v)
    return params


def test_a_new_query_is_encoded_anew() -> None:
    """Replacing the query list (never done by the service, but a dataclass allows it)
    is not answered from the old encoding."""
    req = OgcRequest("http://h", "/p", [("f", "json")])
    assert req.url(limit=5) == "http://h/p?f=json&limit=5"
    req.query = [("f", "html")]
    assert req.url(limit=5) == "http://h/p?f=html&limit=5"


def test_another_path_keeps_only_the_changes() -> None:
    req = OgcRequest("http://h", "/p", [("f", "json"), ("filter", "x > 1")])
    assert req.url("/collections") == "http://h/collections"
    assert req.url("/collections", f="html") == "http://h/collections?f=html"


def test_the_store_encoded_features_get_their_links_in_one_string() -> None:
    """``OgcService._encoded_features``: the array of features the store encoded, each
    with its ``self`` link, byte for byte what orjson writes of one fragment per feature
    (ids and base URLs that JSON must escape included)."""
    import orjson

    from geo.ogc.registry import GeojsonPage
    from geo.ogc.service import GEOJSON, OgcService

    class Provider:
        id = "x/y"

    feats = [
        ('a"b', '{"type":"Feature","id":"a\\"b","geometry":null,"properties":{}}'),
        ("c\\d\n", '{"type":"Feature","id":"c\\\\d\\n","geometry":null,"properties":{"k":"é"}}'),
        ("e", '{"type":"Feature","id":"e","geometry":null,"properties":{}}'),
    ]
    req = OgcRequest('http://h/città"', "/collections/x/items", [("f", "json")])
    service = OgcService.__new__(OgcService)
    prefix = req.url("/collections/x/y/items/")
    head = ',"links":[{"rel":"self","type":"' + GEOJSON + '","href":'
    one_by_one = [
        orjson.Fragment(f"{text[:-1]}{head}{orjson.dumps(prefix + fid).decode()}}}]}}")
        for fid, text in feats
    ]
    got = orjson.dumps(service._encoded_features(req, Provider, GeojsonPage(feats, None)))  # type: ignore[arg-type]
    assert got == orjson.dumps(one_by_one)
    links = [f["links"][0]["href"] for f in orjson.loads(got)]
    assert links == [prefix + fid for fid, _ in feats]
    assert orjson.dumps(service._encoded_features(req, Provider, GeojsonPage([], None))) == b"[]"  # type: ignore[arg-type]
    # Ids JSON writes as they are (the usual ones) take the short way: the same bytes.
    plain = [(fid, text) for fid, text in feats if fid == "e"] + [
        ("b-0000001", '{"type":"Feature","id":"b-0000001","geometry":null,"properties":{}}'),
        ("7", '{"type":"Feature","id":"7","geometry":null,"properties":{}}'),
    ]
    expected = [
        orjson.Fragment(f"{text[:-1]}{head}{orjson.dumps(prefix + fid).decode()}}}]}}")
        for fid, text in plain
    ]
    got = orjson.dumps(service._encoded_features(req, Provider, GeojsonPage(plain, None)))  # type: ignore[arg-type]
    assert got == orjson.dumps(expected)
    # One id with a control character, a quote or a backslash sends the page the long way.
    for odd in ("x\x7fy\x01", 'q"', "s\\"):
        mixed = [*plain, (odd, '{"type":"Feature","id":0,"geometry":null,"properties":{}}')]
        hrefs = [
            f["links"][0]["href"]
            for f in orjson.loads(
                orjson.dumps(
                    service._encoded_features(req, Provider, GeojsonPage(mixed, None))  # type: ignore[arg-type]
                )
            )
        ]
        assert hrefs == [prefix + fid for fid, _ in mixed], odd
