"""Who is calling, in which org, with which role: what the auth middleware leaves on each
request for the route handlers."""

from __future__ import annotations

from typing import Literal

import msgspec
from aiohttp import web

from reactor_jobs.domain.errors import ReactorError

Role = Literal["owner", "admin", "member"]
RANK: dict[str, int] = {"member": 1, "admin": 2, "owner": 3}


class Unauthorized(ReactorError):
    """Sign in first: the request has no valid token."""

    code = "unauthorized"


class Forbidden(ReactorError):
    """Your role in this org does not allow this."""

    code = "forbidden"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["user", "api_key"]
    subject: str  # the user id, or the API key id
    org: str
    role: Role
    email: str | None = None

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


# A typed key (aiohttp warns about plain-string keys on requests).
REQUEST_KEY = web.RequestKey("principal", Principal)


def require(request: web.Request, role: Role = "member") -> Principal:
    """The request's principal, if its role is at least `role`; else 401 or 403."""
    principal = request.get(REQUEST_KEY)
    if not isinstance(principal, Principal):
        raise Unauthorized()
    if not principal.at_least(role):
        raise Forbidden(
            f"this needs the {role} role in org {principal.org}; you are {principal.role}"
        )
    return principal
