"""Invitations and org creation through the Python client and the CLI: an owner invites,
the invitee lists and accepts; the CLI prints and exits as its other commands do; and
`jobs triggers create --header` keeps a webhook header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reactor_jobs.client import create_client
from tests.cli_runner import cli_env, owner_env, run_cli
from tests.http_fixtures import PASSWORD, Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


async def test_the_client_invites_lists_accepts_and_creates_orgs(api: Api) -> None:
    async with create_client(api.base) as owner, create_client(api.base) as outsider:
        await owner.auth.sign_in_with_password(email="owner@acme.test", password=PASSWORD)
        sent = await owner.auth.invite("acme", email="outsider@globex.test", role="member")
        assert (sent.org, sent.email, sent.role) == ("acme", "outsider@globex.test", "member")
        await outsider.auth.sign_in_with_password(email="outsider@globex.test", password=PASSWORD)
        assert [i.id for i in await outsider.auth.invitations()] == [sent.id]
        joined = await outsider.auth.accept_invitation(sent.id)
        assert (joined.name, joined.role) == ("acme", "member")
        assert await outsider.auth.invitations() == []
        created = await outsider.auth.create_org("initech")
        assert (created.name, created.role) == ("initech", "owner")
        again = await owner.auth.invite("acme", email="outsider@globex.test", role="admin")
        await outsider.auth.decline_invitation(again.id)
        assert await api.auth.membership(api.users["outsider"], "acme") == "member"


async def test_the_cli_invites_and_the_invitee_accepts(api: Api, tmp_path: Path) -> None:
    owner = owner_env(api, tmp_path / "owner")
    code, out, err = await run_cli(
        "orgs", "invite", "acme", "--email", "outsider@globex.test", "--role", "admin",
        "--json", cwd=tmp_path, env=owner,
    )  # fmt: skip
    assert code == 0, err
    invitation = json.loads(out)["id"]
    token = api.headers["outsider"]["Authorization"].removeprefix("Bearer ")
    invitee = cli_env(REACTOR_URL=api.base, REACTOR_TOKEN=token,
                      XDG_CONFIG_HOME=str(tmp_path / "invitee"))  # fmt: skip
    code, out, err = await run_cli("invitations", "list", cwd=tmp_path, env=invitee)
    assert code == 0 and invitation in out and "acme" in out, (out, err)
    code, out, err = await run_cli("invitations", "accept", invitation, cwd=tmp_path, env=invitee)
    assert code == 0 and "joined org acme as admin" in out, (out, err)
    code, _, err = await run_cli("invitations", "accept", invitation, cwd=tmp_path, env=invitee)
    assert code == 1 and "not found" in err


async def test_the_cli_creates_a_webhook_that_keeps_a_header(api: Api, tmp_path: Path) -> None:
    body = {"name": "hook", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=body)).status == 201
    code, out, err = await run_cli(
        "jobs", "triggers", "create", "hook", "--kind", "webhook", "--header", "X-Tenant",
        "--json", cwd=tmp_path, env=owner_env(api, tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["headers"] == ["x-tenant"]
