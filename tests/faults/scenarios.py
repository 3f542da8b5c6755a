"""The fault scenarios, each on a rig of its own: real processes, a real Postgres, and the
journal as the witness. Each returns its figures (name -> (value, unit)); the tests assert
on them and `python -m bench --only faults` prints them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from reactor_jobs.domain import events as ev
from tests.faults.rig import (
    ORG,
    RERUN_COMPLETED_STEPS,
    Cluster,
    Rig,
    peak_running,
    rig,
    stale_appends,
)

Figures = dict[str, tuple[float, str]]
_UNFINISHED = ("queued", "running", "sleeping", "retrying")
_STARTED = "SELECT count(*) > 0 FROM _reactor_jobs.journal WHERE type = 'AttemptStarted'"


def _outcome(statuses: dict[str, str], runs: list[str]) -> Figures:
    return {
        "lost": (sum(statuses.get(r) in ("failed", "cancelled", None) for r in runs), "runs"),
        "stuck": (sum(statuses.get(r) in _UNFINISHED for r in runs), "runs"),
    }


async def _charged(r: Rig, runs: list[str]) -> tuple[int, int]:
    """(charged LeaseExpired, Failed) among these runs' events."""
    streams = await r.streams(runs)
    events = [rec.event for records in streams.values() for rec in records]
    charged = sum(isinstance(e, ev.LeaseExpired) and e.charged for e in events)
    return charged, sum(isinstance(e, ev.Failed) for e in events)


async def kill_9_under_load(r: Rig) -> Figures:
    """Three workers; one is killed with -9 (and replaced) four times while 60 two-step runs
    go through."""
    await r.engine.job("k9", max_attempts=10, max_concurrency=10,
                       initial_delay_ms=100, max_delay_ms=200)  # fmt: skip
    runs = await r.engine.control.trigger_many(ORG, "k9", [{"mode": "slow", "seconds": 0.3}] * 60)
    for _ in range(3):
        r.start()
    await r.until(_STARTED)
    for _ in range(4):
        await asyncio.sleep(1.2)
        r.kill(r.alive()[0])
        r.start()
    statuses = await r.settle(runs, timeout=60)
    reruns = await r.pool.fetchval(RERUN_COMPLETED_STEPS, runs)
    streams = await r.streams(runs)
    taken = sum(isinstance(rec.event, ev.LeaseExpired) for s in streams.values() for rec in s)
    return {
        **_outcome(statuses, runs),
        "runs taken over from killed workers": (taken, "runs"),
        "completed steps re-run": (reruns, "steps"),
        "stale appends": (stale_appends(streams), "events"),
    }


async def sigstop_past_the_lease(r: Rig) -> Figures:
    """A worker is paused (SIGSTOP) mid-step for twice its lease; another takes its runs
    over; then it is continued (SIGCONT) and tries to carry on."""
    await r.engine.job("paused", max_attempts=5, max_concurrency=10)
    runs = await r.engine.control.trigger_many(
        ORG, "paused", [{"mode": "slow", "seconds": 1.0}] * 6
    )
    first = r.start(worker_count="8")
    await r.until("SELECT count(*) >= 6 FROM side_effects WHERE step = 'slow'")
    first.send_signal(signal.SIGSTOP)
    r.start(worker_count="8")
    await asyncio.sleep(3.5)  # the lease is 1.5 s
    first.send_signal(signal.SIGCONT)
    statuses = await r.settle(runs, timeout=40)
    await asyncio.sleep(1.0)  # the continued worker's late appends, if any, land by now
    streams = await r.streams(runs)
    taken = sum(isinstance(rec.event, ev.LeaseExpired) for s in streams.values() for rec in s)
    return {
        **_outcome(statuses, runs),
        "runs taken over": (taken, "runs"),
        "stale appends": (stale_appends(streams), "events"),
        "paused process alive": (float(first.poll() is None), "bool"),
    }


