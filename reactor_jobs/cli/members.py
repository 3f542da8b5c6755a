"""`reactor users list` and `reactor api-keys list|revoke`: the org's members and its service
API keys, on the server (creating users and keys for a new install is in cli/users.py)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import NamedTuple

from reactor_jobs.cli.remote import Handler, Remote


async def list_users(args: argparse.Namespace, remote: Remote) -> int:
    members = await remote.client.auth.members()
    columns = [("EMAIL", "email"), ("ROLE", "role"), ("USER ID", "user_id")]
    remote.out.listing("members", members, columns, f"org {remote.org} has no members")
    return 0


class _KeyRow(NamedTuple):
    id: str
    name: str
    role: str
    created_at: datetime


async def list_api_keys(args: argparse.Namespace, remote: Remote) -> int:
    keys = await remote.client.auth.api_keys()
    if remote.out.json_mode:
        remote.out.document({"api_keys": keys})
        return 0
    # The API documents created_at as a string; the table shows it as every other time.
    rows = [_KeyRow(k.id, k.name, k.role, datetime.fromisoformat(k.created_at)) for k in keys]
    columns = [("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("CREATED", "created_at")]
    remote.out.table(rows, columns, f"org {remote.org} has no API keys in use")
    return 0


async def revoke_api_key(args: argparse.Namespace, remote: Remote) -> int:
    await remote.client.auth.revoke_api_key(args.key_id)
    remote.out.done({"revoked": args.key_id}, f"revoked API key {args.key_id}")
    return 0


COMMANDS: dict[str, Handler] = {
    "users list": list_users,
    "api-keys list": list_api_keys,
    "api-keys revoke": revoke_api_key,
}
