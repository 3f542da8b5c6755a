"""Jobs in your own code (issue 17): code jobs run by `app.worker` in the app's process,
against the same work as bundles in Python function hosts, in the same run.

- no-op runs/s: `@app.job` noop (one checkpointed step) against the noop bundle;
- 5-step runs: steps/s of an `@app.job` steps5 against the steps5 bundle, and the latency of
  a step as job code sees it;
- commits per run of each.

An app's worker runs its code in its own process (an in-process host, the same protocol
over a socket pair); a bundle worker sends it to a host process. Each pair is interleaved,
bundles, code, code, bundles (half the runs each), so a shared machine slows both alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.bun import Drain, bundle_drain, combined, finished_drain, interleaved, step_seconds
from bench.execution import Throughput, cpu_row
from bench.harness import (
    CONCURRENCY_CAP,
    JOB_MAX_CONCURRENCY,
    ORG,
    SESSION_APP,
    Bench,
    Row,
    bench,
    met,
    ms,
    percentile,
)
from bench.journal import raw_insert_rate
from bench.machine import Meter
from reactor_jobs import App, Retry
from reactor_jobs.config import Config as ReactorConfig
from reactor_jobs.config import JobsConfig

APP_POOL = 24  # as a bench Session's pool


@dataclass
class Config:
    runs: int = 20_000
    concurrency: int = 256
    step_runs: int = 2_000

    def describe(self) -> list[str]:
        c = self.concurrency
        return [
            "App settings. Code jobs: an App (pool_size 24, as a bench session's pool; server cap"
            " raised) with @app.job noop and steps5 (the bundles' code), run by app.running()",
            "  (app.worker: the app's process is the host); bundles: the noop and steps5 bundles"
            " through a worker with its own HostPool (HostSettings() defaults), host started and"
            " bundle loaded first;",
            f"  worker concurrency {c}, lease 30 s, poll 1000 ms, max_attempts 1, both; each pair"
            " interleaved bundles, code, code, bundles, half the runs each, a new job each time.",
            f"  A1. {self.runs:,} noop runs per side bulk-triggered (RunControl.trigger_many),"
            " then the worker until all completed; runs/s = runs / (first AttemptStarted to last",
            "      Completed, recorded_at) summed over the halves; commits: xact_commit delta over"
            " trigger + run (code jobs: the app's start and registration included), less polls.",
            f"  A2. {self.step_runs:,} steps5 runs per side the same way; steps/s = 5 x runs/s;"
            " step latency timed in the job code (perf_counter) around each cache-miss"
            " `await ctx.step(...)`.",
        ]


async def _nothing() -> None:
    return None


async def noop(request: Any, env: Mapping[str, str], ctx: Any) -> float:
    """As bench/bundles/noop: one checkpointed no-op step; perf_counter at its first line."""
    started = time.perf_counter()
    await ctx.step("noop", _nothing)
    return started


async def steps5(request: Any, env: Mapping[str, str], ctx: Any) -> list[float]:
    """As bench/bundles/steps5: five checkpointed steps; the cache-miss steps' durations."""
    misses: list[float] = []
    ran: list[int] = []
    for i in range(5):

        async def step(i: int = i) -> int:
            ran.append(i)
            return i

        started = time.perf_counter()
        await ctx.step(f"s{i}", step)
        if ran and ran[-1] == i:
            misses.append(time.perf_counter() - started)
    return misses


def bench_app(url: str) -> App:
    """An App on the bench database, its pool's sessions named as the bench's sessions (so
    Bench.commits() waits for them to exit), with the two code jobs."""
    config = ReactorConfig(jobs=JobsConfig(max_concurrency_cap=CONCURRENCY_CAP))
    named = f"{url}{'&' if '?' in url else '?'}application_name={SESSION_APP}"
    app = App(named, org=ORG, config=config, pool_size=APP_POOL)
    policy: dict[str, Any] = {
        "retry": Retry(max_attempts=1),
        "max_concurrency": JOB_MAX_CONCURRENCY,
        "timeout": 60,
    }
    app.job("code-noop", **policy)(noop)
    app.job("code-steps5", **policy)(steps5)
    return app


