"""The map application over HTTP: ``/`` negotiation, strings, suggestions, downloads, prints.

In process (FastAPI's TestClient); the browser journeys are in ``test_app_browser.py``.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from geo.webapp import export
from geo.webapp.i18n import MESSAGES, negotiate, t

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


# ----- GET / : the app for browsers, the OGC landing page for everybody else ----------------


def test_browser_gets_the_app_in_italian(client):
    r = client.get("/", headers={**HTML, "Accept-Language": "it-IT,it;q=0.9,en;q=0.5"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-language"] == "it"
    body = r.text
    assert '<html lang="it">' in body
    assert 'id="search-input"' in body and 'role="combobox"' in body
    assert "Cerca comune, codice, zona o unione" in body
    assert "/app/static/app.js?v=" in body and "/static/vendor/leaflet/leaflet.js" in body
    # No inline script and no inline handler: the default CSP holds.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)
    assert not re.search(r"\son[a-z]+=", body)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]


def test_english_by_header_parameter_and_cookie(client):
    r = client.get("/", headers={**HTML, "Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in r.text and "Search a comune" in r.text
    r = client.get("/?lang=en", headers={**HTML, "Accept-Language": "it"})
    assert '<html lang="en">' in r.text
    cookie = r.headers["set-cookie"].lower()
    assert "lang=en" in cookie and "samesite=lax" in cookie
    r = client.get("/", headers={**HTML, "Accept-Language": "it", "Cookie": "lang=en"})
    assert '<html lang="en">' in r.text
    client.cookies.clear()
    r = client.get("/?lang=xx", headers={**HTML, "Accept-Language": "de, fr;q=0.8"})
    assert '<html lang="it">' in r.text and "set-cookie" not in r.headers


def test_json_clients_get_the_ogc_landing_page_as_before(client):
    for headers, url in (({}, "/"), ({"Accept": "application/json"}, "/"), (HTML, "/?f=json")):
        r = client.get(url, headers=headers)
        assert r.status_code == 200, url
        doc = r.json()
        assert "OGC API" in doc["title"]
        assert {link["rel"] for link in doc["links"]} >= {"self", "conformance", "data"}


def test_ogc_html_landing_stays_with_working_items_links(client):
    r = client.get("/?f=html", headers=HTML)
    assert r.status_code == 200 and "OGC API" in r.text
    r = client.get("/collections?f=html", headers={**HTML, "Accept-Language": "en"})
    links = re.findall(r'<a href="([^"]*)"[^>]*>items</a>', r.text)
    assert links and all("/collections/" in h and h.endswith("/items?f=html") for h in links)
    assert "built-in method" not in r.text
    for href in links[:3]:
        path = href.split("://", 1)[1].split("/", 1)[1]
        assert client.get("/" + path, headers=HTML).status_code == 200


def test_app_static_files_are_served(client):
    for name in ("app.js", "app.css", "dom.js", "search.js", "place.js", "layers.js"):
        r = client.get(f"/app/static/{name}")
        assert r.status_code == 200, name
    assert client.get("/app/static/../page.py").status_code == 404


# ----- strings ------------------------------------------------------------------------------


def test_catalogue_has_the_same_keys_in_both_languages():
    assert set(MESSAGES["it"]) == set(MESSAGES["en"])
    for lang in ("it", "en"):
        for key, text in MESSAGES[lang].items():
            assert text.strip(), (lang, key)
    assert t("it", "iv.count", count=3) == "3 interventi"
    assert t("en", "iv.count", count=3) == "3 interventions"
    assert t("xx", "tabs.place") == "Luogo"


@pytest.mark.parametrize(
    ("header", "override", "expected"),
    [
        (None, None, "it"),
        ("en-US,en;q=0.9", None, "en"),
        ("de-DE,en;q=0.4,it;q=0.8", None, "it"),
        ("en;q=0.2, it;q=0.1", None, "en"),
        ("it", "en", "en"),
        ("en", "IT", "it"),
        ("en", "zz", "en"),
        ("q=;;,,;q=x", None, "it"),
        ("x" * 5000, None, "it"),
    ],
)
def test_language_negotiation(header, override, expected):
    assert negotiate(header, override) == expected


# ----- suggestions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kind", "name"),
    [
        ("san giuliano", "comune", "San Giuliano Milanese"),
        ("Cernusco S/N", "comune", "Cernusco sul Naviglio"),
        ("S. Giuliano", "comune", "San Giuliano Milanese"),
        ("cassano d’adda", "comune", "Cassano d'Adda"),
        ("CASSANO DADDA", "comune", "Cassano d'Adda"),
        ("sesto s giov", "comune", "Sesto San Giovanni"),
        ("015146", "comune", "Milano"),
        ("15182", "comune", "Rho"),
        ("f205", "comune", "Milano"),
        ("sud ovest", "zona", "Sud Ovest"),
        ("abbiatense", "zona", "Magentino e Abbiatense"),
        ("fontanili", "unione", "Unione dei Comuni dei Fontanili"),
        ("Rhoo", "comune", "Rho"),
    ],
)
def test_suggestions_first_answer(client, typed, kind, name):
    r = client.get("/lookup/suggest", params={"q": typed})
    assert r.status_code == 200
    first = r.json()["suggestions"][0]
    assert (first["kind"], first["name"]) == (kind, name), r.json()


def test_suggestions_of_a_prefix_and_of_nothing(client):
    names = [s["name"] for s in client.get("/lookup/suggest?q=san").json()["suggestions"]]
    assert len(names) == 8 and all(n.startswith("San") for n in names[:7])
    assert names[7] == "Sesto San Giovanni"  # a later word begins with it: ranked after
    assert len(client.get("/lookup/suggest?q=san&limit=3").json()["suggestions"]) == 3
    for hostile in ("<script>alert(1)</script>", "'; DROP TABLE x; --", "%00", "   "):
        r = client.get("/lookup/suggest", params={"q": hostile})
        assert r.status_code == 200 and r.json()["suggestions"] == []
    assert client.get("/lookup/suggest").status_code in (400, 422)
    assert client.get("/lookup/suggest", params={"q": "a" * 101}).status_code in (400, 422)
    assert client.get("/lookup/suggest?q=rho&limit=0").status_code in (400, 422)


def test_lookup_keeps_working_next_to_suggest(client):
    assert client.get("/lookup?q=Rho").json()["comune"]["istat_code"] == "015182"


# ----- comune pages by name --------------------------------------------------------------------


def test_comune_map_page_accepts_names_and_redirects_to_the_code(client):
    for name, code in (("Rho", "015182"), ("cassano dadda", "015059"), ("F205", "015146")):
        r = client.get(f"/maps/comuni/{name}", follow_redirects=False)
        assert r.status_code == 308, name
        assert r.headers["location"] == f"/maps/comuni/{code}"
    r = client.get("/maps/comuni/Rho.pdf", follow_redirects=False)
    assert r.headers["location"] == "/maps/comuni/015182.pdf"
    r = client.get("/maps/comuni/Rhoo")
    assert r.status_code == 404 and r.json()["suggestions"][0]["name"] == "Rho"
    assert client.get("/maps/comuni/Rho").status_code == 200


# ----- downloads ----------------------------------------------------------------------------


def _matched(client, params: dict) -> int:
    r = client.get("/collections/interventions/items", params={**params, "limit": 1})
    return r.json()["numberMatched"]


def test_downloads_hold_what_the_items_api_matches(client):
    params = {"programme": "PUI SPUGNA", "zona": "sud-ovest"}
    n = _matched(client, params)
    assert n > 0
    r = client.get("/downloads/interventions", params={**params, "f": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="interventions.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == n
    assert all(row["programme"] == "PUI SPUGNA" and "sud-ovest" in row["zone"] for row in rows)
    assert all(row["wkt"].startswith(("POINT", "MULTIPOINT", "LINESTRING", "POLYGON", "MULTI"))
               for row in rows)  # fmt: skip
    r = client.get("/downloads/interventions", params={**params, "f": "geojson"})
    fc = json.loads(r.content)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == n
    r = client.get("/downloads/interventions", params={**params, "f": "gpkg"})
    assert r.content[:16] == b"SQLite format 3\x00"


def test_downloads_with_a_cql2_text_filter(client):
    cql = "CASEI(title) LIKE CASEI('%spugna%')"
    n = _matched(client, {"filter": cql})
    fc = json.loads(client.get("/downloads/interventions", params={"filter": cql}).content)
    assert len(fc["features"]) == n > 0
    assert all("spugna" in f["properties"]["title"].lower() for f in fc["features"])


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"f": "shp"}, "f"),
        ({"colour": "red"}, "colour"),
        ({"filter": "nope >"}, "filter"),
        ({"filter-lang": "sql", "filter": "x=1"}, "filter-lang"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"sortby": "+nonexistent"}, "sortby"),
    ],
)
def test_bad_download_parameters_are_4xx(client, params, status):
    r = client.get("/downloads/interventions", params=params)
    assert r.status_code in (400, 422), r.text
    assert r.json()["parameter"] == status
    assert client.get("/downloads/no-such-collection").status_code == 404


def test_export_escapes_formulas_and_keeps_reserved_names():
    feats = [
        {"id": "a", "geometry": {"type": "Point", "coordinates": [9.1, 45.4]},
         "properties": {"name": "=HYPERLINK(\"http://x\")", "fid": 3, "geometry": "g",
                        "tags": ["x", "y"], "n": -5}},
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(export.to_csv(feats).decode("utf-8-sig"))))
    head, row = rows
    assert head == ["id", "name", "fid_", "geometry_", "tags", "n", "wkt"]
    assert row[1].startswith("'=") and row[4] == "x; y" and row[5] == "-5"
    assert row[6] == "POINT (9.1 45.4)"


# ----- print of the current view ------------------------------------------------------------


def test_print_of_the_view_png_and_pdf(client):
    q = {"bbox": "9.0,45.35,9.35,45.6", "layers": "comuni,zone-omogenee,unioni,interventions",
         "title": "Prova $\\alpha$ <b>", "zona": "milano"}  # fmt: skip
    r = client.get("/app/print.png", params=q)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = client.get("/app/print.pdf", params=q)
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "a,b,c,d"},
        {"bbox": "9,45,9"},
        {"bbox": "9.5,45,9.0,45.5"},
        {"bbox": "9,45,inf,46"},
        {"bbox": "9,45,9.1,45.1", "layers": "no-such-layer"},
        {"bbox": "9,45,9.1,45.1", "layers": "interventions", "mission": "x", "oops": "1"},
    ],
)
def test_bad_print_parameters_are_4xx(client, params):
    r = client.get("/app/print.png", params=params)
    assert 400 <= r.status_code < 500, r.text
    assert client.get("/app/print.gif", params={"bbox": "9,45,9.1,45.1"}).status_code == 404
