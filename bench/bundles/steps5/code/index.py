"""Bench job: five checkpointed async steps. Returns the durations (seconds, perf_counter)
of its cache-miss `await ctx.step(...)` calls as job code sees them: the step function,
the proposal to the worker, its append and the acknowledgement. A step whose output was
recorded by an earlier attempt does not run its function and is not timed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> list[float]:
    misses: list[float] = []
    ran: list[int] = []  # the steps whose functions ran: cache misses
    for i in range(5):

        async def step(i: int = i) -> int:
            ran.append(i)
            return i

        started = time.perf_counter()
        await ctx.step(f"s{i}", step)
        if ran and ran[-1] == i:
            misses.append(time.perf_counter() - started)
    return misses
