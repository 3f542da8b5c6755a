"""The `reactor` command line: parses arguments, runs one command, turns errors into exit codes.

Exit codes: 0 success, 1 a failed command (`error: …` on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, NoReturn

import asyncpg
import msgspec

from reactor_jobs import __version__
from reactor_jobs.cli.remote_args import (
    add_org_commands,
    add_remote_commands,
    add_user_commands,
    check_remote_args,
)
from reactor_jobs.client.errors import ClientError
from reactor_jobs.config import Config, check_config, load_config
from reactor_jobs.domain.errors import ReactorError

if TYPE_CHECKING:
    from reactor_jobs.cli.remote_args import Commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        if getattr(args, "remote", False):
            # Commands that talk to a server through the client: no server config needed.
            from reactor_jobs.cli import remote

            return asyncio.run(remote.run(args))
        config = _config(args)
        return asyncio.run(dispatch(args, config))
    except (ReactorError, ClientError) as exc:
        return _fail(str(exc))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
        return _fail(f"the database has no Reactor schema; run `reactor db migrate` ({exc})")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`reactor journal dump … | head`); stay quiet at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except asyncpg.PostgresError as exc:
        return _fail(f"the database refused: {exc}")
    except Exception as exc:
        # A bug, but a user gets one line; REACTOR_DEBUG=1 shows where it came from.
        if os.environ.get("REACTOR_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (REACTOR_DEBUG=1 shows more)")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `reactor jobs trigger: error: …` and where to
    read more, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _local_options() -> argparse.ArgumentParser:
    """The options of the commands that open the database themselves, also accepted after
    the command (`reactor serve --database-url …`); SUPPRESS keeps a value given before it."""
    options = Parser(add_help=False)
    group = options.add_argument_group("configuration")
    group.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS,
        help="TOML config (default: ./reactor.toml, $REACTOR_CONFIG)",
    )  # fmt: skip
    group.add_argument(
        "--database-url", metavar="URL", default=argparse.SUPPRESS,
        help="Postgres URL (default: $REACTOR_DATABASE_URL, else an embedded Postgres)",
    )  # fmt: skip
    group.add_argument(
        "--data-dir", metavar="DIR", default=argparse.SUPPRESS,
        help="embedded Postgres, bundle cache, JWT secret (default: .reactor)",
    )  # fmt: skip
    group.add_argument(
        "--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
        help="serve/worker logs: text (default) or json, one object per line on stderr",
    )  # fmt: skip
    return options


LOCAL = _local_options()


def local_parser(commands: Commands, name: str, help: str) -> argparse.ArgumentParser:
    """A command run against the database: it takes the configuration options."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, parents=[LOCAL])
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="reactor", description="Reactor Jobs: durable execution.", parents=[LOCAL])
    parser.add_argument("--version", action="version", version=f"reactor-jobs {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = local_parser(commands, "serve", "run the HTTP service and workers")
    serve.set_defaults(command="serve")
    serve.add_argument(
        "--dev", action="store_true",
        help="on a database with no users, create admin@localhost and say how to sign in "
        "(always on with the embedded Postgres)",
    )  # fmt: skip
    serve.add_argument("--host", help="listen on this address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen on this port (default: 8080; 0: any)")
    _add_metrics_port(serve)
    worker = local_parser(commands, "worker", "run workers only (any number of processes)")
    worker.set_defaults(command="worker")
    worker.add_argument(
        "--app", metavar="MODULE:APP",
        help="run the code jobs of a reactor_jobs.App (e.g. myproject.jobs:app) in this process",
    )  # fmt: skip
    _add_metrics_port(worker)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        metavar="COMMAND", required=True
    )
    local_parser(db, "migrate", "bring the schema up to date").set_defaults(command="db migrate")

    journal = commands.add_parser("journal", help="the event journal").add_subparsers(
        metavar="COMMAND", required=True
    )
    dump = local_parser(journal, "dump", "print a run's events as NDJSON")
    dump.add_argument("run_id", metavar="RUN_ID")
    dump.set_defaults(command="journal dump")
    verify = local_parser(journal, "verify", "check hash chains (a run, --all, or --file)")
    verify.add_argument("run_id", metavar="RUN_ID", nargs="?")
    verify.add_argument("--all", action="store_true", help="verify every run")
    verify.add_argument("--file", metavar="PATH", help="verify an export offline (no database)")
    verify.set_defaults(command="journal verify", subparser=verify)
    export = local_parser(journal, "export", "a job's runs as NDJSON, with hashes")
    export.add_argument("--org", required=True)
    export.add_argument("--job", required=True)
    export.add_argument("--since", metavar="TIME", help="runs created at or after (ISO 8601)")
    export.add_argument("--until", metavar="TIME", help="runs created before (ISO 8601)")
    export.add_argument("--output", "-o", metavar="PATH", help="write here, not to stdout")
    export.set_defaults(command="journal export")

    projections = commands.add_parser("projections", help="read models").add_subparsers(
        metavar="COMMAND", required=True
    )
    rebuild = local_parser(projections, "rebuild", "rebuild all projections from the journal")
    rebuild.set_defaults(command="projections rebuild")
    _add_bootstrap_commands(commands)
    add_remote_commands(commands)
    return parser


def _add_metrics_port(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--metrics-port", metavar="PORT", type=int,
        help="also serve GET /metrics on this port ([jobs.metrics] port; host: "
        "[jobs.metrics] host, default 127.0.0.1)",
    )  # fmt: skip


