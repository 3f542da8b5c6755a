"""The auth tables in Postgres: users, orgs, memberships, refresh tokens and API keys.

Every function takes a connection (or the pool) so the service decides what shares a
transaction. Secrets arrive here already hashed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.auth.principal import Role

# asyncpg ships no types: a Pool or a Connection, both of which have fetch/fetchrow/execute.
Db = Any


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    password_hash: str


class Member(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    email: str
    role: Role


class OrgRole(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    role: Role


class Invitation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    org: str
    email: str
    role: Role
    expires_at: dt.datetime


class ApiKeyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    org: str
    name: str
    role: Role


class ApiKeyListed(msgspec.Struct, frozen=True, kw_only=True):
    """A key in use as its org's list shows it: never the key or its hash."""

    id: str
    name: str
    role: Role
    created_at: dt.datetime


USERS_INSERT = """
INSERT INTO _reactor_jobs.users (id, email, password_hash) VALUES ($1, $2, $3)
ON CONFLICT (email) DO NOTHING
RETURNING id
"""

USERS_BY_EMAIL = "SELECT id, email, password_hash FROM _reactor_jobs.users WHERE email = $1"

USERS_BY_ID = "SELECT id, email, password_hash FROM _reactor_jobs.users WHERE id = $1"

USERS_SET_PASSWORD_HASH = "UPDATE _reactor_jobs.users SET password_hash = $2 WHERE id = $1"

USERS_ANY = "SELECT EXISTS (SELECT 1 FROM _reactor_jobs.users)"

ORGS_INSERT = """
INSERT INTO _reactor_jobs.orgs (name, created_by) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING RETURNING name
"""

# Locks the creator's row, so two creates by one user count one after the other.
ORGS_CREATED_BY_COUNT = """
SELECT (SELECT count(*) FROM _reactor_jobs.orgs WHERE created_by = u.id)
FROM _reactor_jobs.users u WHERE u.id = $1 FOR UPDATE
"""

# One pending invitation per (org, email): inviting again renews it with the new role.
INVITATIONS_UPSERT = """
INSERT INTO _reactor_jobs.invitations (id, org, email, role, invited_by, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
ON CONFLICT (org, email) DO UPDATE
   SET role = EXCLUDED.role, invited_by = EXCLUDED.invited_by,
       created_at = now(), expires_at = EXCLUDED.expires_at
RETURNING id, org, email, role, expires_at
"""

INVITATIONS_FOR_USER = """
SELECT i.id, i.org, i.email, i.role, i.expires_at
FROM _reactor_jobs.invitations i JOIN _reactor_jobs.users u ON u.email = i.email
WHERE u.id = $1 AND i.expires_at > now()
ORDER BY i.created_at, i.id
"""

# Spends a live invitation addressed to the user's email; expired ones are deleted too.
INVITATIONS_TAKE = """
DELETE FROM _reactor_jobs.invitations i USING _reactor_jobs.users u
WHERE i.id = $2 AND u.id = $1 AND i.email = u.email
RETURNING i.org, i.role, i.expires_at > now() AS live
"""

ORGS_EXISTS = "SELECT EXISTS (SELECT 1 FROM _reactor_jobs.orgs WHERE name = $1)"

MEMBERSHIPS_INSERT = """
INSERT INTO _reactor_jobs.memberships (org, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (org, user_id) DO NOTHING
RETURNING role
"""

MEMBERSHIPS_ROLE = """
SELECT m.role, u.email
FROM _reactor_jobs.memberships m JOIN _reactor_jobs.users u ON u.id = m.user_id
WHERE m.user_id = $1 AND m.org = $2
"""

MEMBERSHIPS_OF_USER = """
SELECT org, role FROM _reactor_jobs.memberships WHERE user_id = $1 ORDER BY org
"""

MEMBERSHIPS_OF_ORG = """
SELECT m.user_id, u.email, m.role
FROM _reactor_jobs.memberships m JOIN _reactor_jobs.users u ON u.id = m.user_id
WHERE m.org = $1
ORDER BY u.email
"""

