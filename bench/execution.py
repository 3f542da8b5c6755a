"""Execution benchmarks: runs through a real Worker in this process (job code in its
function hosts), against raw commits.

Every figure runs in its own Session (its own pool, closed at the end, so the commit
counts of pg_stat_database are complete). Times of runs come from the journal's
recorded_at (the database clock) unless a figure says otherwise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from bench.finished import load_finished
from bench.harness import (
    JOB_MAX_CONCURRENCY,
    ORG,
    TRIGGER_CHUNK,
    Bench,
    Row,
    attempt_ends,
    bench,
    met,
    ms,
    percentile,
)
from bench.journal import raw_insert_rate
from bench.machine import Meter, Usage

_LATENESS = """
SELECT extract(epoch FROM a.recorded_at
                          - coalesce((s.data->>'wake_at')::timestamptz,
                                     s.recorded_at + (s.data->>'delay_ms')::bigint
                                                     * interval '1 millisecond')) AS late
  FROM _reactor_jobs.journal AS s
  JOIN LATERAL (SELECT recorded_at FROM _reactor_jobs.journal AS a
                 WHERE a.run_id = s.run_id AND a.position > s.position
                   AND a.type = 'StepCompleted'
                 ORDER BY a.position LIMIT 1) AS a ON true
 WHERE s.run_id = ANY($1::text[]) AND s.type = 'SleepScheduled'
"""
_START_GAPS = """
SELECT extract(epoch FROM a.recorded_at - t.recorded_at) AS gap
  FROM _reactor_jobs.journal AS t
  JOIN _reactor_jobs.journal AS a ON a.run_id = t.run_id AND a.type = 'AttemptStarted'
 WHERE t.run_id = ANY($1::text[]) AND t.type = 'Triggered'
