"""Version 2 of process-order: a different program, to show runs stay on their version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json()
    checked = await ctx.step("validate-v2", lambda: {"id": payload["orderId"]})
    return Response.json({"version": 2, "orderId": checked["id"]})
