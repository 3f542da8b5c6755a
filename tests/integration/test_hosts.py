"""Function hosts with real processes: job code cannot reach the engine, is stopped at its
timeout or cancel even when it never yields, a host that dies fails only the attempt that
killed it, divergent code is caught live, and a host that breaks the protocol is replaced."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from reactor_jobs.config import HostSettings
from reactor_jobs.domain import events as ev
from reactor_jobs.engine import hosts as hosts_module
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.worker import Worker
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration

FAKE_HOST = Path(__file__).resolve().parent.parent / "hosts" / "fake_host.py"


async def hostile(engine: Engine, job: str, **policy: Any) -> None:
    if "hostile" not in {f.name for f in await engine.registry.list_functions(ORG)}:
        await engine.deploy("hostile")
    await engine.job(job, "hostile", **policy)


async def test_job_code_reaches_nothing_of_the_engine(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack of the issue: a job walks the worker's objects, environment and files."""
    secret = "jwt-secret-for-the-attack-test-0123456789"
    monkeypatch.setenv("REACTOR_JWT_SECRET", secret)
    monkeypatch.setenv("REACTOR_DATABASE_URL", engine.db_url)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "jwt_secret").write_text(secret)
    (data_dir / "jwt_secret").chmod(0o600)
    # Another org's row, which an engine-side attacker could read through the pool.
    await engine.pool.execute(
        "INSERT INTO side_effects (run_id, step, attempt) VALUES ('other-org', 'secret-row', 0)"
    )
    await hostile(engine, "attack")
    isolated = HostPool(HostSettings())  # no DSN: the production default
    worker = Worker(engine.pool, engine.journal, engine.registry, isolated, poll_ms=100)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace=0.2))
    try:
        files = [str(data_dir / "jwt_secret"), f"/proc/{os.getpid()}/environ"]
        run = await engine.control.trigger(
            ORG, "attack", payload={"mode": "attack", "files": files}
        )
        done = await engine.wait(run.id)
    finally:
        stop.set()
        await task
        await isolated.close()
    assert done.status == "completed", done.last_error
    seen = done.output
    text = msgspec.json.encode(seen).decode()
    assert secret not in text
    assert engine.db_url not in text and "postgresql://" not in text
    assert "secret-row" not in text
    for engine_type in ("Pool", "Journal", "Config", "Worker", "Registry", "HostPool"):
        assert engine_type not in seen["types"]
    assert seen["modules"] == []  # no database driver or web server loaded in the host
    assert set(seen["environ"]) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PWD"}
    assert all(value.startswith("unreadable") for value in seen["files"].values())
    assert seen["uid"] != 0
    for environ in seen["proc_environ"].values():  # no process it can see holds a secret
        assert secret not in environ and "postgresql://" not in environ
    assert str(os.getpid()) not in seen["proc_environ"]  # the worker is out of its sight


async def test_a_function_sees_only_its_reactor_fn_variables(engine: Engine) -> None:
    await hostile(engine, "env")
    engine.hosts.env["GREETING"] = "hello"
    engine.start_worker()
    run = await engine.control.trigger(ORG, "env", payload={"mode": "env"})
    done = await engine.wait(run.id)
    assert done.output == {"DSN": engine.db_url, "GREETING": "hello"}


@pytest.mark.parametrize("mode", ["busy_sync", "busy_async"])
async def test_code_that_never_yields_is_stopped_at_its_timeout(engine: Engine, mode: str) -> None:
    job = mode.replace("_", "-")
    await hostile(engine, job, max_attempts=1, timeout_ms=1000)
    engine.start_worker()
    host = await engine.hosts.host(ORG, "python")
    run = await engine.control.trigger(ORG, job, payload={"mode": mode})
    started = asyncio.get_running_loop().time()
    done = await engine.wait(run.id)
    elapsed = asyncio.get_running_loop().time() - started
    assert done.status == "failed"
    assert done.last_error is not None and done.last_error["type"] == "TimedOut"
    assert elapsed < 1.0 + 1.0 + 1.5  # the timeout, the stop grace, slack for a slow machine
    assert not host.alive  # the host that could not stop it was replaced
    replacement = await engine.hosts.host(ORG, "python")
    assert replacement is not host and replacement.alive


async def test_cancel_stops_code_that_never_yields(engine: Engine) -> None:
    await hostile(engine, "spin", timeout_ms=60_000)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "spin", payload={"mode": "busy_async"})
    await engine.wait(run.id, lambda r: r.status == "running")
    host = await engine.hosts.host(ORG, "python")
    await asyncio.sleep(0.2)
    await engine.control.cancel(ORG, run.id)
    worker = engine.workers[0][0]
    async with asyncio.timeout(2.5):  # the cancel, a second of grace, then the kill
        while run.id in worker.tasks or host.alive:
            await asyncio.sleep(0.02)
    assert (await engine.types(run.id))[-1] == "Cancelled"


