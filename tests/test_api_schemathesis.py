"""Property-based run of schemathesis against the served OpenAPI document (issue 6): for every operation, a
bounded number of generated requests (with a write token) must get no 5xx and no response that violates
the document (status code, content type, headers, body schema)."""

from __future__ import annotations


import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from test_api_support import SPEC_EXAMPLE, WRITE, close_env, make_env

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    e = make_env(tmp_path_factory.mktemp("schemathesis"))
    (e.schedules / "nightly.yaml").write_text(SPEC_EXAMPLE)
    (e.schedules / "broken.yaml").write_text("name: [\n")
    e.reconciler.reconcile_now()
    yield e
    close_env(e)


def _operations(env) -> list:
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", env.app)
    return [result.ok() for result in schema.get_all_operations()]


def test_served_document_is_openapi_31(env):
    ops = _operations(env)
    labels = {op.label for op in ops}
    assert "POST /api/v1/schedules/{schedule_id}/runs" in labels and "GET /api/v1/runs/{run_id}" in labels
    assert len(ops) == 25
    assert "GET /api/v1/unassigned-bookings" in labels


def test_no_5xx_and_no_schema_violations(env):
    failures: list[str] = []
    for operation in _operations(env):

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:
            # Every write is allowed (If-Match: *) so generated documents reach validation and the disk.
            headers = {**WRITE}
            if case.method in ("PUT", "PATCH", "DELETE", "POST"):
                headers["If-Match"] = "*"
            if case.path.endswith("/runs") and case.method == "POST":
                case.query = {**(case.query or {}), "wait": 0}  # no long waits in a property test
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect all operations' failures, then fail once
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
