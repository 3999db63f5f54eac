"""Hostile and careless layer uploads: every one a 4xx naming the file, nothing stored.

Sent over HTTP to the real app on both backends; the layers and layer_features tables
must hold exactly what they held before. Unauthenticated uploads go through the ASGI
interface with a body that counts the bytes the server pulled: 401 before any is read.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa
from asgi_bodies import MULTIPART, Body, asgi_call
from fastapi.testclient import TestClient
from layer_builders import feature, frame, geojson_bytes, polygons, to_bytes, zip_files

from geo.settings import Settings

ADMIN = {"Authorization": "Bearer test-admin-token"}
MB = 1024 * 1024
MARS = (
    'GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190.0,'
    '169.89444722361179]],PRIMEM["Greenwich",0],UNIT["Decimal_Degree",0.0174532925199433]]'
)
POINT = {"type": "Point", "coordinates": [9.1, 45.5]}
LATIN1 = (
    b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
    b'{"nome":"Citt\xe0"},"geometry":{"type":"Point","coordinates":[9.1,45.5]}}]}'
)

SENT: list[tuple[str, int]] = []


@pytest.fixture(scope="module", autouse=True)
def _every_hostile_upload_got_a_4xx():
    """After the module's tests (in this process, whatever their order): every hostile
    request they sent was answered with a 4xx — else the last of them errors."""
    yield
    bad = [(label, s) for label, s in SENT if not 400 <= s < 500]
    print(f"\n{len(SENT)} hostile uploads, {len(SENT) - len(bad)} answered 4xx")
    assert bad == [], bad


def _state(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        layers = conn.execute(sa.text("SELECT count(*) FROM layers")).scalar_one()
        feats = conn.execute(sa.text("SELECT count(*) FROM layer_features")).scalar_one()
    return layers, feats


def _mars_zip(tmp_path) -> bytes:
    shp, _ = to_bytes(frame(polygons(), "EPSG:3003"), "shpzip", tmp_path / "s")
    with zipfile.ZipFile(io.BytesIO(shp)) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    return zip_files({n: (MARS.encode() if n.endswith(".prj") else b) for n, b in parts.items()})


def _cases(tmp_path) -> list[tuple[str, bytes, str, dict, int, str]]:
    """(label, bytes, file name, form, status, text the description must hold)."""
    pt = geojson_bytes([feature(POINT)])
    return [
        ("mars .prj", _mars_zip(tmp_path), "mars.zip", {}, 422, "mars.zip: the CRS of the file"),
        (
            "mars override",
            pt,
            "p.geojson",
            {"crs": "+proj=longlat +a=3396190 +b=3376200"},
            422,
            "p.geojson: the CRS of the override",
        ),
        (
            "IAU crs member",
            geojson_bytes([feature(POINT)], "IAU_2015:49900"),
            "i.geojson",
            {},
            422,
            "i.geojson: the CRS of the file (Mars",
        ),
        (
            "latin-1 attributes",
            LATIN1,
            "l.geojson",
            {},
            422,
            "l.geojson: attribute 'nome', feature 1 is not UTF-8",
        ),
        ("binary", bytes(range(256)) * 4, "x.geojson", {}, 422, "x.geojson: unrecognised format"),
        ("empty", b"", "e.geojson", {}, 422, "e.geojson: the file is empty"),
        ("not json", b'{"type": "Feat', "t.geojson", {}, 422, "t.geojson: not valid JSON"),
        (
            "deep json",
            b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "d.geojson",
            {},
            422,
            "d.geojson",
        ),
        ("NaN coordinates", pt.replace(b"9.1", b"NaN"), "n.geojson", {}, 422, "n.geojson"),
        (
            "1e308 coordinates",
            pt.replace(b"9.1,45.5", b"1e308,1e308"),
            "b.geojson",
            {},
            422,
            "b.geojson: in CRS84",
        ),
        ("control chars in name", pt, "p.geojson", {"name": "a\x00b"}, 422, "control characters"),
        ("unknown form field", pt, "p.geojson", {"nmae": "x"}, 422, "nmae"),
    ]


def test_hostile_layer_files_are_4xx_naming_the_file(client, backend, tmp_path):
    for label, data, name, form, status, text in _cases(tmp_path):
        before = _state(backend)
        r = client.post("/layers", files={"file": (name, data)}, data=form, headers=ADMIN)
        SENT.append((label, r.status_code))
        assert r.status_code == status, (label, r.text)
        assert text in r.json()["description"], (label, r.json())
        assert _state(backend) == before, label


def test_file_named_dotdot_is_read_as_a_plain_upload(client, backend):
    """``..`` (or a path) as the file name never reaches the disk: only the bytes count."""
    before = _state(backend)
    names = {"..": "upload", "../../../etc/passwd": "passwd", "C:\\x\\..\\..": "upload"}
    for name, shown in names.items():
        r = client.post("/layers", files={"file": (name, b"\x00garbage")}, headers=ADMIN)
        SENT.append((f"name {name!r}", r.status_code))
        assert r.status_code == 422, r.text
        assert r.json()["description"].startswith(f"{shown}: unrecognised format"), r.json()
    assert _state(backend) == before


# ----- size, time and authentication before reading ---------------------------------------


def call(app, path: str, body: Body, headers: dict[str, str]) -> tuple[int, dict, dict]:
    """One POST through the app's ASGI interface: (status, JSON body, headers)."""
    return asgi_call(app, "POST", path, body, headers)


