"""The strategic plan's catalogue: missions, objectives, Drivers, keywords, programmes.

Read from ``data/plan/*.csv`` (extracted from the plan documents, with their sources) by
:mod:`.catalogue`; interventions are linked to it by programme.
"""

from geo.plan.catalogue import (
    PLAN_DIR,
    Driver,
    Keyword,
    Mission,
    Objective,
    PlanCatalogue,
    PlanDataError,
    PlanNotFound,
    Programme,
    load,
)

__all__ = [
    "PLAN_DIR",
    "Driver",
    "Keyword",
    "Mission",
    "Objective",
    "PlanCatalogue",
    "PlanDataError",
    "PlanNotFound",
    "Programme",
    "load",
]
