"""The /auth/v1 API's objects, shared by the server (which documents its auth routes with
them) and the client (which decodes the responses into them). No other reactor_jobs import."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

OrgRoleName = Literal["owner", "admin", "member"]


class PasswordGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """grant_type=password: {email, password}; grant_type=refresh_token: {refresh_token}."""

    email: str | None = None
    password: str | None = None
    refresh_token: str | None = None


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str


class Logout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: str


class OrgMembership(msgspec.Struct, frozen=True):
    name: str
    role: OrgRoleName


class User(msgspec.Struct, frozen=True):
    id: str
    email: str
    orgs: list[OrgMembership]


class OrgCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str


class Member(msgspec.Struct, frozen=True):
    user_id: str
    email: str
    role: OrgRoleName


class MemberList(msgspec.Struct, frozen=True):
    members: list[Member]


class MemberAdd(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: str
    role: OrgRoleName


class Invitation(msgspec.Struct, frozen=True):
    id: str
    org: str
    email: str
    role: OrgRoleName
    expires_at: datetime


class InvitationList(msgspec.Struct, frozen=True):
    invitations: list[Invitation]


class ApiKeyCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    role: Literal["admin", "member"]


class ApiKey(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: Literal["admin", "member"]
    key: str  # rk_…, shown only in this response


class ApiKeyListed(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: Literal["admin", "member"]
    created_at: str


class ApiKeyList(msgspec.Struct, frozen=True):
    api_keys: list[ApiKeyListed]
