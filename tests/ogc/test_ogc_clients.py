"""Real OGC clients against a real uvicorn server: GDAL (OAPIF), OWSLib, schemathesis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.clients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(data_dir):
    """``http://127.0.0.1:PORT`` of a uvicorn server of the app (httptools + uvloop)."""
    port = _free_port()
    env = {**os.environ, "CMM_GEO_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/conformance", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"uvicorn exited with {proc.returncode}")
            time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("uvicorn did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def _gdal(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not installed: bash scripts/test.sh installs gdal-bin")
    return path


def _run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def test_ogrinfo_lists_collections_and_reads_133_comuni(server):
    ogrinfo = _gdal("ogrinfo")
    listing = _run(ogrinfo, "-ro", "-so", f"OAPIF:{server}")
    for cid in ("comuni", "zone-omogenee", "unioni"):
        assert f": {cid} (" in listing
    summary = _run(ogrinfo, "-ro", "-so", f"OAPIF:{server}", "comuni")
    assert "Feature Count: 133" in summary
    full = _run(ogrinfo, "-ro", "-q", "-geom=NO", f"OAPIF:{server}", "comuni")
    assert full.count("OGRFeature(comuni)") == 133
    assert "name (String) = Milano" in full


def test_ogrinfo_bbox_reaches_the_server(server):
    ogrinfo = _gdal("ogrinfo")
    out = _run(
        ogrinfo,
        "-ro",
        "-q",
        "-geom=NO",
        "--debug",
        "on",
        f"OAPIF:{server}",
        "comuni",
        "-spat",
        "9.18",
        "45.46",
        "9.19",
        "45.47",
    )
    # The request carried the bbox and the server returned only Milano.
    assert "bbox=9.1" in out
    assert out.count("OGRFeature(comuni)") == 1
    assert "name (String) = Milano" in out


def test_ogr2ogr_copies_zones_to_geopackage(server, tmp_path):
    ogr2ogr = _gdal("ogr2ogr")
    import pyogrio

    out = tmp_path / "zone.gpkg"
    _run(ogr2ogr, "-f", "GPKG", str(out), f"OAPIF:{server}", "zone-omogenee")
    df = pyogrio.read_dataframe(out)
    assert len(df) == 8
    assert set(df["name"]) == {
        "Adda Martesana",
        "Alto Milanese",
        "Magentino e Abbiatense",
        "Milano",
        "Nord Milano",
        "Nord Ovest",
        "Sud Est",
        "Sud Ovest",
    }
    assert df.geometry.is_valid.all() or df.geometry.notna().all()


def test_owslib_collections_items_filter_item(server):
    from owslib.ogcapi.features import Features

    api = Features(server)
    ids = [c["id"] for c in api.collections()["collections"]]
    assert {"comuni", "zone-omogenee", "unioni"} <= set(ids)
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in api.conformance()["conformsTo"]
    )
    bbox = api.collection_items("comuni", bbox=[9.18, 45.46, 9.19, 45.47], limit=20)
    assert [f["id"] for f in bbox["features"]] == ["015146"]
    flt = api.collection_items("comuni", filter="population > 70000 AND name <> 'Milano'")
    assert flt["numberMatched"] >= 1
    assert all(f["properties"]["population"] > 70000 for f in flt["features"])
    one = api.collection_item("comuni", "015146")
    assert one["properties"]["name"] == "Milano"
    q = api.collection_queryables("comuni")
    assert "population" in q["properties"]


def test_schemathesis_no_server_error_and_answers_as_documented(server):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{server}/api").include(
        path_regex=r"^/(conformance|api|collections.*)?$"
    )
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 7
    failures: list[str] = []
    for op in operations:
        _fuzz(op, server, failures)
    assert failures == []


def _fuzz(op, server: str, failures: list[str]) -> None:
    """A few generated requests of one operation; record any 5xx or undocumented answer."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    conformance = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]

    @settings(
        max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=op.as_strategy())
    def run(case):
        response = case.call(base_url=server, timeout=30)
        try:
            case.validate_response(response, checks=conformance)
        except BaseException as exc:  # schemathesis raises a group of failures
            failures.append(
                f"{op.label}: {case.path} {case.query} -> {response.status_code} {str(exc)[:300]}"
            )

    run()
