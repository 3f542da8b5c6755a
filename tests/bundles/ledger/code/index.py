"""Audit test job: records an entry, may sleep (payload "nap"), then emits `<job>.done`, so
jobs subscribed to another job's topic form a lineage tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json() or {}
    entry = await ctx.step("record", lambda: {"amount": payload.get("amount", 0)})
    if payload.get("nap"):
        await ctx.sleep("settle", payload["nap"])
    await ctx.emit(f"{ctx.job}.done", {"amount": entry["amount"]})
    return Response.json({"amount": entry["amount"]})
