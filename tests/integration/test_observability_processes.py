"""`reactor worker --log-format json --metrics-port PORT` as users run it: its stderr is JSON
lines only, and its /metrics listener answers with text prometheus_client parses."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli_runner import cli_env

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_worker_json_logs_and_metrics_port(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", "--database-url", db_url,
        "--log-format", "json", "worker", "--metrics-port", str(port),
        cwd=tmp_path, env=cli_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        text = ""
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while not text:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                        assert r.status == 200
                        text = await r.text()
                except aiohttp.ClientConnectionError:
                    assert process.returncode is None, "the worker exited"
                    await asyncio.sleep(0.2)
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {"reactor_attempts", "reactor_runs", "reactor_function_hosts"} <= names
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert out == b""  # the operator's lines are log records too, in JSON mode
    lines = err.decode().splitlines()
    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records]
    assert any(m.startswith("Reactor Jobs worker running") for m in messages), messages
    assert any(m.startswith("metrics on http://127.0.0.1:") for m in messages), messages
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
