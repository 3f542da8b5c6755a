"""Test job that behaves as an attacker or a broken program would: `mode` picks how."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _snoop(targets: list[str]) -> dict[str, Any]:
    """Everything a job could reach of its worker: objects, environment, files, processes."""
    seen: dict[str, Any] = {"types": sorted({type(o).__name__ for o in gc.get_objects()})}
    seen["modules"] = sorted(m for m in sys.modules if m.startswith(("asyncpg", "aiohttp")))
    seen["environ"] = dict(os.environ)
    seen["files"] = {}
    for target in targets:
        try:
            seen["files"][target] = Path(target).read_text()[:2000]
        except OSError as exc:
            seen["files"][target] = f"unreadable: {type(exc).__name__}"
    environs = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                environs[pid] = (
                    Path(f"/proc/{pid}/environ")
                    .read_bytes()
                    .decode(errors="replace")
                    .replace("\x00", "\n")
                )
    seen["proc_environ"] = environs
    seen["uid"] = os.getuid()
    return seen


async def fetch(request: Any, env: Mapping[str, str], ctx: Any) -> Any:
    p = await request.json()
    mode = p["mode"]
    if mode == "attack":
        return _snoop(p.get("files", []))
    if mode == "busy_sync":  # a step that never yields, in a thread

        def spin() -> None:
            while True:
                pass

        await ctx.step("spin", spin)
    if mode == "busy_async":  # never yields to the host's event loop at all
        while True:
            pass
    if mode == "exit":
        await ctx.step("before", lambda: 1)
        os._exit(3)
    if mode == "nap":  # a neighbour: takes a while, then completes
        await asyncio.sleep(p.get("seconds", 1))
        return {"attempt": ctx.attempt}
    if mode == "nondet":  # the first try records step "first"; the retry asks for "second"
        name = "first" if ctx.attempt == 1 else "second"
        await ctx.step(name, lambda: 1)
        if ctx.attempt == 1:
            raise RuntimeError("fails once")
        return name
    if mode == "env":
        return dict(env)
    return None
