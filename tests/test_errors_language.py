"""Request-validation errors speak the request's language (api.errors, api.validation_text).

FastAPI's checks of declared parameters produce pydantic's English; an Italian request gets
Italian made from the error's ``type`` and ``ctx`` (bounds, expected values), with the
parameter named and the value given echoed (escaped in HTML). English is pydantic's text,
unchanged. HTML pages and JSON bodies alike; ``details`` carry the language-free ``type``.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
from fastapi.testclient import TestClient
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core._pydantic_core import list_all_errors

from api.validation_text import MESSAGES_IT, message

IT = {"Accept-Language": "it-IT,it;q=0.9"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}
BBOX = "9.1,45.4,9.2,45.5"


@pytest.fixture(scope="module")
def c() -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as client:
        yield client


def pydantic_msg(annotation: Any, value: Any) -> str:
    """What pydantic itself says of ``value`` (the English the API must keep)."""
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(annotation).validate_python(value)
    return exc.value.errors()[0]["msg"]


#: (method, URL, status, parameter, Italian message, type, English by pydantic itself)
CASES = [
    ("GET", "/collections/comuni/items?limit=abc", 400, "limit",
     "deve essere un numero intero, non «abc»", "int_parsing", pydantic_msg(int, "abc")),
    ("GET", "/collections/comuni/items?limit=0", 400, "limit",
     "deve essere maggiore o uguale a 1, non «0»", "greater_than_equal",
     pydantic_msg(Annotated[int, Field(ge=1)], 0)),
    ("GET", "/collections/comuni/items?skipGeometry=forse", 400, "skipGeometry",
     "deve essere true o false (oppure 1/0, yes/no, on/off), non «forse»", "bool_parsing",
     pydantic_msg(bool, "forse")),
    ("GET", "/collections/comuni/items?f=xml", 400, "f",
     "deve essere 'json' o 'html', non «xml»", "literal_error",
     pydantic_msg(Literal["json", "html"], "xml")),
    ("GET", "/lookup?lon=9,19&lat=45.46", 422, "lon",
     "deve essere un numero (con il punto come separatore decimale), non «9,19»",
     "float_parsing", pydantic_msg(float, "9,19")),
    ("GET", "/lookup?lon=500&lat=45", 422, "lon",
     "deve essere minore o uguale a 180, non «500»", "less_than_equal",
     pydantic_msg(Annotated[float, Field(le=180)], 500)),
    ("GET", "/app/print.png", 422, "bbox", "valore obbligatorio mancante", "missing",
     "Field required"),
    ("GET", f"/app/print.png?bbox={BBOX}&title={'x' * 201}", 422, "title",
     "al massimo 200 caratteri", "string_too_long",
     pydantic_msg(Annotated[str, Field(max_length=200)], "x" * 201)),
    ("POST", "/lookup?f=xml", 422, "f",
     "non ha la forma attesa (espressione regolare ^(json|csv)$), non «xml»",
     "string_pattern_mismatch", pydantic_msg(Annotated[str, Field(pattern="^(json|csv)$")], "xml")),
]  # fmt: skip


def _call(c: TestClient, method: str, url: str, headers: dict[str, str]):
    if method == "POST":
        return c.post(url, content=b"lon,lat\n9.19,45.46\n", headers=headers)
    return c.get(url, headers=headers)


@pytest.mark.parametrize(("method", "url", "status", "param", "it", "kind", "en"), CASES)
def test_json_errors_in_italian_and_english(c, method, url, status, param, it, kind, en):
    r = _call(c, method, url, IT)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["description"] == f"{param}: {it}"
    assert body["parameter"] == param and r.headers["content-language"] == "it"
    assert body["details"][0] == {"parameter": param, "message": it, "type": kind}
    r = _call(c, method, url, EN)
    assert r.status_code == status
    body = r.json()
    assert body["description"] == f"{param}: {en}" and r.headers["content-language"] == "en"
    assert body["details"][0] == {"parameter": param, "message": en, "type": kind}


def test_json_follows_the_asked_language_and_is_english_when_none_is_asked(c):
    # A program that asks for no language reads the API's English, as in every other error.
    r = c.get("/lookup?lon=500&lat=45")
    assert r.json()["description"] == "lon: Input should be less than or equal to 180"
    assert r.headers["content-language"] == "en"
    assert (
        c.get("/lookup?lon=500&lat=45", headers=IT)
        .json()["description"]
        .startswith("lon: deve essere")
    )
    r = c.get("/lookup?lon=500&lat=45&lang=en", headers=IT)
    assert r.json()["description"] == "lon: Input should be less than or equal to 180"
    r = c.get("/collections/comuni/items?limit=0&lang=it", headers=EN)
    assert r.json()["description"] == "limit: deve essere maggiore o uguale a 1, non «0»"
    # The JSON that programs read never depends on a browser's cookie.
    r = c.get("/collections/comuni/items?limit=0", headers={**IT, "Cookie": "lang=en"})
    assert r.json()["description"].startswith("limit: deve essere")


def test_html_error_page_in_italian_and_english(c):
    url = "/collections/comuni/items?f=html&limit=abc"
    for headers, query in ((IT, ""), ({}, ""), (EN, "&lang=it")):
        r = c.get(url + query, headers=headers)
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
        assert '<html lang="it">' in r.text and r.headers["content-language"] == "it"
        assert "<p>limit: deve essere un numero intero, non «abc»</p>" in r.text
        assert "Parametro: <code>limit</code>" in r.text and "Input should" not in r.text
    r = c.get(url, headers=EN)
    assert '<html lang="en">' in r.text and r.headers["content-language"] == "en"
    assert f"<p>limit: {pydantic_msg(int, 'abc')}</p>" in r.text
    assert "Parameter: <code>limit</code>" in r.text and "deve essere" not in r.text


def test_every_bad_parameter_listed_and_every_value_escaped(c):
    script = "<script>alert(1)</script>"
    img = '"><img src=x onerror=alert(1)>'
    r = c.get(
        "/collections/comuni/items",
        params={"f": "html", "limit": script, "skipGeometry": img},
        headers=IT,
    )
    assert r.status_code == 400
    assert "<script>alert" not in r.text and "<img" not in r.text
    assert "non «&lt;script&gt;alert(1)&lt;/script&gt;»" in r.text
    assert "<li><code>skipGeometry</code>: deve essere true o false" in r.text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in r.text
    body = c.get("/collections/comuni/items", params={"limit": script}, headers=IT).json()
    assert body["description"] == f"limit: deve essere un numero intero, non «{script}»"
    # A long or unprintable value is cut and shown as text.
    body = c.get("/lookup", params={"lon": "x" * 500 + "\n", "lat": "45"}, headers=IT).json()
    assert body["description"].endswith("non «" + "x" * 59 + "…»")
    body = c.get("/lookup", params={"lon": "1\x1b[31m", "lat": "45"}, headers=IT).json()
    assert "\x1b" not in body["description"] and "�" in body["description"]


def test_a_body_that_is_not_json(c):
    bad = {"content-type": "application/json"}
    r = c.patch("/layers/nope", content=b'{"name": ', headers={**bad, **IT})
    assert r.status_code == 422
    body = r.json()
    assert body["parameter"] == "body" and body["details"][0]["type"] == "json_invalid"
    assert body["description"].startswith("body: JSON non valido: ")
    assert "(carattere 10)" in body["description"]
    r = c.patch("/layers/nope", content=b'{"name": ', headers={**bad, **EN})
    assert r.json()["description"] == "body: JSON decode error"
    r = c.patch("/layers/nope", content=b"[1]", headers={**bad, **IT})
    assert r.json()["description"] == "body: deve essere un oggetto JSON"


def _errors(annotation: Any, value: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(annotation).validate_python(value)
    return exc.value.errors()


def test_messages_from_the_type_and_ctx_of_real_pydantic_errors():
    def it(annotation: Any, value: Any) -> str:
        return message(_errors(annotation, value)[0], "it")

    assert it(Annotated[list[int], Field(max_length=2)], [1, 2, 3]) == (
        "al massimo 2 elementi, non 3"
    )
    assert it(Annotated[list[int], Field(min_length=1)], []) == "almeno 1 elemento, non 0"
    assert it(Annotated[str, Field(min_length=1)], "") == "almeno 1 carattere"
    assert it(Annotated[int, Field(gt=0)], -1) == "deve essere maggiore di 0, non «-1»"
    assert it(Annotated[float, Field(lt=0.5)], 1) == "deve essere minore di 0.5, non «1»"
    assert it(int, 1.5) == "deve essere un numero intero, senza decimali, non «1.5»"
    assert it(Literal["a", "b", "c"], "z") == "deve essere 'a', 'b' o 'c', non «z»"

    def positive(v: int) -> int:
        if v < 0:
            raise ValueError("must not be negative")
        return v

    from pydantic import AfterValidator

    assert it(Annotated[int, AfterValidator(positive)], -3) == (
        "valore non valido: must not be negative"
    )
    json_error = TypeAdapter(dict)
    with pytest.raises(ValidationError) as exc:
        json_error.validate_json("{")
    assert message(exc.value.errors()[0], "it").startswith("JSON non valido: EOF")
    # A type without its Italian text: an Italian lead-in, pydantic's words kept.
    from datetime import date

    from pydantic import FutureDate

    err = _errors(FutureDate, date(2000, 1, 1))[0]
    assert err["type"] not in MESSAGES_IT
    assert message(err, "it") == f"valore non valido ({err['msg']})"
    # English: pydantic's message, untouched.
    err = _errors(Annotated[int, Field(ge=1)], 0)[0]
    assert message(err, "en") == err["msg"]


def test_the_italian_table_names_real_error_types_and_their_ctx():
    """A type misspelt, or a field pydantic's ``ctx`` lacks, would never be used."""
    templates = {e["type"]: e["message_template_python"] for e in list_all_errors()}
    fmt = string.Formatter()
    for kind, text in MESSAGES_IT.items():
        assert kind in templates, kind
        ours = {f for _, f, _, _ in fmt.parse(text) if f} - {"characters", "items"}
        theirs = {f for _, f, _, _ in fmt.parse(templates[kind]) if f}
        assert ours <= theirs, (kind, ours, theirs)
    needed = {
        "int_parsing", "float_parsing", "bool_parsing", "missing", "greater_than_equal",
        "less_than_equal", "greater_than", "less_than", "string_too_long", "string_too_short",
        "literal_error", "enum", "string_pattern_mismatch", "too_long", "json_invalid",
        "value_error",
    }  # fmt: skip
    assert needed <= set(MESSAGES_IT)
