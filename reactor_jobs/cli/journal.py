"""`reactor journal …`: dump and export streams, and check the hash chains (live or offline)."""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reactor_jobs.cli.connection import open_pool
from reactor_jobs.config import Config
from reactor_jobs.domain.errors import ReactorError, RunNotFound
from reactor_jobs.engine.journal import Journal, export_line
from reactor_jobs.projections.export import export_runs, verify_export

if TYPE_CHECKING:
    from reactor_jobs.engine.journal import VerifyResult


async def dump(config: Config, run_id: str) -> int:
    async with open_pool(config, max_size=1) as pool:
        events = await Journal(pool).read_stream(run_id)
    if not events:
        raise RunNotFound(run_id)
    out = sys.stdout.buffer
    for recorded in events:
        out.write(export_line(recorded) + b"\n")
    out.flush()
    return 0


async def verify(config: Config, run_id: str) -> int:
    async with open_pool(config, max_size=1) as pool:
        result = await Journal(pool).verify(run_id)
    if result.ok and result.events == 0:
        raise RunNotFound(run_id)
    print(_describe(result))
    return 0 if result.ok else 1


async def verify_all(config: Config) -> int:
    runs = events = tampered = 0
    async with open_pool(config, max_size=1) as pool:
        total = await pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal")
        started = time.perf_counter()
        async for result in Journal(pool).verify_all():
            runs += 1
            events += result.events
            if not result.ok:
                tampered += 1
                _progress_done()
                print(_describe(result), flush=True)
            _progress(events, total, started)
    _progress_done()
    print(f"verified {runs} runs, {events} events: {tampered} tampered")
    return 0 if tampered == 0 else 1


def verify_file(path: str) -> int:
    """Check an export offline: no database, only the file."""
    runs = events = tampered = 0
    with open(path, "rb") as file:
        for result in verify_export(file):
            runs += 1
            events += result.events
            if not result.ok:
                tampered += 1
                print(_describe(result), flush=True)
    print(f"verified {runs} runs, {events} events from {path}: {tampered} tampered")
    return 0 if tampered == 0 else 1


async def export(
    config: Config, org: str, job: str, since: str | None, until: str | None, output: str | None
) -> int:
    """A job's runs created in [since, until) as NDJSON, to a file or stdout."""
    start = _moment(since, "--since") or datetime(1970, 1, 1, tzinfo=UTC)
    end = _moment(until, "--until") or datetime(9999, 1, 1, tzinfo=UTC)
    async with open_pool(config, max_size=1) as pool:
        with open(output, "wb") if output else contextlib.nullcontext(sys.stdout.buffer) as out:
            count = 0
            async for line in export_runs(pool, org, job, start, end):
                out.write(line)
                count += 1
    print(f"exported {count} events", file=sys.stderr)
    return 0


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReactorError(f"{option}: expected an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _progress(done: int, total: int, started: float) -> None:
    if sys.stderr.isatty() and total:
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(
            f"\r{done:,}/{total:,} events ({done / total:.0%}, {rate:,.0f}/s)",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _progress_done() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)


def _describe(result: VerifyResult) -> str:
    if result.ok:
        return f"ok {result.run_id} ({result.events} events)"
    return f"TAMPERED {result.run_id} at position {result.first_bad_position}: {result.reason}"