REFRESH_TOKENS_INSERT = """
INSERT INTO _reactor_jobs.refresh_tokens (token_hash, user_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""

# A user's expired tokens are useless, even for reuse detection; drop them as new ones come.
REFRESH_TOKENS_PRUNE_EXPIRED = """
DELETE FROM _reactor_jobs.refresh_tokens WHERE user_id = $1 AND expires_at <= now()
"""

# Rotation spends a token only if it is live: unknown, expired and spent tokens update nothing.
REFRESH_TOKENS_SPEND = """
UPDATE _reactor_jobs.refresh_tokens SET revoked_at = now()
WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()
RETURNING user_id
"""

REFRESH_TOKENS_LOOKUP = """
SELECT user_id, revoked_at FROM _reactor_jobs.refresh_tokens WHERE token_hash = $1
"""

REFRESH_TOKENS_REVOKE_ALL = """
UPDATE _reactor_jobs.refresh_tokens SET revoked_at = now()
WHERE user_id = $1 AND revoked_at IS NULL
"""

# Logout deletes rather than revokes, so a later use of the token is merely unknown and does
# not look like theft (which would sign the user out everywhere).
REFRESH_TOKENS_DELETE = """
DELETE FROM _reactor_jobs.refresh_tokens
WHERE token_hash = $1 AND ($2::text IS NULL OR user_id = $2)
"""

API_KEYS_INSERT = """
INSERT INTO _reactor_jobs.api_keys (id, org, name, role, key_hash) VALUES ($1, $2, $3, $4, $5)
"""

API_KEYS_BY_HASH = """
SELECT id, org, name, role FROM _reactor_jobs.api_keys WHERE key_hash = $1 AND revoked_at IS NULL
"""

API_KEYS_OF_ORG = """
SELECT id, name, role, created_at FROM _reactor_jobs.api_keys
 WHERE org = $1 AND revoked_at IS NULL ORDER BY created_at, id
"""

API_KEYS_REVOKE = """
UPDATE _reactor_jobs.api_keys SET revoked_at = now()
WHERE id = $1 AND org = $2 AND revoked_at IS NULL
RETURNING id
"""


async def insert_user(db: Db, user_id: str, email: str, password_hash: str) -> bool:
    """False if the email is taken."""
    return await db.fetchval(USERS_INSERT, user_id, email, password_hash) is not None


async def user_by_email(db: Db, email: str) -> UserRow | None:
    return _user(await db.fetchrow(USERS_BY_EMAIL, email))


async def user_by_id(db: Db, user_id: str) -> UserRow | None:
    return _user(await db.fetchrow(USERS_BY_ID, user_id))


def _user(row: asyncpg.Record | None) -> UserRow | None:
    if row is None:
        return None
    return UserRow(id=row["id"], email=row["email"], password_hash=row["password_hash"])


async def set_password_hash(db: Db, user_id: str, password_hash: str) -> None:
    await db.execute(USERS_SET_PASSWORD_HASH, user_id, password_hash)


async def any_user(db: Db) -> bool:
    return bool(await db.fetchval(USERS_ANY))


async def insert_org(db: Db, name: str, created_by: str | None = None) -> bool:
    """False if the name is taken."""
    return await db.fetchval(ORGS_INSERT, name, created_by) is not None


async def lock_user_org_count(db: Db, user_id: str) -> int | None:
    """How many orgs the user created through the API (None: no such user); locks the
    user's row until the transaction ends."""
    found: int | None = await db.fetchval(ORGS_CREATED_BY_COUNT, user_id)
    return found


async def upsert_invitation(
    db: Db, invitation_id: str, org: str, email: str, role: Role, by: str, ttl_s: int
) -> Invitation:
    row = await db.fetchrow(INVITATIONS_UPSERT, invitation_id, org, email, role, by, float(ttl_s))
    return msgspec.convert(dict(row), Invitation)


