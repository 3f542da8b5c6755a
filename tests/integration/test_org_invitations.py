"""Members join by invitation: an admin invites an email (202 whatever the email, so
nobody learns who has an account), the invitee lists and accepts or declines it. Who may
create orgs is configured (org_creation, server_admins) and capped per user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from reactor_jobs.auth.principal import Forbidden
from reactor_jobs.auth.service import AuthService
from reactor_jobs.cli.serve import with_org_creation
from reactor_jobs.config import Config
from tests.http_fixtures import PASSWORD, Api, api, http_config
from tests.integration.test_http_errors import assert_error

pytestmark = pytest.mark.integration
__all__ = ["api"]

MEMBERS = "/auth/v1/orgs/acme/members"


def user_headers(api: Api, name: str) -> dict[str, str]:
    return {"Authorization": api.headers[name]["Authorization"]}


async def invite(api: Api, email: str, role: str = "member", as_: str = "admin") -> Any:
    return await api.call("POST", MEMBERS, as_=as_, json={"email": email, "role": role})


async def test_an_invitation_looks_the_same_whether_or_not_the_email_has_an_account(
    api: Api,
) -> None:
    before = await api.call("GET", MEMBERS)
    replies = [
        await invite(api, "nobody@nowhere.test"),
        await invite(api, "outsider@globex.test"),
        await invite(api, "member@acme.test"),  # already a member: still just an invitation
    ]
    for reply in replies:
        assert reply.status == 202, reply.text
        assert set(reply.json) == {"id", "org", "email", "role", "expires_at"}
        assert reply.json["org"] == "acme" and reply.json["role"] == "member"
    assert len({len(r.text) - len(r.json["email"]) for r in replies}) == 1
    assert (await api.call("GET", MEMBERS)).json == before.json  # nobody joined


async def test_the_invitee_lists_and_accepts_and_nobody_else_can(api: Api) -> None:
    invited = (await invite(api, "Outsider@globex.test", role="admin")).json
    outsider, owner = user_headers(api, "outsider"), user_headers(api, "owner")
    listed = await api.call("GET", "/auth/v1/invitations", as_=None, headers=outsider)
    assert listed.status == 200
    assert [(i["id"], i["org"], i["role"]) for i in listed.json["invitations"]] == [
        (invited["id"], "acme", "admin")
    ]
    mine = await api.call("GET", "/auth/v1/invitations", as_=None, headers=owner)
    assert mine.json == {"invitations": []}
    accept = f"/auth/v1/invitations/{invited['id']}/accept"
    assert_error(await api.call("POST", accept, as_=None, headers=owner), 404, "not_found")
    joined = await api.call("POST", accept, as_=None, headers=outsider)
    assert joined.status == 200 and joined.json == {"name": "acme", "role": "admin"}
    assert await api.auth.membership(api.users["outsider"], "acme") == "admin"
    assert_error(await api.call("POST", accept, as_=None, headers=outsider), 404, "not_found")


async def test_declined_and_expired_invitations_cannot_be_accepted(api: Api) -> None:
    outsider = user_headers(api, "outsider")
    declined = (await invite(api, "outsider@globex.test")).json["id"]
    reply = await api.call(
        "POST", f"/auth/v1/invitations/{declined}/decline", as_=None, headers=outsider
    )
    assert reply.status == 204
    path = f"/auth/v1/invitations/{declined}/accept"
    assert_error(await api.call("POST", path, as_=None, headers=outsider), 404, "not_found")
    expired = (await invite(api, "outsider@globex.test")).json["id"]
    await api.node.pool.execute(
        "UPDATE _reactor_jobs.invitations SET expires_at = now() - interval '1 s' WHERE id = $1",
        expired,
    )
    listed = await api.call("GET", "/auth/v1/invitations", as_=None, headers=outsider)
    assert listed.json == {"invitations": []}
    path = f"/auth/v1/invitations/{expired}/accept"
    assert_error(await api.call("POST", path, as_=None, headers=outsider), 404, "not_found")
    assert await api.auth.membership(api.users["outsider"], "acme") is None


async def test_members_and_api_keys_cannot_invite(api: Api) -> None:
    assert_error(await invite(api, "x@y.test", as_="member"), 403, "forbidden")
    await api.add_api_key("robot", "acme", "admin")
    assert_error(await invite(api, "x@y.test", as_="robot"), 403, "forbidden")
    assert_error(await invite(api, "x@y.test", role="owner", as_="admin"), 403, "forbidden")


def auth_service(pool: asyncpg.Pool, tmp_path: Path, **auth: Any) -> AuthService:
    base = http_config(tmp_path)
    settings = msgspec.structs.replace(base.jobs.auth, **auth)
    return AuthService(pool, Config(jobs=msgspec.structs.replace(base.jobs, auth=settings)))


async def test_only_server_admins_create_orgs_when_so_configured(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    service = auth_service(pool, tmp_path, org_creation="admins", server_admins=("Boss@x.test",))
    boss = await service.create_user("boss@x.test", PASSWORD)
    user = await service.create_user("user@x.test", PASSWORD)
    with pytest.raises(Forbidden, match="server admins"):
        await service.create_org_as("mine", user, "user@x.test")
    assert (await service.create_org_as("bosses", boss, "boss@x.test")).role == "owner"
    service.close()


async def test_each_user_creates_at_most_max_orgs_per_user(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    service = auth_service(pool, tmp_path, org_creation="any", max_orgs_per_user=2)
    user = await service.create_user("user@x.test", PASSWORD)
    await service.create_org_as("one", user, "user@x.test")
    await service.create_org_as("two", user, "user@x.test")
    with pytest.raises(Forbidden, match="max_orgs_per_user = 2"):
        await service.create_org_as("three", user, "user@x.test")
    await service.create_org("by-the-operator", user)  # the CLI is not limited
    service.close()


def test_org_creation_defaults_to_any_in_dev_mode_and_admins_otherwise(tmp_path: Path) -> None:
    unset = Config()
    assert with_org_creation(unset, dev=True).jobs.auth.org_creation == "any"
    assert with_org_creation(unset, dev=False).jobs.auth.org_creation == "admins"
    chosen = http_config(tmp_path)  # "any", set explicitly
    assert with_org_creation(chosen, dev=False).jobs.auth.org_creation == "any"
