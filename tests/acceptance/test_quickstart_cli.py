"""The spec's quickstart through the `reactor` CLI, spelled as in the spec, against a real
`reactor serve` subprocess on the test's database: bootstrap a user and org, sign in,
create/deploy/promote the function, create the job, add a cron trigger, trigger it, see the
run complete and its event emitted; then the webhook how-to, runs list, logs and logout."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from reactor_jobs.client import create_client
from tests.engine_fixtures import BUNDLES

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]

EMAIL, PASSWORD = "owner@acme.test", "correct horse battery"
ACCESS_TTL_S = 2
LISTENING = re.compile(rb"listening on (http://\S+)")


class Result(msgspec.Struct, frozen=True):
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.out)


class Cli:
    """Runs `reactor …` as a user would, in an environment of its own."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.url = ""
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reactor_jobs.cli", *args, cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.started.append(process)
        return process

    async def kill_leftovers(self) -> None:
        """Processes a failed test left running (a log follower) must not outlive it."""
        for process in self.started:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def __call__(self, *args: str, stdin: str | None = None) -> Result:
        process = await self.start(*args, stdin=stdin is not None)
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None) -> Result:
        result = await self(*args, stdin=stdin)
        assert result.code == 0, f"reactor {' '.join(args)}: {result}"
        return result


