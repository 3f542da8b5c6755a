"""The Python function host: runs job code for one worker, outside every engine process.

Started by a worker (`python -m reactor_jobs.hosts.python`) with REACTOR_HOST_SOCKET and
REACTOR_HOST_TOKEN, as an unprivileged user in a folder of its own; it connects back, loads
bundles on request and runs many attempts at once, multiplexed on one connection
(docs/host-protocol.md). It holds no database connection, no configuration and no secret:
whatever the code does, it can only propose decisions, which the worker checks.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import io
import itertools
import os
import sys
import threading
from pathlib import Path
from typing import Any

from reactor_jobs.functions.errors import BundleError
from reactor_jobs.functions.messages import Request, to_output
from reactor_jobs.functions.runtime import BundleLoader, Handler
from reactor_jobs.functions.values import StepOutputError, to_json_value
from reactor_jobs.hosts import protocol
from reactor_jobs.hosts.sdk import (
    JobContext,
    Refused,
    Suspend,
    current_step,
    error_info,
    step_threads,
)

_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "reactor_attempt", default=None
)


class _Attempt:
    """One invocation running in this host: its task and its pending proposals."""

    def __init__(self, session: Session, attempt_id: str) -> None:
        self.session, self.id = session, attempt_id
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.numbers = itertools.count(1)
        self.task: asyncio.Task[None] | None = None

    async def propose(self, message: dict[str, Any]) -> dict[str, Any]:
        req = next(self.numbers)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[req] = future
        try:
            self.session.send({**message, "id": self.id, "req": req})
            answer = await future
        finally:
            self.pending.pop(req, None)
        if answer["t"] == "nack":
            error = answer.get("error") or {}
            raise Refused(str(error.get("message") or "the worker refused this decision"))
        return answer

    def log(
        self, level: str, message: str, fields: dict[str, Any] | None, step: str | None
    ) -> None:
        line: dict[str, Any] = {
            "t": "log",
            "id": self.id,
            "level": level,
            "message": message,
            "step": step,
        }
        if fields:
            line["fields"] = fields
        self.session.send(line)


class Session:
    """One worker connection: loads, invocations, answers to proposals, cancels."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cache_dir: Path
    ) -> None:
        self.reader, self.writer = reader, writer
        self.loader = BundleLoader(cache_dir)
        self.handlers: dict[str, Handler] = {}
        self.attempts: dict[str, _Attempt] = {}
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.outbox = protocol.Outbox(writer)

    def send(self, message: dict[str, Any]) -> None:
        if threading.get_ident() == self.thread:
            self.outbox.put(message)
        else:  # a print from a step running in a thread
            self.loop.call_soon_threadsafe(self.outbox.put, message)

    async def serve(self) -> None:
        while True:
            message = await protocol.read_message(self.reader, protocol.TO_HOST_MAX)
            if message is None:
                return
            await self._dispatch(message)
            await self.writer.drain()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "load":
            self._load(message)
        elif kind == "invoke":
            self._invoke(message)
        elif kind in ("ack", "nack"):
            attempt = self.attempts.get(str(message.get("id")))
            future = None if attempt is None else attempt.pending.get(message.get("req", -1))
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "cancel":
            attempt = self.attempts.get(str(message.get("id")))
            if attempt is not None and attempt.task is not None:
                attempt.task.cancel()

    def _load(self, message: dict[str, Any]) -> None:
        fn = str(message.get("fn"))
        try:
            archive = base64.b64decode(message["archive"], validate=True)
            self.handlers[fn] = self.loader.load(
                str(message["name"]), int(message["version"]), str(message["sha256"]), archive
            )
        except (BundleError, KeyError, ValueError, TypeError) as exc:
            text = exc.message if isinstance(exc, BundleError) else f"bad load message: {exc}"
            self.send(
                {"t": "load_failed", "fn": fn, "error": {"type": "BundleError", "message": text}}
            )
            return
        self.send({"t": "loaded", "fn": fn})

    def _invoke(self, message: dict[str, Any]) -> None:
        attempt = _Attempt(self, str(message.get("id")))
        self.attempts[attempt.id] = attempt
        attempt.task = asyncio.create_task(self._run(attempt, message))

    async def _run(self, attempt: _Attempt, message: dict[str, Any]) -> None:
        _attempt.set(attempt)
        threads: list[int] = []
        step_threads.set(threads)
        try:
            done = await self._outcome(attempt, message)
        finally:
            del self.attempts[attempt.id]
        if threads:  # code this host cannot stop is still running: it must be replaced
            done["stuck"] = len(threads)
        self.send({"t": "done", "id": attempt.id, **done})

    async def _outcome(self, attempt: _Attempt, message: dict[str, Any]) -> dict[str, Any]:
        handler = self.handlers.get(str(message.get("fn")))
        if handler is None:
            error = {"type": "BundleError", "message": "the function is not loaded"}
            return {"outcome": "failed", "error": {**error, "retryable": False}}
        ctx = JobContext(message, attempt)
        request = _request(message.get("request") or {})
        env = {str(k): str(v) for k, v in (message.get("env") or {}).items()}
        try:
            result = await handler(request, env, ctx)
            output = to_json_value(to_output(result), "the run's output")
        except Suspend:
            return {"outcome": "suspended"}
        except asyncio.CancelledError:
            error = {"type": "Cancelled", "message": "the worker stopped this attempt"}
            return {"outcome": "failed", "error": error}
        except StepOutputError as exc:  # the same code would produce it again
            return {"outcome": "failed", "error": {**error_info(exc), "retryable": False}}
        except TypeError as exc:
            if "JSON cannot hold" in str(exc):
                return {"outcome": "failed", "error": {**error_info(exc), "retryable": False}}
            return {"outcome": "failed", "error": error_info(exc)}
        except Exception as exc:
            return {"outcome": "failed", "error": error_info(exc)}
        return {"outcome": "completed", "output": output}


