"""The scheduler loop of `reactor serve`: fires cron slots exactly once, on any number of
nodes. A slot's run carries the idempotency key cron:<trigger>:<local slot time>, so the
journal's idempotency_keys table lets only one fire through, whatever happens;
`fired_through` on the trigger records how far the slots are handled. Sleeps, retries and
leases are the workers' (see worker.py).

Each tick reads every cron trigger with the database clock's now and sleeps until the next
slot of any trigger (at most `interval_ms`), so a slot fires within milliseconds of its time
whatever the interval. The due triggers are taken with transaction-scoped advisory locks,
skipping those another scheduler holds: the key already makes fires unique, the locks only
keep schedulers from racing for the same slots (their inserts would wait on each other).
In that transaction the slots' runs are appended (one statement per 500) and the triggers
advanced, so fires and advance commit together; a crash rolls both back and frees the locks.

A scheduler paused or hung mid-fire (SIGSTOP, a stalled VM, a lost network) must not keep
the others off its triggers. The fire transaction sets idle_in_transaction_session_timeout,
statement_timeout and lock_timeout locally, so the server ends it, rolls it back and frees
its locks within FIRE_BOUND_MS of its last activity. That misses a client stopped in the
middle of the extended protocol (the backend then waits for the client's next message,
`active`, and neither timeout runs), so the others also reap: a trigger still unfired
FIRE_BOUND_MS after its slot, held by a transaction older than that, has its holder's
backend terminated. Either way another scheduler fires the slots; that late they are still
on time (the tolerance is larger), so none is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from reactor_jobs.database import DATABASE_ERRORS, DatabaseHealth
from reactor_jobs.domain import cron
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import IdempotencyConflict, ReactorError
from reactor_jobs.domain.ids import new_id
from reactor_jobs.engine.journal import AppendRequest
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.engine.triggered import triggered_event
from reactor_jobs.functions.records import ResolvedJob
from reactor_jobs.telemetry.metrics import METRICS

log = logging.getLogger("reactor_jobs.scheduler")

_COLUMNS = """t.id, t.org, t.job, t.schedule, t.timezone,
       coalesce(t.catch_up, 'latest') AS catch_up,
       coalesce(t.fired_through, t.created_at) AS fired_through, clock_timestamp() AS now"""
CRON_TRIGGERS = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.triggers AS t WHERE t.kind = 'cron' ORDER BY t.id
"""
# The triggers of $1 that no other scheduler holds, locked until this transaction ends, as
# they are now (another scheduler may have just advanced them).
CRON_TRIGGERS_LOCK = f"""
WITH mine AS (
    SELECT id FROM unnest($1::text[]) AS id
     WHERE pg_try_advisory_xact_lock(hashtextextended('reactor_jobs.cron/' || id, 0))
)
SELECT {_COLUMNS} FROM _reactor_jobs.triggers AS t JOIN mine USING (id)
 WHERE t.kind = 'cron' ORDER BY t.id
"""
# Backends holding one of these triggers' locks in a transaction older than $2 seconds: a
# healthy fire takes milliseconds, so such a holder is hung or paused. Terminating it rolls
# its fire back. Only the role's own backends (or with pg_signal_backend) can be ended.
REAP_HUNG = """
WITH keys AS (
    SELECT hashtextextended('reactor_jobs.cron/' || id, 0) AS key FROM unnest($1::text[]) AS id
)
SELECT a.pid, pg_terminate_backend(a.pid) AS ended
  FROM keys
  JOIN pg_locks AS l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid::bigint = (keys.key >> 32) & 4294967295
   AND l.objid::bigint = keys.key & 4294967295
  JOIN pg_stat_activity AS a ON a.pid = l.pid
 WHERE a.pid <> pg_backend_pid() AND a.xact_start < now() - make_interval(secs => $2)
"""
ADVANCE = """
UPDATE _reactor_jobs.triggers AS t SET fired_through = a.through
  FROM unnest($1::text[], $2::timestamptz[]) AS a (id, through)
 WHERE t.id = a.id AND coalesce(t.fired_through, t.created_at) < a.through
"""
APPEND_CHUNK = 500  # runs per append statement
# Longest a fire transaction may sit idle, run one statement or wait for a lock. Well under
# the on-time tolerance (5 s at least), so a slot held up that long still fires.
FIRE_BOUND_MS = 2000
_BOUND = timedelta(milliseconds=FIRE_BOUND_MS)
_BOUND_FIRE = f"""
SELECT set_config('idle_in_transaction_session_timeout', '{FIRE_BOUND_MS}ms', true),
       set_config('statement_timeout', '{FIRE_BOUND_MS}ms', true),
       set_config('lock_timeout', '{FIRE_BOUND_MS}ms', true)
"""

Due = tuple[asyncpg.Record, list[datetime]]