@pytest.fixture
async def cli(db_url: str, tmp_path: Path) -> AsyncIterator[Cli]:
    """A bootstrapped install with `reactor serve` running; REACTOR_URL points at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "XDG_"))}
    env.update(
        REACTOR_DATABASE_URL=db_url, REACTOR_DATA_DIR=str(tmp_path / "data"),
        REACTOR_HTTP_PORT="0", REACTOR_WORKER_COUNT="2", REACTOR_SCHEDULER_INTERVAL_MS="200",
        XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    # Access tokens live 2 s, so the CLI's refresh (and storing the new pair) runs often.
    (tmp_path / "reactor.toml").write_text(f"[jobs.auth]\naccess_ttl_s = {ACCESS_TTL_S}\n")
    cli = Cli(env, tmp_path)
    await cli.ok("users", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    await cli.ok("orgs", "create", "acme", "--owner", EMAIL)
    server = await cli.start("serve")
    try:
        cli.url = await _listening(server)
        cli.env["REACTOR_URL"] = cli.url
        yield cli
    finally:
        await _stop(server)
        await cli.kill_leftovers()


async def _listening(server: asyncio.subprocess.Process) -> str:
    assert server.stdout is not None
    async with asyncio.timeout(60):
        while line := await server.stdout.readline():
            if match := LISTENING.search(line):
                return match.group(1).decode()
    raise AssertionError("reactor serve exited before listening")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()


def field(record: str, name: str) -> str:
    """A value of a `key  value` record as the CLI prints one."""
    match = re.search(rf"^{name}\s+(\S+)", record, re.MULTILINE)
    assert match, f"no {name} in {record!r}"
    return match.group(1)


async def wait_run(cli: Cli, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            run = (await cli.ok("jobs", "runs", "get", "process-order", run_id, "--json")).json
            if run["status"] in ("completed", "failed"):
                return dict(run)
            await asyncio.sleep(0.1)


async def test_the_quickstart_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    login = await cli.ok("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    assert f"signed in to {cli.url} as {EMAIL} (org acme)" in login.out
    stored = tmp_path / "config" / "reactor" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert msgspec.json.decode(stored.read_bytes())["org"] == "acme"
    assert PASSWORD not in stored.read_text()
    assert "acme" in (await cli.ok("orgs", "list")).out
    assert "now acting in org acme" in (await cli.ok("orgs", "use", "acme")).out

    # The quickstart, as the spec spells it (in Python: --runtime python).
    await cli.ok("functions", "create", "process-order", "--runtime", "python")
    deployed = await cli.ok("functions", "deploy", "process-order", "--dir",
                            str(BUNDLES / "process-order"))  # fmt: skip
    assert "deployed process-order version 1" in deployed.out
    assert "version 1 is live" in (await cli.ok("functions", "promote", "process-order")).out
    await cli.ok("jobs", "create", "process-order", "--function", "process-order")
    cron = await cli.ok(
        "jobs", "triggers", "create", "process-order", "--kind", "cron", "--schedule", "0 * * * *"
    )
    assert field(cron.out, "kind") == "cron" and field(cron.out, "catch_up") == "latest"
    triggered = await cli.ok(
        "jobs", "trigger", "process-order", "--payload", '{"orderId":"ord_123"}'
    )
    run_id = field(triggered.out, "id")
    assert run_id.startswith("run_") and field(triggered.out, "status") == "queued"

    done = await wait_run(cli, run_id)
    assert done["status"] == "completed"
    assert done["output"] == {"success": True, "orderId": "ord_123"}
    shown = await cli.ok("jobs", "runs", "get", "process-order", run_id)
    assert field(shown.out, "status") == "completed"
    async with create_client(cli.url) as client:
        await client.auth.sign_in_with_password(email=EMAIL, password=PASSWORD)
        client.auth.set_org("acme")
        events = await client.events.list(topic="order.processed")
    assert [(e.run_id, e.payload) for e in events] == [(run_id, {"orderId": "ord_123"})]
    listed = await cli.ok("jobs", "events", "list", "--topic", "order.processed", "--json")
    assert [e["run_id"] for e in listed.json["events"]] == [run_id]


async def test_webhooks_runs_logs_errors_and_logout(cli: Cli) -> None:
    await cli.ok("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    await cli.ok("functions", "create", "process-order", "--runtime", "python")
    await cli.ok("functions", "deploy", "process-order", "--dir", str(BUNDLES / "process-order"))
    await cli.ok("functions", "promote", "process-order", "--version", "1")
    await cli.ok("jobs", "create", "process-order", "--function", "process-order")
    # From the start of the job's history, so the follower cannot miss the run below.
    logs = await cli.start("jobs", "logs", "process-order", "--follow")

    webhook = await cli.ok("jobs", "triggers", "create", "process-order", "--kind", "webhook")
    match = re.search(r"Returns ingress URL: (http://\S+/jobs/v1/webhooks/whk_\S+)", webhook.out)
    assert match and match.group(1).startswith(cli.url), webhook.out
    async with aiohttp.ClientSession() as session:  # the external caller: no credentials
        body = {"orderId": "ord_456", "source": "stripe"}
        async with session.post(match.group(1), json=body) as reply:
            assert reply.status == 202
            accepted = await reply.json()
    done = await wait_run(cli, accepted["run_id"])
    assert done["status"] == "completed" and done["trigger_kind"] == "webhook"

    table = (await cli.ok("jobs", "runs", "list", "process-order")).out.splitlines()
    assert table[0].split() == ["ID", "STATUS", "ATTEMPT", "TRIGGER", "VERSION", "CREATED",
                                "FINISHED", "ERROR"]  # fmt: skip
    assert accepted["run_id"] in table[1] and "completed" in table[1]
    failed = await cli.ok("jobs", "runs", "list", "process-order", "--status", "failed")
    assert failed.out == "" and "no runs" in failed.err
    assert "is empty" in (await cli.ok("jobs", "dlq", "list", "process-order")).err

    # The log follower printed the run's lifecycle; Ctrl-C stops it.
    assert logs.stdout is not None
    printed: list[str] = []
    async with asyncio.timeout(20):
        while not any("Completed" in line for line in printed):
            line = (await logs.stdout.readline()).decode()
            if not line:  # the follower exited: say why rather than spin
                assert logs.stderr is not None
                raise AssertionError(f"jobs logs ended: {printed} {await logs.stderr.read()!r}")
            printed.append(line)
    assert any(accepted["run_id"] in line and "Triggered" in line for line in printed)
    logs.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        await logs.communicate()
    assert logs.returncode == 130

    # An expired access token is refreshed; the new pair replaces the stored one.
    stored = cli.cwd / "config" / "reactor" / "credentials.json"
    before = msgspec.json.decode(stored.read_bytes())
    await asyncio.sleep(ACCESS_TTL_S + 1)
    assert "process-order" in (await cli.ok("jobs", "list")).out
    after_refresh = msgspec.json.decode(stored.read_bytes())
    assert after_refresh["refresh_token"] != before["refresh_token"]
    assert after_refresh["org"] == before["org"] == "acme"
    assert (await cli.ok("jobs", "get", "process-order", "--json")).json["name"] == "process-order"

    # Commands run side by side after the access token expired take turns refreshing (the
    # refresh token is single-use; presenting it twice would revoke the sign-in).
    await asyncio.sleep(ACCESS_TTL_S + 1)
    side_by_side = await asyncio.gather(*(cli("jobs", "list") for _ in range(4)))
    assert [r.code for r in side_by_side] == [0, 0, 0, 0], side_by_side
    assert "process-order" in (await cli.ok("jobs", "list")).out

    missing = await cli("jobs", "runs", "get", "process-order", "run_nope")
    assert (missing.code, missing.out) == (1, "")
    assert missing.err.startswith("error: ") and "run_nope" in missing.err
    assert (await cli("jobs", "trigger", "process-order", "--payload", "{oops")).code == 2
    assert "signed out" in (await cli.ok("logout")).out
    after = await cli("jobs", "list")
    assert after.code == 1 and "reactor login" in after.err


async def _serve_dev(cli: Cli) -> tuple[asyncio.subprocess.Process, str, list[str]]:
    """Start `reactor serve --dev`; return it, its URL and its lines up to the sign-in hint."""
    server = await cli.start("serve", "--dev")
    assert server.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(60):
        while raw := await server.stdout.readline():
            lines.append(raw.decode())
            if lines[-1].startswith("Sign in:"):
                match = LISTENING.search("".join(lines).encode())
                assert match, lines
                return server, match.group(1).decode(), lines
    raise AssertionError(f"reactor serve --dev printed no sign-in: {lines}")


async def test_serve_in_dev_mode_bootstraps_an_admin_and_says_how_to_sign_in(
    db_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "XDG_"))}
    env.update(
        REACTOR_DATABASE_URL=db_url, REACTOR_DATA_DIR=str(tmp_path / "data"),
        REACTOR_HTTP_PORT="0", XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    cli = Cli(env, tmp_path)
    server, url, lines = await _serve_dev(cli)
    password_file = tmp_path / "data" / "dev-admin-password"
    try:
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert len(password) >= 20
        printed = "".join(lines)
        assert "created user admin@localhost, owner of org default" in printed
        assert password not in printed  # the secret stays in its file
        hint = lines[-1].strip()
        assert hint == (
            f"Sign in: reactor login --url {url} --email admin@localhost "
            f"--password-stdin < {password_file}"
        )
        login = await cli.ok(
            "login", "--url", url, "--email", "admin@localhost", "--password-stdin",
            stdin=password_file.read_text(),
        )  # fmt: skip
        assert "(org default)" in login.out
    finally:
        await _stop(server)
    # A second start creates nothing and still says how to sign in.
    server, _, lines = await _serve_dev(cli)
    try:
        assert not any("created user" in line for line in lines)
        assert password_file.read_text().strip() == password
    finally:
        await _stop(server)


async def test_a_newcomer_s_path_options_after_the_command_big_payloads_and_the_cron_sweep(
    db_url: str, tmp_path: Path
) -> None:
    """Issue 16 as a new user meets it: `reactor serve --database-url … --port …` (options
    after the command, no REACTOR_* variables), a 5 MB payload from a file, `--wait`, and the
    example's own cron trigger, whose runs carry no order: they sweep and complete, leaving
    no failed run and no DLQ entry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "XDG_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONUNBUFFERED="1")
    (tmp_path / "reactor.toml").write_text(
        "[jobs]\nscheduler_interval_ms = 200\n[jobs.http]\nmax_body_bytes = 8388608\n"
    )
    cli, data = Cli(env, tmp_path), str(tmp_path / "data")
    await cli.ok(
        "users", "create", "--email", EMAIL, "--password-stdin", "--database-url", db_url,
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    await cli.ok("orgs", "create", "acme", "--owner", EMAIL, "--database-url", db_url)
    server = await cli.start("serve", "--database-url", db_url, "--port", "0", "--data-dir", data)
    worker = await cli.start("worker", "--database-url", db_url, "--data-dir", data)
    try:
        cli.url = await _listening(server)
        assert worker.stdout is not None
        async with asyncio.timeout(60):
            assert b"worker running" in await worker.stdout.readline()
        await cli.ok("login", "--url", cli.url, "--email", EMAIL, "--password-stdin",
                     stdin=PASSWORD + "\n")  # fmt: skip
        assert (tmp_path / "data" / "jwt_secret").is_file()  # serve used --data-dir
        example = Path(__file__).resolve().parents[2] / "examples" / "process-order"
        await cli.ok("functions", "create", "process-order")
        await cli.ok("functions", "deploy", "process-order", "--dir", str(example))
        await cli.ok("functions", "promote", "process-order")
        await cli.ok("jobs", "create", "process-order", "--function", "process-order")

        big = tmp_path / "order.json"
        big.write_text(
            msgspec.json.encode({"orderId": "ord_big", "notes": "x" * 5_000_000}).decode()
        )
        done = await cli.ok(
            "jobs", "trigger", "process-order", "--payload", f"@{big}", "--wait", "--timeout", "60"
        )
        assert field(done.out, "status") == "completed" and '"ord_big"' in done.out

        # What the cron trigger does, by hand (an empty payload) and for real (every second).
        swept = await cli.ok("jobs", "trigger", "process-order", "--payload", "{}", "--wait")
        assert field(swept.out, "status") == "completed" and '"sweep"' in swept.out
        cron = await cli.ok("jobs", "triggers", "create", "process-order", "--kind", "cron",
                            "--schedule", "* * * * * *")  # fmt: skip
        fired = await _a_cron_run(cli)
        await cli.ok("jobs", "triggers", "delete", "process-order", field(cron.out, "id"))
        assert fired["status"] == "completed" and fired["output"]["sweep"]["pending"] == 0
        logs = (await cli.ok("jobs", "logs", "process-order", "--run", fired["id"])).out
        assert sum("scheduled sweep done" in line for line in logs.splitlines()) == 1, logs
        assert "StepCompleted  [sweep]" in logs
        failed = await cli.ok("jobs", "runs", "list", "process-order", "--status", "failed")
        assert failed.out == ""
        assert "is empty" in (await cli.ok("jobs", "dlq", "list", "process-order")).err
    finally:
        await _stop(worker)
        await _stop(server)
        await cli.kill_leftovers()


async def _a_cron_run(cli: Cli) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            runs = (await cli.ok("jobs", "runs", "list", "process-order", "--json")).json["runs"]
            fired = [r for r in runs if r["trigger_kind"] == "cron" and r["finished_at"]]
            if fired:
                return dict(fired[0])
            await asyncio.sleep(0.3)
