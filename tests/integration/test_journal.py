"""The journal against a real Postgres: append-only, hash chain, optimistic concurrency,
fencing, group commit, gap-free global reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import (
    ConcurrencyError,
    FenceError,
    IdempotencyConflict,
    InvalidEvent,
)
from reactor_jobs.domain.projection import RUN_COLUMNS
from reactor_jobs.engine import append_sql
from reactor_jobs.engine.journal import (
    READ_STREAM,
    READ_STREAMS,
    AppendRequest,
    Fence,
    Journal,
    export_line,
)
from reactor_jobs.projections.rebuild import rebuild

pytestmark = pytest.mark.integration


def triggered(job: str = "process-order", org: str = "acme") -> ev.Triggered:
    return ev.Triggered(
        org=org,
        job=job,
        function="process-order",
        function_version=1,
        trigger=ev.TriggerInfo(kind="manual"),
        payload={"orderId": "ord_123"},
    )


def triggered_with_key(key: str, job: str = "process-order") -> ev.Triggered:
    return msgspec.structs.replace(triggered(job), idempotency_key=key)


def started(attempt: int = 1, worker: str = "w1", seconds: int = 30) -> ev.AttemptStarted:
    lease = datetime.now(UTC) + timedelta(seconds=seconds)
    return ev.AttemptStarted(attempt=attempt, worker=worker, lease_expires_at=lease)


async def running_run(journal: Journal, run_id: str, seconds: int = 30) -> None:
    await journal.append(run_id, [triggered()], expected_position=0)
    await journal.append(run_id, [started(seconds=seconds)], expected_position=1)


async def test_append_then_read_stream_round_trips(pool: asyncpg.Pool, journal: Journal) -> None:
    step = ev.StepCompleted(name="validate", attempt=1, output={"id": "ord_123", "total": 12.5})
    assert await journal.append("run_a", [triggered()], expected_position=0) == 1
    assert await journal.append("run_a", [started(), step], expected_position=1) == 3
    recs = await journal.read_stream("run_a")
    assert [r.position for r in recs] == [1, 2, 3]
    assert [r.event for r in recs][2] == step
    assert recs[1].prev_hash == recs[0].hash and recs[2].prev_hash == recs[1].hash
    assert [r.position for r in await journal.read_stream("run_a", after=2)] == [3]
    assert recs[0].recorded_at <= recs[2].recorded_at
    assert (await journal.verify("run_a")).ok


async def test_data_column_is_queryable_jsonb(pool: asyncpg.Pool, journal: Journal) -> None:
    await journal.append("run_q", [triggered()], expected_position=0)
    order = await pool.fetchval(
        "SELECT data->'payload'->>'orderId' FROM _reactor_jobs.journal WHERE run_id = 'run_q'"
    )
    assert order == "ord_123"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE _reactor_jobs.journal SET type = 'Completed'",
        "DELETE FROM _reactor_jobs.journal",
        "TRUNCATE _reactor_jobs.journal",
    ],
)
async def test_journal_refuses_update_delete_truncate(
    pool: asyncpg.Pool, journal: Journal, statement: str
) -> None:
    await journal.append("run_a", [triggered()], expected_position=0)
    with pytest.raises(asyncpg.PostgresError, match="append-only") as info:
        await pool.execute(statement)
    assert info.value.sqlstate == "RJ001"
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == 1


@pytest.mark.parametrize(
    ("change", "bad_position"),
    [
        (
            "payload = convert_to(replace(convert_from(payload, 'UTF8'), 'ord_123', 'ord_999'),"
            " 'UTF8')",
            1,
        ),
        ("data = jsonb_set(data, '{payload,orderId}', '\"ord_999\"')", 1),
        ("recorded_at = recorded_at + interval '1 second'", 2),
        ("org = 'globex'", 3),
    ],
)
async def test_verify_finds_the_first_altered_event(
    pool: asyncpg.Pool, journal: Journal, change: str, bad_position: int
) -> None:
    await running_run(journal, "run_t")
    step = ev.StepCompleted(name="charge", attempt=1, output=1)
    await journal.append("run_t", [step, ev.Completed(output=1)], expected_position=2)
    async with pool.acquire() as conn:  # a superuser going around the append-only trigger
        await conn.execute("ALTER TABLE _reactor_jobs.journal DISABLE TRIGGER journal_append_only")
        await conn.execute(
            f"UPDATE _reactor_jobs.journal SET {change} "
            f"WHERE run_id = 'run_t' AND position = {bad_position}"
        )
        await conn.execute("ALTER TABLE _reactor_jobs.journal ENABLE TRIGGER journal_append_only")
    result = await journal.verify("run_t")
    assert not result.ok
    assert result.first_bad_position == bad_position
    assert result.events == 4
    results = [r async for r in journal.verify_all()]
    assert [(r.run_id, r.ok) for r in results] == [("run_t", False)]


async def test_verify_detects_a_deleted_event(pool: asyncpg.Pool, journal: Journal) -> None:
    await running_run(journal, "run_d")
    await journal.append("run_d", [ev.Completed()], expected_position=2)
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE _reactor_jobs.journal DISABLE TRIGGER journal_append_only")
        await conn.execute("DELETE FROM _reactor_jobs.journal WHERE run_id='run_d' AND position=2")
        await conn.execute("ALTER TABLE _reactor_jobs.journal ENABLE TRIGGER journal_append_only")
    result = await journal.verify("run_d")
    assert (result.ok, result.first_bad_position) == (False, 3)


async def test_stale_expected_position_names_both_numbers(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    await running_run(journal, "run_c")
    with pytest.raises(ConcurrencyError) as info:
        await journal.append("run_c", [ev.Completed()], expected_position=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert "expected stream at position 1, found position 2" in str(info.value)
    assert await journal.head("run_c") == 2


async def test_racing_writers_one_wins(pool: asyncpg.Pool, journal: Journal) -> None:
    await running_run(journal, "run_r")
    # separate journals: separate statements, so the race is decided by Postgres
    writers = [Journal(pool, max_in_flight=1) for _ in range(6)]
    outcomes = await asyncio.gather(
        *(
            w.append("run_r", [ev.StepCompleted(name=f"s{i}", attempt=1)], expected_position=2)
            for i, w in enumerate(writers)
        ),
        return_exceptions=True,
    )
    for w in writers:
        await w.close()
    assert sorted(o for o in outcomes if isinstance(o, int)) == [3]
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if not isinstance(o, int))
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == 3


async def test_second_trigger_of_same_run_id_is_a_conflict(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    await journal.append("run_x", [triggered()], expected_position=0)
    with pytest.raises(ConcurrencyError):
        await journal.append("run_x", [triggered()], expected_position=0)


@pytest.mark.parametrize(
    ("fence", "reason"),
    [
        (Fence(attempt=2, lease_owner="w1"), "attempt 1 is current, not 2"),
        (Fence(attempt=1, lease_owner="w2"), "lease of w2 is gone"),
        (Fence(attempt=1, status="sleeping"), "status is running, not sleeping"),
    ],
)
async def test_fenced_append_is_refused(journal: Journal, fence: Fence, reason: str) -> None:
    await running_run(journal, "run_f")
    with pytest.raises(FenceError, match=reason):
        await journal.append("run_f", [ev.Completed()], expected_position=2, fence=fence)
    assert await journal.head("run_f") == 2


async def test_expired_lease_fences_its_owner(pool: asyncpg.Pool, journal: Journal) -> None:
    await running_run(journal, "run_e", seconds=-1)
    with pytest.raises(FenceError, match="lease of w1 is gone"):
        await journal.append(
            "run_e", [ev.Completed()], expected_position=2, fence=Fence(attempt=1, lease_owner="w1")
        )


async def test_one_refused_request_does_not_fail_its_batch(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    for run_id in ("run_1", "run_2", "run_3"):
        await running_run(journal, run_id)
    owner = Fence(attempt=1, lease_owner="w1")
    outcomes = await journal.append_many(
        [
            AppendRequest(
                run_id="run_1", events=[ev.Completed()], expected_position=2, fence=owner
            ),
            AppendRequest(
                run_id="run_2",
                events=[ev.Completed()],
                expected_position=2,
                fence=Fence(attempt=1, lease_owner="intruder"),
            ),
            AppendRequest(run_id="run_3", events=[ev.Completed()], expected_position=1),
        ]
    )
    assert outcomes[0] == 3
    assert isinstance(outcomes[1], FenceError)
    assert isinstance(outcomes[2], ConcurrencyError)
    statuses = dict(await pool.fetch("SELECT run_id, status FROM _reactor_jobs.runs"))
    assert statuses == {"run_1": "completed", "run_2": "running", "run_3": "running"}


async def test_bad_appends_are_refused_before_writing(pool: asyncpg.Pool, journal: Journal) -> None:
    with pytest.raises(InvalidEvent, match="starts with Triggered"):
        await journal.append("run_b", [ev.Completed()], expected_position=0)
    with pytest.raises(InvalidEvent, match="NUL"):
        await journal.append(
            "run_b",
            [
                ev.Triggered(
                    org="acme",
                    job="j",
                    function="f",
                    function_version=1,
                    trigger=ev.TriggerInfo(kind="manual"),
                    payload="a\x00b",
                )
            ],
            expected_position=0,
        )
    with pytest.raises(InvalidEvent, match="nothing to append"):
        await journal.append("run_b", [], expected_position=3)
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == 0


async def test_a_gap_in_positions_is_refused_by_the_schema(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    await journal.append("run_g", [triggered()], expected_position=0)
    with pytest.raises(asyncpg.PostgresError, match="without position 2") as info:
        await pool.execute(
            "INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)"
            " VALUES ('run_g', 3, 'acme', 'Completed', 1, '{\"type\":\"Completed\"}')"
        )
    assert info.value.sqlstate == "RJ002"


async def test_concurrent_appends_share_commits(pool: asyncpg.Pool, journal: Journal) -> None:
    positions = await asyncio.gather(
        *(journal.append(f"run_{i}", [triggered()], expected_position=0) for i in range(64))
    )
    assert positions == [1] * 64
    transactions = await pool.fetchval("SELECT count(DISTINCT tx_id) FROM _reactor_jobs.journal")
    assert transactions < 64 / 4


async def test_read_all_waits_for_an_older_transaction(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    """A smaller global position committing later is not skipped by a tailing reader."""
    async with pool.acquire() as slow, pool.acquire() as fast:
        tx = slow.transaction()
        await tx.start()
        await journal.append_many(
            [AppendRequest(run_id="run_slow", events=[triggered()], expected_position=0)], slow
        )
        await journal.append_many(
            [AppendRequest(run_id="run_fast", events=[triggered()], expected_position=0)], fast
        )
        seen = await journal.read_all()
        assert seen == []  # run_fast's event sits behind run_slow's open transaction
        naive = await pool.fetch("SELECT global_position FROM _reactor_jobs.journal")
        assert [r[0] for r in naive] == [2]  # a reader by global position would pass 1 by
        await tx.commit()
    async with asyncio.timeout(30):  # the horizon is cluster-wide: wait out other databases
        while len(seen := await journal.read_all()) < 2:
            await asyncio.sleep(0.01)
    assert [r.run_id for r in seen] == ["run_slow", "run_fast"]
    assert await journal.read_all(after=seen[-1].global_position) == []
    assert [r.run_id for r in await journal.read_all(after=seen[0].global_position)] == ["run_fast"]


async def test_read_all_is_gap_free_under_concurrent_appenders(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    done = asyncio.Event()

    async def appender(n: int) -> None:
        async with pool.acquire() as conn:
            for i in range(15):
                async with conn.transaction():
                    await journal.append_many(
                        [
                            AppendRequest(
                                run_id=f"run_{n}_{i}", events=[triggered()], expected_position=0
                            )
                        ],
                        conn,
                    )
                    await asyncio.sleep(0.001 * ((n * 7 + i) % 5))

    async def reader() -> list[int]:
        # The horizon is cluster-wide: an open transaction in any database holds it back,
        # so after the appenders finish, keep reading until everything has come through.
        got: list[int] = []
        after = 0
        async with asyncio.timeout(30):
            while not (done.is_set() and len(got) >= 90):
                batch = await journal.read_all(after=after, limit=7)
                got += [r.global_position for r in batch]
                after = batch[-1].global_position if batch else after
                await asyncio.sleep(0.001)
        assert await journal.read_all(after=after) == []
        return got

    tail = asyncio.create_task(reader())
    await asyncio.gather(*(appender(n) for n in range(6)))
    done.set()
    got = await tail
    stored = [r[0] for r in await pool.fetch("SELECT global_position FROM _reactor_jobs.journal")]
    assert len(got) == len(set(got)) == 90
    assert sorted(got) == sorted(stored)


async def test_export_line_carries_the_hashed_bytes(pool: asyncpg.Pool, journal: Journal) -> None:
    await journal.append("run_x", [triggered()], expected_position=0)
    (rec,) = await journal.read_stream("run_x")
    line = export_line(rec)
    assert b'"data":' + rec.payload in line
    assert rec.hash.hex().encode() in line


async def test_stream_reads_use_the_stream_index(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask for intent
        one = await conn.fetch(f"EXPLAIN {READ_STREAM}", "x", 0)
        many = await conn.fetch(f"EXPLAIN {READ_STREAMS}", ["x", "y"])
    assert "journal_stream_position" in "\n".join(r[0] for r in one)
    assert "journal_stream_position" in "\n".join(r[0] for r in many)


@pytest.mark.parametrize("name", ["journal_append_steps", "journal_append"])
def test_the_append_statements_write_every_run_column_in_order(name: str) -> None:
    """The UPDATE's column list is written out in write.sql; it must be RUN_COLUMNS."""
    text = append_sql.WRITE[name]
    listed = text[text.index("SET (") + 5 : text.index(") =")]
    assert [c.strip() for c in listed.split(",")] == [c for c in RUN_COLUMNS if c != "run_id"]
    assert f"pg_notify('{append_sql.WORK_CHANNEL}'" in text


