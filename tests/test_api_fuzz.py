"""Generated requests against every operation of the service: never a server error, and
every answer as documented (status code, media type and JSON schema)."""

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
    """A few generated requests of one operation; record any 5xx or undocumented answer."""
    from schemathesis import checks

    conformance = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]

    @settings(max_examples=8, deadline=None, suppress_health_check=list(health), database=None)
    @given(case=op.as_strategy())
    def run(case):
        response = case.call()
        try:
            case.validate_response(response, checks=conformance)
        except BaseException as exc:  # schemathesis raises a group of failures
            failures.append(
                f"{op.label}: {case.path_parameters} {case.query} -> "
                f"{response.status_code} {str(exc)[:300]}"
            )

    run()
