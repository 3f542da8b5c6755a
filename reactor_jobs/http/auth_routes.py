"""The /auth/v1 routes: sign-in and token refresh, logout, the signed-in user, orgs, members
and API keys. They check credentials themselves (the auth middleware lets /auth/v1/ through):
some paths need a user but no org, and the others take the org from the path."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reactor_jobs.auth.errors import BadRequest, InvalidAuthField, UserNotFound
from reactor_jobs.auth.middleware import ORG_HEADER, bearer_token
from reactor_jobs.auth.principal import (
    REQUEST_KEY,
    Forbidden,
    Principal,
    Role,
    Unauthorized,
    require,
)
from reactor_jobs.auth.service import AuthService, TokenPair, check_role, outranks
from reactor_jobs.auth.store import Invitation
from reactor_jobs.http.inputs import check_json_text

AUTH = web.AppKey("auth", AuthService)
# Token responses must not be kept by browsers or proxies (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_auth_routes(app: web.Application, service: AuthService) -> None:
    app[AUTH] = service
    app.router.add_post("/auth/v1/token", token)
    app.router.add_post("/auth/v1/logout", logout)
    app.router.add_get("/auth/v1/user", user)
    app.router.add_post("/auth/v1/orgs", create_org)
    app.router.add_get("/auth/v1/orgs/{org}/members", list_members)
    app.router.add_post("/auth/v1/orgs/{org}/members", add_member)
    app.router.add_get("/auth/v1/invitations", list_invitations)
    app.router.add_post("/auth/v1/invitations/{id}/accept", accept_invitation)
    app.router.add_post("/auth/v1/invitations/{id}/decline", decline_invitation)
    app.router.add_post("/auth/v1/orgs/{org}/api-keys", create_api_key)
    app.router.add_get("/auth/v1/orgs/{org}/api-keys", list_api_keys)
    app.router.add_delete("/auth/v1/orgs/{org}/api-keys/{key_id}", revoke_api_key)


async def token(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    grant_type = request.query.get("grant_type")
    if grant_type == "password":
        body = await _body(request, {"email", "password"})
        email, password = _string(body, "email"), _string(body, "password")
        user_id = await service.authenticate(email, password, request.remote or "-")
        pair = await service.issue_tokens(user_id)
    elif grant_type == "refresh_token":
        body = await _body(request, {"refresh_token"})
        pair = await service.refresh(_string(body, "refresh_token"))
    else:
        raise InvalidAuthField("grant_type", "must be password or refresh_token")
    return _token_response(pair)


async def logout(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    body = await _body(request, {"refresh_token"})
    await service.logout(_string(body, "refresh_token"), user_id)
    return web.Response(status=204)


async def user(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    info = await service.user_info(user_id)
    orgs = [{"name": org.name, "role": org.role} for org in info.orgs]
    return web.json_response({"id": info.id, "email": info.email, "orgs": orgs})


async def create_org(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    body = await _body(request, {"name"})
    info = await service.user_info(user_id)
    try:
        created = await service.create_org_as(_string(body, "name"), user_id, info.email)
    except UserNotFound:
        raise Unauthorized("the token's user no longer exists") from None
    return web.json_response({"name": created.name, "role": created.role}, status=201)


async def list_members(request: web.Request) -> web.Response:
    principal = await _org_principal(request, "member")
    members = await request.config_dict[AUTH].members(principal.org)
    return web.json_response(
        {"members": [{"user_id": m.user_id, "email": m.email, "role": m.role} for m in members]}
    )


async def add_member(request: web.Request) -> web.Response:
    principal = await _org_principal(request, "admin", users_only=True)
    body = await _body(request, {"email", "role"})
    email, role = _string(body, "email"), check_role(_string(body, "role"))
    if not outranks(principal.role, role):
        raise Forbidden(f"only an owner can add an owner; you are {principal.role}")
    invitation = await request.config_dict[AUTH].invite(
        principal.org, email, role, principal.subject
    )
    return web.json_response(_invitation(invitation), status=202)


async def list_invitations(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    found = await service.invitations(user_id)
    return web.json_response({"invitations": [_invitation(i) for i in found]})


async def accept_invitation(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    joined = await service.accept_invitation(user_id, request.match_info["id"])
    return web.json_response({"name": joined.name, "role": joined.role})


async def decline_invitation(request: web.Request) -> web.Response:
    service = request.config_dict[AUTH]
    user_id = await service.user_for_token(bearer_token(request))
    await service.decline_invitation(user_id, request.match_info["id"])
    return web.Response(status=204)


def _invitation(invitation: Invitation) -> dict[str, str]:
    return {
        "id": invitation.id,
        "org": invitation.org,
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
    }


async def create_api_key(request: web.Request) -> web.Response:
    principal = await _org_principal(request, "admin", users_only=True)
    body = await _body(request, {"name", "role"})
    name, role = _string(body, "name"), _string(body, "role")
    key_id, key = await request.config_dict[AUTH].create_api_key(principal.org, name, role)
    return web.json_response(
        {"id": key_id, "name": name, "role": role, "key": key}, status=201, headers=NO_STORE
    )


async def list_api_keys(request: web.Request) -> web.Response:
    principal = await _org_principal(request, "admin")
    keys = await request.config_dict[AUTH].api_keys(principal.org)
    listed = [
        {"id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at.isoformat()}
        for k in keys
    ]
    return web.json_response({"api_keys": listed})


async def revoke_api_key(request: web.Request) -> web.Response:
    principal = await _org_principal(request, "admin", users_only=True)
    await request.config_dict[AUTH].revoke_api_key(principal.org, request.match_info["key_id"])
    return web.Response(status=204)


async def _org_principal(
    request: web.Request, role: Role, *, users_only: bool = False
) -> Principal:
    """The caller's principal in the path's org (an X-Reactor-Org header must agree)."""
    org = request.match_info["org"]
    header = request.headers.get(ORG_HEADER)
    token = bearer_token(request)
    if header and header != org:
        raise BadRequest(f"{ORG_HEADER} names org {header} but the path names org {org}")
    request[REQUEST_KEY] = await request.config_dict[AUTH].principal_for(token, org)
    principal = require(request, role)
    if users_only and principal.kind != "user":
        # A leaked key must not be able to mint more keys or members that outlive its revocation.
        raise Forbidden("API keys cannot manage members or API keys; sign in as a user")
    return principal


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object body, with no fields beyond `allowed`."""
    raw = await request.read()
    check_json_text(raw)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for field in sorted(body.keys() - allowed):
        raise InvalidAuthField(field, "unknown field")
    return body


def _string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise InvalidAuthField(field, "is required")
    if not isinstance(value, str):
        raise InvalidAuthField(field, "must be a string")
    return value


def _token_response(pair: TokenPair) -> web.Response:
    return web.json_response(
        {
            "access_token": pair.access_token,
            "token_type": pair.token_type,
            "expires_in": pair.expires_in,
            "refresh_token": pair.refresh_token,
        },
        headers=NO_STORE,
    )
