"""The audit endpoints against a real server: replay checks (a run reproduces on its own
version; another version is reported at its first divergence; a function version against
every run in flight), time travel at each position, diffs, lineage through an emit fan-out,
and bad input refused with the error shape, changing nothing. The Python client's methods
return the same, typed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reactor_jobs.client import Client, LineageRun, create_client
from reactor_jobs.domain.replay import fold
from tests.audit_fixtures import (
    JOB,
    completed_order,
    create_job,
    deploy,
    run_path,
    sleeping_ledger_runs,
    trigger,
)
from tests.http_fixtures import PASSWORD, Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]


async def test_a_run_replays_exactly_and_another_version_diverges(api: Api) -> None:
    run_id = await completed_order(api)
    before = await api.snapshot()
    same = await api.call("POST", run_path(run_id) + "/replay")
    assert same.status == 200, same.text
    assert same.json == {
        "run_id": run_id, "job": JOB, "version": 1, "outcome": "same", "checked": 3,
        "recorded": 3, "events": 6, "divergence": None, "position": None, "note": None,
    }  # fmt: skip
    await deploy(api, JOB, "process-order-v2")
    other = await api.call("POST", run_path(run_id) + "/replay", json={"version": 2})
    assert other.status == 200, other.text
    assert (other.json["outcome"], other.json["version"], other.json["checked"]) == (
        "diverges", 2, 0,
    )  # fmt: skip
    assert other.json["divergence"] == (
        "position 3: recorded step `validate`, code asked for step `validate-v2`"
    )
    assert other.json["position"] == 3
    pinned = await api.call("POST", run_path(run_id) + "/replay", json={})
    assert (pinned.status, pinned.json["outcome"], pinned.json["version"]) == (200, "same", 1)
    assert (await api.snapshot())["journal"] == before["journal"]


async def test_bad_replay_requests_are_refused_and_change_nothing(api: Api) -> None:
    run_id = await completed_order(api)
    before = await api.snapshot()
    path = run_path(run_id) + "/replay"
    unknown = await api.call("POST", path, json={"version": 9})
    assert (unknown.status, unknown.error_code) == (404, "not_found")
    assert unknown.json["error"]["message"] == "function process-order has no version 9"
    for body, field in (({"version": 0}, "version"), ({"version": "2"}, "version"),
                        ({"versoin": 2}, "versoin")):  # fmt: skip
        reply = await api.call("POST", path, json=body)
        assert (reply.status, reply.error_code) == (422, "invalid_field"), body
        assert reply.json["error"]["message"].startswith(f"{field}:")
    malformed = await api.call("POST", path, data="{", headers={"Content-Type": "application/json"})
    assert (malformed.status, malformed.error_code) == (400, "bad_request")
    missing = await api.call("POST", run_path("run_01NOSUCHRUN") + "/replay")
    assert (missing.status, missing.error_code) == (404, "not_found")
    wrong_job = await api.call("POST", run_path(run_id, "other-job") + "/replay")
    assert (wrong_job.status, wrong_job.error_code) == (404, "not_found")
    as_member = await api.call("POST", path, as_="member")
    assert (as_member.status, as_member.error_code) == (403, "forbidden")
    assert await api.snapshot() == before


async def test_state_at_each_position_matches_folding_the_journal_prefix(api: Api) -> None:
    run_id = await completed_order(api)
    records = await api.engine.journal.read_stream(run_id)
    assert len(records) == 6
    statuses = []
    for n in range(1, 7):
        reply = await api.call("GET", run_path(run_id) + f"/state?at={n}")
        assert reply.status == 200, reply.text
        state, folded = reply.json, fold(records[:n])
        assert (state["position"], state["head"]) == (n, 6)
        assert state["hash"] == records[n - 1].hash.hex() == folded.last_hash.hex()
        assert (state["steps"], state["emitted"]) == (folded.steps, folded.emitted)
        assert (state["status"], state["attempt"]) == (folded.status, folded.attempt)
        statuses.append(state["status"])
    assert statuses == ["queued", "running", "running", "running", "running", "completed"]
    head = (await api.call("GET", run_path(run_id) + "/state")).json
    assert head["position"] == 6
    assert head["steps"] == {
        "validate": {"id": "ord_7", "total": 12},
        "charge": {"charged": 12, "orderId": "ord_7"},
    }
    assert head["output"] == {"success": True, "orderId": "ord_7"}
    assert (head["trigger_kind"], head["function"], head["function_version"]) == (
        "manual", JOB, 1,
    )  # fmt: skip


async def test_a_diff_shows_what_changed_between_two_positions(api: Api) -> None:
    run_id = await completed_order(api)
    reply = await api.call("GET", run_path(run_id) + "/state/diff?from=2&to=4")
    assert reply.status == 200, reply.text
    changes = {c["field"]: (c["before"], c["after"]) for c in reply.json["changes"]}
    assert (reply.json["from"], reply.json["to"], reply.json["run_id"]) == (2, 4, run_id)
    assert set(changes) == {"steps.validate", "steps.charge", "position", "updated_at", "hash"}
    assert changes["steps.validate"] == (None, {"id": "ord_7", "total": 12})
    assert changes["position"] == (2, 4)
    done = await api.call("GET", run_path(run_id) + "/state/diff?from=5&to=6")
    fields = {c["field"]: (c["before"], c["after"]) for c in done.json["changes"]}
    assert fields["status"] == ("running", "completed")
    assert fields["output"] == (None, {"success": True, "orderId": "ord_7"})
    same = await api.call("GET", run_path(run_id) + "/state/diff?from=3&to=3")
    assert same.json["changes"] == []


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("/state?at=0", "at", "an integer from 1"),
        ("/state?at=7", "at", "past the run's head (position 6)"),
        ("/state?at=-1", "at", "an integer from 1"),
        ("/state?at=two", "at", "an integer from 1"),
        ("/state?at=1&at=2", "at", "given more than once"),
        ("/state?position=2", "position", "unknown query parameter"),
        ("/state/diff?from=1", "to", "required"),
        ("/state/diff?to=2", "from", "required"),
        ("/state/diff?from=1&to=99", "to", "past the run's head"),
    ],
)
async def test_bad_positions_are_422_and_change_nothing(
    api: Api, query: str, field: str, words: str
) -> None:
    run_id = await completed_order(api)
    before = await api.snapshot()
    reply = await api.call("GET", run_path(run_id) + query, as_="member")
    assert (reply.status, reply.error_code) == (422, "invalid_field"), reply.text
    message = reply.json["error"]["message"]
    assert message.startswith(f"{field}: ") and words in message, message
    assert await api.snapshot() == before


def shape(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A lineage tree as (job, sorted children): fan-out order is not part of the contract."""
    return node["job"], sorted(shape(child) for child in node["caused"])


