"""The bun runtime (issue 13): TypeScript job code in bun hosts, beside the same work in
Python hosts, measured in the same run.

- no-op runs/s drained through bun hosts against Python hosts at the same concurrency, and
  commits per run of each;
- the latency of a step as job code sees it (`await ctx.step(...)`: the proposal, the
  worker's append, the ack), timed inside each host with its own monotonic clock, TS against
  Python: the difference of the p50s is what bun adds per step;
- a bun host's cold start (HostPool.host() on a fresh pool, until the host said hello)
  against a Python host's, and each host's memory right after hello.

The runs of each pair are interleaved, Python, bun, bun, Python (half the runs each time),
so a machine shared with other work slows both alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.execution import Throughput, cpu_row
from bench.harness import BUNDLES, ORG, Bench, Row, bench, met, ms, percentile, reconnect_all
from bench.hosts import Memory, tree_memory
from bench.journal import raw_insert_rate
from bench.machine import Meter, Usage
from reactor_jobs.config import HostSettings
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.registry import Registry

TS_FUNCTIONS = ("noop-ts", "steps5-ts")  # bench/bundles/<name>, runtime bun


@dataclass
class Config:
    runs: int = 20_000
    concurrency: int = 256
    step_runs: int = 2_000
    alone_runs: int = 40
    cold_starts: int = 10

    def describe(self) -> list[str]:
        c = self.concurrency
        return [
            "Bun settings. HostSettings() defaults (root here: user reactor-fn, bubblewrap if"
            " installed); one HostPool per drain, its host started and the bundle loaded before"
            " the worker starts;",
            "  worker and jobs as in figures 1-5; bundles noop/steps5 (Python) and"
            " noop-ts/steps5-ts (TypeScript, the same code); each pair interleaved Python, bun,"
            " bun, Python, half the runs each.",
            f"  B1. {self.runs:,} noop runs per runtime bulk-triggered, one worker of concurrency"
            f" {c}; runs/s = runs / (first AttemptStarted to last Completed, recorded_at) summed"
            " over the halves;",
            "      commits: pg_stat_database.xact_commit delta over trigger + run, less the"
            " bench's own polls (as figure 1).",
            f"  B2. {self.step_runs:,} steps5 runs per runtime at concurrency {c}; each cache-miss"
            " `await ctx.step(...)` timed in the bundle (Python perf_counter, bun"
            " performance.now(), each within its host);",
            f"      added = TS p50 - Python p50; one at a time: {self.alone_runs} runs per runtime"
            " through a worker of concurrency 1.",
            f"  B3. cold start: {self.cold_starts} x (new HostPool, time HostPool.host(org,"
            " runtime) until the host said hello, close), bun and Python alternately;",
            "      RSS: VmRSS (Pss) of the host's process tree after hello.",
        ]


@dataclass
class Drain:
    """One worker draining bulk-triggered runs of one job."""

    ids: list[str]
    seconds: float  # first AttemptStarted to last Completed, database clock
    commits: int  # xact_commit delta, less the bench's own statements
    writes: int  # transaction ids consumed
    rows: int  # journal rows of these runs
    cpu: Usage | None
    outputs: dict[str, Any]


async def finished_drain(
    b: Bench,
    before: tuple[int, int],
    ids: list[str],
    polls: int,
    cpu: Usage | None,
    outputs: dict[str, Any],
) -> Drain:
    """The drain's figures once its session has closed (its backends' counts are flushed)."""
    after = await b.commits()
    span = await b.span(ids)
    return Drain(
        ids=ids,
        seconds=span.seconds,
        commits=after[0] - before[0] - polls,
        writes=after[1] - before[1],
        rows=span.rows,
        cpu=cpu,
        outputs=outputs,
    )


def combined(drains: Sequence[Drain]) -> Throughput:
    """Drains of the same work as one figure: runs over the sum of their spans."""
    runs = sum(len(d.ids) for d in drains)
    usages = [d.cpu for d in drains if d.cpu is not None]
    cpu = None
    if len(usages) == len(drains) and usages:
        cpu = Usage(
            wall=sum(u.wall for u in usages),
            cores=usages[0].cores,
            me=sum(u.me for u in usages),
            hosts=sum(u.hosts for u in usages),
            postgres=sum(u.postgres for u in usages),
            other=sum(u.other for u in usages),
        )
    return Throughput(
        runs=runs,
        per_second=runs / sum(d.seconds for d in drains),
        commits_per_run=sum(d.commits for d in drains) / runs,
        writes_per_run=sum(d.writes for d in drains) / runs,
        rows_per_run=sum(d.rows for d in drains) / runs,
        cpu=cpu,
    )


def step_seconds(drains: Sequence[Drain]) -> list[float]:
    """The cache-miss step durations the steps5 bundles returned, in seconds (five a run)."""
    runs = sum(len(d.ids) for d in drains)
    seconds = [float(t) for d in drains for o in d.outputs.values() for t in o or []]
    if len(seconds) != 5 * runs:
        raise RuntimeError(
            f"the steps5 runs reported {len(seconds)} cache-miss steps, not {5 * runs}"
        )
    return seconds


async def bundle_drain(
    b: Bench, job: str, function: str, n: int, concurrency: int, every: float = 0.1
) -> Drain:
    """Bulk-trigger n runs of a new job on `function`, then one worker until all completed."""
    before = await b.commits()
    async with b.session() as s:
        await s.job(job, function)
        ids = await s.trigger_bulk(job, [None] * n)
        await s.warm(function)
        meter = Meter(b.database)
        async with s.worker(concurrency):
            await s.wait_finished(job, timeout=600, every=every)
            cpu = meter.read()
        outputs = await s.outputs(ids)
        s.polls += 1
        polls = s.polls
    return await finished_drain(b, before, ids, polls, cpu, outputs)


async def interleaved(
    first: Callable[[int, int], Awaitable[Drain]],
    second: Callable[[int, int], Awaitable[Drain]],
    n: int,
) -> tuple[list[Drain], list[Drain]]:
    """first, second, second, first; each call gets (round, runs), n runs in all per side."""
    half, rest = n // 2, n - n // 2
    a = [await first(0, half)]
    bs = [await second(0, half), await second(1, rest)]
    a.append(await first(1, rest))
    return a, bs


async def deploy_ts(b: Bench) -> None:
    registry = Registry(b.pool)
    for name in TS_FUNCTIONS:
        await registry.create_function(ORG, name, "bun")
        version = await registry.deploy(ORG, name, pack_dir(BUNDLES / name))
        await registry.promote(ORG, name, version)
    await reconnect_all(b.pool)  # the deploys' commits must not land in a figure's


def _runs_row(label: str, t: Throughput) -> str:
    return (
        f"{label} {t.per_second:,.0f} runs/s, {t.commits_per_run:.3f} commits/run"
        f" ({t.writes_per_run:.3f} writes), {t.rows_per_run:.2f} journal rows/run"
    )


async def throughput_rows(b: Bench, cfg: Config) -> list[Row]:
    c = cfg.concurrency

    def py(i: int, n: int) -> Awaitable[Drain]:
        return bundle_drain(b, f"py-noop-{i}", "noop", n, c)

    def ts(i: int, n: int) -> Awaitable[Drain]:
        return bundle_drain(b, f"ts-noop-{i}", "noop-ts", n, c)

    py_drains, ts_drains = await interleaved(py, ts, cfg.runs)
    python, bun = combined(py_drains), combined(ts_drains)
    ratio = bun.per_second / python.per_second
    return [
        (
            f"B1. no-op runs/s through bun hosts, concurrency {c}",
            f"{bun.per_second:,.0f} runs/s = {ratio:.2f}x Python hosts"
            f" ({python.per_second:,.0f} runs/s, same run)",
            ">= 0.7x Python",
            met(ratio >= 0.7),
        ),
        (
            "B1. commits per run, bun / Python",
            f"{bun.commits_per_run:.3f} / {python.commits_per_run:.3f}"
            f" ({bun.writes_per_run:.3f} / {python.writes_per_run:.3f} writes);"
            f" {bun.rows_per_run:.2f} / {python.rows_per_run:.2f} journal rows/run",
            "<= 0.3 (as figure 1)",
            met(bun.commits_per_run <= 0.3),
        ),
        *cpu_row("B1. no-op runs through bun hosts", bun),
        *cpu_row("B1. no-op runs through Python hosts", python),
    ]


async def step_rows(b: Bench, cfg: Config) -> list[Row]:
    c = cfg.concurrency

    def runner(function: str, concurrency: int) -> Callable[[int, int], Awaitable[Drain]]:
        def run(i: int, n: int) -> Awaitable[Drain]:
            job = f"{function}-c{concurrency}-{i}"
            return bundle_drain(b, job, function, n, concurrency, every=0.02)

        return run

    py_drains, ts_drains = await interleaved(
        runner("steps5", c), runner("steps5-ts", c), cfg.step_runs
    )
    py_alone, ts_alone = await interleaved(
        runner("steps5", 1), runner("steps5-ts", 1), cfg.alone_runs
    )
    python, bun = combined(py_drains), combined(ts_drains)
    py_steps, ts_steps = step_seconds(py_drains), step_seconds(ts_drains)
    py1, ts1 = step_seconds(py_alone), step_seconds(ts_alone)
    added = percentile(ts_steps, 50) - percentile(py_steps, 50)
    added1 = percentile(ts1, 50) - percentile(py1, 50)

    def both(values: list[float]) -> str:
        return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"

    return [
        (
            f"B2. ctx.step in the host p50 / p99, {c} runs in flight: bun; Python",
            f"{both(ts_steps)}; {both(py_steps)}",
            "",
            "",
        ),
        (
            f"B2. added latency per step p50 (bun - Python), {c} in flight",
            f"{ms(added)} over Python",
            "<= 0.3 ms",
            met(added <= 0.0003),
        ),
        (
            "B2. added latency per step p50 (bun - Python), one run at a time",
            f"{ms(added1)} ({ms(percentile(ts1, 50))} in bun vs {ms(percentile(py1, 50))}"
            " in Python)",
            "<= 0.3 ms",
            met(added1 <= 0.0003),
        ),
        (
            "B2. 5-step runs, bun / Python: steps/s; commits per run",
            f"{5 * bun.per_second:,.0f} / {5 * python.per_second:,.0f} steps/s;"
            f" {bun.commits_per_run:.3f} / {python.commits_per_run:.3f} commits/run",
            "(for reference)",
            "",
        ),
    ]


async def _cold_start(runtime: str) -> tuple[float, Memory]:
    pool = HostPool(HostSettings())
    try:
        started = time.perf_counter()
        host = await pool.host(ORG, runtime)
        seconds = time.perf_counter() - started
        return seconds, tree_memory(host)
    finally:
        await pool.close()


def _memory(m: Memory) -> str:
    return (
        f"{m.rss_kb / 1024:.1f} MB RSS ({m.pss_kb / 1024:.1f} MB PSS) in {m.processes}"
        f" processes, the host alone {m.host_rss_kb / 1024:.1f} MB RSS"
    )


async def cold_start_rows(cfg: Config) -> list[Row]:
    starts: dict[str, list[float]] = {"bun": [], "python": []}
    memory: dict[str, list[Memory]] = {"bun": [], "python": []}
    for _ in range(cfg.cold_starts):
        for runtime in ("bun", "python"):
            seconds, rss = await _cold_start(runtime)
            starts[runtime].append(seconds)
            memory[runtime].append(rss)
    bun, python = starts["bun"], starts["python"]
    p50 = percentile(bun, 50)
    return [
        (
            f"B3. bun host cold start p50 / max, {len(bun)} starts (until hello)",
            f"{ms(p50)} / {ms(max(bun))}; a Python host {ms(percentile(python, 50))} /"
            f" {ms(max(python))}",
            "p50 <= 300 ms",
            met(p50 <= 0.300),
        ),
        (
            "B3. host RSS after hello: bun; Python",
            f"{_memory(memory['bun'][len(bun) // 2])};"
            f" {_memory(memory['python'][len(python) // 2])}",
            "(for reference)",
            "",
        ),
    ]


async def bun_figures(
    pool: asyncpg.Pool, cfg: Config, seconds: float
) -> tuple[list[Row], list[str]]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    rows: list[Row] = [
        ("reference for B1-B2: raw single-row INSERT commits, 1 conn", f"{raw1:,.0f} /s", "", "")
    ]
    async with bench(pool) as b:
        await deploy_ts(b)
        rows += await throughput_rows(b, cfg)
        rows += await step_rows(b, cfg)
        rows += await cold_start_rows(cfg)
    return rows, cfg.describe()