class Scheduler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        control: RunControl,
        *,
        interval_ms: int = 1000,
        health: DatabaseHealth | None = None,
    ) -> None:
        self.pool, self.control, self.interval = pool, control, interval_ms / 1000
        self.health = health or DatabaseHealth()
        # a slot fired within this long of its time counts as on time, not a catch-up
        self.tolerance = timedelta(seconds=max(2 * self.interval, 5))

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started, wait = loop.time(), self.interval
            try:
                wait = min(wait, await self.tick())
                self.health.reached()
            except DATABASE_ERRORS as exc:
                wait = min(wait, self.health.failed(exc, "scheduler"))
            wait -= loop.time() - started  # the tick's own time counts against the wait
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.001))

    async def tick(self) -> float:
        """Fire what is due; return the seconds (from the tick's start) until the next slot
        of any trigger, at most the interval."""
        until_next = self.interval
        due: list[asyncpg.Record] = []
        overdue: list[str] = []
        for row in await self.pool.fetch(CRON_TRIGGERS):
            schedule, timezone, now = row["schedule"], row["timezone"], row["now"]
            # The first slot after fired_through: due when it is not in the future.
            upcoming = cron.next_fires(schedule, timezone, row["fired_through"], 1)
            if upcoming and upcoming[0] <= now:
                due.append(row)
                if upcoming[0] <= now - _BOUND:
                    overdue.append(row["id"])
                upcoming = cron.next_fires(schedule, timezone, now, 1)
            if upcoming:
                until_next = min(until_next, (upcoming[0] - now).total_seconds())
        if overdue:
            await self._reap_hung(overdue)
        if due:
            await self._fire_held(due)
        return until_next

    async def _reap_hung(self, ids: list[str]) -> None:
        try:
            ended = await self.pool.fetch(REAP_HUNG, ids, FIRE_BOUND_MS / 1000)
        except asyncpg.InsufficientPrivilegeError as exc:
            log.warning("cannot end a hung scheduler's transaction: %s", exc)
            return
        for row in ended:
            log.warning(
                "ended backend %s: it held a cron trigger past %d ms", row[0], FIRE_BOUND_MS
            )

    async def _fire_held(self, due: list[asyncpg.Record]) -> None:
        jobs = {(row["org"], row["job"]): row for row in due}
        resolved = {key: await self._resolve(row) for key, row in jobs.items()}
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_BOUND_FIRE)
            ids = [row["id"] for row in due]
            held = [(row, _due(row)) for row in await conn.fetch(CRON_TRIGGERS_LOCK, ids)]
            handled = [(row, slots) for row, slots in held if slots]
            if not handled:
                return
            await self._fire(conn, handled, resolved)
            ids = [row["id"] for row, _ in handled]
            await conn.execute(ADVANCE, ids, [slots[-1] for _, slots in handled])

    async def _fire(
        self,
        conn: asyncpg.Connection,
        handled: Sequence[Due],
        jobs: dict[tuple[str, str], ResolvedJob | None],
    ) -> None:
        requests: list[AppendRequest] = []
        lateness: list[float] = []  # cron slot → fire, per request
        for row, slots in handled:
            resolved = jobs[row["org"], row["job"]]
            if resolved is not None:
                for slot in cron.to_fire(slots, row["catch_up"], row["now"], self.tolerance):
                    requests.append(_request(resolved, row, slot))
                    lateness.append((row["now"] - slot).total_seconds())
        fired: list[float] = []
        for start in range(0, len(requests), APPEND_CHUNK):
            chunk = requests[start : start + APPEND_CHUNK]
            outcomes = await self.control.journal.append_many(chunk, conn)
            for late, outcome in zip(lateness[start:], outcomes, strict=False):
                # An IdempotencyConflict is a slot fired before (its key exists): nothing to do.
                if isinstance(outcome, ReactorError) and not isinstance(
                    outcome, IdempotencyConflict
                ):
                    raise outcome
                if isinstance(outcome, int):
                    fired.append(late)
        for late in fired:
            METRICS.scheduler_lateness.observe(max(late, 0.0))

    async def _resolve(self, row: asyncpg.Record) -> ResolvedJob | None:
        try:
            return await self.control.registry.resolve(row["org"], row["job"])
        except ReactorError as exc:  # e.g. the job's function has no live version
            log.warning("cron trigger %s: slots not fired: %s", row["id"], exc)
            return None


def _due(row: asyncpg.Record) -> list[datetime]:
    return cron.due_slots(row["schedule"], row["timezone"], row["fired_through"], row["now"])


def _request(resolved: ResolvedJob, row: asyncpg.Record, slot: datetime) -> AppendRequest:
    trigger = ev.TriggerInfo(kind="cron", source=row["id"], scheduled_for=slot)
    first = triggered_event(
        resolved,
        trigger=trigger,
        payload={"scheduled_for": slot.isoformat()},
        idempotency_key=cron.slot_key(row["id"], slot, row["timezone"]),
    )
    return AppendRequest(run_id=new_id("run"), events=[first], expected_position=0)
