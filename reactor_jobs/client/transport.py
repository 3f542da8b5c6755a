"""The one HTTP path of the client: base URL, credentials and org headers, JSON in and out,
typed errors, and one token refresh when a request is refused with 401.

The API answers every 401 with the same `unauthorized` code (no, bad or expired token), so
the refresh is tried on any 401 while a refresh token is held; the request is then sent once
more. Concurrent requests that fail together refresh once (the refresh token is single-use).
Nothing here logs, and no error message carries a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import msgspec

from reactor_jobs import __version__
from reactor_jobs.client.errors import ConnectionFailed, SignInRequired, error_for
from reactor_jobs.client.types import Page, Session

T = TypeVar("T")
ORG_HEADER = "X-Reactor-Org"
_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
# A log stream is open for as long as the caller reads; the server sends a heartbeat every
# 10 s, so a minute of silence means the connection is dead.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
_UNSET: Any = object()


Exchange = Callable[[str], Awaitable[Session]]
# Given the session in use and the exchange (refresh token -> new session), return the
# session to use from now on. Processes sharing stored tokens (the CLI) serialise here.
RefreshHook = Callable[[Session, Exchange], Awaitable[Session]]


class Transport:
    def __init__(self, url: str, *, token: str | None, org: str | None) -> None:
        self.url = url.rstrip("/")
        self.session: Session | None = Session(access_token=token) if token else None
        self.org = org
        self.refresh_hook: RefreshHook | None = None
        self._http: aiohttp.ClientSession | None = None
        self._refreshing = asyncio.Lock()

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp requires one).
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=_TIMEOUT, headers={"User-Agent": f"reactor-jobs-client/{__version__}"}
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = _UNSET,
        data: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        refresh: bool = True,
    ) -> bytes:
        """The response body of a successful request; a typed error otherwise."""
        extra = dict(headers or {})
        if json is not _UNSET:
            data, content_type = msgspec.json.encode(json), "application/json"
        if content_type:
            extra["Content-Type"] = content_type
        send = {"data": data, "params": params}
        opened = self._open(method, path, extra, send=send, auth=auth, refresh=refresh)
        async with opened as response:
            return await self._read(response)

    async def decode(self, type_: type[T], method: str, path: str, **kwargs: Any) -> T:
        return msgspec.json.decode(await self.call(method, path, **kwargs), type=type_)

    async def items(self, key: str, type_: type[T], path: str, **kwargs: Any) -> list[T]:
        """The `key` list of a GET response, e.g. `{"jobs": [...]}`."""
        page = await self.page(key, type_, path, **kwargs)
        return page.items

    async def page(self, key: str, type_: type[T], path: str, **kwargs: Any) -> Page[T]:
        raw = msgspec.json.decode(await self.call("GET", path, **kwargs))
        items = msgspec.convert(raw[key], list[type_])  # type: ignore[valid-type]
        return Page(items, raw.get("next_cursor"))

    @asynccontextmanager
    async def stream(
        self, path: str, headers: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streaming GET (the SSE log); errors are raised before the body is read."""
        send = {"data": None, "params": None}
        opened = self._open("GET", path, dict(headers), send=send, timeout=STREAM_TIMEOUT)
        async with opened as response:
            if response.status >= 400:
                await self._read(response)
            yield response

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        send: dict[str, Any],
        auth: bool = True,
        refresh: bool = True,
        timeout: aiohttp.ClientTimeout = _TIMEOUT,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        for first_try in (True, False):
            token = self.session.access_token if auth and self.session else None
            response = await self._send(method, path, self._headers(headers, token), send, timeout)
            if response.status == 401 and first_try and token and refresh and self._can_refresh():
                response.release()
                await self._refresh_after(token)
                continue
            try:
                yield response
            finally:
                response.release()
            return

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        send: dict[str, Any],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        try:
            return await self._client().request(
                method, self.url + path, headers=headers, timeout=timeout, **send
            )
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"cannot reach the Reactor server at {self.url}: {exc or type(exc).__name__}"
            ) from None

    def _headers(self, extra: dict[str, str], token: str | None) -> dict[str, str]:
        headers = dict(extra)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self.org:
            headers[ORG_HEADER] = self.org
        return headers

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(f"the connection to {self.url} failed: {exc}") from None
        if response.status >= 400:
            request_id = response.headers.get("X-Request-Id")
            raise error_for(response.status, body, request_id, response.headers.get("Retry-After"))
        return body

    def _can_refresh(self) -> bool:
        return self.session is not None and self.session.refresh_token is not None

    async def _refresh_after(self, stale_token: str) -> None:
        async with self._refreshing:
            if self.session is not None and self.session.access_token != stale_token:
                return  # another request refreshed meanwhile
            await self.refresh()

    async def refresh(self) -> Session:
        """Trade the refresh token for new tokens (the old refresh token is revoked)."""
        held = self.session
        if held is None or held.refresh_token is None:
            raise SignInRequired()
        if self.refresh_hook is not None:
            self.session = await self.refresh_hook(held, self.exchange)
        else:
            self.session = await self.exchange(held.refresh_token)
        return self.session

    async def exchange(self, refresh_token: str) -> Session:
        """POST the refresh token for a new pair (the server revokes the one sent)."""
        return await self.decode(
            Session, "POST", "/auth/v1/token", params={"grant_type": "refresh_token"},
            json={"refresh_token": refresh_token}, auth=False,
        )  # fmt: skip