async def _progress_after(r: Rig, since: datetime, timeout: float = 30) -> float:
    """Seconds from `since` (database time) to the first attempt progress after it."""
    first = await r.until(
        "SELECT min(recorded_at) FROM _reactor_jobs.journal WHERE recorded_at > $1"
        " AND type IN ('AttemptStarted', 'StepCompleted', 'Completed')",
        since,
        timeout=timeout,
    )
    return float((first - since).total_seconds())


async def _load(r: Rig, jobs: int, per_job: int) -> list[str]:
    runs: list[str] = []
    for n in range(jobs):
        await r.engine.job(f"load{n}", max_attempts=3, max_concurrency=10)
        runs += await r.engine.control.trigger_many(
            ORG, f"load{n}", [{"mode": "nap", "steps": 3, "seconds": 0.02}] * per_job
        )
    return runs


async def postgres_restart_under_load(r: Rig) -> Figures:
    """`pg_ctl restart -m immediate` while a serve and two workers run 600 runs."""
    runs = await _load(r, 3, 200)
    # A 5 s lease: the restart, not a CPU-starved heartbeat on a busy CI box, is under test.
    health = _HealthWatch(await r.address(r.start("serve", lease_ms="5000")))
    r.start(worker_count="8", lease_ms="5000")
    r.start(worker_count="8", lease_ms="5000")
    await r.until(
        "SELECT count(*) >= 150 FROM _reactor_jobs.journal WHERE type = 'Completed'", timeout=60
    )
    async with health:
        await r.cluster.restart()
        up = await _reconnected(r)
        recovery = await _progress_after(r, up)
        statuses = await r.settle(runs, timeout=90)
        await asyncio.sleep(0.5)
    charged, failed = await _charged(r, runs)
    return {
        **_outcome(statuses, runs),
        "processes alive": (len(r.alive()), f"of {len(r.procs)}"),
        "/healthz degraded during the outage": (float("degraded" in health.seen), "bool"),
        "/healthz ok afterwards": (float(health.seen[-1:] == ["ok"]), "bool"),
        "recovery after restart": (recovery, "s"),
        "charged lease losses": (charged, "attempts"),
        "failed attempts": (failed, "attempts"),
    }


class _HealthWatch:
    """Polls a serve process's /healthz every 50 ms while the block runs; `seen` is the
    sequence of distinct statuses."""

    def __init__(self, address: str) -> None:
        self.url, self.seen = f"{address}/healthz", list[str]()

    async def __aenter__(self) -> _HealthWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _poll(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url) as response:
                        status = (await response.json())["status"]
                        if self.seen[-1:] != [status]:
                            self.seen.append(status)
                await asyncio.sleep(0.05)


async def _reconnected(r: Rig) -> datetime:
    """The database's now once this test's own pool reaches it again."""
    async with asyncio.timeout(30):
        while True:
            try:
                value: datetime = await r.pool.fetchval("SELECT pg_postmaster_start_time()")
                return value
            except Exception:  # the pool's connections died with the server
                await asyncio.sleep(0.05)


async def backends_killed_under_load(r: Rig) -> Figures:
    """Every backend of the processes is terminated, twice, while 400 runs go through."""
    runs = await _load(r, 2, 200)
    r.start("serve", lease_ms="5000")
    r.start(worker_count="8", lease_ms="5000")
    await r.until(
        "SELECT count(*) >= 100 FROM _reactor_jobs.journal WHERE type = 'Completed'", timeout=60
    )
    killed = 0
    for _ in range(2):
        killed += await r.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        at = await r.pool.fetchval("SELECT now()")
        await asyncio.sleep(0.5)
    recovery = await _progress_after(r, at)
    statuses = await r.settle(runs, timeout=60)
    charged, failed = await _charged(r, runs)
    return {
        **_outcome(statuses, runs),
        "backends killed": (killed, "connections"),
        "processes alive": (len(r.alive()), f"of {len(r.procs)}"),
        "recovery after kill": (recovery, "s"),
        "charged lease losses": (charged, "attempts"),
        "failed attempts": (failed, "attempts"),
    }


