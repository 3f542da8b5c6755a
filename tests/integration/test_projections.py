"""Projections: what append writes inline equals what rebuild derives from the journal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.journal import Journal
from reactor_jobs.projections.rebuild import rebuild
from tests.histories import run_history

pytestmark = pytest.mark.integration
TABLES = {"runs": "run_id", "dlq": "dlq_id", "events": "event_id"}


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [
            dict(r) for r in await pool.fetch(f"SELECT * FROM _reactor_jobs.{table} ORDER BY {key}")
        ]
        for table, key in TABLES.items()
    }


async def append_histories(journal: Journal, histories: dict[str, list[list[ev.Event]]]) -> None:
    """Interleave the runs' appends so the journal mixes streams, as a busy engine does.

    The emitting run (the first) goes first: fan-out is journaled after its Emitted event.
    """
    first, *_ = histories
    heads = {first: 0}
    for events in histories[first]:
        heads[first] = await journal.append(first, events, expected_position=heads[first])
    cursors = {run_id: 0 for run_id in histories if run_id != first}
    heads.update(dict.fromkeys(cursors, 0))
    while cursors:
        for run_id in list(cursors):
            events = histories[run_id][cursors[run_id]]
            heads[run_id] = await journal.append(run_id, events, expected_position=heads[run_id])
            cursors[run_id] += 1
            if cursors[run_id] == len(histories[run_id]):
                del cursors[run_id]


@st.composite
def histories(draw: Any, prefix: str) -> dict[str, list[list[ev.Event]]]:
    emitter = draw(run_history(f"{prefix}_0"))
    event_ids = [e.event_id for a in emitter for e in a if isinstance(e, ev.Emitted)]
    runs = {f"{prefix}_0": emitter}
    for n in range(1, draw(st.integers(1, 4))):
        runs[f"{prefix}_{n}"] = draw(run_history(f"{prefix}_{n}", event_ids))
    return runs


async def test_rebuild_equals_live_for_random_histories(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    counter = iter(range(10_000))
    generated: list[dict[str, list[list[ev.Event]]]] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data: Any) -> None:
        generated.append(data.draw(histories(f"run{next(counter)}")))

    collect()
    for runs in generated:
        await append_histories(journal, runs)
    live = await snapshot(pool)
    assert live["runs"] and live["dlq"] and live["events"]  # the histories covered every table
    report = await rebuild(pool)
    assert report.runs == len(live["runs"])
    rebuilt = await snapshot(pool)
    for table in TABLES:  # name the first differing row, not just "not equal"
        for before, after in zip(live[table], rebuilt[table], strict=True):
            assert after == before, {
                k: (before[k], after[k]) for k in before if before[k] != after[k]
            }
    for row in live["runs"][:20]:  # and the runs projection agrees with a replay
        state = fold(await journal.read_stream(row["run_id"]))
        assert (state.status, state.attempt, state.position, state.started_at) == (
            row["status"],
            row["attempt"],
            row["last_position"],
            row["started_at"],
        )
        assert _jsonb(row["last_error"]) == msgspec.to_builtins(state.last_error)


def _jsonb(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


async def test_started_at_is_the_first_start_and_success_clears_the_error(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    """A run that failed once and then completed: started_at is when its first attempt
    started (not its last), last_error is gone; the projection and the fold agree."""
    t = ev.Triggered(
        org="acme", job="j", function="f", function_version=1, trigger=ev.TriggerInfo(kind="manual")
    )
    lease = datetime(2030, 1, 1, tzinfo=UTC)
    error = ev.ErrorInfo(type="RuntimeError", message="first try fails")
    appends: list[list[ev.Event]] = [
        [t],
        [ev.AttemptStarted(attempt=1, worker="w", lease_expires_at=lease)],
        [ev.Failed(attempt=1, error=error), ev.RetryScheduled(attempt=2, delay_ms=0)],
        [ev.AttemptStarted(attempt=2, worker="w", lease_expires_at=lease)],
    ]
    head = 0
    for events in appends:
        head = await journal.append("run_1", events, expected_position=head)
    retrying = await pool.fetchrow("SELECT * FROM _reactor_jobs.runs WHERE run_id = 'run_1'")
    assert _jsonb(retrying["last_error"])["message"] == "first try fails"  # while it retries
    await journal.append("run_1", [ev.Completed(output=1)], expected_position=head)
    records = await journal.read_stream("run_1")
    first_start = records[1].recorded_at
    assert first_start < records[3].recorded_at
    for row in (
        await pool.fetchrow("SELECT * FROM _reactor_jobs.runs WHERE run_id = 'run_1'"),
        await _rebuilt_row(pool, "run_1"),
    ):
        assert (row["status"], row["started_at"], row["last_error"]) == (
            "completed",
            first_start,
            None,
        )
    state = fold(records)
    assert (state.status, state.started_at, state.last_error) == ("completed", first_start, None)


async def _rebuilt_row(pool: asyncpg.Pool, run_id: str) -> Any:
    await rebuild(pool)
    return await pool.fetchrow("SELECT * FROM _reactor_jobs.runs WHERE run_id = $1", run_id)


async def test_rebuild_restores_dropped_rows(pool: asyncpg.Pool, journal: Journal) -> None:
    t = ev.Triggered(
        org="acme", job="j", function="f", function_version=1, trigger=ev.TriggerInfo(kind="manual")
    )
    await journal.append("run_1", [t], expected_position=0)
    await journal.append("run_1", [ev.Cancelled(reason="test")], expected_position=1)
    live = await snapshot(pool)
    await pool.execute("DELETE FROM _reactor_jobs.runs")
    assert (await snapshot(pool))["runs"] == []
    await rebuild(pool)
    assert await snapshot(pool) == live
    assert live["runs"][0]["status"] == "cancelled"


async def test_rebuild_while_workers_run_disturbs_no_run(engine: Any) -> None:
    """Rebuilds racing a live engine (trigger appends, claims, step appends) neither fail nor
    make a writer fail (a deadlock would abort one side), and leave the live projections."""
    from tests.engine_fixtures import ORG

    await engine.job("busy", max_attempts=1, max_concurrency=10)
    engine.start_worker(concurrency=8)
    engine.start_worker(concurrency=8)
    run_ids: list[str] = []

    async def trigger() -> None:  # bulk: no admission check, the claim still limits
        for _ in range(30):
            run_ids.extend(await engine.control.trigger_many(ORG, "busy", [{"mode": "noop"}] * 4))

    async def rebuilds() -> list[int]:
        return [(await rebuild(engine.pool)).events for _ in range(6)]

    _, counts = await asyncio.gather(trigger(), rebuilds())
    assert counts == sorted(counts) and counts[-1] > 0  # each saw the journal as it grew
    statuses = [(await engine.wait(run_id)).status for run_id in run_ids]
    assert statuses == ["completed"] * len(run_ids)
    live = await snapshot(engine.pool)
    await rebuild(engine.pool)
    assert await snapshot(engine.pool) == live
