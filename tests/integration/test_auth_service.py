"""AuthService against a real Postgres: users, orgs, refresh expiry, rehashing, the JWT
secret file, and the dev-mode bootstrap admin."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import asyncpg
import pytest
from argon2 import PasswordHasher

from reactor_jobs.auth.bootstrap import ensure_dev_admin
from reactor_jobs.auth.errors import (
    ApiKeyNotFound,
    AuthConflict,
    InvalidAuthField,
    OrgNotFound,
    UserNotFound,
)
from reactor_jobs.auth.principal import Forbidden, Unauthorized
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import AuthConfig, Config, JobsConfig
from tests.integration.test_auth_http import PASSWORD, auth_config, counts

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(pool: asyncpg.Pool, tmp_path: Path) -> AuthService:
    return AuthService(pool, auth_config(tmp_path))


async def test_emails_are_unique_regardless_of_case(
    service: AuthService, pool: asyncpg.Pool
) -> None:
    user_id = await service.create_user("  Ada@Example.COM ", PASSWORD)
    assert user_id.startswith("usr_")
    before = await counts(pool)
    with pytest.raises(AuthConflict, match=r"ada@example\.com already exists"):
        await service.create_user("ada@example.com", PASSWORD)
    assert await counts(pool) == before
    assert await service.authenticate("ADA@example.com", PASSWORD) == user_id
    stored = await pool.fetchval("SELECT password_hash FROM _reactor_jobs.users")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("no-at-sign", PASSWORD, "email"),
        ("two@@example.com", PASSWORD, "email"),
        ("sp ace@example.com", PASSWORD, "email"),
        ("a@b", "short", "password"),
    ],
)
async def test_bad_users_are_refused_by_field(
    service: AuthService, pool: asyncpg.Pool, email: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidAuthField) as caught:
        await service.create_user(email, password)
    assert caught.value.field == field
    assert (await counts(pool))["users"] == 0


async def test_a_weak_hash_is_upgraded_at_sign_in(service: AuthService, pool: asyncpg.Pool) -> None:
    user_id = await service.create_user("old@example.com", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    await pool.execute("UPDATE _reactor_jobs.users SET password_hash = $1", weak)
    assert await service.authenticate("old@example.com", PASSWORD) == user_id
    upgraded = await pool.fetchval("SELECT password_hash FROM _reactor_jobs.users")
    assert upgraded != weak and "m=65536" in upgraded
    with pytest.raises(Unauthorized):
        await service.authenticate("old@example.com", "wrong password")


async def test_orgs_and_memberships(service: AuthService, pool: asyncpg.Pool) -> None:
    ada = await service.create_user("ada@example.com", PASSWORD)
    bob = await service.create_user("bob@example.com", PASSWORD)
    await service.create_org("acme", ada)
    assert await service.membership(ada, "acme") == "owner"
    assert await service.membership(bob, "acme") is None
    member = await service.add_member("acme", "BOB@example.com", "admin")
    assert (member.user_id, member.email, member.role) == (bob, "bob@example.com", "admin")
    before = await counts(pool)
    with pytest.raises(AuthConflict):
        await service.create_org("acme", bob)
    with pytest.raises(AuthConflict):
        await service.add_member("acme", bob, "member")
    with pytest.raises(OrgNotFound):
        await service.add_member("nowhere", bob, "member")
    with pytest.raises(UserNotFound):
        await service.add_member("acme", "carol@example.com", "member")
    with pytest.raises(UserNotFound):
        await service.create_org("other", "usr_missing")
    with pytest.raises(InvalidAuthField):
        await service.add_member("acme", bob, "superuser")
    with pytest.raises(OrgNotFound):
        await service.create_api_key("nowhere", "ci", "admin")
    with pytest.raises(ApiKeyNotFound):
        await service.revoke_api_key("acme", "key_missing")
    assert await counts(pool) == before
    info = await service.user_info(bob)
    assert [(org.name, org.role) for org in info.orgs] == [("acme", "admin")]


async def test_principal_for_users_and_keys(service: AuthService) -> None:
    ada = await service.create_user("ada@example.com", PASSWORD)
    await service.create_org("acme", ada)
    pair = await service.issue_tokens(ada)
    principal = await service.principal_for(pair.access_token, "acme")
    assert (principal.kind, principal.subject, principal.role) == ("user", ada, "owner")
    key_id, key = await service.create_api_key("acme", "ci", "member")
    principal = await service.principal_for(key, None)
    assert (principal.kind, principal.subject, principal.org) == ("api_key", key_id, "acme")
    with pytest.raises(Forbidden):
        await service.principal_for(key, "globex")
    await service.revoke_api_key("acme", key_id)
    with pytest.raises(Unauthorized):
        await service.principal_for(key, "acme")
    assert repr(pair) == "TokenPair(expires_in=3600)"


async def test_expired_refresh_token_is_refused_without_revoking_others(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    service = AuthService(pool, auth_config(tmp_path, refresh_ttl_s=1))
    ada = await service.create_user("ada@example.com", PASSWORD)
    old = await service.issue_tokens(ada)
    await asyncio.sleep(1.1)
    fresh = await service.issue_tokens(ada)  # also prunes the expired one
    with pytest.raises(Unauthorized):
        await service.refresh(old.refresh_token)
    assert (await service.refresh(fresh.refresh_token)).refresh_token != fresh.refresh_token


async def test_concurrent_refreshes_spend_a_token_once(service: AuthService) -> None:
    ada = await service.create_user("ada@example.com", PASSWORD)
    pair = await service.issue_tokens(ada)
    results = await asyncio.gather(
        *(service.refresh(pair.refresh_token) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert all(isinstance(r, Unauthorized) for r in results if isinstance(r, BaseException))


async def test_the_jwt_secret_is_generated_once_per_data_dir(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = Config(jobs=JobsConfig(data_dir=str(tmp_path / "data"), auth=AuthConfig()))
    first, second = AuthService(pool, config), AuthService(pool, config)
    ada = await first.create_user("ada@example.com", PASSWORD)
    assert not (tmp_path / "data").exists()  # nothing signed yet, nothing written
    token = (await first.issue_tokens(ada)).access_token
    assert await second.user_for_token(token) == ada
    secret_file = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    elsewhere = Config(jobs=JobsConfig(data_dir=str(tmp_path / "other")))
    with pytest.raises(Unauthorized):
        await AuthService(pool, elsewhere).user_for_token(token)


async def test_dev_admin_only_on_an_empty_install(service: AuthService) -> None:
    created = await ensure_dev_admin(service)
    assert created is not None
    email, password = created
    assert email == "admin@localhost" and len(password) >= 16
    user_id = await service.authenticate(email, password)
    assert await service.membership(user_id, "default") == "owner"
    assert await ensure_dev_admin(service) is None


async def test_dev_admin_is_skipped_once_anyone_exists(service: AuthService) -> None:
    await service.create_user("ada@example.com", PASSWORD)
    assert await ensure_dev_admin(service) is None
