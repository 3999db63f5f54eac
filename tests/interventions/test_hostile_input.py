"""Hostile and careless input to the intervention writes: every one a 4xx, nothing stored.

Each bad file or body is sent over HTTP to the real app on both backends (SQLite and
PostGIS); the answer must be the exact 4xx, name the file (row and field where there is
one), and the interventions table must hold exactly what it held before. Unauthenticated
uploads are driven through the ASGI interface with a body that counts how many bytes the
server pulled: a 401 must come before any of it is read.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from asgi_bodies import MULTIPART, Body, asgi_call
from fastapi.testclient import TestClient

from geo.settings import get_settings

ADMIN = {"Authorization": "Bearer test-admin-token"}
ITEMS = "/collections/interventions/items"
HEADER = "id,title,programme,comuni,lat,lon,amount_eur\n"
MB = 1024 * 1024

#: Every hostile request sent by this module and the status it got (checked at the end).

SENT: list[tuple[str, int]] = []


@pytest.fixture(scope="module", autouse=True)
def _every_hostile_request_got_a_4xx():
    """After the module's tests (in this process, whatever their order): every hostile
    request they sent was answered with a 4xx — else the last of them errors."""
    yield
    bad = [(label, s) for label, s in SENT if not 400 <= s < 500]
    print(f"\n{len(SENT)} hostile requests, {len(SENT) - len(bad)} answered 4xx")
    assert bad == [], bad


@pytest.fixture()
def limits():
    """Small limits for one test: 1 MB uploads, bodies within 0.5 s."""
    keys = {"CMM_GEO_MAX_UPLOAD_MB": "1", "CMM_GEO_BODY_TIMEOUT_S": "0.5"}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    get_settings.cache_clear()
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


def _state(engine) -> list[tuple]:
    """Every stored intervention (id, hash): compared before and after each attempt."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text("SELECT id, content_hash FROM interventions ORDER BY id")
            ).all()
        ]


def _send(client: TestClient, label: str, method: str, path: str, **kw):
    r = client.request(method, path, **kw)
    SENT.append((label, r.status_code))
    return r


# ----- bad files --------------------------------------------------------------------------

LATIN1 = (HEADER + "l1,Città,PINQUA,Rho,,,\n").encode("latin-1")
GEOJSON_LATIN1 = (
    b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
    b'{"title":"Citt\xe0","programme":"PINQUA","comuni":"Rho"},'
    b'"geometry":{"type":"Point","coordinates":[9.04,45.53]}}]}'
)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", HEADER)
    return buf.getvalue()