async def test_lineage_follows_an_emit_fan_out(api: Api) -> None:
    await publish(api, "ledger")
    await create_job(api, "orders", "ledger")
    await create_job(api, "billing", "ledger", topic="orders.done")
    await create_job(api, "shipping", "ledger", topic="orders.done")
    await create_job(api, "mailer", "ledger", topic="billing.done")
    api.engine.start_worker()
    root = await trigger(api, "orders", {"amount": 5})
    async with asyncio.timeout(20):  # until every run of the tree has completed
        while True:
            tree = (await api.call("GET", run_path(root, "orders") + "/lineage")).json
            nodes = [tree, *tree["caused"], *[g for c in tree["caused"] for g in c["caused"]]]
            if len(nodes) == 4 and all(n["status"] == "completed" for n in nodes):
                break
            await asyncio.sleep(0.05)
    assert shape(tree) == ("orders", [("billing", [("mailer", [])]), ("shipping", [])])
    assert tree["run_id"] == root
    assert tree["cause"] == {"kind": "manual", "source": None, "event_id": None, "topic": None,
                             "run_id": None, "job": None, "scheduled_for": None}  # fmt: skip
    billing = next(c for c in tree["caused"] if c["job"] == "billing")
    cause = billing["cause"]
    assert (cause["kind"], cause["topic"], cause["run_id"], cause["job"]) == (
        "event", "orders.done", root, "orders",
    )  # fmt: skip
    assert cause["event_id"].startswith("evt_") and cause["source"].startswith("trg_")
    mailer = billing["caused"][0]
    # Seen from the leaf: its cause names the emitting run; nothing below it.
    leaf = await api.call("GET", run_path(mailer["run_id"], "mailer") + "/lineage", as_="member")
    assert leaf.status == 200, leaf.text
    assert leaf.json["caused"] == []
    assert (leaf.json["cause"]["run_id"], leaf.json["cause"]["job"]) == (
        billing["run_id"], "billing",
    )  # fmt: skip
    assert leaf.json["cause"]["topic"] == "billing.done"


