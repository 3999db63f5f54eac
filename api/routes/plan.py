"""The strategic plan catalogue as JSON: missions, objectives, Drivers, keywords, programmes."""

from __future__ import annotations

from fastapi import APIRouter

from api.responses import json_response
from geo.plan import PlanCatalogue

router = APIRouter(prefix="/plan", tags=["plan"])
PARTS = ("missions", "objectives", "drivers", "keywords", "programmes")


@router.get("", summary="The whole plan catalogue")
def catalogue():
    data = PlanCatalogue.load().to_dict()
    counts = {k: len(data[k]) for k in PARTS}
    return json_response({"counts": counts, **{k: data[k] for k in PARTS}})


def _part(name: str):
    def endpoint():
        items = PlanCatalogue.load().to_dict()[name]
        return json_response({"count": len(items), name: items})

    endpoint.__name__ = f"plan_{name}"
    return endpoint


for _name in PARTS:
    router.add_api_route(f"/{_name}", _part(_name), methods=["GET"], summary=f"Plan {_name}")
