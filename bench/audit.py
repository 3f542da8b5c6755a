"""Audit benchmarks: replay-check throughput through a real Python bundle (bench/bundles/
ledger, in the session's function host, as `runs replay` does) over runs a worker recorded,
verify-all throughput over the live journal, and one 10,000-event run replay-checked,
printed beside decoding and folding the same stream."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.harness import BUNDLES, ORG, Bench, Row, Session, bench, met, ms
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import RecordedEvent, to_recorded
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.hosts import Host
from reactor_jobs.engine.journal import AppendRequest
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.records import FunctionVersion
from reactor_jobs.projections.auditor import Auditor
from reactor_jobs.projections.replay_check import replay_check

FUNCTION = "ledger"
STATE_EVERY, EMIT_EVERY = 10, 25  # as in bench/bundles/ledger
RUNS, ITEMS = 200, 30  # the throughput set: 200 runs of 37 events
LONG_EVENTS, LONG_GOAL_S = 10_000, 0.200
CHUNK = 500
_ROWS = """
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload
  FROM _reactor_jobs.journal WHERE run_id = $1 ORDER BY position
"""


async def timed(repeat: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    """Seconds per call of `work`, `repeat` times."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return times


def recording(n: int) -> tuple[int, list[ev.Event]]:
    """The events after Triggered that a worker records for one ledger run, `n` in all with
    Triggered: as many items as fit, then heartbeats (which replay ignores) to make up n.
    Returns the item count (the run's payload) and the events."""
    lease = datetime.now(UTC) + timedelta(hours=1)
    body: list[ev.Event] = []
    items = total = 0
    while True:
        after = total + items * 3
        more: list[ev.Event] = [
            ev.StepCompleted(name=f"item-{items}", attempt=1,
                             output={"i": items, "amount": items * 3}),
        ]  # fmt: skip
        if items % STATE_EVERY == STATE_EVERY - 1:
            more.append(ev.StateSet(key="total", value=after))
        if items % EMIT_EVERY == EMIT_EVERY - 1:
            payload = {"upto": items, "total": after}
            more.append(ev.Emitted(event_id=new_id("evt"), topic="ledger.batch", payload=payload))
        if 3 + len(body) + len(more) > n:  # Triggered, AttemptStarted, …, Completed
            break
        body += more
        items, total = items + 1, after
    beat = ev.LeaseExtended(attempt=1, worker="bench", lease_expires_at=lease)
    body += [beat] * (n - 3 - len(body))
    started = ev.AttemptStarted(attempt=1, worker="bench", lease_expires_at=lease)
    return items, [started, *body, ev.Completed(output={"items": items, "total": total})]


async def long_run(s: Session, n: int) -> str:
    """One completed ledger run of exactly `n` events, appended through the journal."""
    await s.job("ledger-long", FUNCTION)
    items, events = recording(n)
    triggered = ev.Triggered(
        org=ORG, job="ledger-long", function=FUNCTION, function_version=1,
        trigger=ev.TriggerInfo(kind="manual"), payload={"items": items},
    )  # fmt: skip
    run_id, head = new_id("run"), 0
    events = [triggered, *events]
    async with s.pool.acquire() as conn:
        for i in range(0, n, CHUNK):
            request = AppendRequest(run_id=run_id, events=events[i : i + CHUNK],
                                    expected_position=head)  # fmt: skip
            (outcome,) = await s.journal.append_many([request], conn)
            assert isinstance(outcome, int), outcome
            head = outcome
    assert head == n
    return run_id


async def recorded_runs(b: Bench, s: Session) -> list[str]:
    """RUNS ledger runs of ITEMS items each, executed and recorded by a real worker."""
    await s.registry.create_function(ORG, FUNCTION)
    version = await s.registry.deploy(ORG, FUNCTION, pack_dir(BUNDLES / FUNCTION))
    await s.registry.promote(ORG, FUNCTION, version)
    job = await s.job("ledger", FUNCTION)
    ids = await s.trigger_bulk(job, [{"items": ITEMS}] * RUNS)
    async with s.worker(concurrency=32, poll_ms=100):
        await s.wait_finished(job, timeout=300)
    await b.span(ids)  # raises unless every run completed
    return ids


