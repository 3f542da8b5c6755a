"""HTTP against the engine: manual triggers to completed runs, through `reactor serve`'s
API and straight through RunControl.

Two phases of the same closed loop run on the bench database, each with CLIENTS concurrent
clients that trigger a no-op run, wait for it to complete, and trigger the next:

- engine: the bench process calls RunControl.trigger, and a Worker in the same process runs
  the runs: one Python process does both, as `reactor serve` does;
- HTTP: a `reactor serve` subprocess (HTTP API + the same Worker settings) does the work, and
  the bench process sends `POST /jobs/v1/{name}/trigger` with a JWT over CLIENTS keep-alive
  connections (aiohttp), as a client of the API would.

Completion is seen the same way in both phases: one poller in the bench process reads the
runs projection every POLL_S for the pending ids. Latency is the run's Completed
recorded_at (database clock; same host) minus the wall clock just before the trigger call.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import ClientTimeout, TCPConnector

from bench.database import database_url
from bench.harness import (
    CONCURRENCY_CAP as CAP,
)
from bench.harness import (
    JOB_MAX_CONCURRENCY,
    ORG,
    Bench,
    Row,
    bench,
    ms,
    percentile,
)
from bench.journal import raw_insert_rate
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import load_config

JOB, EMAIL, PASSWORD = "http-noop", "bench@bench.test", "bench password 1"
CLIENTS = 16
WORKERS = 32
POLL_S = 0.002
LISTENING = re.compile(rb"listening on (http://\S+)")
_TERMINAL = """
SELECT run_id, status FROM _reactor_jobs.runs
 WHERE run_id = ANY($1::text[]) AND status IN ('completed', 'failed', 'cancelled')"""
_COMPLETED_AT = """
SELECT run_id, extract(epoch FROM recorded_at)::float8 AS at FROM _reactor_jobs.journal
 WHERE run_id = ANY($1::text[]) AND type = 'Completed'"""


@dataclass
class Config:
    seconds: float = 5.0
    warmup: float = 1.0

    def describe(self) -> list[str]:
        return [
            f"HTTP settings. Worker concurrency {WORKERS} in both phases, poll 1000 ms,"
            f" max_concurrency cap {CAP:,}; job max_concurrency {JOB_MAX_CONCURRENCY:,};",
            f"  {CLIENTS} closed-loop clients, each: trigger a noop run, wait for it to complete,"
            f" repeat; {self.warmup:.0f} s warm-up, then {self.seconds:.0f} s measured per phase.",
            "  engine: RunControl.trigger and a Worker in the bench process; HTTP: `reactor"
            " serve` does the work, the bench POSTs /jobs/v1/{name}/trigger (JWT, keep-alive).",
            f"  completion seen by one poller of the runs projection every {POLL_S * 1000:.0f}"
            " ms in both phases; latency = Completed.recorded_at - wall clock before the call;",
            "  trigger call = the trigger() call or the POST round trip alone.",
        ]


@dataclass
class Phase:
    runs: int = 0
    seconds: float = 0.0
    trigger_s: list[float] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds


class Completions:
    """Futures for runs someone waits on, resolved by one poller of the runs projection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.waiting: dict[str, asyncio.Future[str]] = {}

    def wait(self, run_id: str) -> asyncio.Future[str]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return future

    async def poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.waiting:
                for row in await self.pool.fetch(_TERMINAL, list(self.waiting)):
                    self.waiting.pop(row["run_id"]).set_result(row["status"])
            await asyncio.sleep(POLL_S)


Trigger = Callable[[], Awaitable[str]]


async def _closed_loop(cfg: Config, completions: Completions, trigger: Trigger) -> Phase:
    phase = Phase()
    measuring = asyncio.Event()
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            wall, before = time.time(), time.perf_counter()
            run_id = await trigger()
            took = time.perf_counter() - before
            status = await completions.wait(run_id)
            if status != "completed":
                raise RuntimeError(f"bench run {run_id} ended {status}")
            if measuring.is_set() and not stop.is_set():
                phase.runs += 1
                phase.trigger_s.append(took)
                phase.sent_at[run_id] = wall

    tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    await asyncio.sleep(cfg.warmup)
    measuring.set()
    start = time.perf_counter()
    await asyncio.sleep(cfg.seconds)
    stop.set()
    phase.seconds = time.perf_counter() - start
    await asyncio.gather(*tasks)
    completed = await completions.pool.fetch(_COMPLETED_AT, list(phase.sent_at))
    phase.latencies = [row["at"] - phase.sent_at[row["run_id"]] for row in completed]
    return phase


async def _sign_up(pool: asyncpg.Pool, data_dir: Path) -> None:
    """The bench's user, owner of the bench org, to sign in over HTTP."""
    auth = AuthService(pool, load_config(env={"REACTOR_DATA_DIR": str(data_dir)}))
    await auth.create_org(ORG, await auth.create_user(EMAIL, PASSWORD))


