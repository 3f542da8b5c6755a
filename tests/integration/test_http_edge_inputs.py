"""Input that Postgres or the decoder cannot take is refused at the edge with the error
shape, never a 500: NUL characters in bodies, paths and query strings, integers past int32,
times outside Postgres's range, JSON nested past the limit, overlong time zone names."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.http_fixtures import Api, api, publish
from tests.integration.test_http_errors import assert_error

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOBS = "/jobs/v1/_admin/jobs"
RUNS = JOBS + "/process-order/runs"
FUNCTION = "/functions/v1/_admin/functions/process-order"
TOKEN = "/auth/v1/token?grant_type=password"
DEEP = b"[" * 30_000 + b"]" * 30_000  # under the fixture's 64 KiB body limit
INT32_PAST = 2**31


async def with_run(api: Api) -> str:
    await publish(api, "process-order")
    job = {"name": "process-order", "function_name": "process-order"}
    assert (await api.call("POST", JOBS, json=job)).status == 201
    run = await api.call("POST", "/jobs/v1/process-order/trigger", json={"payload": {}})
    assert run.status == 201, run.text
    return str(run.json["id"])


def cursor(at: str, id: str = "run_x") -> str:
    raw = ('["' + at + '","' + id + '"]').encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_nul_characters_are_refused_wherever_they_arrive(api: Api) -> None:
    await with_run(api)
    before = await api.snapshot()
    sign_in = {"email": "owner\u0000@acme.test", "password": "whatever-it-is"}
    assert_error(await api.call("POST", TOKEN, as_=None, json=sign_in), 422, "invalid_field",
                 "email")  # fmt: skip
    org = {"name": "a\u0000b"}
    assert_error(await api.call("POST", "/auth/v1/orgs", json=org), 422, "invalid_field", "name")
    assert_error(await api.call("GET", JOBS + "/process%00order"), 422, "invalid_field", "name")
    assert_error(await api.call("GET", RUNS + "/run%00x"), 422, "invalid_field", "id")
    assert_error(
        await api.call("GET", "/jobs/v1/_admin/events?topic=a%00b"), 422, "invalid_field", "topic"
    )
    assert_error(await api.call("POST", "/jobs/v1/webhooks/whk%00x", as_=None, json={}),
                 422, "invalid_field", "token")  # fmt: skip
    job = {"name": "x", "function_name": "process\u0000order"}
    assert_error(await api.call("POST", JOBS, json=job), 422, "invalid_field", "function_name")
    nested = {"payload": {"a": [1, {"b": "nul \u0000"}]}}
    assert_error(await api.call("POST", "/jobs/v1/process-order/trigger", json=nested),
                 422, "invalid_field", "payload.a[1].b")  # fmt: skip
    assert await api.snapshot() == before


async def test_versions_past_int32_are_422(api: Api) -> None:
    run_id = await with_run(api)
    before = await api.snapshot()
    for path in (
        FUNCTION + "/promote",
        FUNCTION + "/check",
        f"{RUNS}/{run_id}/replay",
    ):
        reply = await api.call("POST", path, json={"version": INT32_PAST})
        assert_error(reply, 422, "invalid_field", "version")
        reply = await api.call("POST", path, json={"version": 0})
        assert_error(reply, 422, "invalid_field", "version")
    assert await api.snapshot() == before


async def test_times_outside_postgres_range_are_422(api: Api) -> None:
    await with_run(api)
    for name in ("since", "until"):
        for at in ("0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"):
            assert_error(await api.call("GET", f"{RUNS}?{name}={at}"), 422, "invalid_field", name)
    for at in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        reply = await api.call("GET", f"{RUNS}?cursor={cursor(at)}")
        assert_error(reply, 422, "invalid_field", "cursor")
        events = await api.call("GET", f"/jobs/v1/_admin/events?cursor={cursor(at)}")
        assert_error(events, 422, "invalid_field", "cursor")


async def test_json_nested_past_the_limit_is_400_on_every_json_route(api: Api) -> None:
    await with_run(api)
    created = await api.call("POST", JOBS + "/process-order/triggers", json={"kind": "webhook"})
    webhook = created.json["url"]
    before = await api.snapshot()
    sends: list[tuple[str, str | None]] = [
        (TOKEN, None),
        ("/auth/v1/orgs", "owner"),
        (JOBS, "owner"),
        ("/jobs/v1/process-order/trigger", "owner"),
        (webhook, None),
    ]
    for path, caller in sends:
        headers = {"Content-Type": "application/json"}
        reply = await api.call("POST", path, as_=caller, data=DEEP, headers=headers)
        assert_error(reply, 400, "bad_request")
        assert "nested" in reply.json["error"]["message"]
    shallow: Any = []
    for _ in range(60):
        shallow = [shallow]
    ok = await api.call("POST", "/jobs/v1/process-order/trigger", json={"payload": shallow})
    assert ok.status == 201, ok.text
    assert await api.snapshot() != before  # only the shallow one was admitted


async def test_time_zone_names_past_the_limit_are_422(api: Api) -> None:
    await with_run(api)
    spec = {"kind": "cron", "schedule": "0 * * * *", "timezone": "Europe/" + "x" * 300}
    reply = await api.call("POST", JOBS + "/process-order/triggers", json=spec)
    assert_error(reply, 422, "invalid_field", "timezone")


async def test_overlong_path_and_query_values_are_422(api: Api) -> None:
    await with_run(api)
    assert_error(await api.call("GET", JOBS + "/" + "n" * 300), 422, "invalid_field", "name")
    topic = "t" * 2000
    reply = await api.call("GET", f"/jobs/v1/_admin/events?topic={topic}")
    assert_error(reply, 422, "invalid_field", "topic")