"""


@dataclass
class Config:
    runs: int = 20_000
    concurrency: int = 256
    step_runs: int = 2_000
    alone_runs: int = 40
    latency_runs: int = 200
    sleep_runs: int = 100
    finished: int = 200_000

    def describe(self) -> list[str]:
        c = self.concurrency
        return [
            "Execution settings. One Worker per figure, in the bench process, on its own asyncpg"
            " pool (max 24) and HostPool (HostSettings() defaults: job code in a python host"
            " per org);",
            "  the host started and the bundle loaded before the worker starts (figures 1, 2, 5);"
            " Journal defaults (group commit max_batch 512, 2 in flight);",
            f"  lease 30 s; poll 1000 ms (the default); jobs: max_concurrency"
            f" {JOB_MAX_CONCURRENCY:,} (server cap raised from the spec's 10), max_attempts 1;",
            f"  worker concurrency {c} (raised from the spec's 4) except where noted; bulk"
            f" triggers: RunControl.trigger_many, {TRIGGER_CHUNK:,} runs per call.",
            f"  1. {self.runs:,} noop runs (one async step) bulk-triggered, then the worker until"
            " all completed; runs/s from the first AttemptStarted to the last Completed"
            " (recorded_at);",
            "     commits: pg_stat_database.xact_commit delta over trigger + run (the figure's pool"
            " is closed first so every backend flushed its counts), less the bench's own polls;",
            "     writes: transaction ids consumed; journal rows: rows of these runs / runs.",
            f"  2. {self.step_runs:,} steps5 runs (five async steps); latency timed in the bundle"
            " (in the host) around each cache-miss `await ctx.step(...)`, returned as the run's"
            " output; raw commit = 1 / raw(1) rate;",
            f"     'one run at a time': {self.alone_runs} runs through a worker of concurrency 1.",
            f"  3. {self.latency_runs} runs, RunControl.trigger one at a time, worker concurrency 4"
            " and idle (poll 1000 ms, so NOTIFY must wake it); perf_counter from just before",
            "     trigger() to the noop body's first line (the bundle returns its perf_counter"
            " there: CLOCK_MONOTONIC, one clock for the bench and its hosts);",
            "     one run first, not counted, starts the host and loads the bundle (cold starts:"
            " see the hosts group).",
            f"  4. {self.sleep_runs} sleeper runs, ctx.sleep of 1.00-1.99 s spread evenly, all"
            " triggered at once; lateness = recorded_at of the first StepCompleted after the"
            " sleep - the wake time (SleepScheduled's recorded_at + delay_ms, as the engine"
            " computes it).",
        ] + (
            [
                f"  5. {self.finished:,} completed noop runs generated in SQL into a job (see"
                " bench/finished.py), VACUUM ANALYZE, then figure 1 again on that job."
            ]
            if self.finished
            else []
        )


@dataclass
class Throughput:
    runs: int
    per_second: float
    commits_per_run: float
    writes_per_run: float
    rows_per_run: float
    cpu: Usage | None


async def noop_throughput(
    b: Bench, job: str, n: int, concurrency: int, *, create_job: bool = True
) -> Throughput:
    """Bulk-trigger n noop runs, then one worker until all completed."""
    before = await b.commits()
    async with b.session() as s:
        if create_job:
            await s.job(job, "noop")
        ids = await s.trigger_bulk(job, [None] * n)
        await s.warm("noop")
        meter = Meter(b.database)
        async with s.worker(concurrency):
            await s.wait_finished(job, timeout=600)
            cpu = meter.read()
        polls = s.polls
    after = await b.commits()
    span = await b.span(ids)
    return Throughput(
        runs=n,
        per_second=n / span.seconds,
        commits_per_run=(after[0] - before[0] - polls) / n,
        writes_per_run=(after[1] - before[1]) / n,
        rows_per_run=span.rows / n,
        cpu=cpu,
    )


def cpu_row(label: str, t: Throughput) -> list[Row]:
    u = t.cpu
    if u is None:
        return []
    return [
        (
            f"{label}: CPU per run while the worker ran",
            f"this process {u.me / t.runs * 1e6:.0f} us, hosts {u.hosts / t.runs * 1e6:.0f} us,"
            f" Postgres {u.postgres / t.runs * 1e6:.0f} us; idle"
            f" {u.idle / (u.wall * u.cores):.0%}, other processes"
            f" {u.other / (u.wall * u.cores):.0%} of {u.cores} cores",
            "",
            "",
        )
    ]


def _throughput_rows(t: Throughput, raw1: float, raw16: float, label: str) -> list[Row]:
    return [
        (
            f"{label}: runs/s",
            f"{t.per_second:,.0f} runs/s = {t.per_second / raw1:.2f}x raw(1),"
            f" {t.per_second / raw16:.2f}x raw(16)",
            ">= 8,000 runs/s",
            met(t.per_second >= 8_000),
        ),
        (
            f"{label}: commits per run",
            f"{t.commits_per_run:.3f} ({t.writes_per_run:.3f} writes);"
            f" {t.rows_per_run:.2f} journal rows/run",
            "<= 0.3",
            met(t.commits_per_run <= 0.3),
        ),
        *cpu_row(label, t),
    ]


async def step_latencies(
    b: Bench, job: str, runs: int, concurrency: int
) -> tuple[list[str], list[float]]:
    """Run `runs` steps5 runs with one worker; their ids and the durations of their
    cache-miss steps (each run's output), in seconds."""
    async with b.session() as s:
        await s.job(job, "steps5")
        ids = await s.trigger_bulk(job, [None] * runs)
        await s.warm("steps5")
        async with s.worker(concurrency):
            await s.wait_finished(job, timeout=600, every=0.02)
        outputs = await s.outputs(ids)
    seconds = [float(t) for run_id in ids for t in outputs.get(run_id) or []]
    if len(seconds) != 5 * runs:
        raise RuntimeError(
            f"the steps5 runs reported {len(seconds)} cache-miss steps, not {5 * runs}"
        )
    return ids, seconds


async def steps_figures(b: Bench, cfg: Config, raw1: float) -> list[Row]:
    """5-step runs, all at once: steps/s and checkpoint latency (timed in the bundle); then
    the same latency with one run at a time, for the unloaded cost of a checkpoint."""
    ids, loaded = await step_latencies(b, "steps5", cfg.step_runs, cfg.concurrency)
    span = await b.span(ids)
    steps = 5 * cfg.step_runs
    _, alone = await step_latencies(b, "steps5-alone", cfg.alone_runs, 1)
    raw = 1 / raw1
    rate = steps / span.seconds

    def latency(values: list[float]) -> str:
        p50, p99 = percentile(values, 50), percentile(values, 99)
        return f"{ms(p50)} / {ms(p99)} = {p50 / raw:.1f}x / {p99 / raw:.1f}x raw commit"

    return [
        (
            "2. 5-step runs: steps/s",
            f"{rate:,.0f} steps/s = {rate / raw1:.2f}x raw(1)",
            ">= 2,500 steps/s",
            met(rate >= 2_500),
        ),
        (
            f"2. step checkpoint p50 / p99, {cfg.concurrency} runs in flight",
            latency(loaded),
            f"p50 <= 1.5x raw ({ms(1.5 * raw)})",
            met(percentile(loaded, 50) <= 1.5 * raw),
        ),
        (
            "2. step checkpoint p50 / p99, one run at a time",
            latency(alone),
            f"p50 <= 1.5x raw ({ms(1.5 * raw)})",
            met(percentile(alone, 50) <= 1.5 * raw),
        ),
    ]


async def latency_figures(b: Bench, cfg: Config) -> list[Row]:
    """One run at a time into an idle worker (poll 1000 ms: LISTEN/NOTIFY must wake it).
    The noop bundle returns perf_counter at its first line; the outputs are read after."""
    before: dict[str, float] = {}
    ids: list[str] = []
    async with b.session() as s:
        await s.job("latency", "noop")
        async with s.worker(concurrency=4, poll_ms=1000) as worker:
            ended = attempt_ends(worker)
            warm = (await s.control.trigger(ORG, "latency")).id  # starts the host, loads
            await ended.wait_for(warm)
            await asyncio.sleep(0.5)  # the LISTEN connection is up; the worker is idle
            for _ in range(cfg.latency_runs):
                sent = time.perf_counter()
                run_id = (await s.control.trigger(ORG, "latency")).id
                before[run_id] = sent
                ids.append(run_id)
                await ended.wait_for(run_id)  # the attempt is over: the worker is idle again
                await asyncio.sleep(0.02)
            await s.wait_finished("latency", timeout=30)
        outputs = await s.outputs(ids)
    gaps = [float(outputs[run_id]) - before[run_id] for run_id in ids]
    db_gaps = [float(r["gap"]) for r in await b.pool.fetch(_START_GAPS, ids)]
    p50, p99 = percentile(gaps, 50), percentile(gaps, 99)
    return [
        (
            "3. trigger() -> function body starts, p50 / p99",
            f"{ms(p50)} / {ms(p99)} (max {ms(max(gaps))})",
            "p50 <= 3 ms, p99 <= 6 ms",
            met(p50 <= 0.003 and p99 <= 0.006),
        ),
        (
            "3. the same, database clock: AttemptStarted - Triggered",
            f"{ms(percentile(db_gaps, 50))} / {ms(percentile(db_gaps, 99))}"
            f" (max {ms(max(db_gaps))})",
            "(for reference)",
            "",
        ),
    ]


async def sleep_figures(b: Bench, cfg: Config) -> list[Row]:
    """Runs sleeping 1-2 s: the first step after the wake vs the recorded wake time."""
    n = cfg.sleep_runs
    payloads = [{"seconds": 1 + i / n} for i in range(n)]
    async with b.session() as s:
        await s.job("sleeper", "sleeper")
        ids = await s.trigger_bulk("sleeper", payloads)
        async with s.worker(cfg.concurrency, poll_ms=1000):
            await s.wait_finished("sleeper", timeout=60, every=0.05)
    await b.span(ids)
    late = [float(r["late"]) for r in await b.pool.fetch(_LATENESS, ids)]
    p50, p99 = percentile(late, 50), percentile(late, 99)
    return [
        (
            "4. sleep wake lateness p50 / p99 / max",
            f"{ms(p50)} / {ms(p99)} / {ms(max(late))}",
            "p99 <= 100 ms",
            met(p99 <= 0.100),
        )
    ]


async def finished_figures(b: Bench, cfg: Config, empty: Throughput) -> list[Row]:
    """Figure 1 again, on a job that already has cfg.finished completed runs."""
    async with b.session() as s:
        await s.job("noop-full", "noop")
    async with b.pool.acquire() as conn:
        timings = await load_finished(conn, ORG, "noop-full", "noop", cfg.finished)
    full = await noop_throughput(b, "noop-full", cfg.runs, cfg.concurrency, create_job=False)
    ratio = full.per_second / empty.per_second
    return [
        (
            f"5. load {cfg.finished:,} finished runs ({4 * cfg.finished:,} journal rows)",
            f"insert {timings['insert']:.1f} s, VACUUM ANALYZE {timings['vacuum']:.1f} s",
            "",
            "",
        ),
        (
            f"5. no-op runs/s with {cfg.finished:,} finished runs in the job",
            f"{full.per_second:,.0f} runs/s vs {empty.per_second:,.0f} in figure 1"
            f" = {ratio:.2f}x; {full.commits_per_run:.3f} commits/run",
            ">= 0.9x figure 1",
            met(ratio >= 0.9),
        ),
        *cpu_row("5. no-op runs", full),
    ]


async def execution_figures(
    pool: asyncpg.Pool, cfg: Config, seconds: float
) -> tuple[list[Row], list[str]]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    raw16 = await raw_insert_rate(pool, 16, seconds)
    rows: list[Row] = [
        ("reference for 1-5: raw single-row INSERT commits, 1 conn", f"{raw1:,.0f} /s", "", ""),
        ("reference for 1-5: raw single-row INSERT commits, 16 conns", f"{raw16:,.0f} /s", "", ""),
    ]
    async with bench(pool) as b:
        empty = await noop_throughput(b, "noop-empty", cfg.runs, cfg.concurrency)
        rows += _throughput_rows(empty, raw1, raw16, "1. no-op runs")
        rows += await steps_figures(b, cfg, raw1)
        rows += await latency_figures(b, cfg)
        rows += await sleep_figures(b, cfg)
        if cfg.finished:
            rows += await finished_figures(b, cfg, empty)
    return rows, cfg.describe()