async def test_a_host_that_dies_fails_only_the_attempt_that_killed_it(engine: Engine) -> None:
    await hostile(engine, "exit")
    await hostile(engine, "nap")
    engine.start_worker(concurrency=4)
    neighbour = await engine.control.trigger(ORG, "nap", payload={"mode": "nap", "seconds": 1.5})
    await engine.wait(neighbour.id, lambda r: r.status == "running")
    killer = await engine.control.trigger(ORG, "exit", payload={"mode": "exit"})
    done = await engine.wait(killer.id)
    # Interrupted once with its neighbour, then alone on a host of its own: blamed there,
    # charged each time, in the DLQ after maxAttempts (2).
    assert done.status == "failed"
    assert done.last_error is not None and done.last_error["type"] == "HostCrashed"
    calm = await engine.wait(neighbour.id)
    assert calm.status == "completed"
    assert calm.output == {"attempt": 1}  # interrupted, not charged: still its first try
    assert "AttemptInterrupted" in await engine.types(neighbour.id)
    killer_types = await engine.types(killer.id)
    assert (killer_types.count("AttemptInterrupted"), killer_types.count("Failed")) == (1, 2)


async def test_divergent_code_fails_live_as_nondeterministic(engine: Engine) -> None:
    await hostile(engine, "nondet", max_attempts=3)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "nondet", payload={"mode": "nondet"})
    done = await engine.wait(run.id)
    assert done.status == "failed"
    assert done.last_error is not None
    assert done.last_error["type"] == "nondeterministic"
    assert done.last_error["retryable"] is False
    assert done.last_error["message"] == (
        "position 3: recorded step `first`, code asked for step `second`"
    )
    failures = [r.event for r in await engine.journal.read_stream(run.id)]
    assert sum(isinstance(e, ev.Failed) for e in failures) == 2  # DLQ at once, no 3rd try


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("garbage", "not a JSON object"),
        ("stranger", "unknown attempt"),
        ("huge", "the limit is 1048576"),
        ("oversized-frame", "over the limit"),
    ],
)
async def test_a_host_that_breaks_the_protocol_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, behaviour: str, error: str
) -> None:
    monkeypatch.setitem(
        hosts_module.COMMANDS, "python", lambda: [sys.executable, str(FAKE_HOST), behaviour]
    )
    engine.hosts = HostPool(HostSettings(sandbox="none", user="", single_tenant=True))
    await hostile(engine, "victim", max_attempts=1)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "victim", payload={"mode": "noop"})
    done = await engine.wait(run.id)
    await engine.hosts.close()
    assert done.status == "failed"
    assert done.last_error is not None and error in done.last_error["message"]
    types = await engine.types(run.id)
    assert "StepCompleted" not in types  # nothing out of fence, nothing half-written


async def test_a_host_that_never_says_hello_is_killed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        hosts_module.COMMANDS, "python", lambda: [sys.executable, str(FAKE_HOST), "silent"]
    )
    engine.hosts = HostPool(
        HostSettings(sandbox="none", user="", single_tenant=True, start_timeout_s=0.5)
    )
    await hostile(engine, "mute", max_attempts=1)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "mute", payload={"mode": "noop"})
    done = await engine.wait(run.id)
    await engine.hosts.close()
    assert done.status == "failed"
    assert done.last_error is not None
    assert "did not start" in done.last_error["message"]


async def test_workers_use_a_remote_host_service_with_its_api_key(engine: Engine) -> None:
    """[jobs.functions] url: the same protocol over TCP, to `reactor functions host`."""
    port = _free_port()
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", "functions", "host",
        "--listen", f"127.0.0.1:{port}",
        env={**os.environ, "REACTOR_CONFIG": str(_config(engine, "the-key"))},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert service.stderr is not None
        assert b"serving on" in await asyncio.wait_for(service.stderr.readline(), 20)
        wrong = HostPool(HostSettings(url=f"tcp://127.0.0.1:{port}", api_key="nope"))
        with pytest.raises(hosts_module.HostUnavailable, match="refused"):
            await wrong.host(ORG, "python")
        engine.hosts = HostPool(
            HostSettings(url=f"tcp://127.0.0.1:{port}", api_key="the-key"),
            env={"DSN": engine.db_url},
        )
        await engine.job("remote")
        engine.start_worker()
        run = await engine.control.trigger(ORG, "remote", payload={"mode": "loop"})
        done = await engine.wait(run.id)
        assert (done.status, done.output) == ("completed", 3)
    finally:
        service.terminate()
        await service.wait()


def _config(engine: Engine, key: str) -> Path:
    path = Path(engine.tmp) / "reactor.toml"
    path.write_text(f'[jobs.functions]\napi_key = "{key}"\n')
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
