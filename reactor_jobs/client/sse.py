"""A Server-Sent Events decoder (the WHATWG `text/event-stream` rules), fed raw chunks.

Written here rather than taken from a package: the aiohttp SSE clients on PyPI
(aiohttp-sse-client, aiohttp-sse-client2, aiosseclient) are unmaintained and each owns the
HTTP request and its reconnect loop, while this client must send its own credentials,
refresh them, and resume with Last-Event-ID itself. The format is small: this is it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec


class SseMessage(msgspec.Struct, frozen=True):
    event: str
    data: str
    id: str | None


class SseDecoder:
    """Bytes in, complete messages out. Lines may end in LF, CRLF or CR."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self.last_id: str | None = None  # persists across messages, as the spec says
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SseMessage]:
        self._buffer += chunk
        out: list[SseMessage] = []
        while (line := self._next_line()) is not None:
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def _next_line(self) -> str | None:
        buffer = self._buffer
        cut = min((i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0), default=-1)
        # A CR at the very end may be the first half of a CRLF still on its way.
        if cut < 0 or (buffer[cut : cut + 1] == b"\r" and cut == len(buffer) - 1):
            return None
        end = cut + 2 if buffer[cut : cut + 2] == b"\r\n" else cut + 1
        line, self._buffer = buffer[:cut], buffer[end:]
        return line.decode("utf-8", errors="replace")

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseMessage(event=event, data="\n".join(data), id=self.last_id)


async def messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseMessage]:
    decoder = SseDecoder()
    async for chunk in chunks:
        for message in decoder.feed(chunk):
            yield message
