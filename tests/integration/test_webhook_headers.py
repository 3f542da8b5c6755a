"""Webhook headers are kept by an allowlist, per trigger: the defaults plus the trigger's
own `headers` (API, manifest); credentials never, even when listed."""

from __future__ import annotations

import pytest

from reactor_jobs.triggers import declared
from reactor_jobs.triggers.reconcile import spec_of
from reactor_jobs.triggers.specs import WebhookSpec
from tests.http_fixtures import Api, api
from tests.integration.test_http_errors import assert_error
from tests.integration.test_http_webhooks import first_event

pytestmark = pytest.mark.integration
__all__ = ["api"]

TRIGGERS = "/jobs/v1/_admin/jobs/hook/triggers"


async def hook_job(api: Api) -> None:
    body = {"name": "hook", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=body)).status == 201


async def test_a_trigger_keeps_the_headers_it_lists_besides_the_defaults(api: Api) -> None:
    await hook_job(api)
    spec = {"kind": "webhook", "headers": ["X-Hub-Signature-256", "x-tenant", "x-tenant"]}
    created = await api.call("POST", TRIGGERS, json=spec)
    assert created.status == 201, created.text
    assert created.json["headers"] == ["x-hub-signature-256", "x-tenant"]
    listed = (await api.call("GET", TRIGGERS)).json["triggers"]
    assert listed[0]["headers"] == ["x-hub-signature-256", "x-tenant"]
    sent = {
        "X-Tenant": "t1",
        "X-Hub-Signature-256": "sha256=abc",
        "X-Other": "no",
        "Authorization": "Bearer x",
        "X-Jwt-Assertion": "secret",
        "Webhook-Id": "m1",
        "User-Agent": "hooks/1",
    }
    reply = await api.call("POST", created.json["url"], as_=None, json={}, headers=sent)
    assert reply.status == 202, reply.text
    headers = (await first_event(api, reply.json["run_id"]))["headers"]
    assert headers == {
        "content-type": "application/json", "webhook-id": "m1", "user-agent": "hooks/1",
        "x-hub-signature-256": "sha256=abc", "x-tenant": "t1",
    }  # fmt: skip


async def test_credentials_and_bad_names_cannot_be_listed(api: Api) -> None:
    await hook_job(api)
    before = await api.snapshot()
    for headers in (["Authorization"], ["cookie"], ["x-reactor-org"], ["bad name"],
                    [f"x-{n}" for n in range(21)]):  # fmt: skip
        reply = await api.call("POST", TRIGGERS, json={"kind": "webhook", "headers": headers})
        assert_error(reply, 422, "invalid_field", "headers")
    reply = await api.call("POST", TRIGGERS, json={"kind": "cron", "schedule": "0 * * * *",
                                                    "headers": ["x-a"]})  # fmt: skip
    assert_error(reply, 422, "invalid_field", "headers")
    assert await api.snapshot() == before


def test_manifest_headers_become_the_checked_spec() -> None:
    listed = declared.WebhookTrigger(headers=["X-B", "x-a"])
    spec = spec_of(listed)
    assert spec == WebhookSpec(headers=["x-a", "x-b"])
    assert spec_of(declared.WebhookTrigger()) == WebhookSpec()
