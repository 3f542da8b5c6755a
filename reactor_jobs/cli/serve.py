"""`reactor serve`: migrate, then serve HTTP until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from reactor_jobs.config import Config
from reactor_jobs.database import (
    connect,
    create_pool,
    embedded_pgdata,
    redact_url,
    resolve_database_url,
)
from reactor_jobs.engine.errors import ReactorError
from reactor_jobs.engine.schema import migrate
from reactor_jobs.http.app import create_app


async def serve(config: Config) -> int:
    url = await resolve_database_url(config)
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url, min_size=1, max_size=config.jobs.worker_count + 4)
    runner = web.AppRunner(create_app(pool, config), handle_signals=False)
    try:
        await runner.setup()
        address = await _listen(runner, config.jobs.http.host, config.jobs.http.port)
        print(f"Reactor Jobs listening on {address} (database: {_where(config)})", flush=True)
        await _until_signalled()
        print("Reactor Jobs stopping", flush=True)
    finally:
        await runner.cleanup()
        await pool.close()
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


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
