"""`reactor functions host`: a function-host service that workers reach over TCP when
`[jobs.functions] url` is set, with the same protocol as a local host.

Each worker connection is one session; the connecting worker says hello first, with the
service's API key. The service runs code in its own process: isolate it as a whole (its
own machine, container or user), as the workers do for local hosts.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from reactor_jobs.hosts import protocol
from reactor_jobs.hosts.python import Session, capture_output


async def serve(listen: str, api_key: str | None) -> int:
    """Serve workers on `listen` (HOST:PORT) until interrupted."""
    if not api_key:
        sys.stderr.write("reactor functions host: set [jobs.functions] api_key first\n")
        return 2
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        sys.stderr.write(f"reactor functions host: --listen takes HOST:PORT, not {listen!r}\n")
        return 2
    work = Path(tempfile.mkdtemp(prefix="reactor-host-service-"))

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(protocol.read_message(reader, protocol.TO_HOST_MAX), 10)
            token = "" if hello is None else str(hello.get("token", ""))
            if hello is None or not secrets.compare_digest(token, api_key):
                return
            if hello.get("protocol") != protocol.PROTOCOL or hello.get("runtime") != "python":
                return  # this service runs Python code only
            writer.write(protocol.encode({"t": "welcome", "protocol": protocol.PROTOCOL}))
            folder = Path(tempfile.mkdtemp(dir=work))
            await Session(reader, writer, folder / "bundles").serve()
        except (TimeoutError, protocol.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, host, int(port), limit=protocol.TO_HOST_MAX)
    capture_output()
    sys.__stderr__.write(f"reactor functions host: serving on {listen}\n")  # type: ignore[union-attr]
    try:
        async with server:
            await server.serve_forever()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0
