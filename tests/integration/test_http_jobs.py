"""Jobs, triggers and functions over HTTP: the objects of the contract, create / read /
update / delete, and what each refuses."""

from __future__ import annotations

import pytest

from reactor_jobs.functions.bundle import pack_dir
from tests.engine_fixtures import BUNDLES
from tests.http_fixtures import Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOBS = "/jobs/v1/_admin/jobs"
FUNCTIONS = "/functions/v1/_admin/functions"
JOB_FIELDS = {
    "name", "function_name", "max_attempts", "backoff", "initial_delay_ms", "max_delay_ms",
    "max_concurrency", "timeout_ms", "created_at", "updated_at", "policy",
}  # fmt: skip


async def test_job_lifecycle(api: Api) -> None:
    body = {"name": "nightly", "function_name": "scenarios", "timeout_ms": 5000}
    created = await api.call("POST", JOBS, json=body)
    assert created.status == 201 and set(created.json) == JOB_FIELDS
    assert created.json["timeout_ms"] == 5000 and created.json["max_attempts"] is None
    assert created.json["policy"] == {
        "max_attempts": 3, "backoff": "exponential", "initial_delay_ms": 50,
        "max_delay_ms": 200, "max_concurrency": 10, "timeout_ms": 5000,
    }  # fmt: skip
    listed = (await api.call("GET", JOBS)).json
    assert [j["name"] for j in listed["jobs"]] == ["nightly"]
    patched = await api.call(
        "PATCH", f"{JOBS}/nightly", json={"max_attempts": 5, "timeout_ms": None}
    )
    assert patched.json["max_attempts"] == 5 and patched.json["timeout_ms"] is None
    assert patched.json["policy"]["timeout_ms"] == 60000  # back to the manifest's
    unchanged = await api.call("PATCH", f"{JOBS}/nightly", data=b"")
    assert unchanged.status == 200 and unchanged.json["max_attempts"] == 5
    got = await api.call("GET", f"{JOBS}/nightly")
    assert got.json == {**patched.json, "updated_at": got.json["updated_at"]}
    trigger = await api.call("POST", f"{JOBS}/nightly/triggers",
                             json={"kind": "cron", "schedule": "0 0 * * *"})  # fmt: skip
    assert trigger.status == 201
    assert (await api.call("DELETE", f"{JOBS}/nightly")).status == 204
    assert (await api.call("GET", f"{JOBS}/nightly")).status == 404
    assert (await api.call("GET", f"{JOBS}/nightly/triggers")).status == 404
    count = await api.node.pool.fetchval("SELECT count(*) FROM _reactor_jobs.triggers")
    assert count == 0
    assert (await api.call("DELETE", f"{JOBS}/nightly")).status == 404


async def test_trigger_kinds_are_stored_and_listed_without_secrets(api: Api) -> None:
    await api.call("POST", JOBS, json={"name": "t", "function_name": "scenarios"})
    path = f"{JOBS}/t/triggers"
    kinds = [
        {"kind": "cron", "schedule": "*/15  * * * *", "timezone": "Europe/Paris",
         "catch_up": "all"},
        {"kind": "event", "topic": "order.created"},
        {"kind": "webhook", "secret": "hmac-key"},
        {"kind": "manual"},
    ]  # fmt: skip
    created = []
    for body in kinds:
        reply = await api.call("POST", path, json=body)
        assert reply.status == 201, reply.text
        created.append(reply.json)
    assert created[0]["schedule"] == "*/15 * * * *" and created[0]["catch_up"] == "all"
    assert created[0]["id"].startswith("trg_") and created[0]["source"] == "api"
    assert created[1]["topic"] == "order.created"
    assert created[2]["url"].startswith("/jobs/v1/webhooks/whk_")
    assert all("url" not in c for i, c in enumerate(created) if i != 2)
    listed = (await api.call("GET", path)).json["triggers"]
    assert [t["id"] for t in listed] == [c["id"] for c in created]
    assert all(set(t) == {"id", "job", "kind", "schedule", "timezone", "catch_up", "topic",
                          "headers", "source", "created_at"} for t in listed)  # fmt: skip
    assert "hmac-key" not in str(listed)
    assert (await api.call("DELETE", f"{path}/{created[1]['id']}")).status == 204
    again = await api.call("DELETE", f"{path}/{created[1]['id']}")
    assert (again.status, again.json["error"]["code"]) == (404, "not_found")
    assert len((await api.call("GET", path)).json["triggers"]) == 3
    no_job = await api.call("POST", f"{JOBS}/nope/triggers", json={"kind": "manual"})
    assert no_job.status == 404


async def test_functions_create_deploy_list_versions_and_promote(api: Api) -> None:
    function = await publish(api, "process-order")
    assert set(function) == {"name", "runtime", "live_version", "created_at", "updated_at"}
    assert function["runtime"] == "python" and function["live_version"] == 1
    dup = await api.call("POST", FUNCTIONS, json={"name": "process-order", "runtime": "python"})
    assert (dup.status, dup.json["error"]["code"]) == (409, "conflict")
    v2 = await api.call(
        "POST", f"{FUNCTIONS}/process-order/deploy",
        data=pack_dir(BUNDLES / "process-order-v2"), headers={"Content-Type": "application/gzip"},
    )  # fmt: skip
    assert v2.status == 201
    assert set(v2.json) == {"name", "version", "sha256", "size", "live", "created_at"}
    assert v2.json["version"] == 2 and v2.json["live"] is False and len(v2.json["sha256"]) == 64
    versions = (await api.call("GET", f"{FUNCTIONS}/process-order/versions")).json["versions"]
    assert [(v["version"], v["live"]) for v in versions] == [(1, True), (2, False)]
    latest = await api.call("POST", f"{FUNCTIONS}/process-order/promote")
    assert latest.json["live_version"] == 2
    back = await api.call("POST", f"{FUNCTIONS}/process-order/promote", json={"version": 1})
    assert back.json["live_version"] == 1
    names = [f["name"] for f in (await api.call("GET", FUNCTIONS)).json["functions"]]
    assert names == ["process-order", "scenarios"]
    assert (await api.call("GET", f"{FUNCTIONS}/nope")).status == 404
    assert (await api.call("GET", f"{FUNCTIONS}/nope/versions")).status == 404
