"""`client.functions`: create a function, deploy a bundle (a folder is packed here), list its
versions, promote one; and `client.events`: the events runs emitted (troubleshooting)."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

from reactor_jobs.bundles import PackError, pack_dir
from reactor_jobs.client.errors import InvalidBundle
from reactor_jobs.client.jobs import query, seg
from reactor_jobs.client.transport import Transport
from reactor_jobs.client.types import (
    Event,
    Function,
    FunctionCheck,
    Page,
    PromotedFunction,
    Version,
)

FUNCTIONS = "/functions/v1/_admin/functions"


def bundle_bytes(source: str | os.PathLike[str] | bytes) -> bytes:
    """A bundle archive: the bytes given, a folder packed, or a .tar.gz file read."""
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_dir():
        return path.read_bytes()
    try:
        return pack_dir(path)
    except PackError as exc:
        raise InvalidBundle(str(exc)) from None


class Functions:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create(self, name: str, *, runtime: str = "python") -> Function:
        body = {"name": name, "runtime": runtime}
        return await self._t.decode(Function, "POST", FUNCTIONS, json=body)

    async def list(self) -> builtins.list[Function]:
        return await self._t.items("functions", Function, FUNCTIONS)

    async def get(self, name: str) -> Function:
        return await self._t.decode(Function, "GET", f"{FUNCTIONS}/{seg(name)}")

    async def delete(self, name: str) -> None:
        """Delete the function and its versions; refused (ConflictError) while a job uses it."""
        await self._t.call("DELETE", f"{FUNCTIONS}/{seg(name)}")

    async def deploy(self, name: str, source: str | os.PathLike[str] | bytes) -> Version:
        """Upload a bundle as the function's next version; it is live once promoted.
        `source`: a folder holding function.json and code/, a .tar.gz of one, or its bytes."""
        return await self._t.decode(
            Version, "POST", f"{FUNCTIONS}/{seg(name)}/deploy",
            data=bundle_bytes(source), content_type="application/gzip",
        )  # fmt: skip

    async def promote(self, name: str, version: int | None = None) -> PromotedFunction:
        """Make `version` live (default: the latest deployed). The manifest triggers of the
        jobs bound to it follow the version's manifest: `.triggers` says how (a new
        webhook's URL is shown only there)."""
        body = {} if version is None else {"version": version}
        path = f"{FUNCTIONS}/{seg(name)}/promote"
        return await self._t.decode(PromotedFunction, "POST", path, json=body)

    async def versions(self, name: str) -> builtins.list[Version]:
        return await self._t.items("versions", Version, f"{FUNCTIONS}/{seg(name)}/versions")

    async def check(self, name: str, *, version: int) -> FunctionCheck:
        """Replay-check `version` against every run in flight of the function: would
        promoting it be safe? `.diverging` lists the runs it would not reproduce."""
        path = f"{FUNCTIONS}/{seg(name)}/check"
        return await self._t.decode(FunctionCheck, "POST", path, json={"version": version})


class Events:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self,
        *,
        topic: str | None = None,
        unconsumed: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Event]:
        """One page of the org's emitted events, newest first; `unconsumed=True` keeps only
        those no trigger has taken yet."""
        params = query(topic=topic, unconsumed=unconsumed or None, limit=limit, cursor=cursor)
        return await self._t.page("events", Event, "/jobs/v1/_admin/events", params=params)
