"""Version 3 of the audit test job: it fails before its first step, so it cannot replay
runs that recorded that step (a replay check reports it diverging there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request, Response


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Response:
    payload = await request.json() or {}
    if "amount" in payload:
        raise RuntimeError("version 3 refuses amounts")
    return Response.json({"amount": 0})
