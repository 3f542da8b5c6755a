"""An application's jobs, defined in its own code.

Run a worker for them:   reactor worker --app jobs:app      (from this folder)
"""

from __future__ import annotations

import os
from typing import Any

from reactor_jobs import App, Retry, event

app = App(database_url=os.environ.get("REACTOR_DATABASE_URL"), org="acme")


def charge(order: dict[str, Any]) -> dict[str, Any]:
    """Stands in for a payment provider's API call (idempotent by order id)."""
    return {"charged": order["total"], "order_id": order["id"]}


@app.job(retry=Retry(max_attempts=5, initial_delay_ms=500), max_concurrency=5)
async def process_order(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    order = await ctx.step("validate", lambda: {"id": payload["orderId"], "total": 42})
    receipt: dict[str, Any] = await ctx.step("charge", lambda: charge(order))
    await ctx.emit("order.processed", {"orderId": order["id"]})
    return receipt


@app.job(triggers=[event("order.processed")])
async def send_receipt(ctx: Any, payload: dict[str, Any]) -> None:
    ctx.log.info("receipt sent", order=payload["orderId"])
