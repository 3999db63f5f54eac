"""Search-box suggestions: comuni, zones and unions as the user types (``/lookup/suggest``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.responses import json_response
from geo.territory import lookup

router = APIRouter(tags=["lookup"])


@router.get(
    "/lookup/suggest",
    summary="Suggestions for a search box: comuni, zone omogenee, unions",
    description=(
        "Comuni by name typed any way (case, accents, apostrophes, partial words, "
        "abbreviations such as `Cernusco S/N`, typos), ISTAT or cadastral code (prefixes "
        "too); zone omogenee and unions by name. Best first; an empty list when nothing fits."
    ),
)
def get_suggestions(
    q: Annotated[str, Query(max_length=100, description="What the user typed so far")],
    limit: Annotated[int, Query(ge=1, le=20, description="Most suggestions")] = 8,
):
    return json_response({"query": q, "suggestions": lookup.suggest(q, limit=limit)})
