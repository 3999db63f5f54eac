"""The OGC HTML pages speak Italian by default and English on request (issue 14), by the
map application's rule: ``?lang=``, the ``lang`` cookie, then ``Accept-Language``; the
response cache keeps the languages apart; JSON for programs ignores the cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from geo.ogc.html_texts import LABELS_IT, MESSAGES, label

PAGES = {
    "/?f=html": ("Web GIS della Città metropolitana di Milano – OGC API Features", None),
    "/collections?f=html": ("Collezioni", "Collections"),
    "/conformance?f=html": ("Conformità", "Conformance"),
    "/collections/comuni?f=html": (
        "Comuni della Città metropolitana di Milano",
        "Municipalities (comuni) of the Metropolitan City of Milan",
    ),
    "/collections/comuni/queryables?f=html": (
        "Proprietà interrogabili: Comuni della Città metropolitana di Milano",
        "Queryables: Comuni della Città metropolitana di Milano",
    ),
    "/collections/comuni/items?f=html&limit=5": (
        "Comuni della Città metropolitana di Milano: elementi",
        "Municipalities (comuni) of the Metropolitan City of Milan: features",
    ),
    "/collections/comuni/items/015146?f=html": ("Milano", "Milano"),
}


@pytest.fixture()
def c() -> Iterator[TestClient]:
    """A client of its own: the language cookie it gets never reaches other tests."""
    from api.main import app

    with TestClient(app) as client:
        yield client


def _h1(html: str) -> str:
    m = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert m, html[:300]
    return m.group(1).replace("&#39;", "'")


@pytest.mark.parametrize("url", PAGES)
def test_pages_are_italian_by_default(c, url):
    r = c.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="it">' in r.text and r.headers["content-language"] == "it"
    assert _h1(r.text) == PAGES[url][0]
    assert "cookie" in r.headers["vary"].lower()
    # The same page in English, one click away.
    m = re.search(r'<a href="([^"]+)" lang="en" hreflang="en"[^>]*>English</a>', r.text)
    assert m and "lang=en" in m.group(1) and "f=html" in m.group(1)
    assert '<nav aria-label="Percorso">' in r.text


def test_italian_words_on_every_kind_of_page(c):
    landing = c.get("/?f=html").text
    assert "Pagina iniziale in JSON" in landing and "Definizione OpenAPI 3.0" in landing
    assert "come OGC API – Features" in landing  # the service's description
    listing = c.get("/collections?f=html").text
    assert "<th>Collezione</th><th>Descrizione</th>" in listing and ">elementi</a>" in listing
    assert "I 133 comuni con codici ISTAT" in listing
    comuni = c.get("/collections/comuni?f=html").text
    assert "estensione (CRS84)" in comuni and "CRS di archiviazione" in comuni
    assert "I 133 comuni con codici ISTAT e catastali" in comuni
    assert "Proprietà interrogabili" in comuni and ">Inizio</a>" in comuni
    items = c.get("/collections/comuni/items?f=html&limit=5").text
    assert "5 di 133 elementi." in items and ">successivi</a>" in items
    item = c.get("/collections/comuni/items/015146?f=html").text
    assert ">Elementi</a>" in item and ">Collezioni</a>" in item
    assert "Elemento in JSON" in item


@pytest.mark.parametrize("url", [u for u, (_, en) in PAGES.items() if en])
def test_english_by_parameter_cookie_and_header(c, url):
    english = PAGES[url][1]
    sep = "&" if "?" in url else "?"
    r = c.get(f"{url}{sep}lang=en")
    assert r.status_code == 200 and '<html lang="en">' in r.text
    assert r.headers["content-language"] == "en" and _h1(r.text) == english
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("lang=en;") and "samesite=lax" in cookie and "path=/" in cookie
    # The cookie (set just now) keeps English on the next page without the parameter.
    assert _h1(c.get(url).text) == english
    c.cookies.clear()
    r = c.get(url, headers={"Accept-Language": "en-GB,en;q=0.9,it;q=0.5"})
    assert _h1(r.text) == english and "set-cookie" not in r.headers
    # An explicit choice wins over the header and the cookie; a bad one changes nothing.
    r = c.get(f"{url}{sep}lang=it", headers={"Accept-Language": "en", "Cookie": "lang=en"})
    assert _h1(r.text) == PAGES[url][0] and r.headers["content-language"] == "it"
    assert c.cookies.get("lang") == "it"  # remembered
    c.cookies.clear()
    r = c.get(f"{url}{sep}lang=xx", headers={"Accept-Language": "en"})
    assert _h1(r.text) == english and "set-cookie" not in r.headers
    r = c.get(f"{url}{sep}lang=%3Cscript%3E")
    assert r.status_code == 200 and "<script>alert" not in r.text and _h1(r.text) == PAGES[url][0]


def test_english_words_on_every_kind_of_page(c):
    listing = c.get("/collections?f=html&lang=en").text
    assert "<th>Collection</th><th>Description</th>" in listing and ">items</a>" in listing
    assert "Municipalities (comuni)" in listing and 'lang="it" hreflang="it"' in listing
    items = c.get("/collections/comuni/items?f=html&limit=5&lang=en").text
    assert "5 of 133 features." in items and ">next</a>" in items
    assert "lang=en" in re.search(r'<a rel="next" href="([^"]+)"', items).group(1)  # kept
    comuni = c.get("/collections/comuni?f=html&lang=en").text
    assert "extent (CRS84)" in comuni and "The 133 comuni with ISTAT" in comuni


def test_the_response_cache_keeps_the_languages_apart(c):
    url = "/collections/zone-omogenee?f=html"
    first = c.get(url)
    assert _h1(first.text) == "Zone omogenee"
    cookie_en = {"Cookie": "lang=en"}
    english = c.get(url, headers=cookie_en)
    assert _h1(english.text) == "Homogeneous zones (zone omogenee)"
    assert english.headers["etag"] != first.headers["etag"]
    assert _h1(c.get(url).text) == "Zone omogenee"  # the Italian entry is intact
    # A browser revalidating the Italian page after choosing English gets the English one.
    again = c.get(url, headers={**cookie_en, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 200 and _h1(again.text) == "Homogeneous zones (zone omogenee)"
    same = c.get(url, headers={**cookie_en, "If-None-Match": english.headers["etag"]})
    assert same.status_code == 304


def test_json_ignores_the_cookie_but_not_the_parameter(c):
    titles = lambda r: {x["id"]: x["title"] for x in r.json()["collections"]}  # noqa: E731
    r = c.get("/collections", headers={"Cookie": "lang=en"})
    assert titles(r)["unioni"] == "Unioni di comuni" and r.headers["content-language"] == "it"
    assert "cookie" not in r.headers["vary"].lower() and "set-cookie" not in r.headers
    r = c.get("/collections?lang=en")
    assert titles(r)["unioni"] == "Unions of comuni" and r.headers["content-language"] == "en"
    for url in (
        "/?f=json&lang=en",
        "/conformance?lang=en",
        "/collections/comuni/items?limit=1&lang=en",
        "/collections/comuni/items/015146?lang=en",
        "/collections/comuni/queryables?lang=en",
    ):
        assert c.get(url).status_code == 200, url
    # Other unknown parameters are still refused, as OGC asks.
    assert c.get("/collections?lingua=en").status_code == 400
    assert c.get("/collections/comuni/items?lingua=en").status_code == 400


def test_labels_and_catalogue():
    assert set(MESSAGES["it"]) == set(MESSAGES["en"])
    assert label("it", "Comuni as HTML") == "Comuni in HTML"
    assert label("it", "Queryables: Zone omogenee") == "Proprietà interrogabili: Zone omogenee"
    assert label("it", "Metadata: <b>x</b>") == "Metadati: <b>x</b>"  # text, escaped by Jinja
    assert label("it", "population") == "population"  # property names stay as they are
    assert label("en", "Collections") == "Collections" and label("it", None) is None
    assert all(v.strip() for v in LABELS_IT.values())


def test_error_pages_speak_the_asked_language(c):
    it = c.get("/collections/comuni/items?f=html&limit=abc")
    assert it.status_code == 400 and '<html lang="it">' in it.text
    assert "Parametro: <code>limit</code>" in it.text and "Pagina iniziale" in it.text
    assert it.headers["content-language"] == "it"
    en = c.get("/collections/comuni/items?f=html&limit=abc&lang=en")
    assert en.status_code == 400 and '<html lang="en">' in en.text
    assert "Parameter: <code>limit</code>" in en.text and en.headers["content-language"] == "en"
    missing = c.get("/collections/nope?f=html", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert missing.status_code == 404 and '<html lang="en">' in missing.text
    # A heading a person reads, with the OGC code under it.
    assert "<h1>Richiesta non valida</h1>" in it.text
    assert '<p class="code">400 InvalidParameterValue</p>' in it.text
    assert "<h1>Bad request</h1>" in en.text and "<h1>Not found</h1>" in missing.text
    assert "<h1>Non trovato</h1>" in c.get("/collections/nope?f=html").text
