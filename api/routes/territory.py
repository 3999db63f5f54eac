"""The territory as plain JSON: comuni, zone omogenee, unioni."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api.responses import json_response
from geo.errors import NotFound, quoted
from geo.territory import get_territory

router = APIRouter(tags=["territory"])

IstatCode = Path(..., pattern=r"^\d{6}$", description="6-digit ISTAT code, e.g. 015146")


@router.get("/comuni", summary="The 133 comuni with their zone and union")
async def list_comuni():
    t = get_territory()
    items = [t.comune_record(c.istat_code, with_neighbours=False) for c in t.comuni_list]
    return json_response({"count": len(items), "comuni": items})


@router.get("/comuni/{istat_code}", summary="One comune, with zone, union and neighbours")
async def get_comune(istat_code: str = IstatCode):
    t = get_territory()
    if istat_code not in t.comuni:
        raise NotFound(
            f"no comune with ISTAT code {istat_code}",
            it=f"nessun comune con codice ISTAT {istat_code}",
            parameter="istat_code",
        )
    return json_response(t.comune_record(istat_code))


@router.get("/zone-omogenee", summary="The 7 zone omogenee and Milano")
async def list_zones():
    t = get_territory()
    items = [t.group_record(z) for z in t.zones.values()]
    return json_response({"count": len(items), "zone_omogenee": items})


@router.get("/zone-omogenee/{zona_id}", summary="One zona omogenea")
async def get_zone(zona_id: str):
    t = get_territory()
    if zona_id not in t.zones:
        raise NotFound(
            f"no zona omogenea {zona_id!r}; known: {', '.join(t.zones)}",
            it=f"nessuna zona omogenea {quoted(zona_id)}; quelle esistenti: {', '.join(t.zones)}",
            parameter="zona_id",
        )
    return json_response(t.group_record(t.zones[zona_id]))


@router.get("/unioni", summary="The unions of comuni")
async def list_unions():
    t = get_territory()
    items = [t.group_record(u) for u in t.unions.values()]
    return json_response({"count": len(items), "unioni": items})


@router.get("/unioni/{unione_id}", summary="One union of comuni")
async def get_union(unione_id: str):
    t = get_territory()
    if unione_id not in t.unions:
        raise NotFound(
            f"no union {unione_id!r}; known: {', '.join(t.unions)}",
            it=f"nessuna unione {quoted(unione_id)}; quelle esistenti: {', '.join(t.unions)}",
            parameter="unione_id",
        )
    return json_response(t.group_record(t.unions[unione_id]))
