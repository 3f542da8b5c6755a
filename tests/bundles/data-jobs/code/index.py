"""Test job for ctx.data: the payload's "mode" picks a behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactor_jobs.functions import Request
from reactor_jobs.hosts.sdk_data import DataRequestError


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Any:
    p = await request.json()
    mode = p["mode"]
    orders = ctx.data.from_("orders")
    if mode == "read_write":  # a keyed read, an insert; fails until attempt p["ok_on"]
        read = await orders.select("id,note").eq("id", p["id"])
        wrote = await ctx.data.from_("orders").insert({"id": p["id"], "note": f"try {ctx.attempt}"})
        if ctx.attempt < p.get("ok_on", 1):
            raise RuntimeError(f"fails after the write on attempt {ctx.attempt}")
        total = await ctx.data.rpc("order_count")
        return {"read": read.data, "wrote": wrote.data, "count": total.data}
    if mode == "in_step":  # plain calls inside a step: nothing journaled for them

        async def work() -> Any:
            await ctx.data.from_("orders").insert({"id": p["id"], "note": "in step"})
            return (await ctx.data.from_("orders").select("id").eq("id", p["id"])).data

        return await ctx.step("work", work)
    if mode == "bad":  # a refused call reaches the code as DataRequestError
        try:
            await ctx.data.from_("nosuch").select("*")
        except DataRequestError as exc:
            return {"code": exc.code, "message": exc.message}
    if mode == "update_delete":
        await orders.upsert([{"id": 1, "note": "u1"}, {"id": 2, "note": "u2"}], on_conflict="id")
        changed = await ctx.data.from_("orders").update({"note": "x"}).eq("id", 1)
        gone = await ctx.data.from_("orders").delete().in_("id", [2])
        left = await ctx.data.from_("orders").select("id,note", count="exact").order("id")
        return {"changed": changed.data, "gone": gone.data, "left": left.data, "n": left.count}
    if mode == "too_big":  # results over the 1 MiB a record may hold, read and written
        codes: list[str | None] = []
        calls: list[Any] = [
            lambda: ctx.data.from_("big").select("t"),
            lambda: ctx.data.rpc("fill_big", {"k": p["id"]}),
        ]
        for call in calls:
            try:
                await call()
                codes.append(None)
            except DataRequestError as exc:
                codes.append(exc.code)
        return codes
    raise ValueError(mode)