#: (label, file name, bytes, status, text the message must hold, (row, field) or None)
BAD_FILES = [
    ("lat 45.4x", "a.csv", HEADER + "h1,T,PINQUA,,45.4x,9.1,\n", 422, "a.csv", (1, "lat/lon")),
    ("lat NaN", "a.csv", HEADER + "h1,T,PINQUA,,NaN,9.1,\n", 422, "a.csv", (1, "lat/lon")),
    ("lat inf", "a.csv", HEADER + "h1,T,PINQUA,,inf,9.1,\n", 422, "a.csv", (1, "lat/lon")),
    ("lat 1e308", "a.csv", HEADER + "h1,T,PINQUA,,1e308,9.1,\n", 422, "a.csv", (1, "lat/lon")),
    (
        "lon -inf 2nd row",
        "b.csv",
        HEADER + "h1,T,PINQUA,Rho,,,\nh2,U,PINQUA,,45.5,-inf,\n",
        422,
        "b.csv",
        (2, "lat/lon"),
    ),
    (
        "amount 1e400",
        "a.csv",
        HEADER + "h1,T,PINQUA,Rho,,,1e400\n",
        422,
        "a.csv",
        (1, "amount_eur"),
    ),
    (
        "wkt NaN",
        "w.csv",
        "id,title,programme,wkt\nh1,T,PINQUA,POINT (nan nan)\n",
        422,
        "w.csv",
        (1, "geometry"),
    ),
    ("empty file", "e.csv", b"", 422, "e.csv: the file is empty", None),
    ("blank file", "e.csv", b"\n\n  \n", 422, "e.csv: the file is empty", None),
    ("header only", "h.csv", HEADER, 422, "h.csv: the file has a header but no data rows", None),
    ("ragged long", "r.csv", HEADER + "h1,T,PINQUA,Rho,,,,EXTRA\n", 422, "r.csv", (1, "columns")),
    ("ragged short", "r.csv", HEADER + "h1,T,PINQUA,Rho,,,\nh2,T\n", 422, "r.csv", (2, "columns")),
    ("unterminated quote", "q.csv", HEADER + 'h1,"T,PINQUA,Rho,,,\n', 422, "q.csv", None),
    ("stray quote", "q.csv", HEADER + 'h1,"T"x,PINQUA,Rho,,,\n', 422, "q.csv", (1, "file")),
    (
        "binary",
        "img.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        422,
        "img.csv: a binary file",
        None,
    ),
    ("latin-1 csv", "l.csv", LATIN1, 422, "l.csv: not UTF-8 text", (1, "file")),
    ("repeated column", "d.csv", "id,title,title\nx,T,U\n", 422, "d.csv: repeated column", None),
    ("named ..", "..", HEADER + "h1,T,PINQUA,Rho,,,\n", 422, "unsupported file type", None),
    (
        "traversal name",
        "../../../tmp/evil.csv",
        HEADER + "h1,T,PINQUA,,45.4x,9.1,\n",
        422,
        "evil.csv",
        (1, "lat/lon"),
    ),
    ("zip", "a.zip", _zip(), 422, "unsupported file type '.zip'", None),
    ("geojson latin-1", "g.geojson", GEOJSON_LATIN1, 422, "g.geojson", None),
    (
        "geojson not json",
        "g.geojson",
        b'{"type": "FeatureCollection", "feat',
        422,
        "g.geojson",
        None,
    ),
    ("geojson empty", "g.geojson", b"", 422, "g.geojson: the file is empty", None),
    ("gpkg garbage", "g.gpkg", b"SQLite format 3\x00" + b"\x00" * 200, 422, "g.gpkg", None),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_4xx_naming_it_and_stores_nothing(client, backend, case):
    label, name, data, status, text, where = case
    data = data.encode() if isinstance(data, str) else data
    before = _state(backend)
    r = _send(
        client,
        label,
        "POST",
        "/imports/interventions",
        files={"file": (name, data)},
        headers=ADMIN,
    )
    assert r.status_code == status, (label, r.text)
    body = r.json()
    assert text in body["description"], (label, body)
    if where is not None:
        row, field = where
        assert any(
            d.get("row") == row and d.get("field") == field and d.get("file")
            for d in body["details"]
        ), (label, body["details"])
    assert _state(backend) == before, label


def test_bad_rows_are_all_reported_and_good_rows_not_written(client, backend):
    """One good row and three broken ones: 422 listing the three, the good one not stored."""
    csv = HEADER + "ok-1,T,PINQUA,Rho,,,\nb-1,T,PINQUA,,45.4x,9.1,\nb-2,T,PINQUA,,nan,9,\n"
    csv += "b-3,T,PINQUA,Rho,,,12e999\n"
    before = _state(backend)
    r = _send(
        client,
        "three bad rows",
        "POST",
        "/imports/interventions",
        files={"file": ("mixed.csv", csv.encode())},
        headers=ADMIN,
    )
    assert r.status_code == 422, r.text
    got = {(d["row"], d["field"]) for d in r.json()["details"]}
    assert got == {(2, "lat/lon"), (3, "lat/lon"), (4, "amount_eur")}
    assert r.json()["description"].startswith("mixed.csv: 3 error(s) in 3 row(s)")
    assert _state(backend) == before


def test_good_file_is_still_imported(client, backend):
    """The hardening refuses nothing valid: a clean CSV is imported (then removed)."""
    csv = "id,title,programme,comuni,lat,lon\nok-hostile,T,PINQUA,Rho,45.53,9.04\n"
    r = client.post(
        "/imports/interventions", files={"file": ("ok.csv", csv.encode())}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["new"] == 1
    assert client.delete(f"{ITEMS}/ok-hostile", headers=ADMIN).status_code == 204


def _multipart_body(fields: dict[str, str]) -> bytes:
    """A multipart body of text fields only (boundary ``B``)."""
    out = b""
    for k, v in fields.items():
        out += f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    return out + b"--B--\r\n"


TEXT_ONLY = {**ADMIN, "Content-Type": "multipart/form-data; boundary=B"}
CSV_PART = {"file": ("a.csv", b"id\n")}
BAD_PNRR = [
    ("pnrr empty", b"", "not a readable CSV"),
    ("pnrr unterminated quote", b'CUP,b\n1,"x\n', "not a readable CSV"),
    ("pnrr binary", bytes(range(256)) * 4, "not in the Italia Domani layout"),
    ("pnrr ragged", b"a,b\n1,2,3\n", "not in the Italia Domani layout"),
]


@pytest.mark.parametrize("case", BAD_PNRR, ids=[c[0] for c in BAD_PNRR])
def test_bad_pnrr_file_is_422_naming_it(client, backend, case):
    label, data, text = case
    before = _state(backend)
    r = _send(
        client, label, "POST", "/imports/pnrr", files={"file": ("p.csv", data)}, headers=ADMIN
    )
    assert r.status_code == 422, (label, r.text)
    assert r.json()["description"].startswith("p.csv: "), r.json()
    assert text in r.json()["description"]
    assert _state(backend) == before


BAD_FORMS = [
    ("unknown field", {"files": CSV_PART, "data": {"sorce": "x"}}, "sorce"),
    (
        "no file",
        {"content": _multipart_body({"source": "x"}), "headers": TEXT_ONLY},
        "file: missing",
    ),
    (
        "file as text",
        {"content": _multipart_body({"file": "id,title"}), "headers": TEXT_ONLY},
        "file: expected a file",
    ),
    ("dry_run not bool", {"files": CSV_PART, "data": {"dry_run": "maybe"}}, "dry_run"),
    ("two files", {"files": {**CSV_PART, "crs": ("b.csv", b"x")}}, "Too many files"),
    (
        "no boundary",
        {"content": b"x", "headers": {**ADMIN, "Content-Type": "multipart/form-data"}},
        "boundary",
    ),
    ("garbage multipart", {"content": b"\x00" * 5000, "headers": TEXT_ONLY}, "malformed multipart"),
]


@pytest.mark.parametrize("case", BAD_FORMS, ids=[c[0] for c in BAD_FORMS])
def test_bad_form_is_422_naming_the_field(client, backend, case):
    label, kw, text = case
    before = _state(backend)
    kw = {"headers": ADMIN, **kw}
    r = _send(client, label, "POST", "/imports/interventions", **kw)
    assert r.status_code == 422, (label, r.text)
    assert text in r.json()["description"], (label, r.json())
    assert _state(backend) == before


def test_json_instead_of_multipart_is_422(client, backend):
    before = _state(backend)
    r = _send(client, "json import", "POST", "/imports/interventions", json={"a": 1}, headers=ADMIN)
    assert r.status_code == 422
    assert "Content-Type" in r.json()["description"]
    assert _state(backend) == before


# ----- single-feature writes --------------------------------------------------------------


def _feature(fid: str = "hx-1", **props) -> dict:
    return {
        "type": "Feature",
        "id": fid,
        "geometry": None,
        "properties": {"title": "T", "programme": "PINQUA", "comuni": "Rho", **props},
    }


BAD_WRITES = [
    (
        "patch top-level status",
        "PATCH",
        "doc-001",
        {"status": "boh"},
        "status",
        'put status inside "properties"',
    ),
    ("patch top-level many", "PATCH", "doc-001", {"title": "x", "foo": 1}, "foo", "foo, title"),
    (
        "patch unknown property",
        "PATCH",
        "doc-001",
        {"properties": {"stauts": "x"}},
        "properties.stauts",
        "unknown property stauts",
    ),
    (
        "patch properties not object",
        "PATCH",
        "doc-001",
        {"properties": ["x"]},
        "properties",
        "expected an object",
    ),
    (
        "patch geometry not object",
        "PATCH",
        "doc-001",
        {"geometry": "POINT (9 45)"},
        "geometry",
        "geometry",
    ),
    ("patch other id", "PATCH", "doc-001", {"id": "doc-002"}, "id", "differs"),
    ("patch type", "PATCH", "doc-001", {"type": "FeatureCollection"}, "type", "Feature"),
    (
        "patch nested value",
        "PATCH",
        "doc-001",
        {"properties": {"title": {"it": "x"}}},
        "properties.title",
        "expected text",
    ),
    (
        "put top-level",
        "PUT",
        "doc-001",
        {**_feature("doc-001"), "status": "done"},
        "status",
        "status",
    ),
    (
        "put unknown property",
        "PUT",
        "doc-001",
        _feature("doc-001", importo=5),
        "properties.importo",
        "importo",
    ),
    ("post top-level", "POST", None, {**_feature(), "comune": "Rho"}, "comune", "comune"),
    (
        "post no type",
        "POST",
        None,
        {k: v for k, v in _feature().items() if k != "type"},
        "type",
        "Feature",
    ),
    ("post unknown property", "POST", None, _feature(lat=45.5), "properties.lat", "lat"),
    (
        "post bool list",
        "POST",
        None,
        _feature(missions=[True]),
        "properties.missions",
        "expected text",
    ),
]


@pytest.mark.parametrize("case", BAD_WRITES, ids=[c[0] for c in BAD_WRITES])
def test_bad_feature_write_is_422_naming_the_member(client, backend, case):
    label, method, fid, body, param, text = case
    before = _state(backend)
    path = ITEMS if fid is None else f"{ITEMS}/{fid}"
    r = _send(client, label, method, path, json=body, headers=ADMIN)
    assert r.status_code == (400 if param == "id" else 422), (label, r.text)
    got = r.json()
    assert got.get("parameter") == param or any(
        d.get("field") == param for d in got.get("details") or []
    ), (label, got)
    assert text in got["description"], (label, got)
    assert _state(backend) == before, label


def test_patch_sent_back_as_read_is_accepted(client, backend):
    """Read-only properties a GET answered (zone, precision…) may come back unchanged."""
    feat = client.get(f"{ITEMS}/doc-001").json()
    r = client.put(f"{ITEMS}/doc-001", json=feat, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["title"] == feat["properties"]["title"]


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b'{"properties": {"title": 1e400}}', b"\xff\xfe"]
)
def test_unparsable_json_body_is_400(client, backend, raw):
    """Under /collections a malformed parameter or body is 400 (the OGC API rule)."""
    before = _state(backend)
    r = _send(
        client,
        f"patch body {raw[:10]!r}",
        "PATCH",
        f"{ITEMS}/doc-001",
        content=raw,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["description"].startswith("body")
    assert _state(backend) == before


# ----- size, time and authentication before reading ---------------------------------------


def call(method: str, path: str, body: Body, headers: dict[str, str]) -> tuple[int, dict, dict]:
    """One request through the app's ASGI interface: (status, JSON body, headers)."""
    from api.main import app

    return asgi_call(app, method, path, body, headers)


def _multipart_chunks(total_mb: int, name: str = "big.csv") -> Iterator[bytes]:
    """A well-formed multipart upload of ``total_mb`` MB, generated lazily."""
    yield (
        f'--XB\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/csv\r\n\r\n" + HEADER
    ).encode()
    row = b"x1,T,PINQUA,Rho,,,\n" * (MB // 19)
    for _ in range(total_mb):
        yield row
    yield b"\r\n--XB--\r\n"


UPLOAD_PATHS = ["/imports/interventions", "/imports/pnrr"]


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic dXNlcjpwYXNz"])
def test_unauthenticated_upload_is_401_before_any_byte_is_read(path, auth, data_dir):
    uploads = data_dir / "uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    body = Body(_multipart_chunks(60))
    headers = {**MULTIPART, "Content-Length": str(60 * MB + 300)}
    if auth:
        headers["Authorization"] = auth
    status, got, hdrs = call("POST", path, body, headers)
    SENT.append((f"unauthenticated 60 MB {path} {auth}", status))
    assert status == 401, got
    assert hdrs["www-authenticate"].startswith("Bearer")
    assert body.read == 0  # not one byte of the 60 MB was pulled
    assert (sorted(uploads.rglob("*")) if uploads.exists() else []) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_unauthenticated_feature_write_is_401_before_reading(method):
    body = Body(iter([b'{"type": "Feature"', b" " * MB] * 30))
    path = ITEMS if method == "POST" else f"{ITEMS}/doc-001"
    status, _, _ = call(method, path, body, {"Content-Type": "application/json"})
    SENT.append((f"unauthenticated {method}", status))
    assert status == 401
    assert body.read == 0


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize("declared", ["5000000", "100", None], ids=["honest", "lying", "absent"])
def test_oversized_upload_is_413_as_soon_as_the_cap_is_passed(path, declared, limits, backend):
    before = _state(backend)
    body = Body(_multipart_chunks(60))
    headers = {**MULTIPART, **ADMIN}
    if declared:
        headers["Content-Length"] = declared
    status, got, _ = call("POST", path, body, headers)
    SENT.append((f"oversized {path} content-length {declared}", status))
    assert status == 413, got
    assert "CMM_GEO_MAX_UPLOAD_MB" in got["description"]
    # refused when the declared size passes the cap (nothing read), or right after the
    # cap when the size is unknown or a lie: never the whole 60 MB
    assert body.read == 0 if declared == "5000000" else body.read <= 2 * MB + 2 * MB
    assert _state(backend) == before


def test_oversized_file_via_http_client_is_413(client, limits, backend):
    before = _state(backend)
    data = (HEADER + "x1,T,PINQUA,Rho,,,\n" * 70_000).encode()
    assert len(data) > MB
    r = _send(
        client,
        "oversized file",
        "POST",
        "/imports/interventions",
        files={"file": ("big.csv", data)},
        headers=ADMIN,
    )
    assert r.status_code == 413, r.text
    assert _state(backend) == before


def test_oversized_json_body_is_413(limits, backend):
    body = Body(iter([b'{"type": "Feature", "properties": {"remark": "', b"x" * MB] * 3))
    status, got, _ = call("POST", ITEMS, body, {"Content-Type": "application/json", **ADMIN})
    SENT.append(("oversized json", status))
    assert status == 413, got
    assert body.read <= 2 * MB + 100


@pytest.mark.parametrize("path", [*UPLOAD_PATHS, ITEMS])
def test_stalled_body_is_408(path, limits, backend):
    before = _state(backend)
    body = Body(_multipart_chunks(1), stall_after=1)
    status, got, _ = call("POST", path, body, {**MULTIPART, **ADMIN})
    SENT.append((f"stalled {path}", status))
    assert status == 408, got
    assert "CMM_GEO_BODY_TIMEOUT_S" in got["description"]
    assert _state(backend) == before
