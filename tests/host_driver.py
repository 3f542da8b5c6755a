"""The worker's side of docs/host-protocol.md, small enough for tests: listen on a Unix
socket, start a host program, read its frames and send ours. Messages are routed by attempt
id so tests can run several attempts on one connection."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import secrets
import struct
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from reactor_jobs.functions.bundle import pack_dir

_ids = itertools.count(1)


class HostDriver:
    def __init__(self, argv: Sequence[str], workdir: Path) -> None:
        self.argv, self.workdir = list(argv), workdir
        self.token = secrets.token_hex(16)
        self.process: asyncio.subprocess.Process | None = None
        self.hello: dict[str, Any] = {}
        self._server: asyncio.Server | None = None
        self._connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )
        self._writer: asyncio.StreamWriter | None = None
        self._queues: defaultdict[str | None, asyncio.Queue[dict[str, Any]]] = defaultdict(
            asyncio.Queue
        )
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def start(self, env: dict[str, str] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = str(self.workdir / "host.sock")
        self._server = await asyncio.start_unix_server(self._accept, path=path)
        sent_env = {"PATH": os.environ.get("PATH", ""), **(env or {})}
        sent_env.update(REACTOR_HOST_SOCKET=path, REACTOR_HOST_TOKEN=self.token)
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.workdir, env=sent_env, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(10):
            reader, self._writer = await self._connected
            self.hello = await self._read(reader)
        self._reader_task = asyncio.create_task(self._read_all(reader))
        await self.send({"t": "welcome", "protocol": 1})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connected.set_result((reader, writer))

    async def _read(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        assert size <= 4 * 1024 * 1024, f"host frame of {size} bytes"
        message = msgspec.json.decode(await reader.readexactly(size))
        assert isinstance(message, dict) and isinstance(message.get("t"), str), message
        return message

    async def _read_all(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await self._read(reader)
                await self._queues[message.get("id")].put(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        body = msgspec.json.encode(message)
        self._writer.write(struct.pack(">I", len(body)) + body)
        await self._writer.drain()

    async def next(self, attempt: str | None = None, timeout: float = 10) -> dict[str, Any]:
        """The next message of an attempt (None: messages without an id, like `loaded`)."""
        async with asyncio.timeout(timeout):
            return await self._queues[attempt].get()

    async def load(self, bundle: Path, fn: str | None = None) -> dict[str, Any]:
        archive = pack_dir(bundle)
        fn = fn or f"fn{next(_ids)}"
        await self.send({
            "t": "load", "fn": fn, "name": bundle.name, "version": 1,
            "sha256": hashlib.sha256(archive).hexdigest(),
            "archive": base64.b64encode(archive).decode(),
        })  # fmt: skip
        return await self.next(None)

    async def invoke(
        self,
        fn: str,
        payload: Any,
        *,
        attempt: int = 1,
        recorded: list[dict[str, Any]] | None = None,
        state: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        attempt_id = f"att_{next(_ids)}"
        await self.send({
            "t": "invoke", "id": attempt_id, "fn": fn, "timeout_ms": 60000, "env": env or {},
            "run": {"run_id": f"run_{attempt_id}", "attempt": attempt, "job": "j", "org": "o",
                    "trigger": {"kind": "manual"}, "payload": payload},
            "request": {"method": "POST", "url": "/jobs/v1/j/trigger", "headers": {},
                        "content_type": "application/json", "payload": payload},
            "state": state or {}, "recorded": recorded or [],
        })  # fmt: skip
        return attempt_id

    async def ack(self, message: dict[str, Any], **fields: Any) -> None:
        await self.send({"t": "ack", "id": message["id"], "req": message["req"], **fields})

    async def run_acking(self, attempt_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Ack every proposal of the attempt until its `done`: (done, messages before it)."""
        seen: list[dict[str, Any]] = []
        while True:
            message = await self.next(attempt_id)
            if message["t"] == "done":
                return message, seen
            seen.append(message)
            if message["t"] in ("step", "state", "emit", "sleep"):
                extra = {"event_id": f"evt_{message['req']}"} if message["t"] == "emit" else {}
                await self.ack(message, **extra)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.returncode is None:
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            await self.process.stderr.read()
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._server is not None:
            self._server.close()
