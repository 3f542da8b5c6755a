"""`reactor users|orgs|api-keys …` as an operator runs them on a new install (subprocesses on
the test database), then signing in over HTTP with what they made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from reactor_jobs.auth.service import AuthService
from reactor_jobs.cli import build_parser
from tests.cli_runner import cli_env, run_cli
from tests.integration.test_auth_http import (
    PASSWORD,
    Client,
    auth_app,
    auth_config,
    bearer,
    counts,
    sign_in,
)

pytestmark = pytest.mark.integration


async def reactor(
    *args: str, db_url: str, cwd: Path, stdin: bytes | None = None
) -> tuple[int, str, str]:
    env = cli_env(REACTOR_DATABASE_URL=db_url)
    return await run_cli(*args, cwd=cwd, env=env, stdin=b"" if stdin is None else stdin)


@pytest.fixture
async def client(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Client]:
    service = AuthService(pool, auth_config(tmp_path))
    async with TestClient(TestServer(auth_app(service))) as client:
        yield client


async def test_bootstrap_then_sign_in(
    db_url: str, tmp_path: Path, client: Client, pool: asyncpg.Pool
) -> None:
    code, out, err = await reactor(
        "users", "create", "--email", "Ada@Example.com", "--password", PASSWORD,
        db_url=db_url, cwd=tmp_path,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith("created user usr_") and out.endswith(" (ada@example.com)\n")
    code, out, err = await reactor(
        "users", "create", "--email", "bob@example.com", "--password-stdin",
        db_url=db_url, cwd=tmp_path, stdin=b"bobs password\n",
    )  # fmt: skip
    assert (code, err) == (0, "")
    code, out, err = await reactor(
        "orgs", "create", "acme", "--owner", "ada@example.com", db_url=db_url, cwd=tmp_path
    )
    assert (code, out, err) == (0, "created org acme, owned by ada@example.com\n", "")
    code, out, err = await reactor(
        "orgs", "add-member", "acme", "--email", "bob@example.com", "--role", "member",
        db_url=db_url, cwd=tmp_path,
    )  # fmt: skip
    assert (code, out, err) == (0, "added bob@example.com to org acme as member\n", "")
    code, out, err = await reactor(
        "api-keys", "create", "--org", "acme", "--name", "ci", "--role", "admin",
        db_url=db_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0
    key = out.strip()
    assert key.startswith("rk_") and out == key + "\n"
    assert "shown only once" in err and key not in err
    assert not (tmp_path / ".reactor").exists()  # no JWT secret made by bootstrap commands

    ada = (await sign_in(client, "ada@example.com"))["access_token"]
    assert (await client.delete("/jobs/v1/_admin/probe", headers=bearer(ada))).status == 200
    bob = (await sign_in(client, "bob@example.com", "bobs password"))["access_token"]
    assert (await client.get("/jobs/v1/_admin/probe", headers=bearer(bob))).status == 200
    assert (await client.post("/jobs/v1/_admin/probe", headers=bearer(bob))).status == 403
    assert (await client.post("/jobs/v1/_admin/probe", headers=bearer(key))).status == 200
    assert await counts(pool) == {
        "users": 2,
        "orgs": 1,
        "memberships": 2,
        "refresh_tokens": 2,
        "api_keys": 1,
        "invitations": 0,
        "revoked_refresh": 0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "create", "--email", "a@b", "--password", "short"), "password: must be"),
        (("users", "create", "--email", "nope", "--password", PASSWORD), "email: must"),
        (("orgs", "create", "acme", "--owner", "ghost@example.com"), "not found"),
        (("orgs", "create", "Bad_Name", "--owner", "ada@example.com"), "name: must be"),
        (("orgs", "add-member", "nowhere", "--email", "ada@example.com", "--role", "member"),
         "org nowhere not found"),
        (("api-keys", "create", "--org", "nowhere", "--name", "ci", "--role", "admin"),
         "org nowhere not found"),
    ],
)  # fmt: skip
async def test_refusals_exit_1_and_change_nothing(
    db_url: str, tmp_path: Path, pool: asyncpg.Pool, args: tuple[str, ...], message: str
) -> None:
    service = AuthService(pool, auth_config(tmp_path))
    await service.create_user("ada@example.com", PASSWORD)
    before = await counts(pool)
    code, out, err = await reactor(*args, db_url=db_url, cwd=tmp_path)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and PASSWORD not in err
    assert await counts(pool) == before


async def test_duplicate_user_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    args = ("users", "create", "--email", "ada@example.com", "--password", PASSWORD)
    assert (await reactor(*args, db_url=db_url, cwd=tmp_path))[0] == 0
    code, out, err = await reactor(*args, db_url=db_url, cwd=tmp_path)
    assert (code, out, err) == (1, "", "error: a user with email ada@example.com already exists\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "create", "--email", "a@b"],
        ["users", "create", "--email", "a@b", "--password", "x", "--password-stdin"],
        ["orgs", "add-member", "acme", "--email", "a@b", "--role", "boss"],
        ["api-keys", "create", "--org", "acme", "--name", "ci", "--role", "owner"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    capsys.readouterr()
