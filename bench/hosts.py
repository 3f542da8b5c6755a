"""Function hosts (issue 11): what running job code outside the worker's process costs.

- no-op runs/s drained through hosts, against the last in-process figure recorded on this
  machine, scaled by how fast this machine commits now (raw single-row commits, 1 conn);
- commits per run through hosts;
- the added latency of a step: `await ctx.step(...)` as job code sees it in the host (the
  proposal, the worker's append, the ack) against a plain checkpoint, one Journal.append of
  a StepCompleted by the bench process itself, at the same concurrency;
- a host's cold start (HostPool.host() on a fresh pool, until the host said hello), and the
  first run of a fresh worker (host start + bundle load + the run);
- an idle host's memory (VmRSS of its process tree: bubblewrap's processes and the host).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.execution import cpu_row, noop_throughput, step_latencies
from bench.harness import ORG, Bench, Row, Session, attempt_ends, bench, met, ms, percentile
from bench.journal import raw_insert_rate
from bench.machine import descendants
from reactor_jobs.config import HostSettings
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.ids import new_id
from reactor_jobs.engine.hosts import Host, HostPool
from reactor_jobs.engine.journal import AppendRequest, Fence

# The last in-process measurement on this machine (before function hosts): figure 1's drain
# at concurrency 256, and the raw single-row commit rate on 1 connection measured with it.
RECORDED_IN_PROCESS = 6_023
RECORDED_RAW1 = 4_623
PLAIN_WORKER = "bench-plain"


@dataclass
class Config:
    runs: int = 20_000
    concurrency: int = 256
    step_runs: int = 2_000
    alone_runs: int = 40
    cold_starts: int = 20
    first_runs: int = 5
    idle_runs: int = 500

    def describe(self) -> list[str]:
        c = self.concurrency
        return [
            "Hosts settings. HostSettings() defaults (root here: user reactor-fn, bubblewrap if"
            " installed); one HostPool per figure; worker and jobs as in figures 1-5.",
            f"  H1. {self.runs:,} noop runs bulk-triggered, one worker of concurrency {c}, as"
            f" figure 1; compared with the recorded in-process {RECORDED_IN_PROCESS:,} runs/s"
            f" (at raw(1) {RECORDED_RAW1:,}/s),",
            "      scaled by raw(1) now / then: a recorded figure, not measured in this run.",
            f"  H2. step as job code sees it: {self.step_runs:,} steps5 runs at concurrency {c}"
            " (figure 2); plain checkpoint: the bench process appends StepCompleted with",
            f"      Journal.append (fenced, as a worker does) to {self.step_runs:,} running runs,"
            f" {c} at a time, five in a row each; added = difference of the p50s.",
            f"      One at a time: {self.alone_runs} steps5 runs at concurrency 1 against"
            f" {self.alone_runs} runs' appends one after another.",
            f"  H3. cold start: {self.cold_starts} x (new HostPool, time HostPool.host() until"
            " the host said hello, close); first run: "
            f"{self.first_runs} x (new HostPool and worker,",
            "      idle 0.3 s, trigger one noop run: until its body's first line, and until the"
            " attempt ended).",
            f"  H4. RSS: VmRSS (and Pss) summed over the host's process tree; fresh: right after"
            f" hello; idle: after {self.idle_runs} noop runs at concurrency {c}, then 0.5 s idle.",
        ]


def _status_kb(pid: int, field: str, file: str = "status") -> int:
    try:
        text = Path(f"/proc/{pid}/{file}").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Memory:
    rss_kb: int  # VmRSS summed over the tree (shared pages counted in each process)
    pss_kb: int  # proportional set size summed: shared pages split between their users
    processes: int
    host_rss_kb: int  # the process that runs the code (the deepest one), alone

    def describe(self) -> str:
        return (
            f"{self.rss_kb / 1024:.1f} MB RSS ({self.pss_kb / 1024:.1f} MB PSS) in"
            f" {self.processes} processes; the python host alone {self.host_rss_kb / 1024:.1f}"
            " MB RSS"
        )


def tree_memory(host: Host) -> Memory:
    """The memory of a host's process tree: with bubblewrap, host.pid is bwrap's."""
    assert host.pid is not None
    pids = [host.pid, *descendants(host.pid)]
    return Memory(
        rss_kb=sum(_status_kb(p, "VmRSS") for p in pids),
        pss_kb=sum(_status_kb(p, "Pss", "smaps_rollup") for p in pids),
        processes=len(pids),
        host_rss_kb=_status_kb(pids[-1], "VmRSS"),
    )


def _triggered() -> ev.Triggered:
    return ev.Triggered(
        org=ORG,
        job="plain",
        function="steps5",
        function_version=1,
        trigger=ev.TriggerInfo(kind="manual"),
        max_attempts=1,
    )


async def _running_runs(s: Session, n: int, lease: datetime) -> list[str]:
    """n runs of job `plain`, each claimed by PLAIN_WORKER (Triggered + AttemptStarted)."""
    ids = [new_id("run") for _ in range(n)]
    started = ev.AttemptStarted(attempt=1, worker=PLAIN_WORKER, lease_expires_at=lease)
    async with s.pool.acquire() as conn:
        for i in range(0, n, 500):
            requests = [
                AppendRequest(run_id=run_id, events=[_triggered(), started], expected_position=0)
                for run_id in ids[i : i + 500]
            ]
            outcomes = await s.journal.append_many(requests, conn)
            assert all(isinstance(o, int) for o in outcomes), outcomes
    return ids


async def plain_checkpoints(b: Bench, runs: int, concurrency: int) -> list[float]:
    """Seconds per Journal.append of one StepCompleted: `runs` running runs, `concurrency` of
    them at a time, five steps in a row each (as steps5 does), then Completed (not timed)."""
    lease = datetime.now(UTC) + timedelta(hours=1)
    fence = Fence(attempt=1, lease_owner=PLAIN_WORKER)
    times: list[float] = []
    async with b.session() as s:
        queue = iter(await _running_runs(s, runs, lease))

        async def one_at_a_time() -> None:
            for run_id in queue:
                head = 2
                for i in range(5):
                    step = ev.StepCompleted(
                        name=f"s{i}", attempt=1, output=i, duration_ms=0.01, pos=i
                    )
                    started = time.perf_counter()
                    head = await s.journal.append(
                        run_id, [step], expected_position=head, fence=fence
                    )
                    times.append(time.perf_counter() - started)
                await s.journal.append(
                    run_id, [ev.Completed(output=None)], expected_position=head, fence=fence
                )

        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
    return times


async def throughput_rows(b: Bench, cfg: Config, raw1: float) -> list[Row]:
    t = await noop_throughput(b, "hosts-noop", cfg.runs, cfg.concurrency)
    expected = RECORDED_IN_PROCESS * raw1 / RECORDED_RAW1
    ratio = t.per_second / expected
    return [
        (
            f"H1. no-op runs/s through hosts, concurrency {cfg.concurrency}",
            f"{t.per_second:,.0f} runs/s = {ratio:.2f}x in-process (recorded"
            f" {RECORDED_IN_PROCESS:,} at raw(1) {RECORDED_RAW1:,}/s, scaled to raw(1)"
            f" {raw1:,.0f}/s: {expected:,.0f})",
            ">= 0.8x in-process (recorded)",
            met(ratio >= 0.8),
        ),
        (
            "H1. commits per run through hosts",
            f"{t.commits_per_run:.3f} ({t.writes_per_run:.3f} writes);"
            f" {t.rows_per_run:.2f} journal rows/run",
            "<= 0.3 (as figure 1)",
            met(t.commits_per_run <= 0.3),
        ),
        *cpu_row("H1. no-op runs through hosts", t),
    ]


async def step_rows(b: Bench, cfg: Config) -> list[Row]:
    _, steps = await step_latencies(b, "hosts-steps5", cfg.step_runs, cfg.concurrency)
    plain = await plain_checkpoints(b, cfg.step_runs, cfg.concurrency)
    _, steps1 = await step_latencies(b, "hosts-steps5-alone", cfg.alone_runs, 1)
    plain1 = await plain_checkpoints(b, cfg.alone_runs, 1)
    added = percentile(steps, 50) - percentile(plain, 50)
    added1 = percentile(steps1, 50) - percentile(plain1, 50)

    def both(values: list[float]) -> str:
        return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"

    return [
        (
            f"H2. ctx.step in the host p50 / p99, {cfg.concurrency} runs in flight",
            f"{both(steps)}; plain checkpoint (Journal.append) {both(plain)}",
            "",
            "",
        ),
        (
            f"H2. added latency per step p50, {cfg.concurrency} in flight",
            f"{ms(added)} over a plain checkpoint",
            "<= 0.3 ms",
            met(added <= 0.0003),
        ),
        (
            "H2. added latency per step p50, one run at a time",
            f"{ms(added1)} ({ms(percentile(steps1, 50))} in the host vs"
            f" {ms(percentile(plain1, 50))} plain)",
            "<= 0.3 ms",
            met(added1 <= 0.0003),
        ),
    ]


async def cold_start_rows(b: Bench, cfg: Config) -> tuple[list[Row], list[Memory]]:
    starts: list[float] = []
    fresh: list[Memory] = []
    for _ in range(cfg.cold_starts):
        pool = HostPool(HostSettings())
        try:
            started = time.perf_counter()
            host = await pool.host(ORG, "python")
            starts.append(time.perf_counter() - started)
            fresh.append(tree_memory(host))
        finally:
            await pool.close()
    bare: list[float] = []  # a plain python host (no bubblewrap, no user): where time goes
    quiet = logging.getLogger("reactor_jobs.hosts")
    for _ in range(max(cfg.cold_starts // 2, 1)):
        level, quiet.level = quiet.level, logging.ERROR  # "isolation none" is intended here
        try:
            pool = HostPool(HostSettings(sandbox="none", user=""))
        finally:
            quiet.setLevel(level)
        try:
            started = time.perf_counter()
            await pool.host(ORG, "python")
            bare.append(time.perf_counter() - started)
        finally:
            await pool.close()
    body: list[float] = []
    ended: list[float] = []
    async with b.session() as s:
        await s.job("hosts-first", "noop")
        for _ in range(cfg.first_runs):
            pool = HostPool(HostSettings())
            try:
                async with s.worker(4, poll_ms=1000, hosts=pool) as worker:
                    ends = attempt_ends(worker)
                    await asyncio.sleep(0.3)  # LISTEN is up, the worker idle
                    before = time.perf_counter()
                    run_id = (await s.control.trigger(ORG, "hosts-first")).id
                    await ends.wait_for(run_id)
                    ended.append(time.perf_counter() - before)
            finally:
                await pool.close()
            body.append(float((await s.outputs([run_id]))[run_id]) - before)
    p50 = percentile(starts, 50)
    return [
        (
            f"H3. host cold start p50 / max, {len(starts)} starts (until hello)",
            f"{ms(p50)} / {ms(max(starts))}; a bare host (sandbox none, no user)"
            f" {ms(percentile(bare, 50))} / {ms(max(bare))}",
            "p50 <= 200 ms",
            met(p50 <= 0.200),
        ),
        (
            f"H3. first run of a fresh worker p50, {len(body)} runs: trigger -> body / -> end",
            f"{ms(statistics.median(body))} / {ms(statistics.median(ended))}"
            f" (max {ms(max(body))} / {ms(max(ended))}); host start + bundle load + run",
            "(for reference)",
            "",
        ),
    ], fresh


async def memory_rows(b: Bench, cfg: Config, fresh: list[Memory]) -> list[Row]:
    async with b.session() as s:
        await s.job("hosts-idle", "noop")
        await s.trigger_bulk("hosts-idle", [None] * cfg.idle_runs)
        async with s.worker(cfg.concurrency):
            await s.wait_finished("hosts-idle", timeout=300)
            await asyncio.sleep(0.5)
            idle = tree_memory(await s.hosts.host(ORG, "python"))
    first = fresh[len(fresh) // 2]
    return [
        ("H4. host RSS, fresh (after hello)", first.describe(), "(for reference)", ""),
        (
            f"H4. idle host RSS after {cfg.idle_runs} noop runs",
            idle.describe(),
            "(for reference)",
            "",
        ),
    ]


async def hosts_figures(
    pool: asyncpg.Pool, cfg: Config, seconds: float
) -> tuple[list[Row], list[str]]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    rows: list[Row] = [
        (
            "reference for H1-H2: raw single-row INSERT commits, 1 conn",
            f"{raw1:,.0f} /s (recorded with the in-process figure: {RECORDED_RAW1:,} /s)",
            "",
            "",
        ),
    ]
    async with bench(pool) as b:
        rows += await throughput_rows(b, cfg, raw1)
        rows += await step_rows(b, cfg)
        cold, fresh = await cold_start_rows(b, cfg)
        rows += cold
        rows += await memory_rows(b, cfg, fresh)
    return rows, cfg.describe()
