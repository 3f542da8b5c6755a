"""Bench job: one checkpointed no-op step. Returns time.perf_counter() taken at its first
line (CLOCK_MONOTONIC, system-wide on Linux, so the bench process can compare it with its
own clock): the run's output tells the bench when the body started, across the host's
process boundary."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


async def _nothing() -> None:
    return None


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> float:
    started = time.perf_counter()
    await ctx.step("noop", _nothing)
    return started
