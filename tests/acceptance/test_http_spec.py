"""The spec's HTTP flows against a real server: its curl examples run as written (by curl,
with REACTOR_URL and REACTOR_TOKEN set), the quickstart from deploy to emitted event, the
webhook how-to, and the DLQ how-to."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

import msgspec
import pytest

from tests.http_fixtures import Api, api, publish

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]
__all__ = ["api"]

# Verbatim from the spec (Quickstart; Add a webhook trigger; Retry failed runs).
CREATE_JOB = """curl -s -X POST "$REACTOR_URL/jobs/v1/_admin/jobs" \\
  -H "Authorization: Bearer $REACTOR_TOKEN" \\
  -H "X-Reactor-Org: acme" \\
  -H "Content-Type: application/json" \\
  -d '{"name":"process-order","function_name":"process-order"}'"""
MANUAL_TRIGGER = """curl -s -X POST "$REACTOR_URL/jobs/v1/process-order/trigger" \\
  -H "Authorization: Bearer $REACTOR_TOKEN" \\
  -H "X-Reactor-Org: acme" \\
  -H "Content-Type: application/json" \\
  -d '{"payload":{"orderId":"ord_123"}}'"""
WEBHOOK = """curl -s -X POST "$REACTOR_URL/jobs/v1/webhooks/whk_..." \\
  -H "Content-Type: application/json" \\
  -d '{"orderId":"ord_456","source":"stripe"}'"""
RUNS_FAILED = """curl -s "$REACTOR_URL/jobs/v1/_admin/jobs/process-order/runs?status=failed" \\
  -H "Authorization: Bearer $REACTOR_TOKEN" \\
  -H "X-Reactor-Org: acme\""""
DLQ_RETRY = """curl -s -X POST "$REACTOR_URL/jobs/v1/_admin/jobs/process-order/dlq/dlq_01HZ.../retry" \\
  -H "Authorization: Bearer $REACTOR_TOKEN" \\
  -H "X-Reactor-Org: acme\""""  # noqa: E501 (verbatim from the spec)


async def curl(api: Api, command: str) -> Any:
    """Run a spec example with bash; its output must be JSON."""
    token = api.headers["owner"]["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, "REACTOR_URL": api.base, "REACTOR_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return msgspec.json.decode(out)


async def test_quickstart_create_job_trigger_and_see_the_run_complete(api: Api) -> None:
    function = await publish(api, "process-order")
    assert function["live_version"] == 1
    job = await curl(api, CREATE_JOB)
    assert job["name"] == "process-order" and job["function_name"] == "process-order"
    assert job["policy"]["max_concurrency"] == 5  # from the bundle's manifest
    cron = await api.call(
        "POST",
        "/jobs/v1/_admin/jobs/process-order/triggers",
        json={"kind": "cron", "schedule": "0 * * * *"},
    )
    assert cron.status == 201 and cron.json["kind"] == "cron" and "url" not in cron.json
    assert cron.json["schedule"] == "0 * * * *" and cron.json["timezone"] == "UTC"
    api.engine.start_worker()
    run = await curl(api, MANUAL_TRIGGER)
    assert run["id"].startswith("run_") and run["status"] == "queued"
    done = await api.wait_run("process-order", run["id"], ("completed", "failed"))
    assert done["status"] == "completed"
    assert done["output"] == {"success": True, "orderId": "ord_123"}
    events = (await api.call("GET", "/jobs/v1/_admin/events?topic=order.processed")).json
    assert [(e["topic"], e["run_id"], e["payload"]) for e in events["events"]] == [
        ("order.processed", run["id"], {"orderId": "ord_123"})
    ]


async def test_webhook_trigger_returns_its_url_once_and_the_curl_example_starts_a_run(
    api: Api,
) -> None:
    await publish(api, "process-order")
    await curl(api, CREATE_JOB)
    created = await api.call(
        "POST", "/jobs/v1/_admin/jobs/process-order/triggers", json={"kind": "webhook"}
    )
    assert created.status == 201
    url = created.json["url"]
    assert url.startswith("/jobs/v1/webhooks/whk_") and len(url) > len("/jobs/v1/webhooks/") + 25
    listed = (await api.call("GET", "/jobs/v1/_admin/jobs/process-order/triggers")).json
    assert "url" not in listed["triggers"][0]
    assert url.rsplit("/", 1)[1] not in str(await api.snapshot())  # only its hash is kept
    api.engine.start_worker()
    accepted = await curl(api, WEBHOOK.replace("/jobs/v1/webhooks/whk_...", url))
    assert accepted["status"] == "queued"
    done = await api.wait_run("process-order", accepted["run_id"], ("completed", "failed"))
    assert done["status"] == "completed" and done["trigger_kind"] == "webhook"
    assert done["output"] == {"success": True, "orderId": "ord_456"}
    journal = await api.call(
        "GET", f"/jobs/v1/_admin/jobs/process-order/runs/{accepted['run_id']}/journal"
    )
    first = journal.json["events"][0]["data"]
    assert first["payload"] == {"orderId": "ord_456", "source": "stripe"}
    assert first["trigger"]["source"] == created.json["id"]
    assert first["headers"]["content-type"] == "application/json"
    assert "authorization" not in first["headers"]


async def test_failed_runs_are_listed_and_retried_from_the_dlq(api: Api) -> None:
    await publish(api, "process-order")
    await curl(api, CREATE_JOB)
    patched = await api.call(
        "PATCH", "/jobs/v1/_admin/jobs/process-order", json={"max_attempts": 1}
    )
    assert patched.status == 200 and patched.json["policy"]["max_attempts"] == 1
    api.engine.start_worker()
    no_order = {"payload": {"total": 5}}  # an order without its orderId: it fails
    bad = await api.call("POST", "/jobs/v1/process-order/trigger", json=no_order)
    assert bad.status == 201
    failed = await api.wait_run("process-order", bad.json["id"], ("completed", "failed"))
    assert failed["status"] == "failed" and failed["dlq_id"].startswith("dlq_")
    listed = await curl(api, RUNS_FAILED)
    assert [r["id"] for r in listed["runs"]] == [bad.json["id"]]
    assert listed["next_cursor"] is None
    dlq = (await api.call("GET", "/jobs/v1/_admin/jobs/process-order/dlq")).json
    assert [(e["id"], e["run_id"], e["status"]) for e in dlq["entries"]] == [
        (failed["dlq_id"], bad.json["id"], "open")
    ]
    retried = await curl(api, DLQ_RETRY.replace("dlq_01HZ...", failed["dlq_id"]))
    assert retried["id"] == bad.json["id"] and retried["status"] in ("queued", "running")
    dlq = (await api.call("GET", "/jobs/v1/_admin/jobs/process-order/dlq?status=retried")).json
    assert [e["status"] for e in dlq["entries"]] == ["retried"]