async def throughput_rows(
    auditor: Auditor, host: Host, fv: FunctionVersion, s: Session, ids: list[str]
) -> list[Row]:
    records = [await s.journal.read_stream(run_id) for run_id in ids]
    events = sum(len(r) for r in records)

    async def from_postgres() -> None:
        for run_id in ids:
            report = await auditor.replay(ORG, run_id)
            assert report.ok, report

    async def in_memory() -> None:
        for stream in records:
            report = await replay_check(stream, host, fv, version=1)
            assert report.ok, report

    read_and_check = min(await timed(3, from_postgres))
    check_only = min(await timed(3, in_memory))
    label = f"{len(ids)} worker-recorded ledger runs, {events:,} events"
    return [
        (f"replay check: {label}, read + check",
         f"{events / read_and_check:,.0f} events/s ({len(ids) / read_and_check:,.0f} runs/s)",
         "", ""),
        (f"replay check: {label}, check only (journal read)",
         f"{events / check_only:,.0f} events/s", "", ""),
    ]  # fmt: skip


async def long_run_rows(auditor: Auditor, host: Host, fv: FunctionVersion, s: Session) -> list[Row]:
    run_id = await long_run(s, LONG_EVENTS)
    rows = await s.pool.fetch(_ROWS, run_id)
    stream: list[RecordedEvent] = to_recorded(rows)

    async def decode_fold() -> None:
        fold(to_recorded(rows))

    async def read_and_check() -> None:
        report = await auditor.replay(ORG, run_id)
        assert report.ok and report.events == LONG_EVENTS, report

    async def check_only() -> None:
        assert (await replay_check(stream, host, fv, version=1)).ok

    full = await timed(7, read_and_check)
    only = min(await timed(7, check_only))
    plain = min(await timed(7, decode_fold))
    n = f"{LONG_EVENTS:,}"
    return [
        (f"replay check: one {n}-event run, read + check",
         f"{ms(statistics.median(full))} median, {ms(min(full))} best",
         f"< {LONG_GOAL_S * 1000:.0f} ms", met(statistics.median(full) < LONG_GOAL_S)),
        ("replay check: the same run, check only (journal read)",
         f"{ms(only)} = {LONG_EVENTS / only:,.0f} events/s", "", ""),
        (f"beside it: decode + fold of its {n} raw journal rows",
         f"{ms(plain)} = {LONG_EVENTS / plain:,.0f} events/s", "", ""),
    ]  # fmt: skip


async def verify_rows(s: Session) -> list[Row]:
    counted: dict[str, int] = {}

    async def verify_all() -> None:
        runs = events = 0
        async for result in s.journal.verify_all():
            assert result.ok, result
            runs, events = runs + 1, events + result.events
        counted.update(runs=runs, events=events)

    best = min(await timed(3, verify_all))
    events = counted["events"]
    return [
        (f"verify --all: every hash chain, {events:,} events of {counted['runs']:,} runs",
         f"{events / best:,.0f} events/s ({ms(best)})", "", ""),
    ]  # fmt: skip


async def audit_figures(pool: asyncpg.Pool) -> list[Row]:
    async with bench(pool) as b, b.session() as s:
        ids = await recorded_runs(b, s)
        auditor = Auditor(s.journal, s.registry, s.hosts)
        fv = await s.registry.get_version(ORG, FUNCTION, 1)
        host = await s.hosts.host(ORG, fv.runtime)  # the one the worker used, and the auditor
        rows = await throughput_rows(auditor, host, fv, s, ids)
        rows += await long_run_rows(auditor, host, fv, s)
        rows += await verify_rows(s)
    return rows
