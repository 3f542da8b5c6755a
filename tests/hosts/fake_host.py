"""A function host that breaks the protocol one way, chosen by argv[1]: what a compromised
or buggy host could send. Run by tests in place of the real Python host."""

from __future__ import annotations

import asyncio
import os
import struct
import sys

from reactor_jobs.hosts import protocol


async def main(behaviour: str) -> None:
    reader, writer = await asyncio.open_unix_connection(os.environ["REACTOR_HOST_SOCKET"])
    token = os.environ["REACTOR_HOST_TOKEN"]
    if behaviour == "silent":  # never says hello
        await asyncio.sleep(3600)
    hello = {"t": "hello", "protocol": 1, "runtime": "python", "token": token, "pid": os.getpid()}
    writer.write(protocol.encode(hello))
    await protocol.read_message(reader, protocol.TO_HOST_MAX)  # welcome
    while True:
        message = await protocol.read_message(reader, protocol.TO_HOST_MAX)
        if message is None:
            return
        if message["t"] == "load":
            writer.write(protocol.encode({"t": "loaded", "fn": message["fn"]}))
        elif message["t"] == "invoke":
            writer.write(_reply(behaviour, message["id"]))
        await writer.drain()


def _reply(behaviour: str, attempt: str) -> bytes:
    if behaviour == "garbage":
        body = b"this is not json"
        return struct.pack(">I", len(body)) + body
    if behaviour == "stranger":
        return protocol.encode({"t": "step", "id": "run_nobody/1", "req": 1, "pos": 0, "name": "x"})
    if behaviour == "huge":
        output = "x" * (1024 * 1024 + 10)
        step = {"t": "step", "id": attempt, "req": 1, "pos": 0, "name": "big", "output": output}
        return protocol.encode(step)
    if behaviour == "oversized-frame":
        return struct.pack(">I", 64 * 1024 * 1024)
    raise SystemExit(f"unknown behaviour {behaviour}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
