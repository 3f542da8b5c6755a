"""Bad input across the API gets its status and its one error shape, and changes nothing:
malformed JSON, wrong types, unknown and missing fields, bad query parameters, bodies over
the limit, bad / expired / `alg: none` tokens, unknown paths; no stack traces ever."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reactor_jobs.auth.tokens import AccessTokens
from reactor_jobs.functions.bundle import pack_dir
from tests.http_fixtures import MAX_BODY, SECRET, Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOBS = "/jobs/v1/_admin/jobs"
TRIGGER = "/jobs/v1/process-order/trigger"
TRIGGERS = "/jobs/v1/_admin/jobs/process-order/triggers"
RUNS = "/jobs/v1/_admin/jobs/process-order/runs"

# (method, path, body bytes, status, code, the field the message must start with)
BAD_BODIES: list[tuple[str, str, bytes, int, str, str | None]] = [
    ("POST", JOBS, b'{"name": "x", ', 400, "bad_request", None),
    ("POST", JOBS, b'{"name": 5, "function_name": "process-order"}', 422, "invalid_field", "name"),
    ("POST", JOBS, b'{"name": "x"}', 422, "invalid_field", "function_name"),
    ("POST", JOBS, b'{"name": "x", "function_name": "process-order", "colour": 1}', 422,
     "invalid_field", "colour"),
    ("POST", JOBS, b'{"name": "x", "function_name": "process-order", "max_attempts": "3"}',
     422, "invalid_field", "max_attempts"),
    ("POST", JOBS, b'{"name": "x", "function_name": "process-order", "max_attempts": 0}',
     422, "invalid_field", "max_attempts"),
    ("POST", JOBS, b'{"name": "Bad Name", "function_name": "process-order"}', 422,
     "invalid_field", "name"),
    ("POST", JOBS, b'{"name": "x", "function_name": "process-order", "backoff": "random"}',
     422, "invalid_field", "backoff"),
    ("POST", JOBS, b"[]", 422, "invalid_field", "body"),
    ("POST", JOBS, b"", 400, "bad_request", None),
    ("PATCH", JOBS + "/process-order", b'{"function_name": null}', 422, "invalid_field",
     "function_name"),
    ("PATCH", JOBS + "/process-order", b'{"max_concurrency": 11}', 422, "invalid_field",
     "max_concurrency"),
    ("POST", TRIGGER, b'{"payload": {"orderId": "o"}, "priority": 1}', 422, "invalid_field",
     "priority"),
    ("POST", TRIGGER, b'{"payload": ', 400, "bad_request", None),
    # Refused at decoding (http/inputs.py), naming the field, before the engine sees it.
    ("POST", TRIGGER, b'{"payload": "nul \\u0000 inside"}', 422, "invalid_field", "payload"),
    ("POST", TRIGGERS, b'{"kind": "cron", "schedule": "every hour"}', 422, "invalid_field",
     "schedule"),
    ("POST", TRIGGERS, b'{"kind": "cron"}', 422, "invalid_field", "schedule"),
    ("POST", TRIGGERS, b'{"kind": "cron", "schedule": "0 * * * *", "timezone": "Mars/Base"}',
     422, "invalid_field", "timezone"),
    ("POST", TRIGGERS, b'{"kind": "cron", "schedule": "0 * * * *", "catch_up": "some"}', 422,
     "invalid_field", "catch_up"),
    ("POST", TRIGGERS, b'{"kind": "event", "topic": ""}', 422, "invalid_field", "topic"),
    ("POST", TRIGGERS, b'{"kind": "event"}', 422, "invalid_field", "topic"),
    ("POST", TRIGGERS, b'{"kind": "sms"}', 422, "invalid_field", "kind"),
    ("POST", TRIGGERS, b'{"schedule": "0 * * * *"}', 422, "invalid_field", "kind"),
    ("POST", TRIGGERS, b'{"kind": "webhook", "url": "x"}', 422, "invalid_field", "url"),
    ("POST", "/functions/v1/_admin/functions", b'{"name": "f", "runtime": "go"}', 422,
     "invalid_field", "runtime"),
    ("POST", "/functions/v1/_admin/functions/process-order/promote", b'{"version": "1"}', 422,
     "invalid_field", "version"),
    ("POST", "/functions/v1/_admin/functions/process-order/promote", b'{"version": 9}', 404,
     "not_found", None),
]  # fmt: skip

BAD_QUERIES = [
    (RUNS + "?status=done", "status"),
    (RUNS + "?status=failed,done", "status"),
    (RUNS + "?since=yesterday", "since"),
    (RUNS + "?until=2026-01-01T00:00:00", "until"),
    (RUNS + "?limit=0", "limit"),
    (RUNS + "?limit=201", "limit"),
    (RUNS + "?limit=ten", "limit"),
    (RUNS + "?cursor=not-a-cursor", "cursor"),
    (RUNS + "?cursor=W10", "cursor"),
    (RUNS + "?order=asc", "order"),
    (RUNS + "?limit=1&limit=2", "limit"),
    ("/jobs/v1/_admin/jobs/process-order/dlq?status=closed", "status"),
    ("/jobs/v1/_admin/events?unconsumed=yes", "unconsumed"),
]


async def with_job(api: Api) -> None:
    await publish(api, "process-order")
    job = {"name": "process-order", "function_name": "process-order"}
    assert (await api.call("POST", JOBS, json=job)).status == 201
    assert (await api.call("POST", TRIGGER, json={"payload": {"orderId": "o"}})).status == 201


def assert_error(reply: Any, status: int, code: str, field: str | None = None) -> None:
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, reply.text
    if field is not None:
        assert body["error"]["message"].startswith(f"{field}: "), reply.text
    assert "Traceback" not in reply.text and 'File "' not in reply.text


async def test_bad_bodies_are_refused_naming_the_field_and_change_nothing(api: Api) -> None:
    await with_job(api)
    before = await api.snapshot()
    for method, path, body, status, code, field in BAD_BODIES:
        reply = await api.call(
            method, path, data=body, headers={"Content-Type": "application/json"}
        )
        assert_error(reply, status, code, field)
    assert await api.snapshot() == before


async def test_bad_query_parameters_are_422_naming_the_parameter(api: Api) -> None:
    await with_job(api)
    before = await api.snapshot()
    for path, field in BAD_QUERIES:
        assert_error(await api.call("GET", path), 422, "invalid_field", field)
    assert await api.snapshot() == before


async def test_bodies_over_the_limit_are_413_whether_sized_or_chunked(api: Api) -> None:
    await with_job(api)
    before = await api.snapshot()
    huge = b'{"payload": "' + b"x" * MAX_BODY + b'"}'
    assert_error(await api.call("POST", TRIGGER, data=huge), 413, "payload_too_large")

    async def chunks() -> Any:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    async with api.session.post(
        api.base + TRIGGER, data=chunks(), headers=api.headers["owner"]
    ) as reply:
        assert reply.status == 413
        assert (await reply.json())["error"]["code"] == "payload_too_large"
    assert await api.snapshot() == before


async def test_deploy_takes_bundles_past_the_json_limit_and_refuses_bad_ones(
    api: Api, tmp_path: Path
) -> None:
    await api.call("POST", "/functions/v1/_admin/functions", json={"name": "big"})
    deploy = "/functions/v1/_admin/functions/big/deploy"
    gzip = {"Content-Type": "application/gzip"}
    before = await api.snapshot()
    garbage = await api.call("POST", deploy, data=b"not a tarball", headers=gzip)
    assert_error(garbage, 422, "bundle_error")
    bad = tmp_path / "bad"
    (bad / "code").mkdir(parents=True)
    (bad / "code" / "index.py").write_text("async def fetch(r, e, c): return None\n")
    (bad / "function.json").write_text('{"job": {"retry": {"maxAttempts": 0}}}')
    refused = await api.call("POST", deploy, data=pack_dir(bad), headers=gzip)
    assert_error(refused, 422, "invalid_manifest")
    assert "maxAttempts" in refused.json["error"]["message"]
    assert await api.snapshot() == before
    big = tmp_path / "big"
    (big / "code").mkdir(parents=True)
    (big / "function.json").write_text('{"name": "big"}')
    (big / "code" / "index.py").write_text("async def fetch(r, e, c): return None\n")
    (big / "code" / "blob.bin").write_bytes(os.urandom(3 * MAX_BODY))
    deployed = await api.call("POST", deploy, data=pack_dir(big), headers=gzip)
    assert deployed.status == 201, deployed.text
    assert deployed.json["version"] == 1 and deployed.json["live"] is False
    assert deployed.json["size"] > MAX_BODY


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_expired_and_unsigned_tokens_are_401_and_change_nothing(api: Api) -> None:
    await with_job(api)
    user = api.users["owner"]
    now = int(time.time())
    tokens = AccessTokens(SECRET, issuer="reactor-jobs", audience="reactor", ttl_s=60)
    forged = AccessTokens("f" * 64, issuer="reactor-jobs", audience="reactor", ttl_s=60)
    claims = {"sub": user, "iss": "reactor-jobs", "aud": "reactor", "iat": now,
              "exp": now + 60, "jti": "j"}  # fmt: skip
    bad = {
        "missing": None,
        "garbage": "Bearer not-a-token",
        "not bearer": f"Basic {tokens.issue(user)}",
        "expired": f"Bearer {tokens.issue(user, now=now - 3600)}",
        "alg none": f"Bearer {unsigned(claims)}",
        "other secret": f"Bearer {forged.issue(user)}",
        "revoked-looking key": "Bearer rk_" + "a" * 43,
    }
    before = (await api.snapshot(), await api.journal_rows())
    body = {"payload": {"orderId": "o"}}
    for name, authorization in bad.items():
        headers = {"X-Reactor-Org": "acme"}
        if authorization is not None:
            headers["Authorization"] = authorization
        reply = await api.call("POST", TRIGGER, as_=None, json=body, headers=headers)
        assert reply.status == 401, (name, reply.text)
        assert_error(reply, 401, "unauthorized")
    assert (await api.snapshot(), await api.journal_rows()) == before


async def test_unknown_paths_and_methods_answer_in_the_error_shape(api: Api) -> None:
    assert_error(await api.call("GET", "/jobs/v1/nothing/here"), 404, "not_found")
    wrong = await api.call("PUT", "/jobs/v1/_admin/jobs")
    assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


async def test_every_response_carries_a_request_id(api: Api) -> None:
    mine = await api.call("GET", "/healthz", as_=None, headers={"X-Request-Id": "abc-123"})
    assert mine.headers["X-Request-Id"] == "abc-123"
    forged = await api.call("GET", "/healthz", as_=None, headers={"X-Request-Id": "a b\tc"})
    assert forged.headers["X-Request-Id"].startswith("req_")
    for reply in (
        await api.call("GET", "/nope"),
        await api.call("GET", JOBS, as_=None),
        await api.call("POST", JOBS, data=b"{"),
    ):
        assert reply.headers["X-Request-Id"].startswith("req_")


async def test_a_job_at_its_concurrency_limit_answers_429_with_retry_after(api: Api) -> None:
    await with_job(api)  # one queued run already, no worker
    patched = await api.call("PATCH", JOBS + "/process-order", json={"max_concurrency": 1})
    assert patched.json["policy"]["max_concurrency"] == 1
    before = (await api.snapshot(), await api.journal_rows())
    reply = await api.call("POST", TRIGGER, json={"payload": {"orderId": "o2"}})
    assert_error(reply, 429, "concurrency_exceeded")
    assert int(reply.headers["Retry-After"]) >= 1
    assert (await api.snapshot(), await api.journal_rows()) == before


async def test_triggering_before_promote_is_a_conflict(api: Api) -> None:
    await api.call("POST", "/functions/v1/_admin/functions", json={"name": "draft"})
    job = {"name": "draft", "function_name": "draft"}
    created = await api.call("POST", JOBS, json=job)
    assert created.status == 201 and created.json["policy"] is None
    before = await api.journal_rows()
    assert_error(await api.call("POST", "/jobs/v1/draft/trigger", json={}), 409, "conflict")
    assert await api.journal_rows() == before
    again = await api.call("POST", JOBS, json=job)
    assert_error(again, 409, "conflict")
