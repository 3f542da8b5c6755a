"""Bench job: a durable sleep of payload["seconds"], then one step that returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def _after() -> str:
    return "awake"


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> str:
    payload = await request.json()
    await ctx.sleep("nap", payload["seconds"])
    result: str = await ctx.step("after", _after)
    return result