def _geojson_upload(total_mb: int) -> Iterator[bytes]:
    """A well-formed multipart GeoJSON upload of about ``total_mb`` MB, generated lazily."""
    yield (
        b'--XB\r\nContent-Disposition: form-data; name="file"; filename="big.geojson"\r\n'
        b'Content-Type: application/geo+json\r\n\r\n{"type":"FeatureCollection","features":['
    )
    one = orjson.dumps(feature(POINT, pad="x" * 1000)) + b","
    for _ in range(total_mb):
        yield one * (MB // len(one))
    yield orjson.dumps(feature(POINT)) + b"]}\r\n--XB--\r\n"


@pytest.fixture(scope="module")
def small_app():
    """The app with a 1 MB upload limit and a 0.5 s body timeout."""
    from api.main import create_app

    return create_app(Settings(max_upload_mb=1, body_timeout_s=0.5, admin_token="test-admin-token"))


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Token abc"])
def test_unauthenticated_60mb_upload_is_401_before_reading(auth, backend):
    from api.main import app

    before = _state(backend)
    body = Body(_geojson_upload(60))
    headers = {**MULTIPART, "Content-Length": str(60 * MB)}
    if auth:
        headers["Authorization"] = auth
    status, got, hdrs = call(app, "/layers", body, headers)
    SENT.append((f"unauthenticated 60 MB {auth}", status))
    assert status == 401, got
    assert hdrs["www-authenticate"].startswith("Bearer")
    assert body.read == 0  # not one byte of the 60 MB was pulled
    assert _state(backend) == before


@pytest.mark.parametrize("declared", ["70000000", "100", None], ids=["honest", "lying", "absent"])
def test_oversized_upload_is_413_as_soon_as_the_cap_is_passed(declared, small_app, backend):
    before = _state(backend)
    body = Body(_geojson_upload(60))
    headers = {**MULTIPART, **ADMIN}
    if declared:
        headers["Content-Length"] = declared
    status, got, _ = call(small_app, "/layers", body, headers)
    SENT.append((f"oversized, content-length {declared}", status))
    assert status == 413, got
    assert "CMM_GEO_MAX_UPLOAD_MB" in got["description"]
    assert body.read == 0 if declared == "70000000" else body.read < 3 * MB
    assert _state(backend) == before


def test_oversized_file_in_a_small_body_is_413(small_app, backend):
    """Through a normal HTTP client: a 1.5 MB GeoJSON over the 1 MB limit."""
    before = _state(backend)
    data = geojson_bytes([feature(POINT, pad="x" * 1000) for _ in range(1500)])
    with TestClient(small_app) as c:
        r = c.post("/layers", files={"file": ("big.geojson", data)}, headers=ADMIN)
    SENT.append(("oversized 1.5 MB", r.status_code))
    assert r.status_code == 413, r.text
    # the body passes the cap before its parts are known: the message names the limit
    assert "larger than the upload limit of 1 MB (CMM_GEO_MAX_UPLOAD_MB)" in r.text
    assert _state(backend) == before


def test_stalled_upload_is_408(small_app, backend):
    before = _state(backend)
    body = Body(_geojson_upload(1), stall_after=1)
    status, got, _ = call(small_app, "/layers", body, {**MULTIPART, **ADMIN})
    SENT.append(("stalled", status))
    assert status == 408, got
    assert "CMM_GEO_BODY_TIMEOUT_S" in got["description"]
    assert _state(backend) == before