def _add_bootstrap_commands(commands: Commands) -> None:
    """`reactor users|orgs|api-keys …`: straight to the database, for a new install."""
    users = commands.add_parser(
        "users", help="users (create: in the database; list: the org's members, on the server)"
    ).add_subparsers(metavar="COMMAND", required=True)
    create_user = local_parser(users, "create", "create a user")
    create_user.add_argument("--email", required=True)
    password = create_user.add_mutually_exclusive_group(required=True)
    password.add_argument("--password", help="visible to other local users; prefer stdin")
    password.add_argument("--password-stdin", action="store_true", help="read one line")
    create_user.set_defaults(command="users create")

    orgs = commands.add_parser(
        "orgs", help="orgs (create/add-member: in the database; list/use: on the server)"
    ).add_subparsers(metavar="COMMAND", required=True)
    create_org = local_parser(orgs, "create", "create an org with an owner")
    create_org.add_argument("name", metavar="NAME")
    create_org.add_argument("--owner", required=True, metavar="EMAIL")
    create_org.set_defaults(command="orgs create")
    add_member = local_parser(orgs, "add-member", "add a user to an org")
    add_member.add_argument("name", metavar="NAME")
    add_member.add_argument("--email", required=True)
    add_member.add_argument("--role", required=True, choices=("owner", "admin", "member"))
    add_member.set_defaults(command="orgs add-member")
    add_org_commands(orgs)

    api_keys = commands.add_parser(
        "api-keys", help="service API keys (create: in the database; list, revoke: on the server)"
    ).add_subparsers(metavar="COMMAND", required=True)
    create_key = local_parser(api_keys, "create", "create a key (printed once)")
    create_key.add_argument("--org", required=True, metavar="NAME")
    create_key.add_argument("--name", required=True)
    create_key.add_argument("--role", required=True, choices=("admin", "member"))
    create_key.set_defaults(command="api-keys create")
    add_user_commands(users, api_keys)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if (
        args.command == "journal verify"
        and [args.run_id is not None, args.all, args.file is not None].count(True) != 1
    ):
        args.subparser.error("give one of RUN_ID, --all or --file")
    if getattr(args, "remote", False):
        check_remote_args(args)
    return args


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # one line
    return EXIT_FAILED


def _config(args: argparse.Namespace) -> Config:
    """The config file and environment, then the command line's options over them."""
    config = load_config(getattr(args, "config", None))
    jobs = config.jobs
    if url := getattr(args, "database_url", None):
        jobs = msgspec.structs.replace(jobs, database_url=url)
    if data_dir := getattr(args, "data_dir", None):
        jobs = msgspec.structs.replace(jobs, data_dir=data_dir)
    host, port = getattr(args, "host", None), getattr(args, "port", None)
    if host is not None or port is not None:
        http = msgspec.structs.replace(
            jobs.http,
            host=jobs.http.host if host is None else host,
            port=jobs.http.port if port is None else port,
        )
        jobs = msgspec.structs.replace(jobs, http=http)
    if log_format := getattr(args, "log_format", None):
        jobs = msgspec.structs.replace(jobs, log_format=log_format)
    metrics_port = getattr(args, "metrics_port", None)
    if metrics_port is not None:
        if not 0 <= metrics_port <= 65535:
            raise ReactorError("--metrics-port: must be between 0 and 65535")
        jobs = msgspec.structs.replace(
            jobs, metrics=msgspec.structs.replace(jobs.metrics, port=metrics_port)
        )
    config = msgspec.structs.replace(config, jobs=jobs)
    check_config(config)
    return config


async def dispatch(args: argparse.Namespace, config: Config) -> int:
    # Command modules are imported on use, so one command's imports never slow or break another.
    match args.command:
        case "db migrate":
            from reactor_jobs.cli import db

            return await db.migrate(config)
        case "projections rebuild":
            from reactor_jobs.cli import db

            return await db.rebuild_projections(config)
        case "journal dump":
            from reactor_jobs.cli import journal

            return await journal.dump(config, args.run_id)
        case "journal verify":
            from reactor_jobs.cli import journal

            if args.file:
                return journal.verify_file(args.file)
            if args.all:
                return await journal.verify_all(config)
            return await journal.verify(config, args.run_id)
        case "journal export":
            from reactor_jobs.cli import journal

            return await journal.export(
                config, args.org, args.job, args.since, args.until, args.output
            )
        case "serve":
            from reactor_jobs.cli import serve

            return await serve.serve(config, dev=args.dev)
        case "worker":
            from reactor_jobs.cli import serve

            if args.app:
                return await serve.work_app(config, args.app)
            return await serve.work(config)
        case "users create":
            from reactor_jobs.cli import users

            password = users.read_password_stdin() if args.password_stdin else args.password
            return await users.create_user(config, args.email, password)
        case "orgs create":
            from reactor_jobs.cli import users

            return await users.create_org(config, args.name, args.owner)
        case "orgs add-member":
            from reactor_jobs.cli import users

            return await users.add_member(config, args.name, args.email, args.role)
        case "functions host":
            from reactor_jobs.hosts import service

            return await service.serve(args.listen, config.jobs.functions.api_key)
        case "api-keys create":
            from reactor_jobs.cli import users

            return await users.create_api_key(config, args.org, args.name, args.role)
    raise AssertionError(f"unhandled command {args.command!r}")
