"""The /auth/v1 routes as the OpenAPI document describes them. They are registered by
auth_routes.add_auth_routes; these entries only document them (docs/http-api.md, Auth)."""

from __future__ import annotations

from typing import Any

from reactor_jobs.http.routes import Route, param
from reactor_jobs.wire.auth import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyList,
    Invitation,
    InvitationList,
    Logout,
    MemberAdd,
    MemberList,
    OrgCreate,
    OrgMembership,
    PasswordGrant,
    TokenPair,
    User,
)


def _doc(method: str, path: str, name: str, access: Any, **doc: Any) -> Route:
    return Route(method=method, path=path, access=access, name=name, handle=None, **doc)


_ORG_IN_PATH = "The org is the path's; X-Reactor-Org, if sent, must agree."

AUTH_DOCS: list[Route] = [
    _doc(
        "POST", "/auth/v1/token", "token", "public",
        summary="Sign in (grant_type=password) or refresh tokens (grant_type=refresh_token)",
        tag="auth", body=PasswordGrant, response=TokenPair, errors=(400, 401, 422, 429, 503),
        params=(param("grant_type", "password or refresh_token",
                      enum=["password", "refresh_token"]),),
        note="A refresh revokes the refresh token it used. After too many failed sign-ins "
        "for the email or from the address (jobs.auth.sign_in_failures_per_email, "
        "_per_address, within sign_in_window_s): 429 too_many_requests with Retry-After. "
        "When the server is busy checking passwords: 503 server_busy with Retry-After.",
    ),
    _doc("POST", "/auth/v1/logout", "logout", "member", summary="Revoke a refresh token",
         tag="auth", status=204, body=Logout, errors=(400, 401)),
    _doc("GET", "/auth/v1/user", "user", "member", summary="The signed-in user and their orgs",
         tag="auth", response=User, errors=(401,), note="Needs no X-Reactor-Org."),
    _doc("POST", "/auth/v1/orgs", "create_org", "member",
         summary="Create an org; the caller becomes its owner", tag="auth", status=201,
         body=OrgCreate, response=OrgMembership, errors=(401, 403, 409, 422),
         note="Needs no X-Reactor-Org. Allowed to any user or only to server admins "
         "(jobs.auth.org_creation), at most jobs.auth.max_orgs_per_user per user; else 403."),
    _doc("GET", "/auth/v1/orgs/{org}/members", "list_members", "member",
         summary="List an org's members", tag="auth", response=MemberList,
         errors=(401, 403), note=_ORG_IN_PATH),
    _doc("POST", "/auth/v1/orgs/{org}/members", "add_member", "admin",
         summary="Invite an email to the org with a role (the invitee accepts)", tag="auth",
         status=202, body=MemberAdd, response=Invitation, errors=(401, 403, 404, 422),
         note=_ORG_IN_PATH + " The answer is the same whether or not the email has an "
         "account; inviting again renews the invitation (jobs.auth.invitation_ttl_s)."),
    _doc("GET", "/auth/v1/invitations", "list_invitations", "member",
         summary="The signed-in user's pending invitations", tag="auth",
         response=InvitationList, errors=(401, 403), note="Needs no X-Reactor-Org."),
    _doc("POST", "/auth/v1/invitations/{id}/accept", "accept_invitation", "member",
         summary="Accept an invitation: join its org with its role", tag="auth",
         response=OrgMembership, errors=(401, 403, 404, 409),
         note="Unknown, expired or someone else's: 404. Already a member: 409."),
    _doc("POST", "/auth/v1/invitations/{id}/decline", "decline_invitation", "member",
         summary="Decline an invitation", tag="auth", status=204, errors=(401, 403, 404)),
    _doc("POST", "/auth/v1/orgs/{org}/api-keys", "create_api_key", "admin",
         summary="Create a service API key (the key is shown once)", tag="auth", status=201,
         body=ApiKeyCreate, response=ApiKey, errors=(401, 403, 422), note=_ORG_IN_PATH),
    _doc("GET", "/auth/v1/orgs/{org}/api-keys", "list_api_keys", "admin",
         summary="List an org's API keys in use (never the keys)", tag="auth",
         response=ApiKeyList, errors=(401, 403, 404), note=_ORG_IN_PATH),
    _doc("DELETE", "/auth/v1/orgs/{org}/api-keys/{key_id}", "revoke_api_key", "admin",
         summary="Revoke an API key", tag="auth", status=204, errors=(401, 403, 404),
         note=_ORG_IN_PATH),
]  # fmt: skip
