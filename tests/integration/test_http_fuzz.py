"""Schemathesis against the real app on a fresh database: requests generated from the
OpenAPI document (fixed seed, a bounded number per operation, a time budget) must never get
a 5xx, and every response must be one the document declares, in its declared shape;
requests outside the document must never get a 5xx either.

Not asserted: schemathesis's positive_data_acceptance. Valid-per-schema requests are still
refused for reasons no schema states (an unknown function, a role too low, a path org that
differs from X-Reactor-Org), each with a documented status."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from tests.http_fixtures import Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]

EXAMPLES_PER_OPERATION = 12
BUDGET_S = 40.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Bundle uploads: the generated value as bytes (never a valid archive: the server says 422).
schemathesis.serializer.alias("application/gzip", "application/octet-stream")


def fuzz(
    base: str,
    document: dict[str, Any],
    headers: dict[str, str],
    mode: GenerationMode = GenerationMode.POSITIVE,
    checks: list[Any] = CHECKS,
) -> tuple[int, Counter[int], list[str]]:
    """(operations run, responses by status, failures); runs in a thread: schemathesis
    calls with requests."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    deadline = time.monotonic() + BUDGET_S
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(
                f"the OpenAPI document has an operation schemathesis cannot read: {result.err()}"
            )
            continue
        operation = result.ok()
        if "text/event-stream" in str(operation.definition.raw.get("responses", {})):
            continue  # the live log streams until the client leaves
        if time.monotonic() > deadline:
            break
        operations += 1
        strategy = operation.as_strategy(generation_mode=mode)

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the fixed seed
            phases=[Phase.generate],  # no shrinking: report, do not search
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def run(case: Any) -> None:
            try:
                response = case.call(base_url=base, headers=headers, timeout=10)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=checks)
            except (Exception, BaseExceptionGroup) as exc:  # collect them all, then assert
                failures.append(f"{case.operation.label}: {type(exc).__name__}: {exc}"[:2000])

        # Unsatisfiable: nothing outside the document to send (negative mode, no parameters).
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            run()
    return operations, statuses, failures


async def test_generated_requests_get_no_5xx_and_only_documented_answers(api: Api) -> None:
    await publish(api, "process-order")
    job = {"name": "process-order", "function_name": "process-order"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=job)).status == 201
    document = (await api.call("GET", "/jobs/v1/openapi.json", as_=None)).json
    operations, statuses, failures = await asyncio.to_thread(
        fuzz, api.base, document, dict(api.headers["owner"])
    )
    assert operations >= 30, operations
    assert statuses.total() >= 5 * operations and len(statuses) >= 4, statuses
    assert not failures, "\n\n".join(sorted(set(failures))[:15])


async def test_requests_outside_the_document_get_no_5xx(api: Api) -> None:
    document = (await api.call("GET", "/jobs/v1/openapi.json", as_=None)).json
    operations, statuses, failures = await asyncio.to_thread(
        fuzz,
        api.base,
        document,
        dict(api.headers["owner"]),
        GenerationMode.NEGATIVE,
        [not_a_server_error],
    )
    assert operations >= 30 and statuses[422] > 0, (operations, statuses)
    assert not failures, "\n\n".join(sorted(set(failures))[:15])
