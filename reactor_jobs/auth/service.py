"""The auth use cases: sign-up and sign-in, orgs and members, token issue/refresh/logout,
API keys, and turning a bearer token plus an org name into a Principal."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from typing import Any, NoReturn

import asyncpg
import msgspec

from reactor_jobs.auth import store
from reactor_jobs.auth.errors import (
    ApiKeyNotFound,
    AuthConflict,
    BadRequest,
    InvalidAuthField,
    InvitationNotFound,
    OrgNotFound,
    UserNotFound,
)
from reactor_jobs.auth.passwords import (
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)
from reactor_jobs.auth.principal import RANK, Forbidden, Principal, Role, Unauthorized
from reactor_jobs.auth.store import ApiKeyRow, Invitation, Member, OrgRole
from reactor_jobs.auth.throttle import PasswordHashers, SignInThrottle
from reactor_jobs.auth.tokens import (
    REFRESH_PREFIX,
    AccessTokens,
    is_api_key,
    jwt_secret,
    new_api_key,
    new_refresh_token,
    token_hash,
)
from reactor_jobs.config import Config
from reactor_jobs.domain.ids import new_id

log = logging.getLogger(__name__)

ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Loose on purpose: one @ with something on each side and no whitespace; delivery proves more.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_EMAIL_LENGTH = 254
MAX_KEY_NAME_LENGTH = 100
ROLES: tuple[Role, ...] = ("owner", "admin", "member")
API_KEY_ROLES: tuple[Role, ...] = ("admin", "member")

BAD_CREDENTIALS = "wrong email or password"
BAD_REFRESH = "the refresh token is invalid, expired or already used"
ORG_HEADER_REQUIRED = "X-Reactor-Org header required"


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"

    def __repr__(self) -> str:
        return f"TokenPair(expires_in={self.expires_in})"


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    orgs: list[OrgRole]


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
    if len(normalized) > MAX_EMAIL_LENGTH or not EMAIL.match(normalized):
        raise InvalidAuthField("email", "must look like name@example.com")
    return normalized


def check_org_name(name: str) -> str:
    if not ORG_NAME.match(name):
        raise InvalidAuthField(
            "name", "must be 1-63 lowercase letters, digits or dashes, not starting with a dash"
        )
    return name


def check_role(role: str, allowed: tuple[Role, ...] = ROLES, field: str = "role") -> Role:
    for candidate in allowed:
        if role == candidate:
            return candidate
    raise InvalidAuthField(field, f"must be one of {', '.join(allowed)}")


def check_key_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_KEY_NAME_LENGTH:
        raise InvalidAuthField("name", f"must be 1-{MAX_KEY_NAME_LENGTH} characters")
    return name


class AuthService:
    """Users, orgs, memberships and credentials over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, config: Config) -> None:
        self._pool = pool
        self._jobs = config.jobs
        auth = config.jobs.auth
        self._refresh_ttl_s = auth.refresh_ttl_s
        self._hashers = PasswordHashers(auth.password_hash_threads, auth.password_hash_queue)
        self.throttle = SignInThrottle(
            auth.sign_in_failures_per_email,
            auth.sign_in_failures_per_address,
            auth.sign_in_window_s,
        )

    def close(self) -> None:
        self._hashers.close()

    @functools.cached_property
    def access(self) -> AccessTokens:
        """Made on first use, so CLI commands that never sign tokens never touch the secret
        file; `reactor serve` reads it at start to fail early on a bad one."""
        auth = self._jobs.auth
        return AccessTokens(
            jwt_secret(self._jobs),
            issuer=auth.issuer,
            audience=auth.audience,
            ttl_s=auth.access_ttl_s,
        )

    # Users

    async def create_user(self, email: str, password: str) -> str:
        email = normalize_email(email)
        check_password_rules(password)
        password_hash = await self._hashers.run(hash_password, password)
        user_id = new_id("usr")
        if not await store.insert_user(self._pool, user_id, email, password_hash):
            raise AuthConflict(f"a user with email {email} already exists")
        return user_id

    async def authenticate(self, email: str, password: str, address: str = "-") -> str:
        """The user id; unknown email and wrong password fail alike, in about the same time.
        Past the failure limits of the email or the client address: TooManyRequests, before
        any password is checked."""
        email = email.strip().lower()
        self.throttle.check(email, address)
        user = await store.user_by_email(self._pool, email)
        if user is None:
            await self._hashers.run(verify_dummy, password)
            self._failed(email, address)
        elif not await self._hashers.run(verify_password, user.password_hash, password):
            self._failed(email, address)
        self.throttle.succeeded(email)
        if needs_rehash(user.password_hash):
            rehashed = await self._hashers.run(hash_password, password)
            await store.set_password_hash(self._pool, user.id, rehashed)
        return user.id

    def _failed(self, email: str, address: str) -> NoReturn:
        self.throttle.failed(email, address)
        # The email hashed (it may be someone's password typed in the wrong box), never the
        # password; the address as the server saw it.
        digest = hashlib.sha256(email.encode()).hexdigest()[:16]
        log.warning("sign-in failed: email sha256:%s from %s", digest, address)
        raise Unauthorized(BAD_CREDENTIALS)

    async def has_users(self) -> bool:
        return await store.any_user(self._pool)

    async def user_id_for_email(self, email: str) -> str:
        user = await store.user_by_email(self._pool, normalize_email(email))
        if user is None:
            raise UserNotFound(email)
        return user.id

    async def user_info(self, user_id: str) -> UserInfo:
        user = await store.user_by_id(self._pool, user_id)
        if user is None:
            raise Unauthorized("the token's user no longer exists")
        orgs = await store.orgs_of_user(self._pool, user_id)
        return UserInfo(id=user.id, email=user.email, orgs=orgs)

    # Orgs and memberships

    async def create_org_as(self, name: str, user_id: str, email: str) -> OrgRole:
        """An org created over the API: only if the config lets this user create orgs
        (org_creation, server_admins) and they are under max_orgs_per_user."""
        auth = self._jobs.auth
        if auth.org_creation != "any" and email not in self._server_admins:
            raise Forbidden("only server admins may create orgs here (jobs.auth.org_creation)")
        check_org_name(name)
        async with self._pool.acquire() as conn, conn.transaction():
            created = await store.lock_user_org_count(conn, user_id)
            if created is None:
                raise UserNotFound(user_id)
            if created >= auth.max_orgs_per_user:
                raise Forbidden(
                    f"you have created {created} orgs, the most allowed "
                    f"(jobs.auth.max_orgs_per_user = {auth.max_orgs_per_user})"
                )
            return await self._insert_org(conn, name, user_id, created_by=user_id)

    async def create_org(self, name: str, owner_user_id: str) -> OrgRole:
        """An org made by the operator (CLI, dev bootstrap): no policy, no limit."""
        check_org_name(name)
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._insert_org(conn, name, owner_user_id)

    async def _insert_org(
        self, conn: Any, name: str, owner_user_id: str, created_by: str | None = None
    ) -> OrgRole:
        """Call inside a transaction."""
        if not await store.insert_org(conn, name, created_by):
            raise AuthConflict(f"org {name} already exists")
        try:
            await store.insert_membership(conn, name, owner_user_id, "owner")
        except asyncpg.ForeignKeyViolationError:
            raise UserNotFound(owner_user_id) from None
        return OrgRole(name=name, role="owner")

    @functools.cached_property
    def _server_admins(self) -> frozenset[str]:
        return frozenset(email.strip().lower() for email in self._jobs.auth.server_admins)

    async def invite(self, org: str, email: str, role: str, invited_by: str) -> Invitation:
        """Invite an email to the org (renewing a pending invitation). The answer is the same
        whether or not the email has an account, so it tells nothing about who is registered."""
        checked_role, email = check_role(role), normalize_email(email)
        if not await store.org_exists(self._pool, org):
            raise OrgNotFound(org)
        return await store.upsert_invitation(
            self._pool, new_id("inv"), org, email, checked_role, invited_by,
            self._jobs.auth.invitation_ttl_s,
        )  # fmt: skip

    async def invitations(self, user_id: str) -> list[Invitation]:
        return await store.invitations_for_user(self._pool, user_id)

    async def accept_invitation(self, user_id: str, invitation_id: str) -> OrgRole:
        async with self._pool.acquire() as conn, conn.transaction():
            taken = await store.take_invitation(conn, user_id, invitation_id)
            if taken is None:
                raise InvitationNotFound(invitation_id)
            org, role = taken
            if not await store.insert_membership(conn, org, user_id, role):
                raise AuthConflict(f"you are already a member of org {org}")
        return OrgRole(name=org, role=role)

    async def decline_invitation(self, user_id: str, invitation_id: str) -> None:
        if await store.take_invitation(self._pool, user_id, invitation_id) is None:
            raise InvitationNotFound(invitation_id)

    async def add_member(self, org: str, email_or_user_id: str, role: str) -> Member:
        """A membership made by the operator (CLI, dev bootstrap): no invitation."""
        checked_role = check_role(role)
        if not await store.org_exists(self._pool, org):
            raise OrgNotFound(org)
        user = await self._find_user(email_or_user_id)
        if not await store.insert_membership(self._pool, org, user.id, checked_role):
            raise AuthConflict(f"{user.email} is already a member of org {org}")
        return Member(user_id=user.id, email=user.email, role=checked_role)

    async def _find_user(self, email_or_user_id: str) -> store.UserRow:
        if "@" not in email_or_user_id:  # user ids never contain one; emails always do
            user = await store.user_by_id(self._pool, email_or_user_id)
        else:
            user = await store.user_by_email(self._pool, normalize_email(email_or_user_id))
        if user is None:
            raise UserNotFound(email_or_user_id)
        return user

    async def membership(self, user_id: str, org: str) -> Role | None:
        found = await store.membership(self._pool, user_id, org)
        return None if found is None else found[0]

    async def members(self, org: str) -> list[Member]:
        return await store.members_of_org(self._pool, org)

    # Access and refresh tokens

    async def issue_tokens(self, user_id: str) -> TokenPair:
        refresh_token = new_refresh_token()
        async with self._pool.acquire() as conn, conn.transaction():
            await store.insert_refresh_token(
                conn, token_hash(refresh_token), user_id, self._refresh_ttl_s
            )
        return self._pair(user_id, refresh_token)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair. A token spent before is a sign of theft: every
        refresh token of its user is revoked, so both the thief and the victim must sign in."""
        if not refresh_token.startswith(REFRESH_PREFIX):
            raise Unauthorized(BAD_REFRESH)
        digest, fresh = token_hash(refresh_token), new_refresh_token()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                user_id = await store.spend_refresh_token(conn, digest)
                if user_id is not None:
                    await store.insert_refresh_token(
                        conn, token_hash(fresh), user_id, self._refresh_ttl_s
                    )
            if user_id is None:
                await self._detect_reuse(conn, digest)
                raise Unauthorized(BAD_REFRESH)
        return self._pair(user_id, fresh)

    async def _detect_reuse(self, conn: Any, digest: bytes) -> None:
        state = await store.refresh_token_state(conn, digest)
        if state is not None and state[1] is not None:
            await store.revoke_all_refresh_tokens(conn, state[0])
            log.warning(
                "a spent refresh token of user %s was presented again; "
                "revoked all of that user's refresh tokens",
                state[0],
            )

    async def logout(self, refresh_token: str, user_id: str | None = None) -> None:
        """Forget the refresh token (only if it is `user_id`'s, when given). Idempotent."""
        await store.delete_refresh_token(self._pool, token_hash(refresh_token), user_id)

    def _pair(self, user_id: str, refresh_token: str) -> TokenPair:
        return TokenPair(
            access_token=self.access.issue(user_id),
            refresh_token=refresh_token,
            expires_in=self.access.ttl_s,
        )

    # API keys

    async def create_api_key(self, org: str, name: str, role: str) -> tuple[str, str]:
        """(id, key); only the key's hash is kept, so the key can be shown this once."""
        row = ApiKeyRow(
            id=new_id("key"),
            org=org,
            name=check_key_name(name),
            role=check_role(role, API_KEY_ROLES),
        )
        if not await store.org_exists(self._pool, org):
            raise OrgNotFound(org)
        key = new_api_key()
        await store.insert_api_key(self._pool, row, token_hash(key))
        return row.id, key

    async def api_keys(self, org: str) -> list[store.ApiKeyListed]:
        """The org's keys in use, oldest first."""
        return await store.api_keys_of_org(self._pool, org)

    async def revoke_api_key(self, org: str, key_id: str) -> None:
        if not await store.revoke_api_key(self._pool, key_id, org):
            raise ApiKeyNotFound(key_id)

    # Principals

    async def user_for_token(self, token: str) -> str:
        """The user id of a user's access token (for the paths that need a user, not an org)."""
        if is_api_key(token):
            raise Forbidden("this needs a user's token; API keys act only inside their org")
        return self.access.verify(token)

    async def principal_for(self, token: str, org_header: str | None) -> Principal:
        if is_api_key(token):
            return await self._api_key_principal(token, org_header or None)
        user_id = self.access.verify(token)
        if not org_header:
            raise BadRequest(ORG_HEADER_REQUIRED)
        found = await store.membership(self._pool, user_id, org_header)
        if found is None:
            raise Forbidden(f"you are not a member of org {org_header}")
        role, email = found
        return Principal(kind="user", subject=user_id, org=org_header, role=role, email=email)

    async def _api_key_principal(self, key: str, org_header: str | None) -> Principal:
        row = await store.api_key_by_hash(self._pool, token_hash(key))
        if row is None:
            raise Unauthorized("the API key is invalid or revoked")
        if org_header is not None and org_header != row.org:
            raise Forbidden(f"this API key belongs to another org, not {org_header}")
        return Principal(kind="api_key", subject=row.id, org=row.org, role=row.role)


def outranks(granter: Role, granted: Role) -> bool:
    """True if a member with role `granter` may hand out `granted` (never above their own)."""
    return RANK[granter] >= RANK[granted]
