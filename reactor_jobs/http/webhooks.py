"""The webhook ingress `POST /jobs/v1/webhooks/{token}`: no login, the unguessable token is
the credential. The body becomes the run's payload:

- a JSON content type (`application/json`, `…+json`): the parsed JSON (400 if it is not);
- any other body that is UTF-8 text: the text;
- anything else (binary): base64 text, with the header `x-reactor-body-encoding: base64`.

The run also gets the content type and the request headers on an allowlist: the defaults
(triggers/specs.DEFAULT_WEBHOOK_HEADERS) plus the trigger's own `headers`; credentials are
never kept. What the journal holds every member of the org can read, so a denylist (which
let X-Jwt-Assertion or X-Client-Cert through) is not enough. In order:
unknown token 404; the trigger's rate limit 429 (ratelimit.py); body size 413; when the
trigger or the server has a secret, the Standard Webhooks signature 401
(domain/signature.py); then a repeated `webhook-id` gets the first run back (200,
"duplicate": true) through the run idempotency key `webhook:<trigger id>:<webhook-id>`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from reactor_jobs.domain.errors import NotFound
from reactor_jobs.domain.ids import webhook_key
from reactor_jobs.domain.signature import (
    ID_HEADER,
    MESSAGE_ID,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signing_key,
    verify,
)
from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.bodies import decode_bytes, json_response, read_body
from reactor_jobs.http.keys import CONFIG, NODE, TRIGGERS, WEBHOOK_GUARDS, WEBHOOK_LIMITER
from reactor_jobs.http.objects import WebhookAccepted
from reactor_jobs.http.routes import Route, header, public
from reactor_jobs.telemetry.tracing import trace_headers
from reactor_jobs.triggers.specs import DEFAULT_WEBHOOK_HEADERS, NEVER_KEPT_HEADERS
from reactor_jobs.triggers.store import WebhookTrigger

ENCODING_HEADER = "x-reactor-body-encoding"
_DEFAULTS = frozenset(DEFAULT_WEBHOOK_HEADERS)
_MAX_HEADER_CHARS = 1024


class WebhookNotFound(NotFound):
    """No webhook has this token (it may have been deleted: recreate the trigger)."""


def safe_headers(headers: Mapping[str, str], extra: Sequence[str] = ()) -> dict[str, str]:
    """The headers on the allowlist (the defaults and `extra`), first value of each, none
    longer than 1 KiB and none that NEVER_KEPT_HEADERS names."""
    allowed = _DEFAULTS.union(extra) - NEVER_KEPT_HEADERS
    kept: dict[str, str] = {}
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if name in allowed and len(value) <= _MAX_HEADER_CHARS:
            kept.setdefault(name, value)
    return kept


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def payload_of(body: bytes, content_type: str) -> tuple[Any, dict[str, str]]:
    """(payload, extra headers) for a webhook body, as the module docstring describes."""
    if not body:
        return None, {}
    if is_json(content_type):
        return decode_bytes(body, Any), {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:  # the journal's JSON cannot hold NUL
        return text, {}
    return base64.b64encode(body).decode(), {ENCODING_HEADER: "base64"}


async def check_signature(trigger: WebhookTrigger, request: web.Request, body: bytes) -> None:
    """A WebhookGuard: with the trigger's secret, else the server's webhook_secret, the
    request must be signed (InvalidSignature, 401); with neither, nothing is checked."""
    secret = trigger.secret or request.app[CONFIG].jobs.webhook_secret
    if secret is not None:
        verify(signing_key(secret), request.headers, body, now=time.time())


def message_id(request: web.Request) -> str | None:
    """The `webhook-id` header, if sent (a signed request's was checked already)."""
    found = request.headers.get(ID_HEADER)
    if found is not None and not MESSAGE_ID.fullmatch(found):
        raise InvalidField(ID_HEADER, "must be 1 to 255 visible ASCII characters")
    return found


async def ingress(request: web.Request) -> web.Response:
    trigger = await request.app[TRIGGERS].find_webhook(request.match_info["token"])
    if trigger is None:
        raise WebhookNotFound()
    request.app[WEBHOOK_LIMITER].take(trigger.id)
    body = await read_body(request)
    for guard in request.app[WEBHOOK_GUARDS]:
        await guard(trigger, request, body)
    delivery = message_id(request)
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    payload, extra = payload_of(body, content_type)
    run, created = await request.app[NODE].control.admit(
        trigger.org,
        trigger.job,
        payload=payload,
        kind="webhook",
        source=trigger.id,
        idempotency_key=None if delivery is None else webhook_key(trigger.id, delivery),
        headers={
            **safe_headers(request.headers, trigger.headers or ()),
            **trace_headers(request.headers),
            **extra,
        },
        content_type=content_type,
    )
    accepted = WebhookAccepted(run_id=run.id, status=run.status, duplicate=not created)
    return json_response(accepted, status=202 if created else 200)


_SIGNED = (
    header(
        ID_HEADER,
        "The message id (1 to 255 visible ASCII characters). A repeat for the "
        "same trigger starts nothing: 200 with the first run's id and duplicate: true.",
    ),
    header(TIMESTAMP_HEADER, "Signed webhooks: unix seconds, within 5 minutes of the server."),
    header(
        SIGNATURE_HEADER,
        "Signed webhooks: space-separated v1,<base64 HMAC-SHA256 of "
        "{webhook-id}.{webhook-timestamp}.{body}>; one matching entry suffices.",
    ),
)

ROUTES: list[Route] = [
    public(
        "POST", "/jobs/v1/webhooks/{token}", ingress,
        summary="Webhook ingress: trigger the webhook's job (no login; the token is the auth)",
        tag="webhooks", status=202, body="any", response=WebhookAccepted, params=_SIGNED,
        errors=(400, 401, 404, 409, 413, 422, 429),
        note="A JSON content type is parsed (400 if it does not parse); other UTF-8 text is "
        "passed as text; a binary body as base64 text with the header "
        "x-reactor-body-encoding: base64. The run gets the content type and the request headers "
        "on an allowlist: content-type, user-agent, webhook-id, webhook-timestamp and common "
        "delivery ids (x-github-delivery, x-request-id, …), plus the trigger's `headers`; "
        "authorization and cookies never. "
        "Unknown token: 404. Over the trigger's rate limit: 429 rate_limited with "
        "Retry-After. When the trigger or the server has a webhook secret, the request must "
        "carry a valid Standard Webhooks signature, else 401 invalid_signature. A repeated "
        "webhook-id: 200 with the first run's id and duplicate: true; nothing is recorded.",
    ),
]  # fmt: skip
