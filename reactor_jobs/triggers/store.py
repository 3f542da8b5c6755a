"""Triggers in Postgres, scoped by org: create (a webhook's token is returned once and only
its sha256 kept), list, delete, and the token lookup of the webhook ingress."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import asyncpg
import msgspec

from reactor_jobs.domain.errors import JobNotFound, NotFound
from reactor_jobs.domain.ids import new_id
from reactor_jobs.triggers.specs import (
    CronSpec,
    EventSpec,
    TriggerSpec,
    WebhookSpec,
    check_spec,
)

TOKEN_PREFIX = "whk_"
WEBHOOK_PATH = "/jobs/v1/webhooks/"
# 32 random bytes: 256 bits, well past the 128 an unguessable URL needs.
_TOKEN_BYTES = 32
_MAX_TOKEN_CHARS = 128

_COLUMNS = "id, org, job, kind, schedule, timezone, catch_up, topic, headers, source, created_at"
_INSERT = f"""
INSERT INTO _reactor_jobs.triggers
       (id, org, job, kind, schedule, timezone, catch_up, topic, token_hash, secret, headers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {_COLUMNS}"""
_LIST = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.triggers WHERE org = $1 AND job = $2
 ORDER BY created_at, id"""
_DELETE = """
DELETE FROM _reactor_jobs.triggers WHERE org = $1 AND job = $2 AND id = $3 RETURNING id"""
_JOB_EXISTS = "SELECT 1 FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2"
_BY_TOKEN = f"""
SELECT {_COLUMNS}, secret FROM _reactor_jobs.triggers
 WHERE token_hash = $1 AND kind = 'webhook'"""


class TriggerNotFound(NotFound):
    """The trigger does not exist."""

    def __init__(self, trigger_id: str) -> None:
        super().__init__(f"trigger {trigger_id} not found")
        self.trigger_id = trigger_id


class Trigger(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    org: str
    job: str
    kind: str
    schedule: str | None
    timezone: str | None
    catch_up: str | None
    topic: str | None
    source: str
    created_at: datetime
    headers: list[str] | None = None  # webhooks: kept beyond the defaults


class WebhookTrigger(Trigger, frozen=True, kw_only=True):
    """A webhook trigger as the ingress sees it: with its signing secret (None: unsigned,
    unless the server has a global one). The secret never appears in its repr."""

    secret: str | None = None

    def __repr__(self) -> str:
        secret = None if self.secret is None else "***"
        return f"WebhookTrigger(id={self.id!r}, job={self.job!r}, secret={secret!r})"


class NewTrigger(msgspec.Struct, frozen=True, kw_only=True):
    """A created trigger; a webhook's token appears here and nowhere else, ever."""

    trigger: Trigger
    token: str | None = None

    @property
    def url(self) -> str | None:
        return None if self.token is None else WEBHOOK_PATH + self.token


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _row_values(spec: TriggerSpec, token: str | None) -> tuple[object, ...]:
    """(schedule, timezone, catch_up, topic, token_hash, secret, headers) for the insert."""
    if isinstance(spec, CronSpec):
        return spec.schedule, spec.timezone, spec.catch_up, None, None, None, None
    if isinstance(spec, EventSpec):
        return None, None, None, spec.topic, None, None, None
    if isinstance(spec, WebhookSpec):
        assert token is not None
        return None, None, None, None, token_hash(token), spec.secret, spec.headers
    return None, None, None, None, None, None, None


class TriggerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, org: str, job: str, spec: TriggerSpec) -> NewTrigger:
        spec = check_spec(spec)
        kind = type(spec).__struct_config__.tag
        assert isinstance(kind, str)
        token = None
        if isinstance(spec, WebhookSpec):
            token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        values = _row_values(spec, token)
        try:
            row = await self._pool.fetchrow(_INSERT, new_id("trg"), org, job, kind, *values)
        except asyncpg.ForeignKeyViolationError:
            raise JobNotFound(job) from None
        return NewTrigger(trigger=msgspec.convert(dict(row), Trigger), token=token)

    async def list_for_job(self, org: str, job: str) -> list[Trigger]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_LIST, org, job)
            if not rows and await conn.fetchval(_JOB_EXISTS, org, job) is None:
                raise JobNotFound(job)
        return [msgspec.convert(dict(row), Trigger) for row in rows]

    async def delete(self, org: str, job: str, trigger_id: str) -> None:
        async with self._pool.acquire() as conn:
            if await conn.fetchval(_DELETE, org, job, trigger_id) is not None:
                return
            if await conn.fetchval(_JOB_EXISTS, org, job) is None:
                raise JobNotFound(job)
        raise TriggerNotFound(trigger_id)

    async def find_webhook(self, token: str) -> WebhookTrigger | None:
        """The webhook trigger whose token this is, or None (also for malformed tokens)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
            return None
        row = await self._pool.fetchrow(_BY_TOKEN, token_hash(token))
        return None if row is None else msgspec.convert(dict(row), WebhookTrigger)
