"""Bench job for resuming long runs: steps s0..s{n-1} (payload "steps"), each a checkpointed
no-op, so a retry replays them all from the journal. Returns time.perf_counter() taken at
its first line, as the noop bundle does."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


async def _nothing() -> None:
    return None


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> float:
    started = time.perf_counter()
    for i in range(int((await request.json())["steps"])):
        await ctx.step(f"s{i}", _nothing)
    return started
