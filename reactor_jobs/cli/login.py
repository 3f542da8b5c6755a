"""`reactor login`, `reactor logout`, `reactor orgs list|use`: the stored sign-in (see
cli/credentials.py) and the org the other commands act in."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from reactor_jobs.cli.credentials import credentials_path, remove_credentials
from reactor_jobs.cli.remote import Handler, Remote
from reactor_jobs.client import ConnectionFailed, User
from reactor_jobs.domain.errors import ReactorError


class NotAMember(ReactorError):
    """You are not a member of that org."""

    code = "forbidden"

    def __init__(self, org: str, user: User) -> None:
        yours = ", ".join(m.name for m in user.orgs) or "none yet"
        super().__init__(f"{user.email} is not a member of org {org} (your orgs: {yours})")


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        args.subparser.error("no terminal to ask for the password; pipe it with --password-stdin")
    return getpass.getpass(f"Password for {args.email}: ")


def choose_org(args: argparse.Namespace, remote: Remote, user: User) -> str | None:
    """The org asked for (--org, REACTOR_ORG), else the stored one while still a member,
    else the user's only org."""
    names = [m.name for m in user.orgs]
    asked = args.org or os.environ.get("REACTOR_ORG")
    if asked:
        if asked not in names:
            raise NotAMember(asked, user)
        return str(asked)
    if remote.org in names:
        return remote.org
    return names[0] if len(names) == 1 else None


async def login(args: argparse.Namespace, remote: Remote) -> int:
    password = read_password(args)
    auth = remote.client.auth
    await auth.sign_in_with_password(email=args.email, password=password)
    user = await auth.user()
    org = choose_org(args, remote, user)
    remote.store(auth.session, org)
    if remote.out.json_mode:
        remote.out.document({"url": remote.url, "email": user.email, "org": org})
        return 0
    where = f"org {org}" if org else "no org chosen yet"
    remote.out.line(f"signed in to {remote.url} as {user.email} ({where})")
    if org is None and user.orgs:
        names = ", ".join(m.name for m in user.orgs)
        remote.out.note(f"choose one with `reactor orgs use NAME` (yours: {names})")
    remote.out.note(f"credentials stored in {credentials_path()}")
    return 0


async def logout(args: argparse.Namespace, remote: Remote) -> int:
    try:
        await remote.client.auth.sign_out()  # revokes the refresh token
    except ConnectionFailed as exc:
        remote.out.note(f"warning: {exc.message}; the refresh token was not revoked")
    remote.forget()
    removed = remove_credentials()
    message = "signed out" if removed else "not signed in"
    remote.out.done({"signed_out": removed}, message)
    return 0


async def list_orgs(args: argparse.Namespace, remote: Remote) -> int:
    user = await remote.client.auth.user()
    if remote.out.json_mode:
        remote.out.document({"orgs": user.orgs, "current": remote.org})
        return 0
    rows = [_OrgRow(m.name, m.role, "*" if m.name == remote.org else "") for m in user.orgs]
    remote.out.table(rows, [("NAME", "name"), ("ROLE", "role"), ("CURRENT", "current")],
                     f"{user.email} belongs to no org")  # fmt: skip
    return 0


async def use_org(args: argparse.Namespace, remote: Remote) -> int:
    user = await remote.client.auth.user()
    if args.org_name not in [m.name for m in user.orgs]:
        raise NotAMember(args.org_name, user)
    remote.store(remote.client.auth.session if remote.loaded else None, args.org_name)
    remote.out.done({"org": args.org_name}, f"now acting in org {args.org_name}")
    return 0


async def invite(args: argparse.Namespace, remote: Remote) -> int:
    sent = await remote.client.auth.invite(args.org_name, email=args.email, role=args.role)
    remote.out.done(sent, f"invited {sent.email} to org {sent.org} as {sent.role} "
                    f"(until {sent.expires_at:%Y-%m-%d %H:%M} UTC); they accept it with "
                    "`reactor invitations accept`")  # fmt: skip
    return 0


async def list_invitations(args: argparse.Namespace, remote: Remote) -> int:
    found = await remote.client.auth.invitations()
    columns = [("ID", "id"), ("ORG", "org"), ("ROLE", "role"), ("EXPIRES", "expires_at")]
    remote.out.listing("invitations", found, columns, "no pending invitations")
    return 0


async def accept_invitation(args: argparse.Namespace, remote: Remote) -> int:
    joined = await remote.client.auth.accept_invitation(args.invitation_id)
    remote.out.done(joined, f"joined org {joined.name} as {joined.role}")
    return 0


async def decline_invitation(args: argparse.Namespace, remote: Remote) -> int:
    await remote.client.auth.decline_invitation(args.invitation_id)
    remote.out.done({"declined": args.invitation_id}, "declined")
    return 0


class _OrgRow:
    def __init__(self, name: str, role: str, current: str) -> None:
        self.name, self.role, self.current = name, role, current


COMMANDS: dict[str, Handler] = {
    "login": login,
    "logout": logout,
    "orgs list": list_orgs,
    "orgs use": use_org,
    "orgs invite": invite,
    "invitations list": list_invitations,
    "invitations accept": accept_invitation,
    "invitations decline": decline_invitation,
}
