"""QGIS as a real client (issues 14, 15): Debian 12's QGIS 3.22 loads every collection
through its ``OAPIF`` provider, headless, against a real server; the test reads what QGIS
reports (validity, counts, geometry and field types, editing) and, in the server's access
log, what QGIS asked for (which filters it sends, which it evaluates itself).

QGIS's Python is the system one (``/usr/bin/python3`` with ``python3-qgis``), not the
project's venv: ``qgis_probe.py`` runs there in a subprocess and prints JSON.
``scripts/test.sh`` installs ``python3-qgis`` and ``qgis-providers``; without them this test
fails saying so (it never skips).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from servers import uvicorn_app

pytestmark = pytest.mark.clients

QGIS_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("qgis_probe.py")
ADMIN = {"Authorization": "Bearer test-admin-token"}

#: ``format`` of the primary geometry in /schema → QgsWkbTypes.displayString().
WKB = {
    "geometry-point": "Point",
    "geometry-multipoint": "MultiPoint",
    "geometry-linestring": "LineString",
    "geometry-multilinestring": "MultiLineString",
    "geometry-polygon": "Polygon",
    "geometry-multipolygon": "MultiPolygon",
}

#: An uploaded green-network layer of lines (so a layer collection is loaded too).
CANALS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"nome": f"Roggia {i}", "lunghezza_m": 1200.5 + i},
            "geometry": {
                "type": "LineString",
                "coordinates": [[9.0 + i / 100, 45.40], [9.02 + i / 100, 45.42]],
            },
        }
        for i in range(3)
    ],
}

#: Columns of Italia Domani's PNRR extraction (as ``cmm-geo import pnrr`` reads it).
PNRR_HEADER = [
    "CUP", "Codice Locale Progetto", "Missione", "Descrizione Missione", "Componente",
    "Descrizione Componente", "Codice Univoco Submisura", "Descrizione Submisura",
    "Titolo progetto", "Sintesi progetto", "Soggetto attuatore",
    "Codice fiscale soggetto attuatore", "Finanziamento PNRR", "Finanziamento Totale",
    "COD_ISTAT_COMUNE", "Descrizione Comune", "Indirizzo", "CAP", "Data di Estrazione",
]  # fmt: skip
PNRR_COMUNI = [("015146", "MILANO"), ("015182", "RHO"), ("015059", "CASSANO D'ADDA")]


def _pnrr_csv(n: int) -> bytes:
    """``n`` PNRR projects in the national CSV format, with both amounts."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(PNRR_HEADER)
    for i in range(n):
        code, name = PNRR_COMUNI[i % len(PNRR_COMUNI)]
        cup = f"B11A230000{i:05d}"
        w.writerow([
            cup, f"L_{cup}", "M2", "Missione M2", "M2C4", "Componente 4",
            "M2C4I2.02.00", "Interventi per la resilienza", f"Progetto {i}", f"Sintesi {i}",
            f"COMUNE DI {name}", "1199250158", f"{250000 + 1000 * i}.0",
            f"{400000 + 1000 * i}.0", code, name, "", "20100", "2023-03-01",
        ])  # fmt: skip
    return out.getvalue().encode()


