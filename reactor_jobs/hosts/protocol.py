"""The function-host protocol's framing (docs/host-protocol.md): a 4-byte big-endian length,
then one JSON object. Shared by the worker side and the Python host; pure asyncio streams.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgspec

PROTOCOL = 1
# A `load` carries a whole bundle as base64; a host's frames carry at most a 1 MiB output.
TO_HOST_MAX = 96 * 1024 * 1024
FROM_HOST_MAX = 4 * 1024 * 1024
MAX_OUTPUT_BYTES = 1024 * 1024

_LENGTH = struct.Struct(">I")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, Any])


class ProtocolError(Exception):
    """The peer broke the protocol: the stream cannot be trusted any more."""


def encode(message: dict[str, Any]) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader, limit: int) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("the stream ended inside a frame header") from None
        return None
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise ProtocolError(f"a frame of {length} bytes is over the limit of {limit}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the stream ended inside a frame") from None
    try:
        message = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"a frame is not a JSON object: {exc}") from None
    if not isinstance(message.get("t"), str):
        raise ProtocolError("a message has no type `t`")
    return message


class Outbox:
    """Frames written once per event-loop tick: a burst of messages (the acks of one group
    commit, the proposals of many attempts) costs one write, not one syscall each."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []

    def put(self, message: dict[str, Any]) -> None:
        if not self._frames:
            asyncio.get_running_loop().call_soon(self._flush)
        self._frames.append(encode(message))

    def _flush(self) -> None:
        frames, self._frames = self._frames, []
        if not self.writer.is_closing():
            self.writer.write(b"".join(frames))
