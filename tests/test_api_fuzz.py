"""Generated requests against every operation of the service: never a server error."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def schema():
    import schemathesis

    from api.main import app

    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_answers_without_server_error(schema):
    from hypothesis import HealthCheck, given, settings

    operations = [op.ok() for op in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert "GET /lookup" in labels and "POST /layers" in labels and len(operations) >= 35
    failures: list[str] = []
    for op in operations:
        _fuzz(op, failures, given, settings, HealthCheck)
    assert failures == []


def _fuzz(op, failures: list[str], given, settings, health) -> None:
    """A few generated requests of one operation; record any 5xx."""

    @settings(max_examples=8, deadline=None, suppress_health_check=list(health), database=None)
    @given(case=op.as_strategy())
    def run(case):
        response = case.call()
        if response.status_code >= 500:
            failures.append(
                f"{op.label}: {case.path_parameters} {case.query} -> "
                f"{response.status_code} {response.text[:200]}"
            )

    run()