LISTENER = """
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()
"""
POLL_MS = 3000


async def listen_connection_killed(r: Rig) -> Figures:
    """The worker's LISTEN connection is terminated just before a run is triggered: the run
    still starts within the poll interval; once it reconnects, within milliseconds again."""
    await r.engine.job("ping", max_concurrency=10)
    r.start(scheduler_interval_ms=str(POLL_MS))
    after_kill: list[float] = []
    for _ in range(3):
        pid = await r.until(LISTENER)
        await r.pool.execute("SELECT pg_terminate_backend($1)", pid)
        after_kill.append(await _pickup(r))
    await r.until(LISTENER)
    await asyncio.sleep(0.3)
    listening = await _pickup(r)
    return {
        "pickup with LISTEN killed (max)": (max(after_kill), "s"),
        "poll interval": (POLL_MS / 1000, "s"),
        "pickup with LISTEN back": (listening, "s"),
    }


async def _pickup(r: Rig) -> float:
    run = await r.engine.control.trigger(ORG, "ping", payload={"mode": "noop"})
    started = await r.until(
        "SELECT recorded_at FROM _reactor_jobs.journal WHERE run_id = $1"
        " AND type = 'AttemptStarted'",
        run.id,
    )
    triggered = await r.pool.fetchval(
        "SELECT recorded_at FROM _reactor_jobs.journal WHERE run_id = $1 AND position = 1", run.id
    )
    return float((started - triggered).total_seconds())


async def max_concurrency_under_kills(r: Rig) -> Figures:
    """maxConcurrency 2 across four worker processes, one killed -9 (and replaced) four
    times."""
    await r.engine.job("bounded", max_concurrency=2, max_attempts=10,
                       initial_delay_ms=100, max_delay_ms=200)  # fmt: skip
    runs = await r.engine.control.trigger_many(
        ORG, "bounded", [{"mode": "nap", "steps": 2, "seconds": 0.1}] * 24
    )
    for _ in range(4):
        r.start(worker_count="2")
    await r.until(_STARTED)
    for _ in range(4):
        await asyncio.sleep(1.0)
        r.kill(r.alive()[0])
        r.start(worker_count="2")
    statuses = await r.settle(runs, timeout=60)
    rows = await r.pool.fetch(
        "SELECT type, run_id FROM _reactor_jobs.journal WHERE run_id = ANY($1::text[])"
        " ORDER BY global_position",
        runs,
    )
    peak = peak_running([(row["type"], row["run_id"]) for row in rows])
    return {**_outcome(statuses, runs), "overlaps": (max(peak - 2, 0), "runs over the limit")}


CRON_TRIGGERS = ("trg_latest", "trg_all")


