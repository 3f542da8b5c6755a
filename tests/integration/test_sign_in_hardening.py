"""Sign-in under attack: repeated failures are throttled (429 with Retry-After) and logged
without the password or the email; argon2 runs on its own bounded executor, so a flood of
sign-ins neither starves the default thread pool nor queues without bound."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.http_fixtures import PASSWORD, Api, Reply, api
from tests.integration.test_http_errors import assert_error

pytestmark = pytest.mark.integration
__all__ = ["api"]

TOKEN = "/auth/v1/token?grant_type=password"


async def sign_in(api: Api, email: str, password: str) -> Reply:
    return await api.call("POST", TOKEN, as_=None, json={"email": email, "password": password})


async def test_failures_per_email_are_throttled_and_logged_without_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    email = "owner@acme.test"
    with caplog.at_level(logging.WARNING, logger="reactor_jobs.auth.service"):
        for n in range(5):
            reply = await sign_in(api, email, f"wrong-password-{n}")
            assert_error(reply, 401, "unauthorized")
        refused = await sign_in(api, email, PASSWORD)  # right, but too late
    assert_error(refused, 429, "too_many_requests")
    assert 1 <= int(refused.headers["Retry-After"]) <= 900
    failures = [r.getMessage() for r in caplog.records if "sign-in failed" in r.getMessage()]
    assert len(failures) == 5
    for line in failures:
        assert "from 127.0.0.1" in line and "sha256:" in line
        assert email not in line and "wrong-password" not in line
    other = await sign_in(api, "admin@acme.test", PASSWORD)
    assert other.status == 200, other.text


async def test_a_flood_of_sign_ins_does_not_starve_the_default_thread_pool(api: Api) -> None:
    async def probe() -> float:
        started = time.monotonic()
        await asyncio.to_thread(lambda: None)  # what a sync ctx.step waits for
        return time.monotonic() - started

    flood = [
        asyncio.create_task(sign_in(api, f"nobody{n}@x.test", "wrong-password")) for n in range(120)
    ]
    await asyncio.sleep(0.2)
    latencies = [await probe() for _ in range(5)]
    replies = await asyncio.gather(*flood)
    assert max(latencies) < 0.5, latencies
    statuses = {reply.status for reply in replies}
    assert statuses <= {401, 429, 503}, statuses
    assert 503 in statuses or 429 in statuses  # bounded: the overflow is refused
    busy = [r for r in replies if r.status == 503]
    for reply in busy:
        assert_error(reply, 503, "server_busy")
        assert reply.headers["Retry-After"] == "1"
