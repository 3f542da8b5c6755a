"""The Python client against the real HTTP app (tests/http_fixtures.py: a localhost port,
real Postgres, real users and JWTs, a worker): the spec's client flow, errors as typed
exceptions with the API's codes, token refresh on expiry, and the live log iterator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from reactor_jobs.auth.tokens import AccessTokens
from reactor_jobs.client import (
    Client,
    ConflictError,
    ConnectionFailed,
    ForbiddenError,
    InvalidFieldError,
    LogEvent,
    LogLine,
    NotFoundError,
    RateLimitedError,
    ReactorApiError,
    Run,
    RunEvent,
    Session,
    UnauthorizedError,
    create_client,
)
from tests.engine_fixtures import BUNDLES
from tests.http_fixtures import PASSWORD, SECRET, Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


@pytest.fixture
async def client(api: Api) -> AsyncIterator[Client]:
    async with create_client(api.base) as client:
        await client.auth.sign_in_with_password(email="owner@acme.test", password=PASSWORD)
        client.auth.set_org("acme")
        yield client


async def wait_run(client: Client, job: str, run_id: str, until: tuple[str, ...]) -> Run:
    async with asyncio.timeout(20):
        while (run := await client.jobs.runs.get(job, run_id)).status not in until:
            await asyncio.sleep(0.05)
    return run


async def publish(client: Client, bundle: str = "process-order") -> None:
    await client.functions.create(bundle, runtime="python")
    version = await client.functions.deploy(bundle, BUNDLES / bundle)
    assert (version.version, version.live) == (1, False)
    function = await client.functions.promote(bundle)
    assert function.live_version == 1


async def test_the_spec_client_flow_from_deploy_to_emitted_event(api: Api, client: Client) -> None:
    await publish(client)
    assert [v.live for v in await client.functions.versions("process-order")] == [True]
    job = await client.jobs.create(name="process-order", function_name="process-order")
    assert job.policy is not None and job.policy.max_concurrency == 5
    cron = await client.jobs.triggers.create("process-order", kind="cron", schedule="0 * * * *")
    assert (cron.kind, cron.schedule, cron.timezone, cron.url) == ("cron", "0 * * * *", "UTC", None)
    api.engine.start_worker()

    run = await client.jobs.trigger("process-order", payload={"orderId": "ord_123"})
    assert run.id.startswith("run_") and run.status == "queued" and run.trigger_kind == "manual"
    done = await wait_run(client, "process-order", run.id, ("completed", "failed"))
    assert done.status == "completed" and done.output == {"success": True, "orderId": "ord_123"}
    assert done.finished_at is not None and done.finished_at >= done.created_at

    events = await client.events.list(topic="order.processed")
    assert [(e.topic, e.run_id, e.payload) for e in events] == [
        ("order.processed", run.id, {"orderId": "ord_123"})
    ]
    runs = await client.jobs.runs.list("process-order", status="completed")
    assert [r.id for r in runs] == [run.id] and runs.next_cursor is None
    journal = await client.jobs.runs.journal("process-order", run.id)
    assert journal[0].type == "Triggered" and journal[-1].type == "Completed"
    listed = await client.jobs.triggers.list("process-order")
    assert [e.id for e in listed if e.source == "api"] == [cron.id]
    # The bundle's manifest names a cron, an event and a webhook trigger: the job got them.
    manifest = sorted(e.kind for e in listed if e.source == "manifest")
    assert manifest == ["cron", "event", "webhook"]
    assert job.triggers is not None and sorted(t.id for t in job.triggers.added) == sorted(
        e.id for e in listed if e.source == "manifest"
    )


async def test_pages_idempotency_update_webhooks_and_the_dlq(api: Api, client: Client) -> None:
    await publish(client)
    await client.jobs.create(name="process-order", function_name="process-order")
    first = await client.jobs.trigger(
        "process-order", payload={"orderId": "a"}, idempotency_key="k"
    )
    again = await client.jobs.trigger(
        "process-order", payload={"orderId": "a"}, idempotency_key="k"
    )
    assert again.id == first.id and again.idempotency_key == "k"
    await client.jobs.trigger("process-order", payload={"orderId": "b"})
    page = await client.jobs.runs.list("process-order", limit=1)
    assert len(page) == 1 and page.next_cursor is not None
    rest = await client.jobs.runs.list("process-order", limit=5, cursor=page.next_cursor)
    assert len(rest) == 1 and rest.next_cursor is None and rest[0].id == first.id

    job = await client.jobs.update("process-order", max_attempts=1)
    assert job.max_attempts == 1 and job.policy is not None and job.policy.max_attempts == 1
    api.engine.start_worker()
    bad = await client.jobs.trigger("process-order", payload={"total": 5})  # no orderId
    failed = await wait_run(client, "process-order", bad.id, ("failed",))
    dlq = await client.jobs.dlq.list("process-order")
    assert [(e.id, e.run_id, e.status) for e in dlq] == [(failed.dlq_id, bad.id, "open")]
    retried = await client.jobs.dlq.retry("process-order", dlq[0].id)
    assert retried.id == bad.id and retried.status in ("queued", "running")

    webhook = await client.jobs.triggers.create("process-order", kind="webhook")
    assert webhook.url is not None and webhook.url.startswith("/jobs/v1/webhooks/whk_")
    body = {"orderId": "ord_456", "source": "stripe"}
    async with api.session.post(api.base + webhook.url, json=body) as reply:
        assert reply.status == 202
        accepted = await reply.json()
    done = await wait_run(client, "process-order", accepted["run_id"], ("completed",))
    assert done.trigger_kind == "webhook"
    await client.jobs.triggers.delete("process-order", webhook.id)
    await client.jobs.delete("process-order")
    assert [j.name for j in await client.jobs.list()] == []


async def expect(error: type[ReactorApiError], code: str, status: int, call: Any) -> Any:
    with pytest.raises(error) as caught:
        await call
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    return caught.value


async def test_errors_are_typed_and_carry_the_api_code(api: Api, client: Client) -> None:
    missing = await expect(NotFoundError, "not_found", 404, client.jobs.get("nope"))
    assert "nope" in missing.message
    await expect(NotFoundError, "not_found", 404, client.jobs.runs.get("nope", "run_x"))
    await publish(client)
    await client.jobs.create(name="one", function_name="process-order", max_concurrency=1)
    await expect(ConflictError, "conflict", 409,
                 client.jobs.create(name="one", function_name="process-order"))  # fmt: skip
    never = client.jobs.triggers.create("one", kind="cron", schedule="never")
    bad = await expect(InvalidFieldError, "invalid_field", 422, never)
    assert "schedule" in bad.message

    await client.jobs.trigger("one", payload={"orderId": "a"})  # no worker: stays queued
    limited = await expect(RateLimitedError, "concurrency_exceeded", 429,
                           client.jobs.trigger("one", payload={"orderId": "b"}))  # fmt: skip
    assert limited.retry_after is not None and limited.retry_after >= 1

    client.auth.set_org("globex")
    await expect(ForbiddenError, "forbidden", 403, client.jobs.list())
    async with create_client(api.base, org="acme") as member:
        await member.auth.sign_in_with_password(email="member@acme.test", password=PASSWORD)
        await expect(ForbiddenError, "forbidden", 403,
                     member.jobs.create(name="two", function_name="process-order"))  # fmt: skip
        assert [j.name for j in await member.jobs.list()] == ["one"]  # members may read
    async with create_client(api.base, token="not-a-token", org="acme") as stranger:
        await expect(UnauthorizedError, "unauthorized", 401, stranger.jobs.list())
    wrong = client.auth.sign_in_with_password(email="owner@acme.test", password="wrong")
    await expect(UnauthorizedError, "unauthorized", 401, wrong)
    async with create_client("http://127.0.0.1:1") as nowhere:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            await nowhere.jobs.list()


def expired_token(user_id: str) -> str:
    tokens = AccessTokens(SECRET, issuer="reactor-jobs", audience="reactor", ttl_s=60)
    return tokens.issue(user_id, now=int(time.time()) - 3600)


async def test_an_expired_access_token_is_refreshed_once_and_retried(api: Api) -> None:
    pair = await api.auth.issue_tokens(api.users["owner"])
    stale = Session(
        access_token=expired_token(api.users["owner"]), refresh_token=pair.refresh_token
    )
    async with create_client(api.base, org="acme") as client:
        client.auth.set_session(stale)
        # Five requests fail together; one refresh serves them all (a second refresh with
        # the spent token would revoke every token of the user, and these would fail).
        results = await asyncio.gather(*(client.jobs.list() for _ in range(5)))
        assert results == [[]] * 5
        fresh = client.auth.session
        assert fresh is not None and fresh.refresh_token not in (None, pair.refresh_token)
        assert fresh.access_token != stale.access_token and fresh.expires_in == 3600
        assert "***" in repr(fresh) and fresh.access_token not in repr(fresh)
        assert (await client.auth.user()).email == "owner@acme.test"

        client.auth.set_session(Session(access_token=expired_token(api.users["owner"]),
                                        refresh_token="rt_bogus"))  # fmt: skip
        refused = await expect(UnauthorizedError, "unauthorized", 401, client.jobs.list())
        assert "refresh token" in refused.message


async def test_sign_out_revokes_the_refresh_token(api: Api) -> None:
    async with create_client(api.base, org="acme") as client:
        session = await client.auth.sign_in_with_password(
            email="admin@acme.test", password=PASSWORD
        )
        user = await client.auth.user()
        assert user.email == "admin@acme.test" and [(m.name, m.role) for m in user.orgs] == [
            ("acme", "admin")
        ]
        await client.auth.sign_out()
        assert client.auth.session is None
        client.auth.set_session(session)
        with pytest.raises(UnauthorizedError):
            await client.auth.refresh()


async def read_until(events: AsyncIterator[LogEvent], done: Any) -> list[LogEvent]:
    seen: list[LogEvent] = []
    async with asyncio.timeout(15):
        async for event in events:
            seen.append(event)
            if done(seen):
                return seen
    raise AssertionError(f"the stream ended early after {seen}")


def completed(run_id: str) -> Any:
    def check(seen: list[LogEvent]) -> bool:
        finished = any(
            isinstance(e, RunEvent) and e.type == "Completed" and e.run_id == run_id for e in seen
        )
        logged = any(isinstance(e, LogLine) and e.run_id == run_id for e in seen)
        return finished and logged

    return check


async def test_logs_yield_run_events_and_log_lines_and_resume(api: Api, client: Client) -> None:
    await client.jobs.create(name="work", function_name="scenarios")
    api.engine.start_worker()
    run = await client.jobs.trigger("work", payload={"mode": "emit", "topic": "t"})
    async with contextlib.aclosing(client.jobs.logs("work", last_event_id="0-0-0")) as stream:
        seen = await read_until(stream, completed(run.id))
    kinds = [e.type for e in seen if isinstance(e, RunEvent)]
    assert kinds == ["Triggered", "AttemptStarted", "Emitted", "Completed"]
    assert all(e.run_id == run.id and e.id for e in seen)
    line = next(e for e in seen if isinstance(e, LogLine))
    assert (line.level, line.message, line.attempt) == ("info", "emitted", 1)

    # Resuming after the first event gives the rest of the history, then what comes next.
    second = await client.jobs.trigger("work", payload={"mode": "emit", "topic": "t"})
    async with contextlib.aclosing(client.jobs.logs("work", last_event_id=seen[0].id)) as stream:
        resumed = await read_until(stream, completed(second.id))
    assert msgspec.to_builtins(resumed[0]) != msgspec.to_builtins(seen[0])
    assert {e.run_id for e in resumed} == {run.id, second.id}

    with pytest.raises(NotFoundError):
        async for _ in client.jobs.logs("nope"):
            pass
    with pytest.raises(InvalidFieldError, match="Last-Event-ID"):
        async for _ in client.jobs.logs("work", last_event_id="yesterday"):
            pass
