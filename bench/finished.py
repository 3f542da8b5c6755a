"""Load many finished runs cheaply: a noop run's four journal events and its completed runs
row, generated in SQL with generate_series, one statement per table.

The journal_chain() trigger costs ~12 µs a row in PL/pgSQL (plus a previous-hash lookup),
too slow for millions of rows in a benchmark's budget. So the loader turns ordinary
triggers off for its own session (session_replication_role = replica; the bench connects
as a superuser) and computes what the trigger would have set, set-based: recorded_at,
tx_id, data, prev_hash and hash, the same chain domain/chain.py verifies. The rows are
indistinguishable from appended ones; nothing else in the schema is bypassed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg

from reactor_jobs.domain import events as ev

_ZERO = "'\\x" + "00" * 32 + "'::bytea"


def _events(org: str, job: str, function: str) -> list[ev.Event]:
    lease = datetime.now(UTC) + timedelta(seconds=30)
    return [
        ev.Triggered(
            org=org,
            job=job,
            function=function,
            function_version=1,
            trigger=ev.TriggerInfo(kind="manual"),
            max_attempts=1,
            max_concurrency=100_000,
            timeout_ms=60_000,
        ),
        ev.AttemptStarted(attempt=1, worker="bench-loader", lease_expires_at=lease),
        ev.StepCompleted(name="noop", attempt=1, output=None, duration_ms=0.01),
        ev.Completed(output=None),
    ]


def _journal_sql(events: list[ev.Event]) -> str:
    """$1 org, $2 run count, $3.. one payload per event; hashes chained per run."""

    def header(position: int, event: ev.Event) -> str:
        parts = [
            "g.run_id",
            f"'{position}'",
            "$1::text",
            f"'{ev.event_type(event)}'",
            f"'{ev.event_version(event)}'",
            "(extract(epoch FROM now()) * 1000000)::bigint::text",
        ]
        return "convert_to(" + " || E'\\n' || ".join(parts) + " || E'\\n', 'UTF8')"

    links = []
    prev = _ZERO
    for i, event in enumerate(events, start=1):
        links.append(
            f"CROSS JOIN LATERAL (SELECT sha256({prev} || {header(i, event)} || ${i + 2}::bytea)"
            f" AS h{i} OFFSET 0) AS l{i}"
        )
        prev = f"l{i}.h{i}"
    n = len(events)
    hashes = [f"l{i}.h{i}" for i in range(1, n + 1)]
    columns = {
        "position": f"ARRAY[{', '.join(str(i) for i in range(1, n + 1))}]",
        "type": "ARRAY[" + ", ".join(f"'{ev.event_type(e)}'" for e in events) + "]",
        "version": "ARRAY[" + ", ".join(f"{ev.event_version(e)}" for e in events) + "]::smallint[]",
        "payload": "ARRAY[" + ", ".join(f"${i + 2}::bytea" for i in range(1, n + 1)) + "]",
        "data": "ARRAY[" + ", ".join(f"d.d{i}" for i in range(1, n + 1)) + "]",
        "prev": f"ARRAY[{_ZERO}, {', '.join(hashes[:-1])}]",
        "hash": f"ARRAY[{', '.join(hashes)}]",
    }
    unnest = f"unnest({', '.join(columns.values())}) AS e({', '.join(columns)})"
    data = ", ".join(
        f"convert_from(${i + 2}::bytea, 'UTF8')::jsonb AS d{i}" for i in range(1, len(events) + 1)
    )
    return f"""
INSERT INTO _reactor_jobs.journal
       (run_id, position, org, type, version, payload, data, recorded_at, tx_id, prev_hash, hash)
SELECT g.run_id, e.position, $1, e.type, e.version, e.payload,
       e.data, now(), pg_current_xact_id(), e.prev, e.hash
  FROM (SELECT {data} OFFSET 0) AS d,
       (SELECT 'run_fin_' || lpad(i::text, 9, '0') AS run_id
          FROM generate_series(1, $2::int) AS i) AS g
  {" ".join(links)}
  CROSS JOIN LATERAL {unnest}
"""


_RUNS = """
INSERT INTO _reactor_jobs.runs
       (run_id, org, job, function_name, function_version, trigger_kind, status, attempt,
        max_attempts, timeout_ms, max_concurrency, created_at, started_at, finished_at,
        updated_at, last_position)
SELECT 'run_fin_' || lpad(i::text, 9, '0'), $1, $2, $3, 1, 'manual', 'completed', 1,
       1, 60000, 100000, t, t, t, t, 4
  FROM generate_series(1, $4::int) AS i,
       LATERAL (SELECT now() - ($4 - i) * interval '1 millisecond' AS t) AS at
"""


async def load_finished(
    conn: asyncpg.Connection, org: str, job: str, function: str, n: int
) -> dict[str, float]:
    """Insert n completed noop runs of `job` (4 journal rows each); seconds per phase."""
    events = _events(org, job, function)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("SET LOCAL enable_memoize = off")
        await conn.execute(_journal_sql(events), org, n, *[ev.encode(e) for e in events])
        await conn.execute(_RUNS, org, job, function, n)
    timings["insert"] = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE) _reactor_jobs.runs, _reactor_jobs.journal")
    timings["vacuum"] = time.perf_counter() - started
    return timings
