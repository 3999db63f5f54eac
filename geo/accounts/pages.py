"""Server-rendered pages of sign-in, users, intervention editing, history and upload.

Jinja2 with autoescaping on: every user string (user names, titles, comuni, layer names)
is escaped; data for the scripts travels in ``data-*`` attributes, never in inline
scripts, and every script is a file under ``static/`` served by the app itself, so the
default Content-Security-Policy (``script-src 'self'``) holds.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from geo.accounts.messages import LANGS, t

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
#: URL of :data:`STATIC_DIR` (served by ``api/routes/accounts.py``).
STATIC_URL = "/app/accounts-static"
#: The map application's stylesheet, linked when the application ships it.
APP_CSS = Path(__file__).resolve().parents[1] / "webapp" / "static" / "app.css"
APP_CSS_URL = "/app/static/app.css"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@lru_cache(maxsize=1)
def static_version() -> str:
    """Digest of the static files, appended to their URLs so browsers never run stale code."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def static_files() -> dict[str, Path]:
    """The files served at :data:`STATIC_URL` (a fixed list: no path is built from a URL)."""
    return {p.name: p for p in STATIC_DIR.glob("*") if p.suffix in (".js", ".css")}


def render(template: str, lang: str, **context: Any) -> str:
    """A page in ``lang``: ``t(key, **kw)`` inside templates gives the page's strings."""
    other = next(x for x in LANGS if x != lang)
    return _env.get_template(template).render(
        lang=lang,
        other_lang=other,
        t=lambda key, **kw: t(lang, key, **kw),
        static=STATIC_URL,
        v=static_version(),
        app_css=APP_CSS_URL if APP_CSS.is_file() else None,
        **context,
    )


#: CRSs offered when an upload has none (the ones Lombardy's data come in), in order.
CRS_CHOICES = ("EPSG:32632", "EPSG:7791", "EPSG:6707", "EPSG:3003", "CRS84", "EPSG:4326")


def crs_options(lang: str) -> list[tuple[str, str]]:
    """``(value, label)`` of the CRS list of the upload form."""
    labels = {
        "it": {
            "CRS84": "WGS84 in gradi, longitudine e latitudine (EPSG:4326 / CRS84)",
            "EPSG:4326": "WGS84 in gradi, latitudine e longitudine (EPSG:4326)",
        },
        "en": {
            "CRS84": "WGS84 degrees, longitude and latitude (EPSG:4326 / CRS84)",
            "EPSG:4326": "WGS84 degrees, latitude and longitude (EPSG:4326)",
        },
    }[lang]
    out = []
    for code in CRS_CHOICES:
        out.append((code, labels.get(code) or t(lang, "crs." + code.split(":")[1])))
    return out


def layer_report(lang: str, rec: dict[str, Any], *, replaced: bool) -> tuple[str, list[str]]:
    """An upload's report in plain words: a heading and one sentence per fact."""
    rep = rec.get("report") or {}
    heading = t(
        lang, "layers.report_replaced" if replaced else "layers.report_title", name=rec["name"]
    )
    kind = t(lang, "type." + str(rec.get("geometry_type")))
    lines = [t(lang, "layers.report_features", n=rec["feature_count"], type=kind)]
    src = rep.get("source_crs") or rec.get("source_crs")
    origin = t(lang, "crs.from_override" if rep.get("crs_from") == "override" else "crs.from_file")
    lines.append(t(lang, "layers.report_crs", crs=src, from_=origin))
    repaired = int(rep.get("repaired") or 0)
    lines.append(
        t(lang, "layers.report_repaired", n=repaired)
        if repaired
        else t(lang, "layers.report_none_repaired")
    )
    dropped = int(rep.get("empty_dropped") or 0)
    lines.append(
        t(lang, "layers.report_dropped", n=dropped)
        if dropped
        else t(lang, "layers.report_none_dropped")
    )
    if rep.get("collapsed_dropped"):
        lines.append(t(lang, "layers.report_collapsed", n=int(rep["collapsed_dropped"])))
    return heading, lines
