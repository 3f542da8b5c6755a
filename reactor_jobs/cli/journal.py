"""`reactor journal …`: export a run's stream and check the hash chains."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from reactor_jobs.cli.connection import open_pool
from reactor_jobs.config import Config
from reactor_jobs.engine.errors import RunNotFound
from reactor_jobs.engine.journal import Journal, export_line

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
        async for result in Journal(pool).verify_all():
            runs += 1
            events += result.events
            if not result.ok:
                tampered += 1
                print(_describe(result), flush=True)
    print(f"verified {runs} runs, {events} events: {tampered} tampered")
    return 0 if tampered == 0 else 1


def _describe(result: VerifyResult) -> str:
    if result.ok:
        return f"ok {result.run_id} ({result.events} events)"
    return f"TAMPERED {result.run_id} at position {result.first_bad_position}: {result.reason}"