async def test_a_function_check_covers_every_run_in_flight(api: Api) -> None:
    ids = await sleeping_ledger_runs(api, 2)
    await deploy(api, "ledger", "ledger-v2")
    await deploy(api, "ledger", "ledger-v3")
    before = await api.snapshot()
    path = "/functions/v1/_admin/functions/ledger/check"
    safe = await api.call("POST", path, json={"version": 1})
    assert safe.status == 200, safe.text
    assert safe.json == {"function": "ledger", "version": 1, "runs": 2, "safe": 2,
                         "diverges": 0, "diverging": []}  # fmt: skip
    risky = await api.call("POST", path, json={"version": 2})
    assert risky.status == 200, risky.text
    assert (risky.json["runs"], risky.json["safe"], risky.json["diverges"]) == (2, 0, 2)
    assert sorted(r["run_id"] for r in risky.json["diverging"]) == sorted(ids)
    for report in risky.json["diverging"]:
        assert report["outcome"] == "diverges" and report["job"] == "orders"
        assert report["divergence"] == (
            "position 3: recorded step `record`, code asked for step `book`"
        )
    # A version that fails where the runs recorded a step cannot take them over either.
    broken = await api.call("POST", path, json={"version": 3})
    assert (broken.json["safe"], broken.json["diverges"]) == (0, 2), broken.text
    assert broken.json["diverging"][0]["divergence"] == (
        "position 3: recorded step `record`, but the code raised RuntimeError: "
        "version 3 refuses amounts"
    )
    # A sleeping run replays on its own version up to where its recording ends.
    own = await api.call("POST", run_path(ids[0], "orders") + "/replay")
    assert own.json["outcome"] == "same"
    assert own.json["note"] == "the recording ends at position 4 (the run is sleeping)"
    for body, status in (({"version": 5}, 404), ({}, 422), ({"version": -1}, 422)):
        reply = await api.call("POST", path, json=body)
        assert reply.status == status, (body, reply.text)
    nobody = await api.call("POST", "/functions/v1/_admin/functions/nope/check",
                            json={"version": 1})  # fmt: skip
    assert (nobody.status, nobody.error_code) == (404, "not_found")
    assert await api.snapshot() == before


@pytest.fixture
async def client(api: Api) -> AsyncIterator[Client]:
    async with create_client(api.base) as client:
        await client.auth.sign_in_with_password(email="owner@acme.test", password=PASSWORD)
        client.auth.set_org("acme")
        yield client


async def test_the_client_returns_typed_audit_results(api: Api, client: Client) -> None:
    run_id = await completed_order(api)
    await deploy(api, JOB, "process-order-v2")
    same = await client.jobs.runs.replay(JOB, run_id)
    assert (same.ok, same.outcome, same.checked, same.events) == (True, "same", 3, 6)
    other = await client.jobs.runs.replay(JOB, run_id, version=2)
    assert not other.ok and other.position == 3
    assert other.divergence is not None and "`validate-v2`" in other.divergence
    at = await client.jobs.runs.state(JOB, run_id, at=3)
    assert (at.position, at.head, list(at.steps)) == (3, 6, ["validate"])
    assert (await client.jobs.runs.state(JOB, run_id)).status == "completed"
    changes = await client.jobs.runs.diff(JOB, run_id, 3, 4)
    assert (changes.from_, changes.to) == (3, 4)
    assert {c.field for c in changes.changes} == {"steps.charge", "position", "updated_at",
                                                  "hash"}  # fmt: skip
    tree = await client.jobs.runs.lineage(JOB, run_id)
    assert isinstance(tree, LineageRun)
    assert (tree.run_id, tree.cause.kind, tree.caused) == (run_id, "manual", [])
    check = await client.functions.check(JOB, version=2)
    assert (check.runs, check.safe, check.diverges, check.diverging) == (0, 0, 0, [])
