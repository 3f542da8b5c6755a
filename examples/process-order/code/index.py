"""The spec's quickstart job, in Python. An order (a payload with `orderId`, from a manual
trigger, the webhook or an `order.created` event) is validated, charged and announced; a run
with no order at all (the cron trigger's, whose payload is only `scheduled_for`) does the
scheduled sweep instead and completes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response

from .orders import charge, is_scheduled, sweep, validate


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json()
    if is_scheduled(payload):
        slot = payload.get("scheduled_for") if isinstance(payload, dict) else None
        swept = await ctx.step("sweep", lambda: sweep(slot))
        ctx.log.info("scheduled sweep done", slot=slot, pending=swept["pending"])
        return Response.json({"success": True, "sweep": swept})

    order = await ctx.step("validate", lambda: validate(payload))
    await ctx.step("charge", lambda: charge(order))
    await ctx.emit("order.processed", {"orderId": order["id"]})

    return Response.json({"success": True, "orderId": order["id"]})