def _multipart(fields: dict[str, str], name: str, filename: str, body: bytes) -> tuple:
    boundary = "----cmmgeoqgis"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + body
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _post(url: str, fields: dict[str, str], name: str, filename: str, body: bytes) -> dict:
    data, boundary = _multipart(fields, name, filename, body)
    req = urllib.request.Request(
        url, data=data, method="POST",
        headers={**ADMIN, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status in (200, 201), r.status
        return json.loads(r.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def _matched(base: str, cid: str, **params: str) -> int:
    query = urllib.parse.urlencode({"limit": 1, **params})
    return _get(f"{base}/collections/{cid}/items?{query}")["numberMatched"]


def _qgis(base: str, home: Path, collections: list[str], subsets: list, bboxes: list) -> dict:
    """Run the probe in QGIS's Python; fail loudly when QGIS is not installed."""
    check = subprocess.run(
        [QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, timeout=60
    )
    if check.returncode != 0:
        pytest.fail(
            f"{QGIS_PYTHON} cannot import qgis ({check.stderr.strip()[-300:]}): install "
            "python3-qgis and qgis-providers (bash scripts/test.sh does)"
        )
    home.mkdir(mode=0o700, exist_ok=True)
    env = {
        **os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home), "PYTHONPATH": "",
    }  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    plan = json.dumps(
        {"base": base, "collections": collections, "subsets": subsets, "bboxes": bboxes}
    )
    out = subprocess.run(
        [QGIS_PYTHON, str(PROBE), plan], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _requests_by_step(log: Path) -> dict[str, list[str]]:
    """The access log cut at the probe's marks: step → request lines ("GET /path?query")."""
    steps: dict[str, list[str]] = {}
    current = None
    for method, target in re.findall(r'"([A-Z]+) (\S+) HTTP/[\d.]+"', log.read_text("utf-8")):
        if target.startswith("/qgis-probe-mark/"):
            current = target.removeprefix("/qgis-probe-mark/")
            steps[current] = []
        elif current is not None:
            steps[current].append(f"{method} {urllib.parse.unquote(target)}")
    return steps


SUBSETS = [
    ["comuni", "\"zona_omogenea_id\" = 'sud-ovest'"],
    ["interventions", '"amount_eur" > 1000000'],
    ["interventions", "\"created\" >= '2030-01-01T00:00:00Z'"],
]
#: A view on Milano's west side (CRS84).
BBOX = [9.1, 45.4, 9.2, 45.5]


@pytest.fixture(scope="module")
def qgis_run(tmp_path_factory):
    """Run QGIS on a fresh server (the seed), then again after a PNRR import; yield the
    two reports, the collections, the expected numbers and the requests by step."""
    tmp = tmp_path_factory.mktemp("qgis")
    log = tmp / "access.log"
    with uvicorn_app({}, "cmm-geo-qgis-", access_log=log) as base:
        layer = _post(
            f"{base}/layers", {"name": "Rogge di prova"}, "file", "rogge.geojson",
            json.dumps(CANALS).encode(),
        )  # fmt: skip
        collections = [c["id"] for c in _get(f"{base}/collections")["collections"]]
        assert layer["id"] in collections
        seed = _qgis(base, tmp / "home-seed", ["interventions"], [], [])
        report = _post(f"{base}/imports/pnrr", {}, "file", "progetti.csv", _pnrr_csv(12))
        assert report["new"] == 12, report
        expected = {}
        for cid in collections:
            schema = _get(f"{base}/collections/{cid}/schema")["properties"]
            geom = next(p for p in schema.values() if p.get("x-ogc-role") == "primary-geometry")
            expected[cid] = {"count": _matched(base, cid), "wkb": WKB[geom["format"]]}
        expected_subsets = [
            _matched(base, "comuni", zona_omogenea_id="sud-ovest"),
            _matched(base, "interventions", filter="amount_eur > 1000000"),
            _matched(base, "interventions", datetime="2030-01-01T00:00:00Z/9999-12-31T00:00:00Z"),
        ]
        expected_bbox = _matched(base, "comuni", bbox=",".join(map(str, BBOX)))
        after = _qgis(base, tmp / "home", collections, SUBSETS, [["comuni", BBOX]])
    yield {
        "seed": seed,
        "qgis": after,
        "expected": expected,
        "expected_subsets": expected_subsets,
        "expected_bbox": expected_bbox,
        "requests": _requests_by_step(log),
    }


def test_it_is_qgis_3_22(qgis_run):
    assert qgis_run["qgis"]["version"].startswith("3.22."), qgis_run["qgis"]["version"]


def test_every_collection_loads_whole_with_its_declared_geometry(qgis_run):
    got = qgis_run["qgis"]["collections"]
    assert set(got) == set(qgis_run["expected"]) >= {"comuni", "interventions", "rogge-di-prova"}
    for cid, want in qgis_run["expected"].items():
        layer = got[cid]
        assert layer["valid"], cid
        assert layer["count"] == layer["feature_count"] == want["count"], (cid, layer, want)
        assert layer["wkb"] == want["wkb"], (cid, layer["wkb"], want["wkb"])
    assert got["comuni"]["count"] == 133 and got["interventions"]["count"] == 104 + 12


def test_numbers_are_numbers(qgis_run):
    collections = qgis_run["qgis"]["collections"]
    interventions = collections["interventions"]["fields"]
    assert interventions["amount_eur"] == "double"
    assert interventions["pnrr_amount_eur"] == "double"
    assert interventions["created"] == "QDateTime"
    assert collections["comuni"]["fields"]["population"] in ("int", "qlonglong")
    assert collections["comuni"]["fields"]["area_km2"] == "double"
    assert collections["rogge-di-prova"]["fields"]["lunghezza_m"] == "double"


def test_qgis_3_22_types_fields_from_the_first_ten_items(qgis_run):
    """QGIS 3.22 reads neither /schema nor /queryables: it types each field from the ten
    features of ``/items?limit=10``. The seed's first ten interventions (by id) have no
    amount, so there it makes the amounts text; the PNRR projects (ids are CUPs, which
    sort first) carry both amounts, so after an import the same fields are numbers."""
    seed = qgis_run["seed"]["collections"]["interventions"]["fields"]
    assert seed["amount_eur"] == seed["pnrr_amount_eur"] == "QString"
    loads = [r for r in qgis_run["requests"]["load-interventions"] if "/items" in r]
    assert loads[0] == "GET /collections/interventions/items?limit=10"


def test_filters_are_evaluated_by_qgis_except_dates(qgis_run):
    """QGIS 3.22 sends no ``filter`` and no ``?property=value``: it pages through every
    feature (``limit=100``) and filters them itself. Only comparisons on a date-time field
    go to the server, as the core ``datetime`` parameter."""
    results = qgis_run["qgis"]["subsets"]
    requests = qgis_run["requests"]
    for i, (result, want) in enumerate(zip(results, qgis_run["expected_subsets"], strict=True)):
        assert result["accepted"], result
        assert result["count"] == want, (result, want)
        items = [r for r in requests[f"subset-{i}"] if "/items" in r]
        assert items, requests[f"subset-{i}"]
        assert not any("filter=" in r or "zona_omogenea_id=" in r for r in items), items
    assert 0 < results[0]["count"] < 133 and 0 < results[1]["count"] < 116
    assert all("datetime=" not in r for r in requests["subset-0"] + requests["subset-1"])
    dated = [r for r in requests["subset-2"] if "datetime=2030-01-01T00:00:00Z/" in r]
    assert dated, requests["subset-2"]


def test_the_view_extent_goes_to_the_server_as_bbox(qgis_run):
    """With *Only request features overlapping the view extent*, QGIS 3.22 sends the view
    as ``bbox`` and gets exactly what the server selects for it."""
    (result,) = qgis_run["qgis"]["bboxes"]
    assert 0 < result["count"] == qgis_run["expected_bbox"] < 133
    items = [r for r in qgis_run["requests"]["bbox-0"] if "/items" in r and "bbox=" in r]
    assert items, qgis_run["requests"]["bbox-0"]
    box = [float(v) for v in re.search(r"bbox=([^&]+)", items[0]).group(1).split(",")]
    assert box == pytest.approx(BBOX)


def test_qgis_3_22_reads_no_conformance_and_does_not_edit(qgis_run):
    """The service declares Part 4 (create, replace, update, delete) and answers OPTIONS,
    but QGIS 3.22's OAPIF provider never asks: no /conformance, no OPTIONS, and no layer
    offers editing. (QGIS 3.32 added Part 4 editing, found through OPTIONS.)"""
    every = [r for step in qgis_run["requests"].values() for r in step]
    assert every and not any(r.startswith("GET /conformance") for r in every)
    assert not any(r.startswith("OPTIONS") for r in every)
    for cid, layer in qgis_run["qgis"]["collections"].items():
        assert not any(layer["editing"].values()), (cid, layer["editing"])