async def test_a_taken_idempotency_key_refuses_a_second_run(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    first = triggered_with_key("k1")
    await journal.append("run_k1", [first], expected_position=0)
    with pytest.raises(IdempotencyConflict) as info:
        await journal.append("run_k2", [triggered_with_key("k1")], expected_position=0)
    assert info.value.code == "idempotency_conflict" and info.value.holder == "run_k1"
    assert "run_k1" in info.value.message and "'k1'" in info.value.message
    assert await journal.head("run_k2") == 0
    # The same key under another job, or another key, is free.
    await journal.append("run_k3", [triggered_with_key("k1", job="other")], expected_position=0)
    await journal.append("run_k4", [triggered_with_key("k2")], expected_position=0)
    keys = await pool.fetch(
        "SELECT job, key, run_id FROM _reactor_jobs.idempotency_keys ORDER BY run_id"
    )
    assert [tuple(k) for k in keys] == [
        ("process-order", "k1", "run_k1"),
        ("other", "k1", "run_k3"),
        ("process-order", "k2", "run_k4"),
    ]
    # Re-sending the first run's own trigger is a stream conflict, and takes no key.
    with pytest.raises(ConcurrencyError):
        await journal.append("run_k1", [triggered_with_key("k9")], expected_position=0)
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.idempotency_keys") == 3


async def test_one_key_in_one_batch_starts_one_run(journal: Journal) -> None:
    outcomes = await journal.append_many(
        [
            AppendRequest(
                run_id=f"run_b{n}", events=[triggered_with_key("kb")], expected_position=0
            )
            for n in range(3)
        ]
    )
    assert outcomes[0] == 1
    assert all(isinstance(o, IdempotencyConflict) and o.holder == "run_b0" for o in outcomes[1:])


async def test_two_connections_racing_for_one_key_start_one_run(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    """The second transaction waits on the first's uncommitted key, then is refused."""
    async with pool.acquire() as a, pool.acquire() as b:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        first = await journal.append_many(
            [
                AppendRequest(
                    run_id="run_ra", events=[triggered_with_key("kr")], expected_position=0
                )
            ],
            a,
        )
        assert first == [1]
        second = asyncio.create_task(
            journal.append_many(
                [
                    AppendRequest(
                        run_id="run_rb", events=[triggered_with_key("kr")], expected_position=0
                    )
                ],
                b,
            )
        )
        await asyncio.sleep(0.3)
        assert not second.done()  # blocked on run_ra's key until a commits
        await ta.commit()
        (outcome,) = await asyncio.wait_for(second, 30)
        await tb.commit()
    assert isinstance(outcome, IdempotencyConflict) and outcome.holder == "run_ra"
    assert await journal.head("run_rb") == 0
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.runs") == 1


async def test_a_key_outlives_its_projection_row_and_a_rebuild(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    """Exactly-once does not rest on the runs projection: with the run's row gone (as in
    the middle of a rebuild) the key still refuses a second run, and after the rebuild the
    first run is back with its key."""
    await journal.append("run_p1", [triggered_with_key("kp")], expected_position=0)
    await pool.execute("DELETE FROM _reactor_jobs.runs")
    with pytest.raises(IdempotencyConflict):
        await journal.append("run_p2", [triggered_with_key("kp")], expected_position=0)
    await rebuild(pool)
    rows = await pool.fetch("SELECT run_id, idempotency_key FROM _reactor_jobs.runs")
    assert [tuple(r) for r in rows] == [("run_p1", "kp")]
    with pytest.raises(IdempotencyConflict):
        await journal.append("run_p3", [triggered_with_key("kp")], expected_position=0)
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == 1


async def test_a_failing_projection_write_rolls_back_the_events(
    pool: asyncpg.Pool, journal: Journal
) -> None:
    """Events and their projection rows commit together or not at all."""
    for run_id in ("run_1", "run_2"):
        await running_run(journal, run_id)
    failed = ev.Failed(attempt=1, error=ev.ErrorInfo(type="E", message="m"))
    await journal.append(
        "run_1", [failed, ev.DeadLettered(dlq_id="dlq_same", attempts=1)], expected_position=2
    )
    journal_rows = await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal")
    before = dict(await pool.fetchrow("SELECT * FROM _reactor_jobs.runs WHERE run_id = 'run_2'"))
    with pytest.raises(asyncpg.UniqueViolationError):  # the dlq row's key is taken
        await journal.append(
            "run_2", [failed, ev.DeadLettered(dlq_id="dlq_same", attempts=1)], expected_position=2
        )
    assert await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == journal_rows
    after = dict(await pool.fetchrow("SELECT * FROM _reactor_jobs.runs WHERE run_id = 'run_2'"))
    assert after == before
    assert await journal.head("run_2") == 2
