"""`client.auth`: sign in with a password, choose the org, refresh, sign out, who am I; the
org's members and its service API keys."""

from __future__ import annotations

from urllib.parse import quote

from reactor_jobs.client.errors import NoOrgChosen, UnauthorizedError
from reactor_jobs.client.jobs import seg
from reactor_jobs.client.transport import RefreshHook, Transport
from reactor_jobs.client.types import ApiKey, Invitation, Member, Membership, Session, User


class Auth:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    @property
    def session(self) -> Session | None:
        """The tokens in use (they change when the client refreshes them)."""
        return self._t.session

    @property
    def org(self) -> str | None:
        return self._t.org

    def set_session(self, session: Session | None) -> None:
        """Use tokens kept from an earlier sign-in (e.g. the CLI's stored credentials)."""
        self._t.session = session

    def set_org(self, org: str | None) -> None:
        """The org every later request acts in (the `X-Reactor-Org` header)."""
        self._t.org = org

    async def sign_in_with_password(self, *, email: str, password: str) -> Session:
        self._t.session = await self._t.decode(
            Session, "POST", "/auth/v1/token", params={"grant_type": "password"},
            json={"email": email, "password": password}, auth=False,
        )  # fmt: skip
        return self._t.session

    async def refresh(self) -> Session:
        """New tokens for the refresh token; done automatically when a request gets a 401."""
        return await self._t.refresh()

    def on_refresh(self, hook: RefreshHook | None) -> None:
        """Route refreshes through `hook(session, exchange)`: for callers that share one
        stored refresh token between processes (it is single-use), so they can serialise
        the exchange and store its result; see the CLI's cli/remote.py."""
        self._t.refresh_hook = hook

    async def user(self) -> User:
        """The signed-in user and the orgs they belong to, with their role in each."""
        return await self._t.decode(User, "GET", "/auth/v1/user")

    async def create_org(self, name: str) -> Membership:
        """A new org owned by the signed-in user (if the server lets them create orgs)."""
        return await self._t.decode(Membership, "POST", "/auth/v1/orgs", json={"name": name})

    async def invite(self, org: str, *, email: str, role: str) -> Invitation:
        """Invite an email to `org` (an admin's or owner's call); the invitee accepts it."""
        path = f"/auth/v1/orgs/{quote(org, safe='')}/members"
        body = {"email": email, "role": role}
        return await self._t.decode(Invitation, "POST", path, json=body)

    async def invitations(self) -> list[Invitation]:
        """The signed-in user's pending invitations."""
        return await self._t.items("invitations", Invitation, "/auth/v1/invitations")

    async def accept_invitation(self, id: str) -> Membership:
        path = f"/auth/v1/invitations/{quote(id, safe='')}/accept"
        return await self._t.decode(Membership, "POST", path)

    async def decline_invitation(self, id: str) -> None:
        await self._t.call("POST", f"/auth/v1/invitations/{quote(id, safe='')}/decline")

    async def members(self) -> list[Member]:
        """The members of the org in use, with their roles."""
        return await self._t.items("members", Member, f"{self._org_path()}/members")

    async def api_keys(self) -> list[ApiKey]:
        """The org's API keys in use (admin); never the keys themselves."""
        return await self._t.items("api_keys", ApiKey, f"{self._org_path()}/api-keys")

    async def revoke_api_key(self, key_id: str) -> None:
        """Revoke one of the org's API keys (admin; signed in as a user)."""
        await self._t.call("DELETE", f"{self._org_path()}/api-keys/{seg(key_id)}")

    def _org_path(self) -> str:
        if not self._t.org:
            raise NoOrgChosen()
        return f"/auth/v1/orgs/{seg(self._t.org)}"

    async def sign_out(self) -> None:
        """Revoke the refresh token on the server and forget the tokens. Tokens that are
        already expired or revoked count as signed out."""
        try:
            if self._t.session is not None and self._t.session.refresh_token is not None:
                try:
                    await self._logout()
                except UnauthorizedError:
                    await self._t.refresh()  # the access token expired; renew it to revoke
                    await self._logout()
        except UnauthorizedError:
            pass
        finally:
            self._t.session = None

    async def _logout(self) -> None:
        assert self._t.session is not None
        body = {"refresh_token": self._t.session.refresh_token}
        # Not through the refresh-on-401 path: a refresh there would revoke the refresh
        # token in the body before the logout could.
        await self._t.call("POST", "/auth/v1/logout", json=body, refresh=False)
