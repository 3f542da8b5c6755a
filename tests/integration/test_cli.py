"""The `reactor` CLI as users run it: a subprocess, its exit code and its output."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor_jobs.engine.schema import SCHEMA_VERSION
from tests.cli_runner import cli_env, run_cli

pytestmark = pytest.mark.integration


async def reactor(*args: str, cwd: Path) -> tuple[int, str, str]:
    return await run_cli(*args, cwd=cwd, env=cli_env())


async def test_db_migrate_prints_the_version(db_url: str, tmp_path: Path) -> None:
    code, out, err = await reactor("--database-url", db_url, "db", "migrate", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert out == f"schema at version {SCHEMA_VERSION}\n"


async def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/reactor"
    code, out, err = await reactor("--database-url", url, "db", "migrate", cwd=tmp_path)
    assert code == 1
    assert out == ""
    assert err.startswith("error: cannot connect to Postgres at 127.0.0.1:1/reactor")
    assert "Traceback" not in err
    assert "hunter2" not in err


async def test_usage_error_exits_2(tmp_path: Path) -> None:
    code, _, err = await reactor("journal", "verify", cwd=tmp_path)
    assert code == 2
    assert "give one of RUN_ID, --all or --file" in err


async def test_journal_commands_on_an_empty_journal(db_url: str, tmp_path: Path) -> None:
    base = ("--database-url", db_url)
    code, out, err = await reactor(*base, "journal", "dump", "run_missing", cwd=tmp_path)
    assert (code, out, err) == (1, "", "error: run run_missing not found\n")
    code, out, err = await reactor(*base, "journal", "verify", "run_missing", cwd=tmp_path)
    assert (code, out, err) == (1, "", "error: run run_missing not found\n")
    code, out, err = await reactor(*base, "journal", "verify", "--all", cwd=tmp_path)
    assert (code, out, err) == (0, "verified 0 runs, 0 events: 0 tampered\n", "")
    code, out, err = await reactor(*base, "projections", "rebuild", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert out.startswith("rebuilt projections from 0 events of 0 runs")
