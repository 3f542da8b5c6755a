"""What a caller asks for when creating a trigger: one tagged union on `kind`, checked here
without a database (schedule, time zone, topic, secret)."""

from __future__ import annotations

import re
from typing import TypeAlias

import msgspec

from reactor_jobs.domain.cron import check_cron, check_timezone
from reactor_jobs.domain.errors import InvalidField
from reactor_jobs.domain.signature import signing_key
from reactor_jobs.triggers.declared import CatchUp

MAX_TOPIC_CHARS = 200
MAX_SECRET_CHARS = 512
MAX_WEBHOOK_HEADERS = 20
# The request headers a webhook run keeps by default: what a delivery is and which one it
# is. Signatures (webhook-signature, stripe-signature, x-hub-signature-256) are left out:
# not secrets, but replayable with the body, and the ingress has checked them already.
DEFAULT_WEBHOOK_HEADERS = (
    "content-type", "user-agent", "webhook-id", "webhook-timestamp",
    "x-request-id", "x-github-delivery", "x-github-event", "x-github-hook-id",
    "x-gitlab-event", "x-gitlab-event-uuid", "x-shopify-topic", "x-shopify-webhook-id",
    "x-event-type", "x-delivery-id",
)  # fmt: skip
# Never kept, even when a trigger lists them: credentials, and the server's own headers.
NEVER_KEPT_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class _Spec(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True
):
    pass


class CronSpec(_Spec, frozen=True, tag="cron"):
    """Fire on a cron schedule (5 fields, or 6 with seconds last), in `timezone`."""

    schedule: str
    timezone: str = "UTC"
    catch_up: CatchUp = "latest"


class EventSpec(_Spec, frozen=True, tag="event"):
    """Fire when a run emits `topic` (exact, case-sensitive match)."""

    topic: str


class WebhookSpec(_Spec, frozen=True, tag="webhook"):
    """Fire on a POST to the trigger's ingress URL. With a `secret` (write-only: never
    returned), requests must be signed with it (domain/signature.py). `headers`: request
    headers its runs keep beyond DEFAULT_WEBHOOK_HEADERS (lowercase names)."""

    secret: str | None = None
    headers: list[str] | None = None

    def __repr__(self) -> str:
        secret = None if self.secret is None else "***"
        return f"WebhookSpec(secret={secret!r}, headers={self.headers!r})"


class ManualSpec(_Spec, frozen=True, tag="manual"):
    """Documents that the job is meant to be triggered through the API."""


TriggerSpec: TypeAlias = CronSpec | EventSpec | WebhookSpec | ManualSpec


def check_spec(spec: TriggerSpec) -> TriggerSpec:
    """The spec, its schedule's spacing normalised; InvalidField names what is wrong."""
    if isinstance(spec, CronSpec):
        schedule = " ".join(spec.schedule.split())
        if problem := check_cron(schedule):
            raise InvalidField("schedule", problem)
        if problem := check_timezone(spec.timezone):
            raise InvalidField("timezone", problem)
        return msgspec.structs.replace(spec, schedule=schedule)
    if isinstance(spec, EventSpec):
        # Topics match exactly, so one is stored as given; blank edges would never match.
        if not spec.topic.strip():
            raise InvalidField("topic", "must not be empty")
        if spec.topic != spec.topic.strip():
            raise InvalidField("topic", "must not start or end with whitespace")
        if len(spec.topic) > MAX_TOPIC_CHARS:
            raise InvalidField("topic", f"must be at most {MAX_TOPIC_CHARS} characters")
    if isinstance(spec, WebhookSpec) and spec.headers is not None:
        spec = msgspec.structs.replace(spec, headers=check_header_names(spec.headers))
    secret = spec.secret if isinstance(spec, WebhookSpec) else None
    if secret is not None and not 1 <= len(secret) <= MAX_SECRET_CHARS:
        raise InvalidField("secret", f"must be 1 to {MAX_SECRET_CHARS} characters")
    if secret is not None:
        try:
            signing_key(secret)
        except ValueError as exc:  # its message never quotes the secret
            raise InvalidField("secret", str(exc)) from None
    return spec


def check_header_names(names: list[str]) -> list[str]:
    """Lowercased, de-duplicated and sorted (so a reordered manifest changes nothing)."""
    if len(names) > MAX_WEBHOOK_HEADERS:
        raise InvalidField("headers", f"at most {MAX_WEBHOOK_HEADERS} names")
    lowered = sorted({name.lower() for name in names})
    for name in lowered:
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidField("headers", f"not a header name: {name[:64]!r}")
        if name in NEVER_KEPT_HEADERS or name.startswith("x-reactor-"):
            raise InvalidField("headers", f"{name} is never kept (credentials or reserved)")
    return lowered
