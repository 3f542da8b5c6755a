"""Runs over HTTP: idempotent manual triggers, the run list's filters and keyset pages,
get / cancel / retry, the run's journal, and the events listing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOB = "/jobs/v1/_admin/jobs/work"


async def work_job(api: Api, **policy: int) -> None:
    """A job on the scenarios bundle (deployed by the engine fixture)."""
    body = {"name": "work", "function_name": "scenarios", **policy}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=body)).status == 201


async def trigger(api: Api, payload: object, **headers: str) -> dict[str, object]:
    reply = await api.call("POST", "/jobs/v1/work/trigger", json={"payload": payload},
                           headers=headers)  # fmt: skip
    assert reply.status in (200, 201), reply.text
    return dict(reply.json)


async def test_an_idempotency_key_returns_the_first_run_with_200(api: Api) -> None:
    await work_job(api)
    first = await api.call("POST", "/jobs/v1/work/trigger", json={"payload": {"mode": "noop"}},
                           headers={"Idempotency-Key": "order-7"})  # fmt: skip
    assert first.status == 201 and first.json["idempotency_key"] == "order-7"
    rows = await api.journal_rows()
    again = await api.call("POST", "/jobs/v1/work/trigger", json={"payload": {"mode": "x"}},
                           headers={"Idempotency-Key": "order-7"})  # fmt: skip
    assert again.status == 200 and again.json["id"] == first.json["id"]
    assert await api.journal_rows() == rows
    other = await api.call("POST", "/jobs/v1/work/trigger", headers={"Idempotency-Key": "o-8"})
    assert other.status == 201 and other.json["id"] != first.json["id"]
    # cron slots' and webhook deliveries' keys are reserved: a member cannot pre-empt one
    for engine_key in ("webhook:trg_1:msg_1", "cron:trg_1:2026-12-01T00:00:00"):
        reserved = await api.call("POST", "/jobs/v1/work/trigger",
                                  headers={"Idempotency-Key": engine_key})  # fmt: skip
        assert reserved.status == 422 and "Idempotency-Key" in reserved.json["error"]["message"]
    assert await api.journal_rows() == rows + 1  # only o-8's Triggered


async def test_concurrent_requests_with_one_key_start_one_run(api: Api) -> None:
    await work_job(api)
    replies = await asyncio.gather(*(
        api.call("POST", "/jobs/v1/work/trigger", json={"payload": {"mode": "noop"}},
                 headers={"Idempotency-Key": "same"})
        for _ in range(8)
    ))  # fmt: skip
    assert {r.json["id"] for r in replies} == {replies[0].json["id"]}
    runs = (await api.call("GET", JOB + "/runs")).json["runs"]
    assert len(runs) == 1


async def test_runs_list_pages_newest_first_and_filters(api: Api) -> None:
    await work_job(api)
    ids = [str((await trigger(api, {"mode": "noop"}))["id"]) for _ in range(5)]
    pages, cursor = [], None
    while True:
        path = JOB + "/runs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.call("GET", path)).json
        pages.append([r["id"] for r in page["runs"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    queued = (await api.call("GET", JOB + "/runs?status=queued,running")).json
    assert len(queued["runs"]) == 5
    assert (await api.call("GET", JOB + "/runs?status=failed")).json["runs"] == []
    created = [r["created_at"] for r in queued["runs"]]  # newest first
    middle = created[2].replace("Z", "+00:00")
    since = (await api.call("GET", JOB + f"/runs?since={middle.replace('+', '%2B')}")).json
    assert [r["id"] for r in since["runs"]] == ids[4:1:-1]
    until = (await api.call("GET", JOB + f"/runs?until={created[2]}")).json
    assert [r["id"] for r in until["runs"]] == ids[1::-1]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (await api.call("GET", JOB + f"/runs?since={later}")).json["runs"] == []


async def test_run_objects_have_the_contracts_fields(api: Api) -> None:
    await work_job(api)
    run = await trigger(api, {"mode": "noop"})
    assert set(run) == {
        "id", "job", "status", "attempt", "function", "function_version", "trigger_kind",
        "created_at", "updated_at", "started_at", "finished_at", "available_at",
        "last_error", "output", "dlq_id", "idempotency_key",
    }  # fmt: skip
    assert run["job"] == "work" and run["trigger_kind"] == "manual"
    assert str(run["created_at"]).endswith("Z")


async def test_cancel_retry_and_journal(api: Api) -> None:
    await work_job(api, max_attempts=1)
    api.engine.start_worker()
    slow = await trigger(api, {"mode": "slow", "seconds": 30})
    await api.wait_run("work", str(slow["id"]), ("running",))
    cancelled = await api.call("POST", f"{JOB}/runs/{slow['id']}/cancel")
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    again = await api.call("POST", f"{JOB}/runs/{slow['id']}/cancel")
    assert (again.status, again.json["error"]["code"]) == (409, "invalid_state")
    # the spec's fix for a stuck run: cancel, then retry
    requeued = await api.call("POST", f"{JOB}/runs/{slow['id']}/retry")
    assert requeued.status == 200 and requeued.json["status"] == "queued"
    await api.call("POST", f"{JOB}/runs/{slow['id']}/cancel")  # no need to wait 30 s
    finished = await trigger(api, {"mode": "noop"})
    await api.wait_run("work", str(finished["id"]), ("completed",))
    not_failed = await api.call("POST", f"{JOB}/runs/{finished['id']}/retry")
    assert (not_failed.status, not_failed.json["error"]["code"]) == (409, "invalid_state")

    failing = await trigger(api, {"mode": "fail"})
    await api.wait_run("work", str(failing["id"]), ("failed",))
    retried = await api.call("POST", f"{JOB}/runs/{failing['id']}/retry")
    assert retried.status == 200 and retried.json["status"] == "queued"
    done = await api.wait_run("work", str(failing["id"]), ("failed",))
    assert done["attempt"] == 2

    journal = (await api.call("GET", f"{JOB}/runs/{failing['id']}/journal")).json["events"]
    types = [e["type"] for e in journal]
    assert types[0] == "Triggered" and "Retried" in types and types[-1] == "DeadLettered"
    assert [e["position"] for e in journal] == list(range(1, len(journal) + 1))
    assert journal[1]["prev_hash"] == journal[0]["hash"]
    assert journal[0]["data"]["payload"] == {"mode": "fail"}
    retried_event = next(e for e in journal if e["type"] == "Retried")
    assert retried_event["data"]["by"] == "owner@acme.test"


async def test_a_run_is_only_found_under_its_own_job(api: Api) -> None:
    await work_job(api)
    other = {"name": "other", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=other)).status == 201
    run = await trigger(api, {"mode": "noop"})
    wrong = await api.call("GET", f"/jobs/v1/_admin/jobs/other/runs/{run['id']}")
    assert (wrong.status, wrong.json["error"]["code"]) == (404, "not_found")
    before = await api.snapshot()
    cancel = await api.call("POST", f"/jobs/v1/_admin/jobs/other/runs/{run['id']}/cancel")
    assert cancel.status == 404
    assert await api.snapshot() == before


async def test_events_listing_filters_by_topic_and_unconsumed(api: Api) -> None:
    await work_job(api)
    api.engine.start_worker()
    for topic in ("a.done", "b.done", "a.done"):
        run = await trigger(api, {"mode": "emit", "topic": topic})
        await api.wait_run("work", str(run["id"]), ("completed",))
    everything = (await api.call("GET", "/jobs/v1/_admin/events")).json
    assert [e["topic"] for e in everything["events"]] == ["a.done", "b.done", "a.done"][::-1]
    assert set(everything["events"][0]) == {
        "id",
        "topic",
        "payload",
        "run_id",
        "job",
        "emitted_at",
        "consumed_at",
        "fanout",
    }
    only_a = (await api.call("GET", "/jobs/v1/_admin/events?topic=a.done&limit=1")).json
    assert len(only_a["events"]) == 1 and only_a["next_cursor"] is not None
    rest = await api.call(
        "GET", f"/jobs/v1/_admin/events?topic=a.done&cursor={only_a['next_cursor']}"
    )
    assert len(rest.json["events"]) == 1 and rest.json["next_cursor"] is None
    unconsumed = (await api.call("GET", "/jobs/v1/_admin/events?unconsumed=true")).json
    assert len(unconsumed["events"]) == 3 and all(e["consumed_at"] is None
                                                  for e in unconsumed["events"])  # fmt: skip
