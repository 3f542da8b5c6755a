"""Plumbing of the commands that talk to a running server through the Python client: where
the server is (`--url`, REACTOR_URL, the stored sign-in, else http://127.0.0.1:8080), which
token (REACTOR_TOKEN, else the stored one, kept up to date when the client refreshes it),
which org (`--org`, REACTOR_ORG, else the stored one), and dispatch to the command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType

from reactor_jobs.cli.credentials import (
    Credentials,
    credentials_locked,
    load_credentials,
    save_credentials,
)
from reactor_jobs.cli.output import Output
from reactor_jobs.client import Client, Session, SignInRequired, UnauthorizedError, create_client
from reactor_jobs.client.transport import Exchange
from reactor_jobs.domain.errors import ReactorError

DEFAULT_URL = "http://127.0.0.1:8080"
Handler = Callable[[argparse.Namespace, "Remote"], Awaitable[int]]


def normalise(url: str) -> str:
    return url.strip().rstrip("/")


class Remote:
    """One command's view of the server: its client, where the credentials came from, and
    its output. `async with` closes the client and stores refreshed tokens."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.stored = load_credentials()
        self.url = normalise(args.url or os.environ.get("REACTOR_URL") or self._stored_url())
        # Stored tokens and org belong to the server they were issued by.
        mine = self.stored if self.stored and normalise(self.stored.url) == self.url else None
        stored_org = mine.org if mine else None
        self.org: str | None = args.org or os.environ.get("REACTOR_ORG") or stored_org
        self.client: Client = create_client(self.url, org=self.org)
        self.out = Output(json=getattr(args, "json", False))
        self.loaded: Session | None = None
        if token := os.environ.get("REACTOR_TOKEN"):
            self.client.auth.set_session(Session(access_token=token))
        elif mine and mine.access_token:
            self.loaded = Session(access_token=mine.access_token, refresh_token=mine.refresh_token)
            self.client.auth.set_session(self.loaded)
            self.client.auth.on_refresh(self._refresh_shared)

    async def _refresh_shared(self, held: Session, exchange: Exchange) -> Session:
        """Refresh tokens that other `reactor` processes share: under the credentials lock,
        use the stored refresh token if another process already replaced ours (ours is
        spent), exchange it, and store the new pair at once, so a long `reactor jobs logs`
        and the commands run beside it never present one refresh token twice (the server
        would take that for theft and revoke the sign-in)."""
        async with credentials_locked():
            stored = load_credentials()
            token = held.refresh_token
            if stored and normalise(stored.url) == self.url and stored.refresh_token:
                token = stored.refresh_token
            if token is None:
                raise SignInRequired()
            fresh = await exchange(token)
            self.store(fresh, stored.org if stored else self.org)
        self.loaded = fresh
        return fresh

    def _stored_url(self) -> str:
        return self.stored.url if self.stored else DEFAULT_URL

    def store(self, session: Session | None, org: str | None) -> None:
        """Write the stored sign-in for this server (replacing any other)."""
        save_credentials(
            Credentials(
                url=self.url,
                access_token=session.access_token if session else None,
                refresh_token=session.refresh_token if session else None,
                org=org,
            )
        )
        self.forget()

    def forget(self) -> None:
        """The command has dealt with the stored tokens itself (login, logout)."""
        self.loaded = None

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.client.close()
        session = self.client.auth.session
        if self.loaded is not None and session is not None and session != self.loaded:
            # The client refreshed: the old refresh token is revoked, keep the new pair.
            self.store(session, self.stored.org if self.stored else None)


class NotConfirmed(ReactorError):
    """Not confirmed; nothing was changed."""

    code = "not_confirmed"


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask before destroying something: --yes skips it; without a terminal to ask on,
    --yes is required (a script must say so)."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(f"{question.rstrip('?')}: give --yes to confirm (stdin is no terminal)")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise NotConfirmed()


def _handlers(command: str) -> Handler:
    # Imported on use, like the other command modules.
    from reactor_jobs.cli import audit

    if command in audit.COMMANDS:  # `jobs runs replay|state|lineage`, `functions check`
        return audit.COMMANDS[command]
    group = command.split()[0]
    if group in ("users", "api-keys"):
        from reactor_jobs.cli import members

        return members.COMMANDS[command]
    if group == "functions":
        from reactor_jobs.cli import functions

        return functions.COMMANDS[command]
    if group == "jobs":
        from reactor_jobs.cli import jobs

        return jobs.COMMANDS[command]
    if group == "data":
        from reactor_jobs.cli import data

        return data.COMMANDS[command]
    from reactor_jobs.cli import login

    return login.COMMANDS[command]


async def run(args: argparse.Namespace) -> int:
    handler = _handlers(args.command)
    async with Remote(args) as remote:
        try:
            return await handler(args, remote)
        except (UnauthorizedError, SignInRequired) as exc:
            login = f"reactor login --email EMAIL --url {remote.url}"
            remote.out.note(f"error: {exc.message.rstrip('.')}; sign in with `{login}`")
            return 1
