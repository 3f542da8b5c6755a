"""The npm packages' own tests, run by bun, in CI: `bun test packages/jobs-sdk`, and
`bun test packages/client` against a real `reactor serve` (a bootstrapped user and org,
access tokens that live 2 s so the client's refresh runs)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from shutil import which

import msgspec
import pytest

from reactor_jobs.client import create_client
from reactor_jobs.functions.bun_binary import find_bun
from tests.cli_runner import cli_env, run_cli
from tests.engine_fixtures import BUNDLES

REPO = Path(__file__).resolve().parents[2]
EMAIL, PASSWORD, ORG = "owner@acme.test", "correct horse battery", "acme"
LISTENING = re.compile(rb"listening on (http://\S+)")
# The client as Node >= 20 runs it: built by bun into plain ESM, fetch global.
NODE_SCRIPT = """
const { createClient, ReactorError } = await import(process.argv[1]);
const reactor = createClient({ url: process.env.REACTOR_URL });
await reactor.auth.signInWithPassword({ email: process.env.EMAIL, password: process.env.PASSWORD });
reactor.auth.setOrg(process.env.ORG);
const missing = await reactor.jobs.get("nope").catch((e) => e);
const jobs = await reactor.jobs.list();
const typed = missing instanceof ReactorError;
console.log(JSON.stringify({ jobs, typed, code: missing.code, status: missing.status }));
"""

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.timeout(180),
    pytest.mark.skipif(find_bun() is None, reason="no bun executable"),
]


async def bun_test(package: str, env: dict[str, str]) -> tuple[int, str]:
    bun = find_bun()
    assert bun is not None
    process = await asyncio.create_subprocess_exec(
        bun, "test", f"packages/{package}", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture
async def server(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    env = cli_env(REACTOR_DATABASE_URL=db_url, REACTOR_DATA_DIR=str(tmp_path / "data"),
                  REACTOR_HTTP_PORT="0", REACTOR_WORKER_COUNT="2",
                  REACTOR_SCHEDULER_INTERVAL_MS="200", XDG_CONFIG_HOME=str(tmp_path / "config"),
                  PYTHONUNBUFFERED="1")  # fmt: skip
    (tmp_path / "reactor.toml").write_text("[jobs.auth]\naccess_ttl_s = 2\n")
    code, out, err = await run_cli("users", "create", "--email", EMAIL, "--password-stdin",
                                   cwd=tmp_path, env=env, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, out + err
    code, out, err = await run_cli("orgs", "create", ORG, "--owner", EMAIL, cwd=tmp_path, env=env)
    assert code == 0, out + err
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor_jobs.cli", "serve", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while line := await process.stdout.readline():
                if match := LISTENING.search(line):
                    break
        assert match, "reactor serve exited before listening"
        yield match.group(1).decode()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await process.communicate()
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_the_jobs_sdk_package() -> None:
    code, out = await bun_test("jobs-sdk", dict(os.environ))
    assert code == 0, out
    assert " 0 fail" in out


async def test_the_client_package_against_a_real_server(server: str) -> None:
    env = cli_env(REACTOR_URL=server, REACTOR_TEST_EMAIL=EMAIL, REACTOR_TEST_PASSWORD=PASSWORD,
                  REACTOR_TEST_ORG=ORG, REACTOR_TEST_BUNDLES=str(BUNDLES))  # fmt: skip
    code, out = await bun_test("client", env)
    assert code == 0, out
    assert " 0 fail" in out and "(skip)" not in out


@pytest.mark.skipif(which("node") is None, reason="no node")
async def test_the_client_package_on_node(server: str, tmp_path: Path) -> None:
    bun, node = find_bun(), which("node")
    assert bun is not None and node is not None
    build = await asyncio.create_subprocess_exec(
        bun, "build", "packages/client/index.ts", "--outdir", str(tmp_path / "dist"),
        "--target", "node", "--format", "esm", cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await build.wait() == 0
    env = cli_env(REACTOR_URL=server, EMAIL=EMAIL, PASSWORD=PASSWORD, ORG=ORG)
    process = await asyncio.create_subprocess_exec(
        node, "--input-type=module", "-e", NODE_SCRIPT, str(tmp_path / "dist" / "index.js"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert msgspec.json.decode(out) == {"jobs": [], "typed": True, "code": "not_found",
                                        "status": 404}  # fmt: skip


async def test_the_spec_quickstart_in_typescript(server: str, tmp_path: Path) -> None:
    """The spec's quickstart as written: the CLI creates, deploys and promotes the bun bundle
    (examples/process-order-ts), then its client script creates the job and triggers it."""
    env = cli_env(REACTOR_URL=server, XDG_CONFIG_HOME=str(tmp_path / "config"))
    login = ("login", "--email", EMAIL, "--password-stdin")
    code, out, err = await run_cli(*login, cwd=tmp_path, env=env, stdin=PASSWORD + "\n")
    assert code == 0, out + err
    example = REPO / "examples" / "process-order-ts"
    for args in (
        ("functions", "create", "process-order", "--runtime", "bun"),
        ("functions", "deploy", "process-order", "--dir", str(example)),
        ("functions", "promote", "process-order"),
    ):
        code, out, err = await run_cli(*args, cwd=tmp_path, env=env)
        assert code == 0, f"{args}: {out}{err}"
    bun = find_bun()
    assert bun is not None
    script_env = cli_env(REACTOR_URL=server, REACTOR_EMAIL=EMAIL, REACTOR_PASSWORD=PASSWORD)
    process = await asyncio.create_subprocess_exec(
        bun, "--no-install", str(example / "client.ts"), cwd=REPO, env=script_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out_bytes, err_bytes = await process.communicate()
    assert process.returncode == 0, err_bytes.decode()
    run_id, status = out_bytes.decode().split()
    assert run_id.startswith("run_") and status == "queued"
    async with create_client(server) as client:
        await client.auth.sign_in_with_password(email=EMAIL, password=PASSWORD)
        client.auth.set_org(ORG)
        async with asyncio.timeout(30):
            while (run := await client.jobs.runs.get("process-order", run_id)).status not in (
                "completed", "failed",
            ):  # fmt: skip
                await asyncio.sleep(0.1)
        assert (run.status, run.output) == ("completed", {"success": True, "orderId": "ord_123"})
        events = await client.events.list(topic="order.processed")
        assert [(e.run_id, e.payload) for e in events] == [(run_id, {"orderId": "ord_123"})]
