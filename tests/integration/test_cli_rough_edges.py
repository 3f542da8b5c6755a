"""What a new user of the `reactor` CLI runs into (issue 16), against a real server and
database: one-line errors and no tracebacks for bad arguments, payloads from a file or
stdin, `jobs trigger --wait`, `jobs logs` that prints the history and exits, `jobs update`,
`users list`, `api-keys list|revoke`, `functions delete`, confirmation before `jobs delete`,
and webhook URLs printed whole."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.cli_runner import cli_env, owner_env, run_cli
from tests.http_fixtures import Api, api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
__all__ = ["api"]


class Cli:
    def __init__(self, api: Api, home: Path) -> None:
        self.api, self.home = api, home
        self.env = owner_env(api, home / "config")

    async def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return await run_cli(*args, cwd=self.home, env=self.env, stdin=stdin)

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = await self(*args, stdin=stdin)
        assert code == 0, (args, out, err)
        return out

    async def json(self, *args: str, stdin: str | None = None) -> Any:
        return msgspec.json.decode(await self.ok(*args, "--json", stdin=stdin))


@pytest.fixture
async def cli(api: Api, tmp_path: Path) -> Cli:
    await api.engine.registry.create_job("acme", "work", "scenarios")
    api.engine.start_worker()
    return Cli(api, tmp_path)


def field(record: str, name: str) -> str:
    match = re.search(rf"^{name}\s+(\S+)", record, re.MULTILINE)
    assert match, f"no {name} in {record!r}"
    return match.group(1)


BAD = [
    ("functions", "deploy", "scenarios", "--dir", "/no/such/folder"),
    ("functions", "deploy", "scenarios", "--dir", "{empty}"),
    ("functions", "promote", "scenarios", "--version", "abc"),
    ("functions", "promote", "scenarios", "--version", "99"),
    ("functions", "delete", "scenarios", "--yes"),
    ("functions", "delete", "nope", "--yes"),
    ("jobs", "trigger", "work", "--payload", "{oops"),
    ("jobs", "trigger", "work", "--payload", "@/no/such/file.json"),
    ("jobs", "trigger", "work", "--timeout", "5"),
    ("jobs", "trigger", "work", "--wait", "--timeout", "soon"),
    ("jobs", "trigger", "nope"),
    ("jobs", "get", "nope"),
    ("jobs", "update", "work"),
    ("jobs", "update", "work", "--max-attempts", "0"),
    ("jobs", "delete", "work"),
    ("jobs", "runs", "get", "work", "run_nope"),
    ("jobs", "logs", "work", "--run", "run_nope"),
    ("jobs", "logs", "work", "--last-event-id", "garbage"),
    ("jobs", "triggers", "create", "work", "--kind", "cron", "--schedule", "not a cron"),
    ("api-keys", "revoke", "key_nope"),
    ("jobs", "list", "--url", "http://127.0.0.1:1"),
    ("serve", "--port", "eighty"),
    ("serve", "--port", "70000", "--database-url", "postgresql://127.0.0.1:1/x"),
    ("worker", "--database-url", "postgresql://nobody:secret@127.0.0.1:1/x"),
    ("nosuchcommand",),
]


async def test_every_bad_argument_fails_in_one_line_without_a_traceback(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    limit = asyncio.Semaphore(4)

    async def one(argv: tuple[str, ...]) -> tuple[tuple[str, ...], int, str, str]:
        argv = tuple(a.replace("{empty}", str(tmp_path / "empty")) for a in argv)
        async with limit:
            return (argv, *await cli(*argv))

    for argv, code, out, err in await asyncio.gather(*(one(argv) for argv in BAD)):
        assert code != 0, (argv, out, err)
        assert "Traceback" not in out + err, (argv, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert "error" in err, (argv, err)
        assert "secret" not in err  # the database password stays out of messages
    assert (await cli("jobs", "get", "work"))[0] == 0  # the refusals changed nothing


async def test_payload_from_a_file_and_from_stdin(cli: Cli, tmp_path: Path) -> None:
    payload = {"mode": "loop", "pad": "x" * 40_000}
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    from_file = await cli.json("jobs", "trigger", "work", "--payload", f"@{tmp_path}/payload.json")
    from_stdin = await cli.json(
        "jobs", "trigger", "work", "--payload", "-", stdin='{"mode":"loop"}'
    )
    for run in (from_file, from_stdin):
        done = await cli.api.engine.wait(run["id"])
        assert (done.status, done.output) == ("completed", 3)
    code, _, err = await cli("jobs", "trigger", "work", "--payload", "-", stdin="{not json")
    assert code == 2 and "stdin is not valid JSON" in err


async def test_trigger_wait_prints_the_finished_run_and_says_how_it_ended(cli: Cli) -> None:
    done = await cli.ok("jobs", "trigger", "work", "--payload", '{"mode":"loop"}', "--wait")
    assert field(done, "status") == "completed" and field(done, "output") == "3"
    code, out, err = await cli(
        "jobs", "trigger", "work", "--payload", '{"mode":"fatal"}', "--wait", "--timeout", "30"
    )
    assert code == 1 and field(out, "status") == "failed"
    assert err.startswith("error: run ") and err.strip().endswith("failed")
    code, out, err = await cli(
        "jobs", "trigger", "work", "--payload", '{"mode":"slow","seconds":30}', "--wait",
        "--timeout", "0.5",
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "has not finished after 0.5 s" in err
    run_id = re.search(r"run (run_\S+)", err)
    assert run_id is not None
    await cli.ok("jobs", "runs", "cancel", "work", run_id.group(1))


async def test_logs_print_the_history_once_in_time_order_and_exit(cli: Cli) -> None:
    run = await cli.json("jobs", "trigger", "work", "--payload", '{"mode":"log"}')
    assert (await cli.api.engine.wait(run["id"])).status == "completed"
    async with asyncio.timeout(30):  # finishes by itself: the run is over
        out = await cli.ok("jobs", "logs", "work", "--run", run["id"])
    lines = out.splitlines()
    messages = [m for line in lines for m in ("starting", "preparing", "going to sleep", "woke up")
                if "INFO" in line and m in line]  # fmt: skip
    # Each ctx.log line once, though the resume after the sleep ran the code from the top.
    assert messages == ["starting", "preparing", "going to sleep", "woke up"], out
    assert any("[prepare]" in line and "preparing" in line for line in lines)  # its step
    assert any("StepCompleted" in line and "[finish]" in line for line in lines)
    assert any("SleepScheduled" in line and "[nap]" in line for line in lines)
    kinds = [line.split()[3] for line in lines]
    assert kinds[0] == "Triggered" and kinds[-1] == "Completed"
    assert kinds.index("INFO") < kinds.index("StepCompleted")  # "starting" before its step
    woke = next(i for i, line in enumerate(lines) if "woke up" in line)
    slept = next(i for i, line in enumerate(lines) if "SleepCompleted" in line)
    assert slept < woke < len(lines) - 1
    times = [" ".join(line.split()[:2]) for line in lines]
    assert times == sorted(times)
    as_json = [
        json.loads(line) for line in (await cli.ok("jobs", "logs", "work", "--json")).splitlines()
    ]
    assert len(as_json) == len(lines)  # the whole job: this one run


async def test_logs_follow_streams_live_until_interrupted(cli: Cli) -> None:
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", "jobs", "logs", "work", "--follow",
        cwd=cli.home, env=cli.env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        run = await cli.json("jobs", "trigger", "work", "--payload", '{"mode":"loop"}')
        assert follower.stdout is not None
        printed: list[str] = []
        async with asyncio.timeout(30):
            while not any("Completed" in line and "Step" not in line for line in printed):
                line = (await follower.stdout.readline()).decode()
                assert line, f"the follower ended: {printed}"
                printed.append(line)
        assert all(run["id"] in line for line in printed)
        assert sum("[add" in line for line in printed) == 3  # add, add#2, add#3
    finally:
        follower.send_signal(2)
        async with asyncio.timeout(10):
            await follower.communicate()
    assert follower.returncode == 130


async def test_jobs_update_changes_and_clears_policy_fields(cli: Cli) -> None:
    updated = await cli.ok("jobs", "update", "work", "--max-attempts", "7", "--backoff", "linear")
    assert field(updated, "max_attempts") == "7" and field(updated, "backoff") == "linear"
    cleared = await cli.json("jobs", "update", "work", "--clear", "max-attempts")
    assert cleared["max_attempts"] is None and cleared["backoff"] == "linear"
    assert cleared["policy"]["max_attempts"] == 3  # the manifest's again
    code, _, err = await cli("jobs", "update", "work", "--clear", "backoff", "--backoff", "linear")
    assert code == 2 and "contradict" in err


async def test_jobs_delete_asks_on_a_terminal_and_needs_yes_otherwise(cli: Cli) -> None:
    await cli.api.engine.registry.create_job("acme", "spare", "scenarios")
    code, _, err = await cli("jobs", "delete", "work", stdin="y\n")  # a pipe: no asking
    assert code == 1 and "--yes" in err
    assert await _on_a_terminal(cli, ["jobs", "delete", "work"], "n\n") != 0
    await cli.ok("jobs", "get", "work")  # still there
    assert await _on_a_terminal(cli, ["jobs", "delete", "work"], "y\n") == 0
    assert (await cli("jobs", "get", "work"))[0] == 1
    assert "deleted job spare" in await cli.ok("jobs", "delete", "spare", "--yes")


async def _on_a_terminal(cli: Cli, argv: list[str], answer: str) -> int:
    """Run the CLI with a pseudo-terminal as stdin, answering its question."""
    leader, follower = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reactor_jobs.cli", *argv, cwd=cli.home, env=cli.env,
            stdin=follower, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.write(leader, answer.encode())
        async with asyncio.timeout(30):
            out, _ = await process.communicate()
    finally:
        os.close(follower)
        os.close(leader)
    assert b"[y/N]" in out
    assert process.returncode is not None
    return process.returncode


async def test_users_and_api_keys_from_the_server(cli: Cli) -> None:
    users = (await cli.ok("users", "list")).splitlines()
    assert users[0].split() == ["EMAIL", "ROLE", "USER", "ID"]
    assert {tuple(line.split()[:2]) for line in users[1:]} == {
        ("owner@acme.test", "owner"), ("admin@acme.test", "admin"),
        ("member@acme.test", "member"),
    }  # fmt: skip
    key = await cli.api.add_api_key("ci", "acme", "member")
    keys = (await cli.json("api-keys", "list"))["api_keys"]
    assert [(k["name"], k["role"]) for k in keys] == [("ci", "member")]
    assert key not in json.dumps(keys)
    assert "revoked API key" in await cli.ok("api-keys", "revoke", keys[0]["id"])
    assert (await cli.json("api-keys", "list"))["api_keys"] == []
    as_key = cli_env(REACTOR_URL=cli.api.base, REACTOR_TOKEN=key, XDG_CONFIG_HOME=str(cli.home))
    code, _, err = await run_cli("jobs", "list", cwd=cli.home, env=as_key)
    assert code == 1 and "reactor login" in err
    member = await cli.api.call("GET", "/auth/v1/orgs/acme/api-keys", as_="member")
    assert member.status == 403


async def test_functions_delete_refuses_while_a_job_uses_it(cli: Cli) -> None:
    await cli.ok("functions", "create", "spare")
    code, _, err = await cli("functions", "delete", "scenarios", "--yes")
    assert code == 1 and "used by job(s) work" in err
    assert "deleted function spare" in await cli.ok("functions", "delete", "spare", "--yes")
    names = [f["name"] for f in (await cli.json("functions", "list"))["functions"]]
    assert names == ["scenarios"]


async def test_webhook_urls_are_printed_whole(cli: Cli) -> None:
    out = await cli.ok("jobs", "triggers", "create", "work", "--kind", "webhook")
    match = re.search(r"Returns ingress URL: (\S+)", out)
    assert match and match.group(1).startswith(f"{cli.api.base}/jobs/v1/webhooks/whk_"), out
    reply = await cli.api.session.post(match.group(1), json={"mode": "loop"})
    assert reply.status == 202
    reply.release()
