"""The client object: one HTTP session and the API's namespaces, as `@reactor/client` has
them (`auth`, `jobs`, `functions`, `events`), in Python naming and async."""

from __future__ import annotations

from types import TracebackType

from reactor_jobs.client.auth import Auth
from reactor_jobs.client.data import Data
from reactor_jobs.client.functions import Events, Functions
from reactor_jobs.client.jobs import Jobs
from reactor_jobs.client.transport import Transport


class Client:
    def __init__(self, url: str, *, token: str | None = None, org: str | None = None) -> None:
        self._transport = Transport(url, token=token, org=org)
        self.auth = Auth(self._transport)
        self.jobs = Jobs(self._transport)
        self.functions = Functions(self._transport)
        self.events = Events(self._transport)
        self.data = Data(self._transport)

    @property
    def url(self) -> str:
        return self._transport.url

    async def close(self) -> None:
        """Close the HTTP session (the client opens a new one if used again)."""
        await self._transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, org={self._transport.org!r})"


def create_client(url: str, *, token: str | None = None, org: str | None = None) -> Client:
    """A client of the Reactor server at `url`. `token` is an access token or a service API
    key (`rk_…`); without one, sign in with `client.auth.sign_in_with_password`. `org` is
    the org to act in (see `client.auth.set_org`). Use `async with`, or `await close()`."""
    return Client(url, token=token, org=org)