def _request(fields: dict[str, Any]) -> Request:
    headers = fields.get("headers") or {}
    return Request.from_payload(
        fields.get("payload"),
        headers={str(k): str(v) for k, v in headers.items()},
        content_type=str(fields.get("content_type") or "application/json"),
        method=str(fields.get("method") or "POST"),
        url=str(fields.get("url") or "reactor://jobs/"),
    )


class _Output(io.TextIOBase):
    """print() inside an attempt becomes its log lines; outside one, the host's stderr."""

    def __init__(self, level: str) -> None:
        self.level = level
        self._partial: dict[str, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        attempt = _attempt.get()
        if attempt is None:
            return sys.__stderr__.write(text) if sys.__stderr__ else len(text)
        buffered = self._partial.pop(attempt.id, "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            attempt.log(self.level, line[:16_000], None, current_step.get())
        if rest:
            self._partial[attempt.id] = rest[-16_000:]
        return len(text)


async def _connect() -> None:
    path = os.environ.pop("REACTOR_HOST_SOCKET", "")
    token = os.environ.pop("REACTOR_HOST_TOKEN", "")
    if not path:
        raise SystemExit("reactor function host: REACTOR_HOST_SOCKET is not set")
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(
        protocol.encode(
            {
                "t": "hello",
                "protocol": protocol.PROTOCOL,
                "runtime": "python",
                "token": token,
                "pid": os.getpid(),
            }
        )
    )
    welcome = await protocol.read_message(reader, protocol.TO_HOST_MAX)
    if welcome is None or welcome.get("t") != "welcome":
        raise SystemExit("reactor function host: the worker did not welcome this host")
    await Session(reader, writer, Path.cwd() / "bundles").serve()


def capture_output() -> None:
    """print() and stderr writes inside an attempt become its log lines."""
    sys.stdout = _Output("info")
    sys.stderr = _Output("error")


def main() -> None:
    capture_output()
    try:
        asyncio.run(_connect())
    except (ConnectionError, protocol.ProtocolError) as exc:
        sys.__stderr__.write(f"reactor function host: {exc}\n")  # type: ignore[union-attr]
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
