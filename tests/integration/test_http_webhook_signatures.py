"""Signed webhooks end to end: Standard Webhooks signatures checked with the trigger's own
secret, else the server's webhook_secret; refusals are 401 and record nothing; a repeated
webhook-id gets the first run back (200, duplicate) even when delivered concurrently; the
per-trigger rate limit is 429 with Retry-After; secrets reach neither responses nor logs.
Signatures are computed here with the hmac module, not with the code under test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web
from multidict import CIMultiDict

from reactor_jobs.config import Config
from reactor_jobs.http.app import AccessLogger, create_app
from reactor_jobs.http.keys import CONFIG
from tests.http_fixtures import Api, Reply, api
from tests.integration.test_http_webhooks import first_event, webhook

pytestmark = pytest.mark.integration
__all__ = ["api"]

BODY = b'{"orderId": "ord_9", "amount": 12}'
JSON = {"Content-Type": "application/json"}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def key_of(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signed(
    secret: str, message_id: str, body: bytes = BODY, at: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed at `at` (default: now)."""
    timestamp = str(int(time.time()) if at is None else at)
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), content, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return {**JSON, "webhook-id": message_id, "webhook-timestamp": timestamp,
            "webhook-signature": signature}  # fmt: skip


async def post(api: Api, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    async with api.session.post(url, data=body, headers=dict(headers)) as r:
        return Reply(r.status, CIMultiDict(r.headers), await r.text())


async def run_count(api: Api, job: str = "hook") -> int:
    query = "SELECT count(*) FROM _reactor_jobs.runs WHERE job = $1"
    return int(await api.node.pool.fetchval(query, job))


async def unchanged(api: Api) -> tuple[dict[str, str], int]:
    return await api.snapshot(), await api.journal_rows()


@asynccontextmanager
async def server(api: Api, webhook_secret: str | None = None, **http: Any) -> AsyncIterator[str]:
    """A second `reactor serve` app on the same database and node with other webhook
    settings (a global secret, a rate limit); yields its base URL."""
    config = api.app[CONFIG]
    jobs = msgspec.structs.replace(
        config.jobs,
        webhook_secret=webhook_secret,
        http=msgspec.structs.replace(config.jobs.http, **http),
    )
    runner = web.AppRunner(create_app(api.node, Config(jobs=jobs)),
                           access_log_class=AccessLogger, shutdown_timeout=5)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_signed_delivery_starts_a_run_with_its_payload(api: Api) -> None:
    secret = new_secret()
    trigger_id, path = await webhook(api, secret)
    listed = await api.call("GET", "/jobs/v1/_admin/jobs/hook/triggers")
    assert secret not in listed.text
    reply = await post(api, api.base + path, BODY, signed(secret, "msg_ok"))
    assert reply.status == 202, reply.text
    assert reply.json["duplicate"] is False and reply.json["status"] == "queued"
    first = await first_event(api, reply.json["run_id"])
    assert first["payload"] == {"orderId": "ord_9", "amount": 12}
    assert first["trigger"] == {**first["trigger"], "kind": "webhook", "source": trigger_id}
    assert first["idempotency_key"] == f"webhook:{trigger_id}:msg_ok"
    plain = await webhook(api, "a plain-text secret", job="plain")
    reply = await post(api, api.base + plain[1], BODY, signed("a plain-text secret", "msg_p"))
    assert reply.status == 202, reply.text


async def test_refused_deliveries_are_401_and_record_nothing(api: Api) -> None:
    secret = new_secret()
    _, path = await webhook(api, secret)
    now = int(time.time())
    good = signed(secret, "msg_1")
    cases: dict[str, tuple[dict[str, str], bytes, str]] = {
        "wrong secret": (signed(new_secret(), "msg_1"), BODY, "no webhook-signature entry"),
        "changed body": (good, BODY.replace(b"12", b"13"), "no webhook-signature entry"),
        "old timestamp": (signed(secret, "msg_1", at=now - 6 * 60), BODY, "5 minutes"),
        "future timestamp": (signed(secret, "msg_1", at=now + 6 * 60), BODY, "5 minutes"),
        "no headers": (JSON, BODY, "missing header webhook-id, webhook-timestamp, webhook-sig"),
        "no signature": ({k: v for k, v in good.items() if k != "webhook-signature"}, BODY,
                         "missing header webhook-signature"),
        "malformed signature": ({**good, "webhook-signature": "sha256=abc"}, BODY, "v1,<base64>"),
        "bad timestamp": ({**good, "webhook-timestamp": "yesterday"}, BODY, "unix time"),
    }  # fmt: skip
    before = await unchanged(api)
    for name, (headers, body, message) in cases.items():
        reply = await post(api, api.base + path, body, headers)
        assert (reply.status, reply.error_code) == (401, "invalid_signature"), name
        assert message in reply.json["error"]["message"], name
        assert secret not in reply.text and secret.removeprefix("whsec_") not in reply.text
    unknown = await post(api, api.base + "/jobs/v1/webhooks/whk_" + "B" * 43, BODY, good)
    assert (unknown.status, unknown.error_code) == (404, "not_found")
    assert await unchanged(api) == before
    assert (await post(api, api.base + path, BODY, good)).status == 202  # the good one still is


async def test_a_replayed_id_gets_the_first_run_and_records_nothing(api: Api) -> None:
    secret = new_secret()
    _, path = await webhook(api, secret)
    first = await post(api, api.base + path, BODY, signed(secret, "msg_once"))
    assert first.status == 202
    before = await unchanged(api)
    # The same delivery again, and a sender's later retry (fresh timestamp, other body).
    again = [signed(secret, "msg_once"), signed(secret, "msg_once", b'{"n": 2}')]
    for headers, body in zip(again, (BODY, b'{"n": 2}'), strict=True):
        reply = await post(api, api.base + path, body, headers)
        assert reply.status == 200, reply.text
        assert reply.json == {**first.json, "duplicate": True}
    assert await unchanged(api) == before
    other = await post(api, api.base + path, BODY, signed(secret, "msg_other"))
    assert other.status == 202 and other.json["run_id"] != first.json["run_id"]
    assert await run_count(api) == 2


async def test_concurrent_duplicate_deliveries_make_exactly_one_run(api: Api) -> None:
    secret = new_secret()
    _, path = await webhook(api, secret)
    headers = signed(secret, "msg_storm")
    replies = await asyncio.gather(*(post(api, api.base + path, BODY, headers) for _ in range(20)))
    assert sorted(r.status for r in replies) == [200] * 19 + [202]
    assert len({r.json["run_id"] for r in replies}) == 1
    assert [r.json["duplicate"] for r in replies].count(False) == 1
    assert await run_count(api) == 1


async def test_unsigned_webhooks_are_deduplicated_by_webhook_id_too(api: Api) -> None:
    _, path = await webhook(api)
    first = await post(api, api.base + path, BODY, {**JSON, "webhook-id": "evt_1"})
    assert first.status == 202
    repeat = await post(api, api.base + path, b"{}", {**JSON, "webhook-id": "evt_1"})
    assert (repeat.status, repeat.json) == (200, {**first.json, "duplicate": True})
    before = await unchanged(api)
    bad = await post(api, api.base + path, BODY, {**JSON, "webhook-id": "x" * 256})
    assert (bad.status, bad.error_code) == (422, "invalid_field")
    assert bad.json["error"]["message"].startswith("webhook-id")
    assert await unchanged(api) == before
    without = [await post(api, api.base + path, BODY, JSON) for _ in range(2)]
    assert [r.status for r in without] == [202, 202]  # no webhook-id: no de-duplication
    assert await run_count(api) == 3


async def test_the_trigger_secret_overrides_the_server_secret(api: Api) -> None:
    own, server_secret = new_secret(), "server-wide secret"
    _, own_path = await webhook(api, own)
    _, open_path = await webhook(api)
    async with server(api, webhook_secret=server_secret) as base:
        # The trigger with its own secret: only that one signs for it.
        refused = await post(api, base + own_path, BODY, signed(server_secret, "m1"))
        assert (refused.status, refused.error_code) == (401, "invalid_signature")
        assert (await post(api, base + own_path, BODY, signed(own, "m1"))).status == 202
        # The trigger without one: the server's secret now applies to it.
        unsigned = await post(api, base + open_path, BODY, JSON)
        assert (unsigned.status, unsigned.error_code) == (401, "invalid_signature")
        assert (await post(api, base + open_path, BODY, signed(own, "m2"))).status == 401
        assert (await post(api, base + open_path, BODY, signed(server_secret, "m2"))).status == 202
        owner = api.headers["owner"]
        async with api.session.post(base + "/jobs/v1/_admin/jobs/hook/triggers", headers=owner,
                                    json={"kind": "webhook"}) as created:  # fmt: skip
            assert created.status == 201 and (await created.json())["signed"] is True
    # Without a server secret, the unsigned trigger takes unsigned requests again.
    assert (await post(api, api.base + open_path, BODY, JSON)).status == 202
    assert await run_count(api) == 3


async def test_secret_is_refused_for_other_kinds_and_checked_for_webhooks(api: Api) -> None:
    await webhook(api)
    before = await unchanged(api)
    path = "/jobs/v1/_admin/jobs/hook/triggers"
    bodies = [
        {"kind": "cron", "schedule": "0 * * * *", "secret": "s"},
        {"kind": "event", "topic": "t", "secret": "s"},
        {"kind": "manual", "secret": "s"},
        {"kind": "webhook", "secret": "whsec_not base64!"},
        {"kind": "webhook", "secret": ""},
    ]
    for body in bodies:
        reply = await api.call("POST", path, json=body)
        assert (reply.status, reply.error_code) == (422, "invalid_field"), body
        assert reply.json["error"]["message"].startswith("secret"), reply.text
        assert "not base64!" not in reply.text
    assert await unchanged(api) == before


async def test_the_rate_limit_is_429_with_retry_after_per_trigger(api: Api) -> None:
    _, limited = await webhook(api)
    _, other = await webhook(api)
    # One token every 10 s, two at once: the third request within 10 s is refused.
    async with server(api, webhook_rate_per_second=0.1, webhook_burst=2) as base:
        for n in range(2):
            reply = await post(api, base + limited, BODY, {**JSON, "webhook-id": f"r{n}"})
            assert reply.status == 202, reply.text
        before = await unchanged(api)
        for n in range(3):
            refused = await post(api, base + limited, BODY, {**JSON, "webhook-id": f"x{n}"})
            assert (refused.status, refused.error_code) == (429, "rate_limited")
            assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert await unchanged(api) == before
        assert (await post(api, base + other, BODY, JSON)).status == 202  # its own bucket
    assert await run_count(api) == 3


async def test_secrets_and_signatures_never_reach_the_logs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_secret()
    with caplog.at_level(logging.DEBUG):
        _, path = await webhook(api, secret)
        good = signed(secret, "msg_log")
        assert (await post(api, api.base + path, BODY, good)).status == 202
        assert (await post(api, api.base + path, BODY, good)).status == 200
        wrong = signed(secret, "msg_log", at=int(time.time()) - 3600)
        assert (await post(api, api.base + path, BODY, wrong)).status == 401
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert sum("method=POST path=/jobs/v1/webhooks/[redacted] " in line for line in access) == 3
    text = "\n".join(r.getMessage() for r in caplog.records)
    for value in (secret, secret.removeprefix("whsec_"), path.rsplit("/", 1)[1],
                  good["webhook-signature"].removeprefix("v1,"),
                  wrong["webhook-signature"].removeprefix("v1,")):  # fmt: skip
        assert value not in text