async def invitations_for_user(db: Db, user_id: str) -> list[Invitation]:
    rows = await db.fetch(INVITATIONS_FOR_USER, user_id)
    return [msgspec.convert(dict(row), Invitation) for row in rows]


async def take_invitation(db: Db, user_id: str, invitation_id: str) -> tuple[str, Role] | None:
    """(org, role) of the user's live invitation, deleted; None if unknown, someone else's
    or expired (an expired one is deleted all the same)."""
    row = await db.fetchrow(INVITATIONS_TAKE, user_id, invitation_id)
    if row is None or not row["live"]:
        return None
    return row["org"], row["role"]


async def org_exists(db: Db, name: str) -> bool:
    return bool(await db.fetchval(ORGS_EXISTS, name))


async def insert_membership(db: Db, org: str, user_id: str, role: Role) -> bool:
    """False if the user is already a member."""
    return await db.fetchval(MEMBERSHIPS_INSERT, org, user_id, role) is not None


async def membership(db: Db, user_id: str, org: str) -> tuple[Role, str] | None:
    """The user's role in the org and their email, or None if not a member."""
    row = await db.fetchrow(MEMBERSHIPS_ROLE, user_id, org)
    return None if row is None else (row["role"], row["email"])


async def orgs_of_user(db: Db, user_id: str) -> list[OrgRole]:
    rows = await db.fetch(MEMBERSHIPS_OF_USER, user_id)
    return [OrgRole(name=row["org"], role=row["role"]) for row in rows]


async def members_of_org(db: Db, org: str) -> list[Member]:
    rows = await db.fetch(MEMBERSHIPS_OF_ORG, org)
    return [Member(user_id=row["user_id"], email=row["email"], role=row["role"]) for row in rows]


async def insert_refresh_token(db: Db, token_hash: bytes, user_id: str, ttl_s: int) -> None:
    await db.execute(REFRESH_TOKENS_PRUNE_EXPIRED, user_id)
    await db.execute(REFRESH_TOKENS_INSERT, token_hash, user_id, float(ttl_s))


async def spend_refresh_token(db: Db, token_hash: bytes) -> str | None:
    """Revoke a live token and return its user id; None if unknown, expired or spent."""
    user_id: str | None = await db.fetchval(REFRESH_TOKENS_SPEND, token_hash)
    return user_id


async def refresh_token_state(db: Db, token_hash: bytes) -> tuple[str, dt.datetime | None] | None:
    """(user id, revoked at) of a stored token, or None if unknown."""
    row = await db.fetchrow(REFRESH_TOKENS_LOOKUP, token_hash)
    return None if row is None else (row["user_id"], row["revoked_at"])


async def revoke_all_refresh_tokens(db: Db, user_id: str) -> None:
    await db.execute(REFRESH_TOKENS_REVOKE_ALL, user_id)


async def delete_refresh_token(db: Db, token_hash: bytes, user_id: str | None) -> None:
    await db.execute(REFRESH_TOKENS_DELETE, token_hash, user_id)


async def insert_api_key(db: Db, key: ApiKeyRow, key_hash: bytes) -> None:
    await db.execute(API_KEYS_INSERT, key.id, key.org, key.name, key.role, key_hash)


async def api_key_by_hash(db: Db, key_hash: bytes) -> ApiKeyRow | None:
    row = await db.fetchrow(API_KEYS_BY_HASH, key_hash)
    if row is None:
        return None
    return ApiKeyRow(id=row["id"], org=row["org"], name=row["name"], role=row["role"])


async def api_keys_of_org(db: Db, org: str) -> list[ApiKeyListed]:
    rows = await db.fetch(API_KEYS_OF_ORG, org)
    return [
        ApiKeyListed(id=r["id"], name=r["name"], role=r["role"], created_at=r["created_at"])
        for r in rows
    ]


async def revoke_api_key(db: Db, key_id: str, org: str) -> bool:
    """False if the key is unknown, in another org, or already revoked."""
    return await db.fetchval(API_KEYS_REVOKE, key_id, org) is not None
