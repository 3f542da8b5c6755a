"""`reactor serve` (HTTP API + workers) and `reactor worker` (workers only): migrate, then
run until SIGINT or SIGTERM; in-flight attempts get a grace period to finish.

Dev mode (the embedded Postgres, or `reactor serve --dev`): on a database with no users,
serve creates admin@localhost owning org `default`, with a random password written to
<data_dir>/dev-admin-password (mode 0600), and prints how to sign in. The password itself
never goes to the terminal or a log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import msgspec
from aiohttp import web

from reactor_jobs.auth.bootstrap import DEV_ADMIN_EMAIL, DEV_ORG, ensure_dev_admin
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import Config
from reactor_jobs.database import embedded_pgdata, redact_url
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.http.app import app_runner, create_app
from reactor_jobs.node import Node
from reactor_jobs.telemetry.http import start_metrics_listener
from reactor_jobs.telemetry.logs import configure_logging
from reactor_jobs.telemetry.metrics import METRICS
from reactor_jobs.telemetry.tracing import TRACING

DEV_PASSWORD_FILE = "dev-admin-password"
log = logging.getLogger("reactor_jobs.serve")


def with_org_creation(config: Config, dev: bool) -> Config:
    """An unset jobs.auth.org_creation: any user may create orgs in dev mode, else admins."""
    auth = config.jobs.auth
    if auth.org_creation is not None:
        return config
    auth = msgspec.structs.replace(auth, org_creation="any" if dev else "admins")
    return msgspec.structs.replace(config, jobs=msgspec.structs.replace(config.jobs, auth=auth))


def observe(config: Config) -> None:
    """Logs, metrics and traces as configured (README, "Metrics and traces")."""
    configure_logging(config.jobs.log_format)
    METRICS.configure(config.jobs.metrics.max_series)
    TRACING.configure(config)


def say(config: Config, message: str) -> None:
    """A line for the operator: on stdout, or a JSON log line with --log-format json."""
    if config.jobs.log_format == "json":
        log.info("%s", message)
    else:
        print(message, flush=True)


async def serve(config: Config, *, dev: bool = False) -> int:
    config = with_org_creation(config, dev or not config.jobs.database_url)
    observe(config)
    with _signals() as signalled:  # from the start: a SIGTERM must always stop cleanly
        node = await Node.open(config, create_embedded=True)
        runner = app_runner(create_app(node, config), config, handle_signals=False)
        metrics: web.AppRunner | None = None
        stop = asyncio.Event()
        workers = asyncio.create_task(node.run_serve(stop))
        try:
            await runner.setup()
            address = await _listen(runner, config.jobs.http.host, config.jobs.http.port)
            metrics = await start_metrics_listener(node, config.jobs.metrics)
            say(
                config,
                f"Reactor Jobs listening on {address} (database: {_where(config)}; "
                f"{config.jobs.worker_count} concurrent runs)",
            )
            if dev or not config.jobs.database_url:
                await _dev_sign_in(node, config, address)
            await _until_signalled(workers, signalled)
            say(config, "Reactor Jobs stopping")
        finally:
            # HTTP first: no new triggers, live streams end, in-flight requests finish; then
            # the workers get their grace period with the journal still open.
            await runner.cleanup()
            if metrics is not None:
                await metrics.cleanup()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
            await node.close()
            TRACING.shutdown()  # flushes the spans not exported yet
    return 0


async def work(config: Config) -> int:
    observe(config)
    with _signals() as signalled:
        node = await Node.open(config)
        metrics: web.AppRunner | None = None
        stop = asyncio.Event()
        workers = asyncio.create_task(node.run_worker(stop))
        try:
            metrics = await start_metrics_listener(node, config.jobs.metrics)
            say(
                config,
                f"Reactor Jobs worker running {config.jobs.worker_count} concurrent runs "
                f"(database: {_where(config)})",
            )
            await _until_signalled(workers, signalled)
        finally:
            if metrics is not None:
                await metrics.cleanup()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
            await node.close()
            TRACING.shutdown()
    return 0


async def work_app(config: Config, target: str) -> int:
    """`reactor worker --app pkg.module:app`: the app's code jobs, in this process."""
    from reactor_jobs.app import load_app

    app = load_app(target)
    observe(config)
    with _signals() as signalled:
        await app.start()
        stop = asyncio.Event()
        workers = asyncio.create_task(app.worker(config.jobs.worker_count, stop))
        try:
            names = ", ".join(sorted(app.jobs)) or "none"
            say(
                config,
                f"Reactor Jobs worker for {target} (org {app.org}; jobs: {names}) running "
                f"{config.jobs.worker_count} concurrent runs",
            )
            await _until_signalled(workers, signalled)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
            await app.close()
            TRACING.shutdown()
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


async def _dev_sign_in(node: Node, config: Config, address: str) -> None:
    """Bootstrap the dev admin on a fresh database; say how to sign in while its file lasts."""
    password_file = Path(config.jobs.data_dir) / DEV_PASSWORD_FILE
    created = await ensure_dev_admin(AuthService(node.pool, config))
    if created is not None:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.unlink(missing_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(created[1] + "\n")
        say(
            config,
            f"Dev mode: created user {DEV_ADMIN_EMAIL}, owner of org {DEV_ORG}; "
            f"its password is in {password_file}",
        )
    if password_file.exists():
        say(
            config,
            f"Sign in: reactor login --url {address} --email {DEV_ADMIN_EMAIL} "
            f"--password-stdin < {password_file}",
        )


def _where(config: Config) -> str:
    if config.jobs.database_url:
        return redact_url(config.jobs.database_url)
    return f"embedded at {embedded_pgdata(config)}"


@contextlib.contextmanager
def _signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT/SIGTERM while the block runs (instead of dying on the spot,
    which would skip every cleanup, the embedded Postgres's too)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _until_signalled(workers: asyncio.Task[None], signalled: asyncio.Event) -> None:
    """Wait for SIGINT/SIGTERM, or for the workers to stop on their own (an error)."""
    waiting = asyncio.create_task(signalled.wait())
    await asyncio.wait({waiting, workers}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if workers.done() and workers.exception() is not None:
        raise ReactorError(f"the workers stopped: {workers.exception()}")
