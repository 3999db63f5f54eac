"""What QGIS sees of the service: run by QGIS's own Python (``/usr/bin/python3``, not the
project's venv) from ``test_qgis.py``. Loads collections through QGIS's ``OAPIF`` provider,
headless (``QT_QPA_PLATFORM=offscreen``), and prints one JSON document on stdout.

argv[1] is a JSON plan: ``{"base": URL, "collections": [id…], "subsets": [[id, expr]…],
"bboxes": [[id, [xmin, ymin, xmax, ymax]]…]}`` (the last read with *Only request features
overlapping the view extent*, ``restrictToRequestBBOX``).
Before each step it requests ``/qgis-probe-mark/<step>`` (a 404), so the test can cut the
server's access log into the requests QGIS made for each step.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.error
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The platform is set before Qt loads (the imports below).
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeatureRequest,
    QgsRectangle,
    QgsVectorDataProvider,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

EDITING = ("AddFeatures", "DeleteFeatures", "ChangeAttributeValues", "ChangeGeometries")


def mark(base: str, step: str) -> None:
    """A request the test finds in the access log, between two steps."""
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(f"{base}/qgis-probe-mark/{step}", timeout=10).read()


def layer(base: str, cid: str, *, restrict_to_bbox: bool = False) -> QgsVectorLayer:
    uri = f"url='{base}' typename='{cid}'"
    if restrict_to_bbox:
        uri += " restrictToRequestBBOX='1'"
    return QgsVectorLayer(uri, cid, "OAPIF")


def describe(lyr: QgsVectorLayer) -> dict:
    """Validity, features counted by iterating, geometry type, field types, editing."""
    if not lyr.isValid():
        return {"valid": False}
    caps = lyr.dataProvider().capabilities()
    return {
        "valid": True,
        "count": sum(1 for _ in lyr.getFeatures()),
        "feature_count": lyr.featureCount(),
        "wkb": QgsWkbTypes.displayString(lyr.wkbType()),
        "fields": {f.name(): QVariant.typeToName(f.type()) for f in lyr.fields()},
        "editing": {n: bool(caps & getattr(QgsVectorDataProvider, n)) for n in EDITING},
        "capabilities": lyr.dataProvider().capabilitiesString(),
    }


def main() -> None:
    plan = json.loads(sys.argv[1])
    base = plan["base"]
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    out: dict = {"version": Qgis.QGIS_VERSION, "collections": {}, "subsets": [], "bboxes": []}
    for cid in plan["collections"]:
        mark(base, f"load-{cid}")
        out["collections"][cid] = describe(layer(base, cid))
    for i, (cid, expression) in enumerate(plan["subsets"]):
        mark(base, f"subset-{i}")
        lyr = layer(base, cid)
        accepted = lyr.setSubsetString(expression)
        out["subsets"].append(
            {
                "collection": cid,
                "expression": expression,
                "accepted": accepted,
                "count": sum(1 for _ in lyr.getFeatures()),
            }
        )
    for i, (cid, box) in enumerate(plan.get("bboxes", [])):
        mark(base, f"bbox-{i}")
        request = QgsFeatureRequest().setFilterRect(QgsRectangle(*box))
        lyr = layer(base, cid, restrict_to_bbox=True)
        out["bboxes"].append({"collection": cid, "count": sum(1 for _ in lyr.getFeatures(request))})
    mark(base, "end")
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    app.exitQgis()
    # PyQGIS 3.22 may crash tearing down Qt objects after exitQgis(): everything is written,
    # so leave without running the interpreter's own teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
