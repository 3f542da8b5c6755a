"""Bench job for the audit figures: one checkpointed step per item, the running total in
state every 10 items, an emit every 25. bench/audit.py writes a long run of it straight
into the journal, event for event what a worker would record (see `recording`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATE_EVERY, EMIT_EVERY = 10, 25


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> dict[str, int]:
    items = (await request.json())["items"]
    total = 0
    for i in range(items):
        entry = await ctx.step(f"item-{i}", lambda i=i: {"i": i, "amount": i * 3})
        total += entry["amount"]
        if i % STATE_EVERY == STATE_EVERY - 1:
            await ctx.state.set("total", total)
        if i % EMIT_EVERY == EMIT_EVERY - 1:
            await ctx.emit("ledger.batch", {"upto": i, "total": total})
    return {"items": items, "total": total}