async def schedulers_killed_and_paused(r: Rig) -> Figures:
    """Three `reactor serve` schedule two every-second triggers (catch-up `latest` and `all`);
    one is paused (SIGSTOP) for 6.4 s, another killed -9 and replaced."""
    await r.engine.job("ticker", max_attempts=1, max_concurrency=10)
    for trigger, policy in zip(CRON_TRIGGERS, ("latest", "all"), strict=True):
        await r.pool.execute(
            "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, schedule, catch_up)"
            " VALUES ($1, $2, 'ticker', 'cron', '* * * * * *', $3)",
            trigger, ORG, policy,
        )  # fmt: skip
    serves = [r.start("serve", worker_count="2") for _ in range(3)]
    await r.until(_STARTED)
    await asyncio.sleep(2)
    caught = await _pause_mid_fire(r, serves[0])
    await asyncio.sleep(6.4)
    serves[0].send_signal(signal.SIGCONT)
    await asyncio.sleep(1)
    r.kill(serves[1])
    r.start("serve", worker_count="2")
    await asyncio.sleep(3)
    r.stop_all()
    figures: Figures = {"pause caught mid-fire": (float(caught), "bool")}
    missing = duplicates = 0
    late = 0.0
    for trigger in CRON_TRIGGERS:
        rows = await r.pool.fetch(
            "SELECT (data->'trigger'->>'scheduled_for')::timestamptz AS slot, recorded_at"
            " FROM _reactor_jobs.journal WHERE position = 1"
            " AND data->'trigger'->>'source' = $1",
            trigger,
        )
        slots = sorted(row["slot"] for row in rows)
        duplicates += len(slots) - len(set(slots))
        missing += sum(
            int((b - a).total_seconds()) - 1 for a, b in itertools.pairwise(sorted(set(slots)))
        )
        late = max([late, *((row["recorded_at"] - row["slot"]).total_seconds() for row in rows)])
        figures[f"{trigger} slots fired"] = (len(set(slots)), "slots")
    figures["slots missing"] = (missing, "slots")
    figures["slots fired twice"] = (duplicates, "slots")
    figures["latest fire"] = (late, "s late")
    return figures


# Whether any scheduler holds trg_latest's advisory lock (64-bit key: classid is the high
# half, objid the low one), i.e. is in the middle of firing it.
CRON_LOCK_HELD = """
WITH k AS (SELECT hashtextextended('reactor_jobs.cron/trg_latest', 0) AS key)
SELECT count(*) > 0 FROM pg_locks AS l, k
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.classid::bigint = (k.key >> 32) & 4294967295 AND l.objid::bigint = k.key & 4294967295
"""


async def _pause_mid_fire(r: Rig, proc: subprocess.Popen[bytes], tries: int = 40) -> bool:
    """SIGSTOP `proc` while it holds a trigger's lock mid-fire: stop it whenever some
    scheduler holds one; if the lock is gone a moment later it was another's: try again.
    Returns whether it was caught holding the lock (else it stays paused anyway)."""
    for _ in range(tries):
        await r.until(CRON_LOCK_HELD, timeout=20, every=0)  # a fire lasts milliseconds
        proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(0.2)
        if await r.pool.fetchval(CRON_LOCK_HELD):
            return True
        proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGSTOP)
    return False


async def worker_clocks_stepped(r: Rig) -> Figures:
    """Two workers whose clocks are an hour ahead and an hour behind (faketime) run sleeps,
    retries and heartbeats: every time they store is the database's, so a sleep still lasts
    its second, a retry waits its backoff and no lease is cut short or stretched by an hour.
    The worst error of any stored time against the database clock is the figure."""
    await r.engine.job("clocks", max_attempts=3, max_concurrency=10,
                       initial_delay_ms=500, max_delay_ms=500)  # fmt: skip
    payloads = [{"mode": "sleep", "seconds": 1}] * 6 + [{"mode": "flaky", "ok_on": 2}] * 6
    payloads += [{"mode": "slow", "seconds": 1.2}] * 4  # heartbeats at lease/3 = 0.5 s
    runs = await r.engine.control.trigger_many(ORG, "clocks", payloads)
    for shift in ("+1h", "-1h"):
        r.start(prefix=("faketime", "-f", shift), worker_count="8")
    statuses = await r.settle(runs, timeout=60)
    errors: list[float] = []
    for records in (await r.streams(runs)).values():
        for rec in records:
            errors += _clock_errors(rec)
    return {
        **_outcome(statuses, runs),
        "worst stored-time error": (max(errors, default=0.0), "s"),
        "lease expiries": (sum(isinstance(rec.event, ev.LeaseExpired)
                               for s in (await r.streams(runs)).values() for rec in s), "runs"),
    }  # fmt: skip


