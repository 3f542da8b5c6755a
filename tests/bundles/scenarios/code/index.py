"""Test job: the payload's "mode" picks a behaviour. Every step execution that is not a
cache hit is counted in the table side_effects (run_id, step, attempt), via env["DSN"]."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from typing import Any

import asyncpg

from reactor_jobs.functions import NonRetryableError, Request, Response


async def effect(env: Mapping[str, str], ctx: Any, step: str, value: Any = None) -> Any:
    conn = await asyncpg.connect(env["DSN"])
    try:
        await conn.execute(
            "INSERT INTO side_effects (run_id, step, attempt) VALUES ($1, $2, $3)",
            ctx.run_id,
            step,
            ctx.attempt,
        )
    finally:
        await conn.close()
    return value


async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Any:
    p = await request.json()
    mode = p["mode"]
    if mode == "flaky":  # step "a" succeeds; step "b" fails until attempt p["ok_on"]
        a = await ctx.step("a", lambda: effect(env, ctx, "a", {"got": 1}))

        async def b() -> int:
            await effect(env, ctx, "b")
            if ctx.attempt < p["ok_on"]:
                raise RuntimeError(f"b fails on attempt {ctx.attempt}")
            return int(a["got"]) + 1

        return {"b": await ctx.step("b", b), "attempt": ctx.attempt}
    if mode == "sleep":
        before = await ctx.step("before", lambda: effect(env, ctx, "before", "x"))
        await ctx.sleep("nap", p["seconds"])
        after = await ctx.step("after", lambda: effect(env, ctx, "after", "y"))
        return before + after
    if mode == "state":  # state written before a failure is there on the retry
        if ctx.attempt == 1:
            await ctx.state.set("seen", {"first": ctx.attempt})
            raise RuntimeError("first attempt fails after writing state")
        return {"state": dict(ctx.state), "attempt": ctx.attempt}
    if mode == "fail":
        await ctx.step("a", lambda: effect(env, ctx, "a", 1))
        raise RuntimeError("always fails")
    if mode == "fatal":
        raise NonRetryableError("do not retry this")
    if mode == "slow":  # a long step: for cancel, timeouts and kill -9
        await ctx.step("first", lambda: effect(env, ctx, "first", 1))

        async def slow() -> int:
            await effect(env, ctx, "slow")
            await asyncio.sleep(p["seconds"])
            return 2

        await ctx.step("slow", slow)
        return "done"
    if mode == "suicide":  # a step that kills its own process, the function host
        await ctx.step("first", lambda: effect(env, ctx, "first", 1))

        async def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        return await ctx.step("die", die)
    if mode == "nap":  # steps that only take time, touching no database: for fault tests
        total = 0
        for i in range(p.get("steps", 2)):
            await ctx.step(f"nap{i}", lambda i=i: asyncio.sleep(p["seconds"], i))
            total += i
        return total
    if mode == "loop":
        total = 0
        for i in range(3):
            total += await ctx.step("add", lambda i=i: i)
        return total
    if mode == "emit":
        event_id = await ctx.emit(p.get("topic", "thing.happened"), {"n": 1})
        ctx.log.info("emitted", event_id=event_id)
        return event_id
    if mode == "emit_flaky":  # emits, then fails once: the retry replays the emit
        event_id = await ctx.emit(p["topic"], {"from": ctx.run_id})
        if ctx.attempt == 1:
            raise RuntimeError("fails after emitting")
        return event_id
    if mode == "log":  # lines before and after a sleep: the resume replays the first part
        ctx.log.info("starting", run=ctx.run_id)

        async def prepare() -> str:
            ctx.log.info("preparing")  # tied to the step
            return "ready"

        await ctx.step("prepare", prepare)
        ctx.log.info("going to sleep")
        await ctx.sleep("nap", p.get("seconds", 0.2))
        ctx.log.info("woke up")
        return await ctx.step("finish", lambda: "done")
    if mode == "noop":
        await ctx.step("noop", lambda: None)
        return None
    return Response.json({"unknown mode": mode}, status=400)
