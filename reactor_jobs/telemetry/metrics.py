"""Prometheus metrics: what this process did (counters and histograms, incremented in
memory as it happens) and, per scrape, what the database holds (a few grouped counts).

Labels are bounded: org and job (capped at `max_series` pairs per process, the rest count
under "_other"), and small fixed sets (outcome, status, start). No run ids, payloads,
errors or headers ever become labels or values. docs/metrics.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from reactor_jobs.database import DATABASE_ERRORS

OTHER = "_other"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_WAIT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
         900.0, 3600.0)  # fmt: skip
_STEP = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
         1800.0)  # fmt: skip
_LATENESS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class LabelCap:
    """The (org, job) pairs a process labels its counters with: the first `limit` seen; any
    later pair is counted as (_other, _other), so a flood of jobs cannot flood the series."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, org: str, job: str) -> tuple[str, str]:
        key = (org, job)
        if key in self._seen:
            return key
        if len(self._seen) < self.limit:
            self._seen.add(key)
            return key
        return (OTHER, OTHER)


class Metrics:
    """The process's instruments, in a registry of their own (not prometheus_client's global
    one, so importing this never registers anything elsewhere)."""

    def __init__(self, max_series: int = 200) -> None:
        self.registry = r = CollectorRegistry()
        self.cap = LabelCap(max_series)
        ProcessCollector(registry=r)
        self.attempts = Counter(
            "reactor_attempts", "Attempts ended by this process's workers, by outcome.",
            ["org", "job", "outcome"], registry=r,
        )  # fmt: skip
        self.runs_finished = Counter(
            "reactor_runs_finished",
            "Runs this process's workers brought to an end: completed, or failed (to the DLQ).",
            ["org", "job", "status"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "reactor_retries", "Retries scheduled after a failed or timed-out attempt.",
            ["org", "job"], registry=r,
        )  # fmt: skip
        self.claimed = Counter(
            "reactor_runs_claimed", "Runs claimed by this process's workers.", registry=r
        )
        self.claim_latency = Histogram(
            "reactor_claim_latency_seconds",
            "How long a claim transaction that took at least one run lasted.",
            registry=r, buckets=_LATENCY,
        )  # fmt: skip
        self.trigger_to_start = Histogram(
            "reactor_trigger_to_start_seconds",
            "From when a run was due (triggered, retry due, sleep over) to its AttemptStarted.",
            ["start"], registry=r, buckets=_WAIT,
        )  # fmt: skip
        self.step_duration = Histogram(
            "reactor_step_duration_seconds", "Completed steps' durations, as the host timed them.",
            registry=r, buckets=_STEP,
        )  # fmt: skip
        self.steps_failed = Counter(
            "reactor_steps_failed", "Steps that raised (each is retried with its attempt).",
            registry=r,
        )  # fmt: skip
        self.scheduler_lateness = Histogram(
            "reactor_scheduler_lateness_seconds",
            "From a cron slot's time to the moment this scheduler fired it.",
            registry=r, buckets=_LATENESS,
        )  # fmt: skip

    def configure(self, max_series: int) -> None:
        self.cap.limit = max_series

    def attempt_ended(self, org: str, job: str, outcome: str) -> None:
        self.attempts.labels(*self.cap(org, job), outcome).inc()

    def run_finished(self, org: str, job: str, status: str) -> None:
        self.runs_finished.labels(*self.cap(org, job), status).inc()

    def retry_scheduled(self, org: str, job: str) -> None:
        self.retries.labels(*self.cap(org, job)).inc()

    def run_claimed(self, seconds: float | None, start: str) -> None:
        self.claimed.inc()
        if seconds is not None:
            self.trigger_to_start.labels(start).observe(max(seconds, 0.0))


METRICS = Metrics()

# Two halves, each matching one partial index's predicate (runs_ready, runs_running), so
# finished runs are never read; one `status IN (…)` would walk a full index instead.
ACTIVE_RUNS = """
SELECT org, job, status, count(*) AS runs,
       count(*) FILTER (WHERE available_at <= now()) AS due,
       extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now()))
           AS oldest_due_s
  FROM _reactor_jobs.runs WHERE status IN ('queued', 'sleeping', 'retrying')
 GROUP BY org, job, status
UNION ALL
SELECT org, job, 'running', count(*), 0, NULL
  FROM _reactor_jobs.runs WHERE status = 'running'
 GROUP BY org, job
"""
_DLQ = """
SELECT org, job, count(*) AS open FROM _reactor_jobs.dlq WHERE status = 'open' GROUP BY org, job
"""
ACTIVE_STATUSES = ("queued", "running", "sleeping", "retrying")


def top_pairs(totals: dict[tuple[str, str], float], limit: int) -> set[tuple[str, str]]:
    """The `limit` (org, job) pairs with the largest totals (ties: by name)."""
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return {pair for pair, _ in ranked[:limit]}


def _fold(
    rows: Iterable[tuple[str, str, str, float]], keep: set[tuple[str, str]]
) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for org, job, extra, value in rows:
        org, job = (org, job) if (org, job) in keep else (OTHER, OTHER)
        out[org, job, extra] = out.get((org, job, extra), 0.0) + value
    return out


class _Families:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def database_families(pool: asyncpg.Pool, max_series: int) -> list[Metric]:
    """The per-scrape gauges: runs in flight by org, job and status, the due queue and the
    age of its oldest run, and the open DLQ entries. Two grouped counts: the active statuses
    come from runs_ready/runs_running (partial indexes), so finished runs cost nothing;
    finished runs are the counters above. A database it cannot reach reports up 0."""
    up = GaugeMetricFamily(
        "reactor_metrics_database_up", "1 when this scrape could read the database."
    )
    try:
        async with pool.acquire(timeout=5) as conn:
            active = await conn.fetch(ACTIVE_RUNS, timeout=10)
            dlq = await conn.fetch(_DLQ, timeout=10)
    except (*DATABASE_ERRORS, TimeoutError):
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    totals: dict[tuple[str, str], float] = {}
    for row in active:
        totals[row["org"], row["job"]] = totals.get((row["org"], row["job"]), 0) + row["runs"]
    for row in dlq:
        totals[row["org"], row["job"]] = totals.get((row["org"], row["job"]), 0) + row["open"]
    keep = top_pairs(totals, max_series)

    runs = GaugeMetricFamily(
        "reactor_runs", "Runs not finished, by status (the runs projection, at scrape time).",
        labels=["org", "job", "status"],
    )  # fmt: skip
    by_status = _fold(((r["org"], r["job"], r["status"], r["runs"]) for r in active), keep)
    for (org, job, status), value in sorted(by_status.items()):
        runs.add_metric([org, job, status], value)
    depth = GaugeMetricFamily(
        "reactor_queue_depth", "Runs due now and waiting for a worker (queued, retry or wake due).",
        labels=["org", "job"],
    )  # fmt: skip
    due = _fold(((r["org"], r["job"], "", r["due"]) for r in active), keep)
    for (org, job, _), value in sorted(due.items()):
        if value:
            depth.add_metric([org, job], value)
    oldest = GaugeMetricFamily(
        "reactor_queue_oldest_due_age_seconds",
        "How long the longest-waiting due run has been due (0: none waits).",
    )
    ages = [float(r["oldest_due_s"]) for r in active if r["oldest_due_s"] is not None]
    oldest.add_metric([], max([0.0, *ages]))
    dlq_size = GaugeMetricFamily(
        "reactor_dlq_open", "Dead-lettered runs not retried yet.", labels=["org", "job"]
    )
    for (org, job, _), value in sorted(
        _fold(((r["org"], r["job"], "", r["open"]) for r in dlq), keep).items()
    ):
        dlq_size.add_metric([org, job], value)
    return [up, runs, depth, oldest, dlq_size]


def host_families(status: dict[str, Any]) -> list[Metric]:
    """Function hosts of this process (HostPool.status())."""
    hosts = GaugeMetricFamily("reactor_function_hosts", "Function hosts running now.")
    hosts.add_metric([], status.get("hosts", 0))
    started = CounterMetricFamily("reactor_function_host_starts", "Function hosts started.")
    started.add_metric([], status.get("started", 0))
    restarts = CounterMetricFamily(
        "reactor_function_host_restarts", "Function hosts started again after one died."
    )
    restarts.add_metric([], status.get("restarts", 0))
    return [hosts, started, restarts]


async def render(
    pool: asyncpg.Pool | None, host_status: dict[str, Any] | None, *, max_series: int
) -> bytes:
    """The exposition text: this process's instruments, then the per-scrape gauges."""
    families: list[Metric] = []
    if pool is not None:
        families += await database_families(pool, max_series)
    if host_status is not None:
        families += host_families(host_status)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Families(families))
    return generate_latest(METRICS.registry) + generate_latest(scrape)