def _clock_errors(rec: Any) -> list[float]:
    """How far a stored time lies from what the database clock says it should be: a sleep's
    wake one second after, a retry's half a second after, a lease 1.5 s after it is set."""
    event, at = rec.event, rec.recorded_at
    expected: dict[type, tuple[str, float]]
    expected = {ev.SleepScheduled: ("wake_at", 1.0), ev.RetryScheduled: ("available_at", 0.5),
                ev.AttemptStarted: ("lease_expires_at", 1.5),
                ev.LeaseExtended: ("lease_expires_at", 1.5)}  # fmt: skip
    if type(event) not in expected:
        return []
    field, seconds = expected[type(event)]
    stored = getattr(event, field)
    if stored is None:  # a duration the database adds to its own now(): the time it stored
        later = {"wake_at": "delay_ms", "available_at": "delay_ms", "lease_expires_at": "lease_ms"}
        stored = at + timedelta(milliseconds=getattr(event, later[field]))
    return [abs((stored - at).total_seconds() - seconds)]


async def step_kills_its_host(r: Rig) -> Figures:
    """A run whose step kills its own process (the org's function host) while 20 other runs
    of the org share that host: the worker survives; the killer is charged each time and
    ends in the DLQ; the others are interrupted uncharged and complete."""
    await r.engine.job("killer", max_attempts=2, initial_delay_ms=100, max_delay_ms=100)
    await r.engine.job("bystander", max_attempts=2, max_concurrency=10)
    bystanders = await r.engine.control.trigger_many(
        ORG, "bystander", [{"mode": "slow", "seconds": 0.5}] * 20
    )
    worker = r.start(worker_count="12")
    await r.until("SELECT count(*) >= 4 FROM side_effects WHERE step = 'slow'")
    killer = await r.engine.control.trigger(ORG, "killer", payload={"mode": "suicide"})
    statuses = await r.settle([*bystanders, killer.id], timeout=60)
    streams = await r.streams(bystanders)
    events = [rec.event for records in streams.values() for rec in records]
    charged = sum(isinstance(e, ev.Failed) or (isinstance(e, ev.LeaseExpired) and e.charged)
                  for e in events)  # fmt: skip
    interrupted = sum(type(e).__name__ == "AttemptInterrupted" for e in events)
    reruns = await r.pool.fetchval(RERUN_COMPLETED_STEPS, bystanders)
    return {
        **_outcome(statuses, bystanders),
        "killer run dead-lettered": (float(statuses.get(killer.id) == "failed"), "bool"),
        "bystanders interrupted": (interrupted, "attempts"),
        "bystander attempts charged": (charged, "attempts"),
        "completed steps re-run": (reruns, "steps"),
        "worker alive": (float(worker.poll() is None), "bool"),
    }


Scenario = Callable[[Rig], Awaitable[Figures]]
SCENARIOS: dict[str, Scenario] = {
    "kill -9 under load": kill_9_under_load,
    "SIGSTOP past the lease": sigstop_past_the_lease,
    "Postgres restart under load": postgres_restart_under_load,
    "backends killed under load": backends_killed_under_load,
    "LISTEN connection killed": listen_connection_killed,
    "maxConcurrency under kills": max_concurrency_under_kills,
    "three schedulers, kill and pause": schedulers_killed_and_paused,
    "worker clock ±1 h": worker_clocks_stepped,
    "a step kills its host": step_kills_its_host,
}


async def run_scenario(cluster: Cluster, name: str) -> Figures:
    started = time.monotonic()
    async with rig(cluster) as the_rig:
        try:
            figures = await SCENARIOS[name](the_rig)
        except BaseException:
            print(the_rig.logs()[-6000:])
            raise
        for n, proc in enumerate(the_rig.procs):  # exited by itself: show why
            if proc.returncode not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                print(f"process {n} exited {proc.returncode}:")
                print(the_rig.log_path(n).read_text(errors="replace")[-4000:])
    figures["scenario time"] = (time.monotonic() - started, "s")
    return figures
