"""`reactor serve` (HTTP API + workers) and `reactor worker` (workers only): migrate, then
run until SIGINT or SIGTERM; in-flight attempts get a grace period to finish."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web

from reactor_jobs.config import Config
from reactor_jobs.database import embedded_pgdata, redact_url
from reactor_jobs.engine.errors import ReactorError
from reactor_jobs.http.app import AccessLogger, create_app
from reactor_jobs.node import Node


async def serve(config: Config) -> int:
    node = await Node.open(config)
    runner = web.AppRunner(
        create_app(node, config), handle_signals=False, access_log_class=AccessLogger
    )
    stop = asyncio.Event()
    workers = asyncio.create_task(node.run_serve(stop))
    try:
        await runner.setup()
        address = await _listen(runner, config.jobs.http.host, config.jobs.http.port)
        print(
            f"Reactor Jobs listening on {address} (database: {_where(config)}; "
            f"{config.jobs.worker_count} concurrent runs)",
            flush=True,
        )
        await _until_signalled(workers)
        print("Reactor Jobs stopping", flush=True)
    finally:
        # HTTP first: no new triggers, live streams end, in-flight requests finish; then
        # the workers get their grace period with the journal still open.
        await runner.cleanup()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
        await node.close()
    return 0


async def work(config: Config) -> int:
    node = await Node.open(config)
    stop = asyncio.Event()
    workers = asyncio.create_task(node.run_worker(stop))
    try:
        print(
            f"Reactor Jobs worker running {config.jobs.worker_count} concurrent runs "
            f"(database: {_where(config)})",
            flush=True,
        )
        await _until_signalled(workers)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
        await node.close()
    return 0


async def _listen(runner: web.AppRunner, host: str, port: int) -> str:
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        raise ReactorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Port 0 asks the OS for a free port; report the one actually bound.
    bound_port = runner.addresses[0][1] if runner.addresses else port
    return f"http://{host}:{bound_port}"


def _where(config: Config) -> str:
    if config.jobs.database_url:
        return redact_url(config.jobs.database_url)
    return f"embedded at {embedded_pgdata(config)}"


async def _until_signalled(workers: asyncio.Task[None]) -> None:
    """Wait for SIGINT/SIGTERM, or for the workers to stop on their own (an error)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait({signalled, workers}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if workers.done() and workers.exception() is not None:
            raise ReactorError(f"the workers stopped: {workers.exception()}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
