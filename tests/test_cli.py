"""The cmm-geo command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from geo.cli import app

runner = CliRunner()


def test_lookup_by_name():
    r = runner.invoke(app, ["lookup", "cassano d'adda"])
    assert r.exit_code == 0, r.output
    assert "Cassano d'Adda" in r.output and "Adda Martesana" in r.output


def test_lookup_by_point_json():
    r = runner.invoke(app, ["lookup", "--lon", "9.19", "--lat", "45.46", "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output)["comune"]["name"] == "Milano"


def test_lookup_projected_point():
    r = runner.invoke(app, ["lookup", "--x", "514000", "--y", "5034000", "--crs", "EPSG:32632"])
    assert r.exit_code == 0 and "Milano" in r.output


def test_lookup_miss_suggests_and_fails():
    r = runner.invoke(app, ["lookup", "Cassano dAda"])
    assert r.exit_code == 2
    assert "did you mean Cassano d'Adda" in r.output


def test_console_script_installed():
    exe = Path(sys.executable).parent / "cmm-geo"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "lookup" in out.stdout and "serve" in out.stdout


def test_build_data_is_reproducible(tmp_path):
    from geo.territory import BOUNDARIES_FILE
    from geo.territory.boundaries import COMUNI_FILE, build_comuni

    path = build_comuni(tmp_path)
    assert path == tmp_path / COMUNI_FILE
    assert path.read_bytes() == BOUNDARIES_FILE.read_bytes()
