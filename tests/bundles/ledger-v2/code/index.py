"""Version 2 of the audit test job: the step is renamed, so it cannot replay version 1's
runs (a replay check reports the first divergence at that step)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json() or {}
    entry = await ctx.step("book", lambda: {"amount": payload.get("amount", 0)})
    if payload.get("nap"):
        await ctx.sleep("settle", payload["nap"])
    await ctx.emit(f"{ctx.job}.done", {"amount": entry["amount"]})
    return Response.json({"amount": entry["amount"]})
