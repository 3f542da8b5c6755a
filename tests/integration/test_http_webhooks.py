"""The webhook ingress: the token is the credential, the body becomes the payload (JSON,
text, or base64 for binary), only safe headers are kept, tokens never reach a log, and
bodies over the limit are refused. Signatures, de-duplication and the rate limit:
test_http_webhook_signatures.py."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.http_fixtures import MAX_BODY, Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


async def webhook(api: Api, secret: str | None = None, job: str = "hook") -> tuple[str, str]:
    """(trigger id, ingress path) of a new webhook trigger on `job` (created if need be)."""
    if (await api.call("GET", f"/jobs/v1/_admin/jobs/{job}")).status == 404:
        body = {"name": job, "function_name": "scenarios"}
        assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=body)).status == 201
    spec = {"kind": "webhook"} if secret is None else {"kind": "webhook", "secret": secret}
    created = await api.call("POST", f"/jobs/v1/_admin/jobs/{job}/triggers", json=spec)
    assert created.status == 201, created.text
    assert created.json["signed"] is (secret is not None)  # no global secret on this server
    return created.json["id"], created.json["url"]


async def first_event(api: Api, run_id: str) -> dict[str, Any]:
    journal = await api.call("GET", f"/jobs/v1/_admin/jobs/hook/runs/{run_id}/journal")
    return dict(journal.json["events"][0]["data"])


async def test_json_text_and_binary_bodies_become_the_payload(api: Api) -> None:
    trigger_id, path = await webhook(api)
    sent = {
        "json": (b'{"a": [1, 2]}', "application/vnd.stripe+json", {"a": [1, 2]}),
        "text": ("héllo".encode(), "text/plain; charset=utf-8", "héllo"),
        "binary": (b"\x00\xff\x10", "application/octet-stream", "AP8Q"),
    }
    for name, (body, content_type, payload) in sent.items():
        reply = await api.call("POST", path, as_=None, data=body,
                               headers={"Content-Type": content_type})  # fmt: skip
        assert reply.status == 202, (name, reply.text)
        assert set(reply.json) == {"run_id", "status", "duplicate"}
        assert reply.json["status"] == "queued" and reply.json["duplicate"] is False
        first = await first_event(api, reply.json["run_id"])
        assert first["payload"] == payload, name
        assert first["content_type"] == content_type
        assert first["trigger"] == {**first["trigger"], "kind": "webhook", "source": trigger_id}
        headers = first["headers"]
        assert isinstance(headers, dict)
        assert ("x-reactor-body-encoding" in headers) == (name == "binary")
    assert base64.b64decode("AP8Q") == b"\x00\xff\x10"


async def test_only_safe_headers_reach_the_run(api: Api) -> None:
    _, path = await webhook(api)
    reply = await api.call("POST", path, as_=None, json={"n": 1}, headers={
        "Authorization": "Bearer secret-1", "Cookie": "session=secret-2",
        "X-Api-Key": "secret-3", "X-Auth-Token": "secret-4", "X-GitHub-Event": "push",
        "Webhook-Id": "msg_1", "X-Hub-Signature-256": "sha256=abc", "User-Agent": "GitHub",
        "X-Reactor-Org": "globex", "Accept": "*/*", "X-Jwt-Assertion": "secret-5",
        "X-Credentials": "secret-6", "X-Passwd": "secret-7", "X-Private-Pin": "secret-8",
        "X-Client-Cert": "secret-9",
    })  # fmt: skip
    assert reply.status == 202
    headers = (await first_event(api, reply.json["run_id"]))["headers"]
    # An allowlist: signatures are left out unless the trigger lists them (test_webhook_headers).
    assert headers == {
        "content-type": "application/json", "user-agent": "GitHub", "x-github-event": "push",
        "webhook-id": "msg_1",
    }  # fmt: skip


async def test_unknown_deleted_or_malformed_tokens_are_404_and_bad_json_400(api: Api) -> None:
    trigger_id, path = await webhook(api)
    before = (await api.snapshot(), await api.journal_rows())
    for bad in ("whk_" + "A" * 43, "not-a-token", path.rsplit("/", 1)[1] + "x"):
        reply = await api.call("POST", f"/jobs/v1/webhooks/{bad}", as_=None, json={})
        assert (reply.status, reply.json["error"]["code"]) == (404, "not_found")
    broken = await api.call("POST", path, as_=None, data=b'{"a": ',
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert (broken.status, broken.json["error"]["code"]) == (400, "bad_request")
    assert (await api.snapshot(), await api.journal_rows()) == before
    deleted = await api.call("DELETE", f"/jobs/v1/_admin/jobs/hook/triggers/{trigger_id}")
    assert deleted.status == 204
    gone = await api.call("POST", path, as_=None, json={})
    assert gone.status == 404


async def test_the_access_log_never_holds_tokens(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, path = await webhook(api)
    token = path.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        assert (await api.call("POST", path, as_=None, json={"n": 1})).status == 202
        assert (await api.call("GET", "/jobs/v1/_admin/jobs")).status == 200
        await api.call("POST", "/jobs/v1/webhooks/whk_guess", as_=None, json={})
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 3
    assert "method=POST path=/jobs/v1/webhooks/[redacted] status=202" in lines[0]
    assert "request_id=req_" in lines[0]
    bearer = api.headers["owner"]["Authorization"].removeprefix("Bearer ")
    for line in lines:
        assert token not in line and "whk_" not in line and bearer not in line


async def test_a_webhook_over_the_concurrency_limit_is_429(api: Api) -> None:
    _, path = await webhook(api)
    patched = await api.call("PATCH", "/jobs/v1/_admin/jobs/hook", json={"max_concurrency": 1})
    assert patched.status == 200
    assert (await api.call("POST", path, as_=None, json={"mode": "noop"})).status == 202
    rows = await api.journal_rows()
    refused = await api.call("POST", path, as_=None, json={"mode": "noop"})
    assert (refused.status, refused.json["error"]["code"]) == (429, "concurrency_exceeded")
    assert refused.headers["Retry-After"] == "1"
    assert await api.journal_rows() == rows


async def test_a_body_over_the_limit_is_413_and_records_nothing(api: Api) -> None:
    _, path = await webhook(api)
    before = (await api.snapshot(), await api.journal_rows())
    big = await api.call("POST", path, as_=None, data=b"x" * (MAX_BODY + 1),
                         headers={"Content-Type": "text/plain"})  # fmt: skip
    assert (big.status, big.json["error"]["code"]) == (413, "payload_too_large")
    assert str(MAX_BODY) in big.json["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"y" * 1024

    async with api.session.post(api.base + path, data=chunks()) as streamed:
        assert streamed.status == 413
        assert (await streamed.json())["error"]["code"] == "payload_too_large"
    assert (await api.snapshot(), await api.journal_rows()) == before
    at_limit = await api.call("POST", path, as_=None, data=b"z" * MAX_BODY,
                              headers={"Content-Type": "text/plain"})  # fmt: skip
    assert at_limit.status == 202
