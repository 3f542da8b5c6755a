"""Journal benchmarks: replay (decode + fold), stream rebuild, append vs raw commits."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import to_recorded
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.journal import Journal

Figure = tuple[str, str, str]  # name, measured, goal


def _triggered(org: str = "bench") -> ev.Triggered:
    return ev.Triggered(
        org=org,
        job="bench",
        function="bench",
        function_version=1,
        trigger=ev.TriggerInfo(kind="manual"),
        payload={"n": 1},
    )


def _history(n: int) -> list[ev.Event]:
    """A long run: attempts of steps, state writes, emits, sleeps."""
    out: list[ev.Event] = []
    lease = datetime.now(UTC) + timedelta(minutes=5)
    attempt = 0
    while len(out) < n - 1:
        if len(out) % 100 == 0:
            attempt += 1
            out.append(ev.AttemptStarted(attempt=attempt, worker="w", lease_expires_at=lease))
        i = len(out)
        kind = i % 4
        if kind == 0:
            out.append(ev.StateSet(key=f"k{i % 50}", value={"i": i, "ok": True}))
        elif kind == 1:
            out.append(ev.Emitted(event_id=f"evt_{i}", topic="bench.t", payload={"i": i}))
        else:
            out.append(
                ev.StepCompleted(
                    name=f"step-{i}",
                    attempt=attempt,
                    output={"i": i, "total": i * 1.5, "tag": "abc"},
                )
            )
    return out[: n - 1]


async def _timed_rate(seconds: float, writers: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Operations per second: `writers` loops each calling one(writer) until time is up."""
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    async def loop(w: int) -> None:
        while time.perf_counter() < deadline:
            await one(w)
            counts[w] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def raw_insert_rate(pool: asyncpg.Pool, writers: int, seconds: float) -> float:
    """The reference: single-row INSERT transactions, one per connection at a time."""
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY,"
        " run_id text, payload bytea)"
    )
    conns = [await pool.acquire() for _ in range(writers)]
    payload = ev.encode(ev.StepCompleted(name="s", attempt=1, output={"i": 1}))
    try:

        async def one(w: int) -> None:
            await conns[w].execute(
                "INSERT INTO bench_raw (run_id, payload) VALUES ($1, $2)", f"raw_{w}", payload
            )

        return await _timed_rate(seconds, writers, one)
    finally:
        for conn in conns:
            await pool.release(conn)


async def append_rate(pool: asyncpg.Pool, writers: int, seconds: float) -> tuple[float, float]:
    """Single-event appends per second, each writer on its own run; and commits per event."""
    journal = Journal(pool)
    tag = f"{writers}_{time.monotonic_ns()}"
    heads = [
        await journal.append(f"run_app_{tag}_{w}", [_triggered()], expected_position=0)
        for w in range(writers)
    ]
    before = await _commits(pool)

    async def one(w: int) -> None:
        step = ev.StepCompleted(name=f"s{heads[w]}", attempt=0, output={"i": heads[w]})
        heads[w] = await journal.append(f"run_app_{tag}_{w}", [step], expected_position=heads[w])

    rate = await _timed_rate(seconds, writers, one)
    await journal.close()
    events = sum(heads) - writers
    return rate, (await _commits(pool) - before) / max(events, 1)


async def _commits(pool: asyncpg.Pool) -> int:
    await pool.execute("SELECT pg_stat_force_next_flush()")
    value = await pool.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return int(value)


async def replay_figures(pool: asyncpg.Pool, n: int = 10_000) -> list[Figure]:
    journal = Journal(pool, max_batch=1)
    await journal.append("run_long", [_triggered()], expected_position=0)
    history = _history(n)
    async with pool.acquire() as conn:  # bulk-load the long stream through the real append
        head = 1
        for i in range(0, len(history), 500):
            chunk = history[i : i + 500]
            from reactor_jobs.engine.journal import AppendRequest

            (head_or_error,) = await journal.append_many(
                [AppendRequest(run_id="run_long", events=chunk, expected_position=head)], conn
            )
            assert isinstance(head_or_error, int), head_or_error
            head = head_or_error
    rows = await pool.fetch(
        "SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash,"
        " hash, payload FROM _reactor_jobs.journal WHERE run_id = 'run_long' ORDER BY position"
    )
    assert len(rows) == n
    decode_fold = []
    for _ in range(7):
        started = time.perf_counter()
        fold(to_recorded(rows))
        decode_fold.append(time.perf_counter() - started)
    from_db = []
    for _ in range(7):
        started = time.perf_counter()
        state = fold(await journal.read_stream("run_long"))
        from_db.append(time.perf_counter() - started)
    assert state.position == n
    await journal.close()
    best = min(decode_fold)
    return [
        (
            f"replay: decode + fold, {n:,}-event stream from raw journal rows",
            f"{n / best:,.0f} events/s ({best * 1000:.1f} ms)",
            ">= 500,000 events/s",
        ),
        (
            f"replay: read_stream + fold from Postgres, {n:,} events",
            f"{statistics.median(from_db) * 1000:.1f} ms median, {min(from_db) * 1000:.1f} ms best",
            "<= 50 ms",
        ),
    ]


async def append_figures(pool: asyncpg.Pool, seconds: float = 3.0) -> list[Figure]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    raw16 = await raw_insert_rate(pool, 16, seconds)
    app1, commits1 = await append_rate(pool, 1, seconds)
    app16, commits16 = await append_rate(pool, 16, seconds)
    return [
        ("reference: raw single-row INSERT commits, 1 connection", f"{raw1:,.0f} /s", ""),
        ("reference: raw single-row INSERT commits, 16 connections", f"{raw16:,.0f} /s", ""),
        (
            "append: 1 writer, single-event appends",
            f"{app1:,.0f} events/s = {app1 / raw1:.2f}x raw(1); {commits1:.2f} commits/event",
            ">= 0.8x raw(1)",
        ),
        (
            "append: 16 concurrent runs, group commit",
            f"{app16:,.0f} events/s = {app16 / raw1:.2f}x raw(1), {app16 / raw16:.2f}x raw(16);"
            f" {commits16:.2f} commits/event",
            ">= 2x raw(1)",
        ),
    ]