async def code_drain(b: Bench, job: str, n: int, concurrency: int, every: float) -> Drain:
    """Bulk-trigger n runs of an app's code job, then app.running() until all completed."""
    before = await b.commits()
    app = bench_app(b.url)
    async with app, b.session() as s:  # the app registers its jobs
        ids = await s.trigger_bulk(job, [None] * n)
        meter = Meter(b.database)
        async with app.running(concurrency):
            await s.wait_finished(job, timeout=600, every=every)
            cpu = meter.read()
        outputs = await s.outputs(ids)
        s.polls += 1
        polls = s.polls
    return await finished_drain(b, before, ids, polls, cpu, outputs)


def _pair(code: Throughput, bundles: Throughput, unit: str, k: int = 1) -> str:
    return (
        f"{k * code.per_second:,.0f} {unit} = {code.per_second / bundles.per_second:.2f}x"
        f" bundles in Python hosts ({k * bundles.per_second:,.0f} {unit}, same run)"
    )


def _commits(code: Throughput, bundles: Throughput) -> str:
    return (
        f"{code.commits_per_run:.3f} / {bundles.commits_per_run:.3f}"
        f" ({code.writes_per_run:.3f} / {bundles.writes_per_run:.3f} writes);"
        f" {code.rows_per_run:.2f} / {bundles.rows_per_run:.2f} journal rows/run"
    )


async def noop_rows(b: Bench, cfg: Config) -> list[Row]:
    c = cfg.concurrency

    # Every drain makes its own job (a bundle job per drain, the code job once per app: runs
    # of both halves of the code side land on the one job, one after the other).
    def bundles(i: int, n: int) -> Awaitable[Drain]:
        return bundle_drain(b, f"bundle-noop-{i}", "noop", n, c)

    def code(i: int, n: int) -> Awaitable[Drain]:
        return code_drain(b, "code-noop", n, c, every=0.1)

    bundle_drains, code_drains = await interleaved(bundles, code, cfg.runs)
    ours, theirs = combined(code_drains), combined(bundle_drains)
    ratio = ours.per_second / theirs.per_second
    return [
        (
            f"A1. no-op code jobs through app.worker, concurrency {c}: runs/s",
            _pair(ours, theirs, "runs/s"),
            ">= 1.0x bundles",
            met(ratio >= 1.0),
        ),
        (
            "A1. commits per run, code jobs / bundles",
            _commits(ours, theirs),
            "<= 0.3 (as figure 1)",
            met(ours.commits_per_run <= 0.3),
        ),
        *cpu_row("A1. no-op code jobs", ours),
        *cpu_row("A1. no-op bundles", theirs),
    ]


async def step_rows(b: Bench, cfg: Config) -> list[Row]:
    c = cfg.concurrency

    def bundles(i: int, n: int) -> Awaitable[Drain]:
        return bundle_drain(b, f"bundle-steps5-{i}", "steps5", n, c, every=0.02)

    def code(i: int, n: int) -> Awaitable[Drain]:
        return code_drain(b, "code-steps5", n, c, every=0.02)

    bundle_drains, code_drains = await interleaved(bundles, code, cfg.step_runs)
    ours, theirs = combined(code_drains), combined(bundle_drains)
    ratio = ours.per_second / theirs.per_second
    mine, other = step_seconds(code_drains), step_seconds(bundle_drains)

    def both(values: list[float]) -> str:
        return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"

    return [
        (
            f"A2. 5-step code jobs through app.worker, concurrency {c}: steps/s",
            _pair(ours, theirs, "steps/s", 5),
            ">= 1.0x bundles",
            met(ratio >= 1.0),
        ),
        (
            "A2. commits per run, code jobs / bundles",
            _commits(ours, theirs),
            "(for reference)",
            "",
        ),
        (
            f"A2. ctx.step as job code sees it p50 / p99, {c} in flight: code; bundles",
            f"{both(mine)}; {both(other)}",
            "(for reference)",
            "",
        ),
        *cpu_row("A2. 5-step code jobs", ours),
        *cpu_row("A2. 5-step bundles", theirs),
    ]


async def app_figures(
    pool: asyncpg.Pool, cfg: Config, seconds: float
) -> tuple[list[Row], list[str]]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    rows: list[Row] = [
        ("reference for A1-A2: raw single-row INSERT commits, 1 conn", f"{raw1:,.0f} /s", "", "")
    ]
    async with bench(pool) as b:
        rows += await noop_rows(b, cfg)
        rows += await step_rows(b, cfg)
    return rows, cfg.describe()
