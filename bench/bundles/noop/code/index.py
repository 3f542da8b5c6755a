"""Bench job: one checkpointed no-op step; records when the body starts (bench.probe)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


async def _nothing() -> None:
    return None


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> None:
    probe = sys.modules.get("bench.probe")
    if probe is not None:
        probe.started(ctx.run_id)
    await ctx.step("noop", _nothing)
