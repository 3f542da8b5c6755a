"""The /auth/v1 routes and the auth middleware over a real aiohttp server on localhost and a
real Postgres: sign-in, refresh rotation and theft detection, API keys, orgs, members, roles,
and refusals that change nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from reactor_jobs.auth.middleware import auth_middleware
from reactor_jobs.auth.principal import Role, require
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import AuthConfig, Config, JobsConfig
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.http.auth_routes import add_auth_routes

pytestmark = pytest.mark.integration

SECRET = "t" * 64
PASSWORD = "correct horse battery"
Client = TestClient[web.Request, web.Application]
# The HTTP layer's table (reactor_jobs/http/errors.py) for the codes auth raises; a local copy
# keeps these tests about auth alone.
STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_field": 422,
}
TABLES = ("users", "orgs", "memberships", "refresh_tokens", "api_keys", "invitations")


def auth_config(tmp_path: Path, **auth: Any) -> Config:
    # org_creation "any" as in dev mode; test_org_invitations.py covers "admins".
    settings = {"jwt_secret": SECRET, "org_creation": "any", **auth}
    jobs = JobsConfig(data_dir=str(tmp_path), auth=AuthConfig(**settings))
    return Config(jobs=jobs)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ReactorError as exc:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return web.json_response(body, status=STATUS[exc.code])


def probe(role: Role) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A protected route needing `role`; it echoes the principal."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(msgspec.to_builtins(require(request, role)))

    return handler


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def auth_app(service: AuthService) -> web.Application:
    app = web.Application(middlewares=[errors, auth_middleware(service)])
    add_auth_routes(app, service)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/jobs/v1/_admin/probe", probe("member"))
    app.router.add_post("/jobs/v1/_admin/probe", probe("admin"))
    app.router.add_delete("/jobs/v1/_admin/probe", probe("owner"))
    return app


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    found = {}
    for table in TABLES:
        found[table] = await pool.fetchval(f"SELECT count(*) FROM _reactor_jobs.{table}")
    found["revoked_refresh"] = await pool.fetchval(
        "SELECT count(*) FROM _reactor_jobs.refresh_tokens WHERE revoked_at IS NOT NULL"
    )
    return found


@pytest.fixture
async def service(pool: asyncpg.Pool, tmp_path: Path) -> AuthService:
    return AuthService(pool, auth_config(tmp_path))


@pytest.fixture
async def client(service: AuthService) -> AsyncIterator[Client]:
    async with TestClient(TestServer(auth_app(service))) as client:
        yield client


@pytest.fixture
async def acme(service: AuthService) -> dict[str, str]:
    """Org acme with an owner, an admin and a member; org globex owned by someone else."""
    names = ("owner", "admin", "member", "outsider")
    ids = await asyncio.gather(*(service.create_user(f"{n}@acme.test", PASSWORD) for n in names))
    users = dict(zip(names, ids, strict=True))
    await service.create_org("acme", users["owner"])
    await service.add_member("acme", "admin@acme.test", "admin")
    await service.add_member("acme", users["member"], "member")
    await service.create_org("globex", users["outsider"])
    return users


async def sign_in(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post(
        "/auth/v1/token?grant_type=password", json={"email": email, "password": password}
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def bearer(token: str, org: str | None = "acme") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if org is not None:
        headers["X-Reactor-Org"] = org
    return headers


async def error_of(response: Any, status: int) -> dict[str, str]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    return error


# Sign-in


async def test_password_grant_issues_a_token_pair(client: Client, acme: dict[str, str]) -> None:
    response = await client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "Owner@Acme.test", "password": PASSWORD},
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"].startswith("rt_")
    probe = await client.get("/jobs/v1/_admin/probe", headers=bearer(body["access_token"]))
    assert probe.status == 200
    assert await probe.json() == {
        "kind": "user",
        "subject": acme["owner"],
        "org": "acme",
        "role": "owner",
        "email": "owner@acme.test",
    }


async def test_bad_credentials_get_one_message_and_change_nothing(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    before = await counts(pool)
    messages = set()
    for email, password in [
        ("owner@acme.test", "wrong password"),
        ("nobody@acme.test", PASSWORD),
        ("not-an-email", PASSWORD),
        ("owner@acme.test", ""),
    ]:
        response = await client.post(
            "/auth/v1/token?grant_type=password", json={"email": email, "password": password}
        )
        error = await error_of(response, 401)
        assert error["code"] == "unauthorized"
        messages.add(error["message"])
    assert messages == {"wrong email or password"}
    assert await counts(pool) == before


@pytest.mark.parametrize(
    ("query", "body", "status", "needle"),
    [
        ("grant_type=password", b"{not json", 400, "JSON"),
        ("grant_type=password", b"[1, 2]", 400, "JSON object"),
        ("grant_type=password", b"", 400, "JSON object"),
        ("grant_type=password", b'{"email": "owner@acme.test"}', 422, "password: is required"),
        ("grant_type=password", b'{"email": 1, "password": "x"}', 422, "email: must be a string"),
        ("grant_type=password", b'{"email":"a@b","password":"p","x":1}', 422, "x: unknown field"),
        ("", b'{"email": "a@b", "password": "p"}', 422, "grant_type"),
        ("grant_type=client_credentials", b"{}", 422, "grant_type"),
        ("grant_type=refresh_token", b"{}", 422, "refresh_token: is required"),
        ("grant_type=refresh_token", b'{"refresh_token": 7}', 422, "refresh_token: must be"),
    ],
)
async def test_malformed_token_requests(
    client: Client,
    pool: asyncpg.Pool,
    acme: dict[str, str],
    query: str,
    body: bytes,
    status: int,
    needle: str,
) -> None:
    before = await counts(pool)
    response = await client.post(f"/auth/v1/token?{query}", data=body)
    error = await error_of(response, status)
    assert needle in error["message"]
    assert error["code"] == {400: "bad_request", 422: "invalid_field"}[status]
    assert await counts(pool) == before


# Bearer tokens on protected paths


async def test_expired_access_token_is_401(pool: asyncpg.Pool, tmp_path: Path) -> None:
    service = AuthService(pool, auth_config(tmp_path, access_ttl_s=1))
    user = await service.create_user("short@acme.test", PASSWORD)
    await service.create_org("acme", user)
    async with TestClient(TestServer(auth_app(service))) as client:
        token = (await sign_in(client, "short@acme.test"))["access_token"]
        assert (await client.get("/jobs/v1/_admin/probe", headers=bearer(token))).status == 200
        await asyncio.sleep(1.1)
        response = await client.get("/jobs/v1/_admin/probe", headers=bearer(token))
        error = await error_of(response, 401)
        assert "expired" in error["message"]


def forged_tokens(user_id: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user_id, "iss": "reactor-jobs", "aud": "reactor", "iat": now}
    claims |= {"exp": now + 600, "jti": "x"}

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return {
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "other-secret": jwt.encode(claims, "x" * 64, algorithm="HS256"),
        "wrong-aud": jwt.encode({**claims, "aud": "other"}, SECRET, algorithm="HS256"),
        "wrong-iss": jwt.encode({**claims, "iss": "other"}, SECRET, algorithm="HS256"),
        "no-exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET),
    }


async def test_forged_tokens_are_401(client: Client, acme: dict[str, str]) -> None:
    for name, token in forged_tokens(acme["owner"]).items():
        for method in ("GET", "POST", "DELETE"):
            response = await client.request(method, "/jobs/v1/_admin/probe", headers=bearer(token))
            error = await error_of(response, 401)
            assert error["code"] == "unauthorized", name
            assert token not in error["message"]
        response = await client.get("/auth/v1/user", headers=bearer(token, org=None))
        await error_of(response, 401)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b", "Bearer é"],
)
async def test_missing_or_malformed_authorization_is_401(
    client: Client, acme: dict[str, str], header: str | None
) -> None:
    headers = {"X-Reactor-Org": "acme"}
    if header is not None:
        headers["Authorization"] = header
    response = await client.get("/jobs/v1/_admin/probe", headers=headers)
    error = await error_of(response, 401)
    assert "Authorization: Bearer" in error["message"]


async def test_public_paths_need_no_token(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200


async def test_org_header_is_required_and_checked(client: Client, acme: dict[str, str]) -> None:
    token = (await sign_in(client, "member@acme.test"))["access_token"]
    response = await client.get("/jobs/v1/_admin/probe", headers=bearer(token, org=None))
    assert await error_of(response, 400) == {
        "code": "bad_request",
        "message": "X-Reactor-Org header required",
    }
    for org in ("globex", "nowhere"):  # another org, or none at all: the same answer
        response = await client.get("/jobs/v1/_admin/probe", headers=bearer(token, org=org))
        error = await error_of(response, 403)
        assert error == {"code": "forbidden", "message": f"you are not a member of org {org}"}


async def test_roles_rank_owner_over_admin_over_member(
    client: Client, acme: dict[str, str]
) -> None:
    allowed = {
        "owner": {"GET": 200, "POST": 200, "DELETE": 200},
        "admin": {"GET": 200, "POST": 200, "DELETE": 403},
        "member": {"GET": 200, "POST": 403, "DELETE": 403},
    }
    for who, statuses in allowed.items():
        token = (await sign_in(client, f"{who}@acme.test"))["access_token"]
        for method, status in statuses.items():
            response = await client.request(method, "/jobs/v1/_admin/probe", headers=bearer(token))
            assert response.status == status, (who, method)
            if status == 403:
                error = await error_of(response, 403)
                assert f"you are {who}" in error["message"]


async def test_refresh_token_is_not_an_access_token(client: Client, acme: dict[str, str]) -> None:
    pair = await sign_in(client, "owner@acme.test")
    response = await client.get("/jobs/v1/_admin/probe", headers=bearer(pair["refresh_token"]))
    await error_of(response, 401)
    response = await client.post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": pair["access_token"]}
    )
    await error_of(response, 401)


# Refresh and logout


async def refresh(client: Client, token: str) -> Any:
    return await client.post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": token}
    )


async def test_refresh_rotates_the_pair(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    first = await sign_in(client, "owner@acme.test")
    response = await refresh(client, first["refresh_token"])
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    probe = await client.get("/jobs/v1/_admin/probe", headers=bearer(second["access_token"]))
    assert probe.status == 200
    assert (await counts(pool))["refresh_tokens"] == 2
    assert (await counts(pool))["revoked_refresh"] == 1
    third = await (await refresh(client, second["refresh_token"])).json()
    assert third["refresh_token"].startswith("rt_")


async def test_reusing_a_spent_refresh_token_revokes_every_session(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    stolen = await sign_in(client, "owner@acme.test")
    other_device = await sign_in(client, "owner@acme.test")
    bystander = await sign_in(client, "admin@acme.test")
    rotated = await (await refresh(client, stolen["refresh_token"])).json()
    # The thief (or the victim) presents the spent token again.
    error = await error_of(await refresh(client, stolen["refresh_token"]), 401)
    assert error["message"] == "the refresh token is invalid, expired or already used"
    for token in (rotated["refresh_token"], other_device["refresh_token"]):
        await error_of(await refresh(client, token), 401)
    live = await pool.fetchval(
        "SELECT count(*) FROM _reactor_jobs.refresh_tokens WHERE user_id = $1"
        " AND revoked_at IS NULL",
        acme["owner"],
    )
    assert live == 0
    assert (await refresh(client, bystander["refresh_token"])).status == 200


async def test_unknown_refresh_tokens_change_nothing(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    await sign_in(client, "owner@acme.test")
    before = await counts(pool)
    for token in ("rt_unknown", "", "rk_something", "x" * 5000):
        await error_of(await refresh(client, token), 401)
    assert await counts(pool) == before


async def test_logout_forgets_the_refresh_token_only(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    laptop = await sign_in(client, "owner@acme.test")
    phone = await sign_in(client, "owner@acme.test")
    body = {"refresh_token": laptop["refresh_token"]}
    response = await client.post("/auth/v1/logout", json=body)
    await error_of(response, 401)  # logging out needs the user's access token too
    headers = bearer(laptop["access_token"], org=None)
    response = await client.post("/auth/v1/logout", json=body, headers=headers)
    assert response.status == 204
    assert (await client.post("/auth/v1/logout", json=body, headers=headers)).status == 204
    # A logged-out token is unknown, not "spent": the other session survives.
    await error_of(await refresh(client, laptop["refresh_token"]), 401)
    assert (await refresh(client, phone["refresh_token"])).status == 200


async def test_logout_cannot_touch_another_users_token(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    victim = await sign_in(client, "owner@acme.test")
    attacker = await sign_in(client, "member@acme.test")
    response = await client.post(
        "/auth/v1/logout",
        json={"refresh_token": victim["refresh_token"]},
        headers=bearer(attacker["access_token"], org=None),
    )
    assert response.status == 204
    assert (await refresh(client, victim["refresh_token"])).status == 200


# The signed-in user and orgs


async def test_user_needs_no_org_header(client: Client, acme: dict[str, str]) -> None:
    token = (await sign_in(client, "admin@acme.test"))["access_token"]
    response = await client.get("/auth/v1/user", headers=bearer(token, org=None))
    assert response.status == 200
    assert await response.json() == {
        "id": acme["admin"],
        "email": "admin@acme.test",
        "orgs": [{"name": "acme", "role": "admin"}],
    }
    await error_of(await client.get("/auth/v1/user"), 401)


async def test_create_org_makes_the_caller_owner(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    token = (await sign_in(client, "member@acme.test"))["access_token"]
    headers = bearer(token, org=None)
    response = await client.post("/auth/v1/orgs", json={"name": "initech"}, headers=headers)
    assert response.status == 201
    assert await response.json() == {"name": "initech", "role": "owner"}
    info = await (await client.get("/auth/v1/user", headers=headers)).json()
    assert info["orgs"] == [
        {"name": "acme", "role": "member"},
        {"name": "initech", "role": "owner"},
    ]
    probe = await client.delete("/jobs/v1/_admin/probe", headers=bearer(token, org="initech"))
    assert probe.status == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"name": "acme"}, 409, "org acme already exists"),
        ({"name": "Acme"}, 422, "name: must be"),
        ({"name": "-acme"}, 422, "name: must be"),
        ({"name": "a" * 64}, 422, "name: must be"),
        ({"name": "a_b"}, 422, "name: must be"),
        ({}, 422, "name: is required"),
        ({"name": "ok", "owner": "x"}, 422, "owner: unknown field"),
    ],
)
async def test_create_org_refusals_change_nothing(
    client: Client,
    pool: asyncpg.Pool,
    acme: dict[str, str],
    body: dict[str, str],
    status: int,
    needle: str,
) -> None:
    token = (await sign_in(client, "member@acme.test"))["access_token"]
    before = await counts(pool)
    response = await client.post("/auth/v1/orgs", json=body, headers=bearer(token, org=None))
    assert needle in (await error_of(response, status))["message"]
    assert await counts(pool) == before


# Members


async def test_members_are_listed_for_members(client: Client, acme: dict[str, str]) -> None:
    token = (await sign_in(client, "member@acme.test"))["access_token"]
    response = await client.get("/auth/v1/orgs/acme/members", headers=bearer(token, org=None))
    assert response.status == 200
    assert (await response.json())["members"] == [
        {"user_id": acme["admin"], "email": "admin@acme.test", "role": "admin"},
        {"user_id": acme["member"], "email": "member@acme.test", "role": "member"},
        {"user_id": acme["owner"], "email": "owner@acme.test", "role": "owner"},
    ]
    response = await client.get("/auth/v1/orgs/globex/members", headers=bearer(token, org=None))
    await error_of(response, 403)
    response = await client.get("/auth/v1/orgs/acme/members", headers=bearer(token, "globex"))
    assert "X-Reactor-Org names org globex" in (await error_of(response, 400))["message"]


async def test_admin_invites_a_member_who_accepts(
    client: Client, service: AuthService, acme: dict[str, str]
) -> None:
    token = (await sign_in(client, "admin@acme.test"))["access_token"]
    response = await client.post(
        "/auth/v1/orgs/acme/members",
        json={"email": "Outsider@acme.test", "role": "member"},
        headers=bearer(token),
    )
    assert response.status == 202
    invited = await response.json()
    assert {k: invited[k] for k in ("org", "email", "role")} == {
        "org": "acme",
        "email": "outsider@acme.test",
        "role": "member",
    }
    assert await service.membership(acme["outsider"], "acme") is None  # not until accepted
    outsider = (await sign_in(client, "outsider@acme.test"))["access_token"]
    path = f"/auth/v1/invitations/{invited['id']}/accept"
    response = await client.post(path, headers=bearer(outsider, org=None))
    assert response.status == 200
    assert await response.json() == {"name": "acme", "role": "member"}
    assert await service.membership(acme["outsider"], "acme") == "member"


@pytest.mark.parametrize(
    ("who", "body", "status", "needle"),
    [
        ("member", {"email": "outsider@acme.test", "role": "member"}, 403, "needs the admin"),
        ("admin", {"email": "outsider@acme.test", "role": "owner"}, 403, "only an owner"),
        ("admin", {"email": "outsider@acme.test", "role": "boss"}, 422, "role: must be"),
        ("admin", {"email": "usr_0", "role": "member"}, 422, "email: must"),
        ("admin", {"email": "a\u0000@acme.test", "role": "member"}, 422, "email: must"),
        ("admin", {"email": "outsider@acme.test"}, 422, "role: is required"),
        ("outsider", {"email": "outsider@acme.test", "role": "member"}, 403, "not a member"),
    ],
)
async def test_add_member_refusals_change_nothing(
    client: Client,
    pool: asyncpg.Pool,
    acme: dict[str, str],
    who: str,
    body: dict[str, str],
    status: int,
    needle: str,
) -> None:
    token = (await sign_in(client, f"{who}@acme.test"))["access_token"]
    before = await counts(pool)
    response = await client.post(
        "/auth/v1/orgs/acme/members", json=body, headers=bearer(token, org=None)
    )
    assert needle in (await error_of(response, status))["message"]
    assert await counts(pool) == before


# API keys


async def create_key(client: Client, token: str, role: str = "member", org: str = "acme") -> Any:
    return await client.post(
        f"/auth/v1/orgs/{org}/api-keys",
        json={"name": "ci", "role": role},
        headers=bearer(token, org=None),
    )


async def test_api_key_acts_in_its_org(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    owner = (await sign_in(client, "owner@acme.test"))["access_token"]
    response = await create_key(client, owner, role="admin")
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    created = await response.json()
    assert set(created) == {"id", "name", "role", "key"}
    assert created["key"].startswith("rk_") and created["id"].startswith("key_")
    stored = await pool.fetchval("SELECT key_hash FROM _reactor_jobs.api_keys")
    assert created["key"].encode() not in bytes(stored)
    key = created["key"]
    for org in (None, "acme"):
        probe = await client.post("/jobs/v1/_admin/probe", headers=bearer(key, org=org))
        assert probe.status == 200
        assert await probe.json() == {
            "kind": "api_key",
            "subject": created["id"],
            "org": "acme",
            "role": "admin",
            "email": None,
        }
    await error_of(await client.delete("/jobs/v1/_admin/probe", headers=bearer(key)), 403)
    response = await client.get("/jobs/v1/_admin/probe", headers=bearer(key, org="globex"))
    await error_of(response, 403)


async def test_member_key_cannot_do_admin_things(client: Client, acme: dict[str, str]) -> None:
    owner = (await sign_in(client, "owner@acme.test"))["access_token"]
    key = (await (await create_key(client, owner, role="member")).json())["key"]
    assert (await client.get("/jobs/v1/_admin/probe", headers=bearer(key))).status == 200
    await error_of(await client.post("/jobs/v1/_admin/probe", headers=bearer(key)), 403)


async def test_keys_cannot_manage_keys_or_act_as_users(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str]
) -> None:
    owner = (await sign_in(client, "owner@acme.test"))["access_token"]
    key = (await (await create_key(client, owner, role="admin")).json())["key"]
    before = await counts(pool)
    error = await error_of(await create_key(client, key, role="admin"), 403)
    assert "API keys cannot manage" in error["message"]
    response = await client.post(
        "/auth/v1/orgs/acme/members",
        json={"email": "outsider@acme.test", "role": "admin"},
        headers=bearer(key, org=None),
    )
    await error_of(response, 403)
    await error_of(await client.get("/auth/v1/user", headers=bearer(key, org=None)), 403)
    response = await client.post("/auth/v1/orgs", json={"name": "x"}, headers=bearer(key, None))
    await error_of(response, 403)
    assert await counts(pool) == before


async def test_revoked_key_is_401(client: Client, pool: asyncpg.Pool, acme: dict[str, str]) -> None:
    owner = (await sign_in(client, "owner@acme.test"))["access_token"]
    created = await (await create_key(client, owner)).json()
    path = f"/auth/v1/orgs/acme/api-keys/{created['id']}"
    member = (await sign_in(client, "member@acme.test"))["access_token"]
    await error_of(await client.delete(path, headers=bearer(member, org=None)), 403)
    outsider = (await sign_in(client, "outsider@acme.test"))["access_token"]
    # Through another org's path, the key is simply not there.
    other = f"/auth/v1/orgs/globex/api-keys/{created['id']}"
    await error_of(await client.delete(other, headers=bearer(outsider, org=None)), 404)
    assert (await client.get("/jobs/v1/_admin/probe", headers=bearer(created["key"]))).status == 200
    assert (await client.delete(path, headers=bearer(owner, org=None))).status == 204
    response = await client.get("/jobs/v1/_admin/probe", headers=bearer(created["key"]))
    assert (await error_of(response, 401))["message"] == "the API key is invalid or revoked"
    await error_of(await client.delete(path, headers=bearer(owner, org=None)), 404)
    await error_of(await client.get("/jobs/v1/_admin/probe", headers=bearer("rk_nope")), 401)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "ci", "role": "owner"}, "role: must be one of admin, member"),
        ({"name": "", "role": "member"}, "name: must be"),
        ({"name": "x" * 101, "role": "member"}, "name: must be"),
        ({"role": "member"}, "name: is required"),
    ],
)
async def test_api_key_refusals_change_nothing(
    client: Client, pool: asyncpg.Pool, acme: dict[str, str], body: dict[str, str], needle: str
) -> None:
    owner = (await sign_in(client, "owner@acme.test"))["access_token"]
    before = await counts(pool)
    response = await client.post(
        "/auth/v1/orgs/acme/api-keys", json=body, headers=bearer(owner, org=None)
    )
    assert needle in (await error_of(response, 422))["message"]
    assert await counts(pool) == before
