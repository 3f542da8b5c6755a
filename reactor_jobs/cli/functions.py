"""`reactor functions …`: create a function, deploy a folder as its next version, promote a
version, list functions and versions, delete one, through the Python client."""

from __future__ import annotations

import argparse
from pathlib import Path

from reactor_jobs.cli.jobs import show_trigger_changes
from reactor_jobs.cli.remote import Handler, Remote, confirm
from reactor_jobs.client import Function
from reactor_jobs.domain.errors import ReactorError

FUNCTION_FIELDS = ("name", "runtime", "live_version", "created_at", "updated_at")
VERSION_COLUMNS = [("VERSION", "version"), ("LIVE", "live"), ("SIZE", "size"),
                   ("SHA256", "sha256"), ("CREATED", "created_at")]  # fmt: skip


def show_function(remote: Remote, function: Function) -> None:
    if remote.out.json_mode:
        remote.out.document(function)
    else:
        remote.out.record(function, FUNCTION_FIELDS)


async def create(args: argparse.Namespace, remote: Remote) -> int:
    show_function(remote, await remote.client.functions.create(args.name, runtime=args.runtime))
    return 0


class NotABundle(ReactorError):
    """The folder is not a function bundle."""

    code = "not_a_bundle"


async def deploy(args: argparse.Namespace, remote: Remote) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise NotABundle(f"{folder} is not a folder (--dir takes the folder of function.json)")
    if not (folder / "function.json").is_file():
        raise NotABundle(f"{folder} has no function.json (--dir takes the bundle's folder)")
    version = await remote.client.functions.deploy(args.name, folder)
    if remote.out.json_mode:
        remote.out.document(version)
        return 0
    remote.out.line(
        f"deployed {version.name} version {version.version} "
        f"({version.size} bytes, sha256 {version.sha256[:12]}); not live until promoted"
    )
    remote.out.note(f"next: reactor functions promote {version.name}")
    return 0


async def promote(args: argparse.Namespace, remote: Remote) -> int:
    function = await remote.client.functions.promote(args.name, args.version)
    if remote.out.json_mode:
        remote.out.document(function)
    else:
        remote.out.line(f"{function.name}: version {function.live_version} is live")
        show_trigger_changes(remote, function.triggers)
    return 0


async def delete(args: argparse.Namespace, remote: Remote) -> int:
    confirm(args, f"Delete function {args.name} and all its versions?")
    await remote.client.functions.delete(args.name)
    remote.out.done({"deleted": args.name}, f"deleted function {args.name}")
    return 0


async def list_functions(args: argparse.Namespace, remote: Remote) -> int:
    functions = await remote.client.functions.list()
    columns = [("NAME", "name"), ("RUNTIME", "runtime"), ("LIVE", "live_version"),
               ("UPDATED", "updated_at")]  # fmt: skip
    remote.out.listing("functions", functions, columns, "no functions")
    return 0


async def versions(args: argparse.Namespace, remote: Remote) -> int:
    found = await remote.client.functions.versions(args.name)
    remote.out.listing("versions", found, VERSION_COLUMNS, f"function {args.name} has no versions")
    return 0


COMMANDS: dict[str, Handler] = {
    "functions create": create,
    "functions deploy": deploy,
    "functions promote": promote,
    "functions list": list_functions,
    "functions delete": delete,
    "functions versions": versions,
}
