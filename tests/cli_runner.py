"""The `reactor` CLI as users run it: a subprocess, an environment of its own (none of the
caller's REACTOR_* or XDG_* settings), its exit code and its output."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.http_fixtures import Api


def cli_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "XDG_"))}
    env.update(settings)
    return env


def owner_env(api: Api, home: Path) -> dict[str, str]:
    """Talking to the test server as acme's owner (REACTOR_TOKEN), config under `home`."""
    token = api.headers["owner"]["Authorization"].removeprefix("Bearer ")
    return cli_env(REACTOR_URL=api.base, REACTOR_TOKEN=token, REACTOR_ORG="acme",
                   XDG_CONFIG_HOME=str(home))  # fmt: skip


async def run_cli(
    *args: str, cwd: Path, env: dict[str, str], stdin: str | bytes | None = None
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `reactor ARGS…`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    sent = stdin.encode() if isinstance(stdin, str) else stdin
    out, err = await process.communicate(sent)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every one still running, wait for each (15 s, then SIGKILL)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
