"""The spec's quickstart job, in Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response

from .orders import charge, validate


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json()

    order = await ctx.step("validate", lambda: validate(payload))
    await ctx.step("charge", lambda: charge(order))
    await ctx.emit("order.processed", {"orderId": order["id"]})

    return Response.json({"success": True, "orderId": order["id"]})