async def _start_server(url: str, data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = data_dir / "reactor.toml"
    config_file.write_text(
        f"[jobs]\nworker_count = {WORKERS}\nmax_concurrency_cap = {CAP}\n"
        f'data_dir = "{data_dir}"\n[jobs.http]\nport = 0\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    env.update(REACTOR_DATABASE_URL=url, REACTOR_CONFIG=str(config_file), PYTHONUNBUFFERED="1")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", "serve", env=env, cwd=data_dir,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    async with asyncio.timeout(60):
        while line := await server.stdout.readline():
            if match := LISTENING.search(line):
                assert server.stderr is not None  # access log lines: read, or the pipe fills
                for stream in (server.stdout, server.stderr):
                    _DRAINS.add(asyncio.get_running_loop().create_task(_drain(stream)))
                return server, match.group(1).decode()
    assert server.stderr is not None
    error = (await server.stderr.read()).decode().strip()
    raise RuntimeError(f"reactor serve exited before listening: {error}")


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def _stop(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await server.wait()
        except TimeoutError:
            server.kill()
            await server.wait()


def _phase_rows(label: str, p: Phase) -> list[Row]:
    return [
        (f"{label}: runs/s", f"{p.per_second:,.0f} runs/s ({p.runs:,} runs)", "", ""),
        (
            f"{label}: trigger -> completed, p50 / p99",
            f"{ms(percentile(p.latencies, 50))} / {ms(percentile(p.latencies, 99))}",
            "",
            "",
        ),
        (
            f"{label}: trigger call alone, p50 / p99",
            f"{ms(percentile(p.trigger_s, 50))} / {ms(percentile(p.trigger_s, 99))}",
            "",
            "",
        ),
    ]


async def http_figures(
    pool: asyncpg.Pool, cfg: Config, seconds: float
) -> tuple[list[Row], list[str]]:
    raw1 = await raw_insert_rate(pool, 1, seconds)
    rows: list[Row] = [
        ("reference: raw single-row INSERT commits, 1 conn", f"{raw1:,.0f} /s", "", "")
    ]
    url = database_url(await pool.fetchval("SELECT current_database()"))
    async with bench(pool) as b:  # the bench functions deployed
        async with b.session() as s:
            await s.job(JOB, "noop")
        data_dir = b.tmp
        await _sign_up(pool, data_dir)
        stop_polling = asyncio.Event()
        completions = Completions(pool)
        poller = asyncio.create_task(completions.poll(stop_polling))
        try:
            engine = await _engine_phase(b, cfg, completions)
            server, base = await _start_server(url, data_dir / "serve")
            try:
                http = await _http_phase(base, cfg, completions)
            finally:
                await _stop(server)
        finally:
            stop_polling.set()
            await poller
    rows += _phase_rows(f"engine ({CLIENTS} clients, RunControl.trigger)", engine)
    rows += _phase_rows(f"HTTP ({CLIENTS} keep-alive clients, POST trigger)", http)
    overhead = engine.per_second / http.per_second - 1
    p50_ratio = percentile(http.latencies, 50) / percentile(engine.latencies, 50) - 1
    rows += [
        (
            "HTTP cost per run over the engine's (runs/s ratio)",
            f"+{overhead:.0%}" if overhead >= 0 else f"{overhead:.0%}",
            "<= +30%",
            "yes" if overhead <= 0.30 else "NO",
        ),
        ("HTTP p50 latency over the engine's", f"{p50_ratio:+.0%}", "(for reference)", ""),
    ]
    return rows, cfg.describe()


async def _engine_phase(b: Bench, cfg: Config, completions: Completions) -> Phase:
    """The same loop with no HTTP: triggers and a Worker in one process, as `reactor serve`
    has them."""
    async with b.session(max_size=WORKERS + 12) as s, s.worker(WORKERS):

        async def trigger() -> str:
            return (await s.control.trigger(ORG, JOB)).id

        return await _closed_loop(cfg, completions, trigger)


async def _http_phase(base: str, cfg: Config, completions: Completions) -> Phase:
    connector = TCPConnector(limit=CLIENTS, keepalive_timeout=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=ClientTimeout(30)) as http:
        async with http.post(
            "/auth/v1/token", params={"grant_type": "password"},
            json={"email": EMAIL, "password": PASSWORD},
        ) as response:  # fmt: skip
            response.raise_for_status()
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Reactor-Org": ORG}
        path = f"/jobs/v1/{JOB}/trigger"

        async def trigger() -> str:
            async with http.post(path, json={"payload": None}, headers=headers) as response:
                if response.status != 201:
                    raise RuntimeError(f"trigger: {response.status} {await response.text()}")
                run_id: str = (await response.json())["id"]
                return run_id

        return await _closed_loop(cfg, completions, trigger)
