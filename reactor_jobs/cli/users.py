"""`reactor users|orgs|api-keys …`: bootstrap a new install straight in the database (the
server need not run): the first users, their orgs and roles, and service API keys."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from reactor_jobs.auth.bootstrap import ensure_dev_admin
from reactor_jobs.auth.service import AuthService
from reactor_jobs.cli.connection import open_pool
from reactor_jobs.config import Config

__all__ = ["add_member", "create_api_key", "create_org", "create_user", "ensure_dev_admin"]


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[AuthService]:
    async with open_pool(config, max_size=2) as pool:
        yield AuthService(pool, config)


def read_password_stdin() -> str:
    """One line from stdin, without its newline (`… | reactor users create --password-stdin`)."""
    return sys.stdin.readline().rstrip("\r\n")


async def create_user(config: Config, email: str, password: str) -> int:
    async with _service(config) as service:
        user_id = await service.create_user(email, password)
    print(f"created user {user_id} ({email.strip().lower()})")
    return 0


async def create_org(config: Config, name: str, owner_email: str) -> int:
    async with _service(config) as service:
        owner = await service.user_id_for_email(owner_email)
        await service.create_org(name, owner)
    print(f"created org {name}, owned by {owner_email.strip().lower()}")
    return 0


async def add_member(config: Config, org: str, email: str, role: str) -> int:
    async with _service(config) as service:
        member = await service.add_member(org, email, role)
    print(f"added {member.email} to org {org} as {member.role}")
    return 0


async def create_api_key(config: Config, org: str, name: str, role: str) -> int:
    async with _service(config) as service:
        key_id, key = await service.create_api_key(org, name, role)
    # The key alone on stdout, for KEY=$(reactor api-keys create …); it is not stored anywhere.
    print(
        f"created API key {key_id} ({name}, {role}) in org {org}; it is shown only once",
        file=sys.stderr,
    )
    print(key)
    return 0
