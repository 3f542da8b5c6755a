"""Bench job: five checkpointed async steps; times each cache miss (bench.probe)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> int:
    probe = sys.modules.get("bench.probe")
    total = 0
    for i in range(5):

        async def step(i: int = i) -> int:
            return i

        name = f"s{i}"
        miss = name not in ctx.replayed.steps
        started = time.perf_counter()
        total += await ctx.step(name, step)
        if miss and probe is not None:
            probe.step_seconds.append(time.perf_counter() - started)
    return total
