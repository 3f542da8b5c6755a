"""Applying a manifest's `job.triggers` to a job, inside the caller's transaction (promote,
job create, rebinding a job to another function): the job's triggers with source 'manifest'
are made to match; those with source 'api' are never touched.

The job's row is locked first (FOR NO KEY UPDATE: API trigger inserts, which only share-lock
it for their foreign key, are not blocked), so two syncs of one job run one after the other
and never add the same trigger twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import asyncpg
import msgspec

from reactor_jobs.domain.errors import JobNotFound
from reactor_jobs.domain.ids import new_id
from reactor_jobs.triggers.declared import Trigger as Declared
from reactor_jobs.triggers.reconcile import kind_of, plan, spec_of
from reactor_jobs.triggers.specs import CronSpec, EventSpec, TriggerSpec, WebhookSpec
from reactor_jobs.triggers.store import TOKEN_PREFIX, NewTrigger, Trigger, token_hash

_TOKEN_BYTES = 32
_COLUMNS = "id, org, job, kind, schedule, timezone, catch_up, topic, headers, source, created_at"

JOB_LOCK = """
SELECT name FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2 FOR NO KEY UPDATE"""
MANIFEST_TRIGGERS = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.triggers
 WHERE org = $1 AND job = $2 AND source = 'manifest' ORDER BY created_at, id"""
INSERT = f"""
INSERT INTO _reactor_jobs.triggers
       (id, org, job, kind, schedule, timezone, catch_up, topic, headers, token_hash, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'manifest')
RETURNING {_COLUMNS}"""
# A changed schedule starts from now: slots of the new schedule before the change never
# existed, so they are not caught up.
UPDATE = f"""
UPDATE _reactor_jobs.triggers
   SET fired_through = CASE WHEN schedule IS DISTINCT FROM $3 OR timezone IS DISTINCT FROM $4
                            THEN greatest(coalesce(fired_through, created_at), now())
                            ELSE fired_through END,
       schedule = $3, timezone = $4, catch_up = $5, topic = $6, headers = $7
 WHERE org = $1 AND id = $2
RETURNING {_COLUMNS}"""
DELETE = """
DELETE FROM _reactor_jobs.triggers WHERE org = $1 AND id = ANY($2::text[])"""


class TriggerChanges(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync did. A new webhook's token is in `added` (NewTrigger.token), only here."""

    added: list[NewTrigger] = msgspec.field(default_factory=list)
    changed: list[Trigger] = msgspec.field(default_factory=list)
    removed: list[Trigger] = msgspec.field(default_factory=list)
    unchanged: list[Trigger] = msgspec.field(default_factory=list)

    def __add__(self, other: TriggerChanges) -> TriggerChanges:
        return TriggerChanges(
            added=self.added + other.added,
            changed=self.changed + other.changed,
            removed=self.removed + other.removed,
            unchanged=self.unchanged + other.unchanged,
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.unchanged)


def wanted_triggers(declared: Sequence[Declared]) -> list[TriggerSpec]:
    """The specs of a manifest's declared triggers (`job.triggers`)."""
    return [spec_of(t) for t in declared]


async def sync_job(
    conn: asyncpg.Connection, org: str, job: str, wanted: Sequence[TriggerSpec]
) -> TriggerChanges:
    """Make job's manifest triggers match `wanted`; call inside a transaction."""
    if await conn.fetchval(JOB_LOCK, org, job) is None:
        raise JobNotFound(job)
    existing = [_trigger(row) for row in await conn.fetch(MANIFEST_TRIGGERS, org, job)]
    steps = plan(existing, wanted)
    if steps.removed:
        await conn.execute(DELETE, org, [t.id for t in steps.removed])
    changed = [await _change(conn, org, t.id, spec) for t, spec in steps.changed]
    added = [await _add(conn, org, job, spec) for spec in steps.added]
    return TriggerChanges(
        added=added, changed=changed, removed=steps.removed, unchanged=steps.unchanged
    )


async def _change(
    conn: asyncpg.Connection, org: str, trigger_id: str, spec: TriggerSpec
) -> Trigger:
    row = await conn.fetchrow(UPDATE, org, trigger_id, *_fields(spec))
    return _trigger(row)


async def _add(conn: asyncpg.Connection, org: str, job: str, spec: TriggerSpec) -> NewTrigger:
    token = None
    if isinstance(spec, WebhookSpec):
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    digest = None if token is None else token_hash(token)
    row = await conn.fetchrow(
        INSERT, new_id("trg"), org, job, kind_of(spec), *_fields(spec), digest
    )
    return NewTrigger(trigger=_trigger(row), token=token)


def _fields(spec: TriggerSpec) -> tuple[object, ...]:
    """(schedule, timezone, catch_up, topic, headers)."""
    if isinstance(spec, CronSpec):
        return spec.schedule, spec.timezone, spec.catch_up, None, None
    if isinstance(spec, EventSpec):
        return None, None, None, spec.topic, None
    if isinstance(spec, WebhookSpec):
        return None, None, None, None, spec.headers
    return None, None, None, None, None


def _trigger(row: asyncpg.Record) -> Trigger:
    return msgspec.convert(dict(row), Trigger)
