"""`triggers next`: the next fire times of a job's cron triggers, from the database clock's
now (the clock the scheduler fires by), under the DST rule of domain/cron.py."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from reactor_jobs.domain import cron
from reactor_jobs.domain.errors import InvalidField, JobNotFound
from reactor_jobs.triggers.declared import CatchUp

DEFAULT_COUNT = 5
MAX_COUNT = 100

_NOW_AND_JOB = """
SELECT clock_timestamp() AS now,
       EXISTS (SELECT 1 FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2) AS job_exists"""
_CRON_TRIGGERS = """
SELECT id, schedule, coalesce(timezone, 'UTC') AS timezone,
       coalesce(catch_up, 'latest') AS catch_up, source
  FROM _reactor_jobs.triggers WHERE org = $1 AND job = $2 AND kind = 'cron'
 ORDER BY created_at, id"""


class CronFires(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    schedule: str
    timezone: str
    catch_up: CatchUp
    source: Literal["api", "manifest"]
    fires: list[datetime]  # UTC


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    job: str
    now: datetime
    triggers: list[CronFires]


def check_count(count: int) -> int:
    if not 1 <= count <= MAX_COUNT:
        raise InvalidField("count", f"must be an integer from 1 to {MAX_COUNT}, got {count}")
    return count


async def next_fires(pool: asyncpg.Pool, org: str, job: str, count: int) -> Preview:
    """The next `count` fires of each cron trigger of `job`, oldest first."""
    check_count(count)
    async with pool.acquire() as conn:
        head = await conn.fetchrow(_NOW_AND_JOB, org, job)
        if not head["job_exists"]:
            raise JobNotFound(job)
        rows = await conn.fetch(_CRON_TRIGGERS, org, job)
    now: datetime = head["now"]
    triggers = [
        CronFires(
            **dict(row),
            fires=cron.next_fires(row["schedule"], row["timezone"], now, count),
        )
        for row in rows
    ]
    return Preview(job=job, now=now, triggers=triggers)
