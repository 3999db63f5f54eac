"""Errors raised by the domain (geo.errors) speak the reader's language, by the rule of the
validation errors (api.errors): JSON in English unless a language is asked (``?lang=``,
Accept-Language), HTML pages Italian by default, ``lang=en`` English. The Italian is
written where the error is raised (``it=``), never recovered from the English, which
stays as it was; every value given is escaped on the page."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geo.errors import InvalidParameter, NotFound, quoted

ITEMS = "/collections/interventions/items"
IT = {"Accept-Language": "it-IT,it;q=0.9"}
HOSTILE = "<script>alert(1)</script>"

#: (URL, status, parameter, English description start, Italian description start): the
#: interventions live in the store, so these run on both backends.
STORE_CASES = [
    (f"{ITEMS}?bbox=1,2,3", 400, "bbox",
     "bbox: give 4 (or 6) finite numbers: minx,miny,maxx,maxy",
     "bbox: servono 4 o 6 numeri separati da virgole (minx,miny,maxx,maxy), ricevuti 3"),
    (f"{ITEMS}?bbox=9.1,45.4,abc,45.5", 400, "bbox",
     "bbox: '9.1,45.4,abc,45.5' is not a list of numbers",
     "bbox: «abc» non è un numero; servono 4 o 6 numeri separati da virgole"),
    (f"{ITEMS}?sortby=-amount_eur,nope", 400, "sortby",
     "sortby: cannot sort by 'nope'; sortables: ",
     "sortby: impossibile ordinare per «nope»; proprietà ordinabili: "),
    (f"{ITEMS}?properties=title,nope", 400, "properties",
     "properties: unknown 'nope'; available: ",
     "properties: proprietà sconosciuta «nope»; disponibili: "),
    (f"{ITEMS}?filter={quote('nope = 1')}", 400, "filter",
     "filter: unknown property 'nope'; queryables: ",
     "filter: proprietà sconosciuta «nope»; quelle interrogabili sono: "),
    (f"{ITEMS}?filter={quote('amount_eur >> 3')}", 400, "filter", "filter: invalid cql2-text: ",
     "filter: errore di sintassi cql2-text alla colonna 13: «> 3» non può seguire «amount_eur >»"),
    (f"{ITEMS}?filter={quote('title = ')}", 400, "filter", "filter: invalid cql2-text: ",
     "filter: cql2-text incompleto: il filtro finisce troppo presto, dopo «title =»"),
    # Raised by the translation to SQL (geo.ogc.sql), not by the parser.
    (f"{ITEMS}?filter={quote(chr(39).join(['missions = ', 'M1', '']))}", 400, "filter",
     "filter: cannot compare a list with a value; use the array functions",
     "filter: impossibile confrontare una lista con un valore; usare le funzioni sulle liste"),
    (f"{ITEMS}?filter={quote('amount_eur = DATE(' + chr(39) + '2024-01-01' + chr(39) + ')')}",
     400, "filter", "filter: cannot compare number with ",
     "filter: impossibile confrontare un numero con "),
    (f"{ITEMS}?datetime=ieri", 400, "datetime",
     "datetime: 'ieri' is not an RFC 3339 date-time",
     "datetime: «ieri» non è una data o data-ora RFC 3339"),
    (f"{ITEMS}/nessuno", 404, "featureId", "no feature 'nessuno' in collection 'interventions'",
     "nessun elemento «nessuno» nella collezione «interventions»"),
]  # fmt: skip

#: The same, on resources that need no store (the comuni are the territory's).
CASES = [
    ("/collections/comuni/items?crs=EPSG:9999", 400, "crs", "crs: unsupported CRS 'EPSG:9999'; ",
     "crs: sistema di riferimento «EPSG:9999» non supportato; usare uno tra CRS84, EPSG:4326"),
    ("/collections/comuni/items?bbox=1,2,3,4&bbox-crs=urn:x", 400, "bbox-crs",
     "bbox-crs: unsupported CRS 'urn:x'", "bbox-crs: sistema di riferimento «urn:x» non "),
    ("/collections/comuni/items?bbox=9.1,91,9.2,92", 400, "bbox",
     "bbox: latitude 91 is out of range (-90 to 90)",
     "bbox: latitudine 91 fuori dall'intervallo ammesso (da -90 a 90)"),
    ("/collections/comuni/items?population=tanti", 400, "population",
     "population: 'tanti' is not an integer", "population: «tanti» non è un numero intero"),
    ("/collections/comuni/items?colour=red", 400, "colour",
     "colour: unknown query parameter; allowed: ",
     "colour: parametro non previsto; quelli ammessi sono: "),
    ("/collections/comuni/tiles/Nessuna/1/0/0", 404, "tileMatrixSetId",
     "no tile matrix set 'Nessuna'; offered: WebMercatorQuad",
     "nessuna griglia di tile (tile matrix set) «Nessuna»; disponibili: WebMercatorQuad"),
    ("/collections/comuni/tiles/WebMercatorQuad/30/0/0", 404, "tileMatrix",
     "tileMatrix 30 is not served; zoom levels 0–", "livello di zoom 30 non disponibile; livelli "
     "serviti: da 0 a "),
    ("/collections/comuni/tiles/WebMercatorQuad/2/7/1", 404, "tileRow",
     "tile 2/7/1 is outside the tile matrix (4 rows, 4 columns)",
     "la tile 2/7/1 è fuori dalla griglia del livello 2 (4 righe, 4 colonne)"),
    ("/collections/comuni/tiles/WebMercatorQuad/2/uno/1", 400, "tileRow",
     "tileRow: tileRow must be a whole number ≥ 0, got 'uno'",
     "tileRow: serve un numero intero ≥ 0, non «uno»"),
]  # fmt: skip


def _with(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def check(c: TestClient, url: str, status: int, param: str, en: str, it: str, html=True) -> None:
    """The error of ``url`` in English (JSON asking for no language, ``lang=en``) and in
    Italian (``lang=it``, Accept-Language, an HTML page by default)."""
    for variant, headers, want, lang in (
        (url, {}, en, "en"),
        (_with(url, "lang=en"), {}, en, "en"),
        (_with(url, "lang=it"), {}, it, "it"),
        (url, IT, it, "it"),
    ):
        c.cookies.clear()
        r = c.get(variant, headers=headers)
        assert r.status_code == status, (variant, r.text)
        body = r.json()
        assert body["description"].startswith(want), (variant, body["description"], want)
        assert body["parameter"] == param and r.headers["content-language"] == lang
    if not html:
        return
    for variant, want, lang in ((_with(url, "f=html"), it, "it"),
                                (_with(url, "f=html&lang=en"), en, "en")):  # fmt: skip
        c.cookies.clear()
        r = c.get(variant)
        assert r.status_code == status and r.headers["content-type"].startswith("text/html")
        assert f'<html lang="{lang}">' in r.text, variant
        assert f"<p>{escape(want)}" in r.text, (variant, want, r.text)
        words = "Parametro" if lang == "it" else "Parameter"
        assert f"<p>{words}: <code>{escape(param)}</code></p>" in r.text
    c.cookies.clear()


@pytest.fixture()
def store_client(backend) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def c() -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def test_store_errors_in_both_languages(store_client):
    for case in STORE_CASES:
        check(store_client, *case)


@pytest.mark.parametrize(("url", "status", "param", "en", "it"), CASES)
def test_errors_in_both_languages(c, url, status, param, en, it):
    check(c, url, status, param, en, it)


def test_unknown_collection_in_both_languages(c):
    # The 404 of api.ogc_params.collection, written by geo.ogc.service.unknown_collection.
    check(c, "/collections/nessuna/items", 404, "collectionId",
          "no collection 'nessuna'; known: ",
          "nessuna collezione «nessuna»; quelle disponibili sono: ")  # fmt: skip


def test_point_lookup_crs_in_both_languages(c):
    # /lookup is no OGC resource: JSON only, and a bad parameter is a 422 there.
    check(c, "/lookup?x=1&y=2&crs=EPSG:2154", 422, "crs", "crs: unsupported CRS 'EPSG:2154'",
          "crs: sistema di riferimento «EPSG:2154» non supportato", html=False)  # fmt: skip


@pytest.mark.parametrize(
    ("query", "italian"),
    [
        (f"sortby={quote(HOSTILE)}", f"impossibile ordinare per «{HOSTILE}»"),
        (f"properties={quote(HOSTILE)}", f"proprietà sconosciuta «{HOSTILE}»"),
        (f"filter={quote(HOSTILE + ' = 1')}", "errore di sintassi cql2-text alla colonna 1"),
        (f"crs={quote(HOSTILE)}", f"sistema di riferimento «{HOSTILE}» non supportato"),
    ],
)
def test_hostile_values_are_escaped_on_the_italian_page(c, query, italian):
    c.cookies.clear()
    r = c.get(f"/collections/comuni/items?f=html&{query}")
    assert r.status_code == 400 and '<html lang="it">' in r.text
    assert escape(italian) in r.text, r.text
    assert "<script>" not in r.text and "alert(1)</" not in r.text
    # JSON asked in Italian carries the same words, as data.
    js = c.get(f"/collections/comuni/items?lang=it&{query}").json()
    assert italian in js["description"]


def test_the_english_stays_as_it_was():
    # Clients and tests read the English: ``it=`` adds, it never changes it.
    err = InvalidParameter("bbox", "give 4 numbers", it="servono 4 numeri", index=2)
    assert str(err) == err.message == err.text("en") == "bbox: give 4 numbers"
    assert err.text("it") == "bbox: servono 4 numeri"
    assert err.to_dict() == {"code": "InvalidParameterValue", "description": "bbox: give 4 numbers",
                             "parameter": "bbox", "index": 2}  # fmt: skip
    assert err.to_dict("it")["description"] == "bbox: servono 4 numeri"
    plain = NotFound("no such thing")  # no Italian given: English for everyone
    assert plain.text("it") == "no such thing" and "it" not in plain.to_dict()


def test_echoed_values_are_short_and_printable():
    assert quoted("abc") == "«abc»"
    long = quoted("x" * 500)
    assert long.startswith("«x") and long.endswith("…»") and len(long) == 62
    assert quoted("a\nb\x00") == "«a\N{REPLACEMENT CHARACTER}b\N{REPLACEMENT CHARACTER}»"


def test_forms_show_the_italian_their_raiser_wrote():
    """The web forms (accounts, editing) say a domain error through ``exc_text``: the Italian
    given where it was raised, without the parameter prefix; English as it was."""
    from geo.accounts.messages import exc_text

    exc = InvalidParameter("bbox", "give 4 numbers", it="servono 4 numeri")
    assert exc_text("it", exc) == "servono 4 numeri"
    assert exc_text("en", exc) == "give 4 numbers"
    plain = InvalidParameter("bbox", "give 4 numbers")
    assert exc_text("it", plain) == "give 4 numbers"  # no Italian written: the English


def test_find_my_zone_in_both_languages(c):
    """The clerk's lookup (/lookup, JSON for the map application) in Italian when asked."""
    check(
        c,
        "/lookup?q=Gotham",
        404,
        "q",
        "no comune named 'Gotham' in the Città metropolitana di Milano",
        "nessun comune di nome «Gotham» nella Città metropolitana di Milano",
        html=False,
    )
    check(c, "/lookup?q=999999", 404, "q",
          "no comune of the Città metropolitana di Milano has ISTAT code 999999",
          "nessun comune della Città metropolitana di Milano ha codice ISTAT 999999",
          html=False)  # fmt: skip
    r = c.get("/lookup", params={"lon": 12.5, "lat": 41.9, "lang": "it"})
    text = r.json()["description"]
    assert r.status_code == 404 and text.startswith("il punto (12.5, 41.9) in "), text
    assert "è fuori dalla Città metropolitana di Milano; il comune più vicino è " in text
    assert "," not in text.rsplit(" a ", 1)[1], text  # 480.123 m, the Italian way
    r = c.get("/lookup", params={"lon": 12.5, "lat": 41.9})
    assert r.json()["description"].startswith("the point (12.5, 41.9) in ")
