"""Resuming a long run (issue 15: "a 100k-event run resumes in <= 50 ms"): what each part of
a resume costs today, measured on one run of N journal events.

The run: Triggered, AttemptStarted, N-4 StepCompleted, Failed, RetryScheduled (due at once),
appended through the real append path (hash chain, projections). Then, with no worker:
the claim (claim_due_runs: lock, claim, AttemptStarted, read the whole stream and decode it),
the fold, and the `invoke` message for the host (every recorded decision) built and
encoded. Finally end to end: a second such run, due, and a Worker started (hosts warm, the
resumer bundle, whose body replays the steps): worker start -> the body's first line
(includes the worker's start-up), and -> the attempt's end (all steps replayed in the host).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from bench.harness import ORG, Row, Session, attempt_ends, bench, met, ms
from bench.journal import raw_insert_rate
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.attempt import invocation
from reactor_jobs.engine.claim import claim_due_runs
from reactor_jobs.engine.journal import AppendRequest
from reactor_jobs.projections.queries import get_run

JOB = "resume-long"
CHUNK = 2_000


def _triggered(steps: int) -> ev.Triggered:
    return ev.Triggered(
        org=ORG,
        job=JOB,
        function="resumer",
        payload={"steps": steps},
        function_version=1,
        trigger=ev.TriggerInfo(kind="manual"),
        max_attempts=5,
        max_concurrency=100_000,
        timeout_ms=60_000,
    )


async def _long_run(s: Session, n: int, *, due: bool) -> tuple[str, int]:
    """A run of n events ending in a failed first attempt and, when `due`, its retry due at
    once. Returns its id and head."""
    run_id = new_id("run")
    lease = datetime.now(UTC) + timedelta(hours=1)
    events: list[ev.Event] = [
        ev.AttemptStarted(attempt=1, worker="bench-loader", lease_expires_at=lease)
    ]
    events += [
        ev.StepCompleted(name=f"s{i}", attempt=1, output=None, duration_ms=0.01)
        for i in range(n - 4)
    ]
    events.append(ev.Failed(attempt=1, error=ev.ErrorInfo(type="Bench", message="resume")))
    head = await s.journal.append(run_id, [_triggered(n - 4)], expected_position=0)
    async with s.pool.acquire() as conn:
        for i in range(0, len(events), CHUNK):
            chunk = events[i : i + CHUNK]
            (head_or_error,) = await s.journal.append_many(
                [AppendRequest(run_id=run_id, events=chunk, expected_position=head)], conn
            )
            assert isinstance(head_or_error, int), head_or_error
            head = head_or_error
    if due:
        head = await s.journal.append(run_id, [_retry()], expected_position=head)
    return run_id, head


def _retry() -> ev.RetryScheduled:
    return ev.RetryScheduled(attempt=2, delay_ms=0)


async def resume_figures(pool: asyncpg.Pool, n: int, seconds: float) -> list[Row]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    reference = "reference: raw single-row INSERT commits, 1 conn"
    rows: list[Row] = [(reference, f"{raw1:,.0f} /s", "", "")]
    async with bench(pool) as b, b.session() as s:
        await s.job(JOB, "resumer")
        run_id, _ = await _long_run(s, n, due=True)
        fv = await s.registry.get_version(ORG, "resumer", 1)
        async with s.pool.acquire() as conn:
            started = time.perf_counter()
            (claimed,) = await claim_due_runs(
                conn, s.journal, limit=1, worker="bench-resume", lease=timedelta(minutes=5)
            )
            claim_s = time.perf_counter() - started
        started = time.perf_counter()
        state = fold(claimed.records)
        fold_s = time.perf_counter() - started
        started = time.perf_counter()
        message = msgspec.json.encode(invocation(state, fv, env={}))
        invoke_s = time.perf_counter() - started
        assert state.position == n + 1 and len(claimed.records) == n + 1

        # End to end: the run due before a worker (hosts warm) starts; the worker's first
        # claim takes it.
        run_id, _ = await _long_run(s, n, due=True)
        await s.warm("resumer")
        sent = time.perf_counter()
        async with s.worker(concurrency=4, poll_ms=1000) as worker:
            ends = attempt_ends(worker)
            await ends.wait_for(run_id, timeout=120)
            ended_s = time.perf_counter() - sent
        info = await get_run(s.control.pool, ORG, run_id)
        if info.status != "completed":
            raise RuntimeError(f"the resumed run ended {info.status}: {info.last_error}")
        body_s = float((await s.outputs([run_id]))[run_id]) - sent
    return [
        *rows,
        (
            f"R. resume a {n:,}-event run: claim (lock, claim, append, read + decode the stream)",
            ms(claim_s),
            "",
            "",
        ),
        (f"R. fold the {n + 1:,} events", ms(fold_s), "", ""),
        (
            "R. build + encode the host's invoke message (every recorded decision)",
            f"{ms(invoke_s)}, {len(message) / 1e6:.1f} MB",
            "",
            "",
        ),
        (
            "R. end to end through hosts: worker starts -> body starts / attempt ends",
            f"{ms(body_s)} / {ms(ended_s)}",
            "<= 50 ms",
            met(body_s <= 0.050),
        ),
    ]


def describe(n: int) -> list[str]:
    return [
        f"Resume. One run of {n:,} events (Triggered, AttemptStarted, {n - 4:,} StepCompleted,"
        " Failed, RetryScheduled due at once), appended through Journal.append_many; the resumer"
        " bundle as its function (returns perf_counter at its first line, then replays every"
        " step).",
    ]
