"""The arguments of the commands that talk to a running server (`reactor login`, `logout`,
`functions …`, `jobs …`, `orgs list|use`, `users list`, `api-keys list|revoke`), spelled as
in the spec. Every one of them takes --url, --org and --json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # generic only in the stubs
    Commands: TypeAlias = argparse._SubParsersAction[Any]  # of ArgumentParser or a subclass
_POLICY_FIELDS = ("max-attempts", "backoff", "initial-delay-ms", "max-delay-ms",
                  "max-concurrency", "timeout-ms")  # fmt: skip
_POLICY_FLAGS = {
    "--max-attempts": int, "--initial-delay-ms": int, "--max-delay-ms": int,
    "--max-concurrency": int, "--timeout-ms": int,
}  # fmt: skip


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    options = common.add_argument_group("server")
    options.add_argument(
        "--url", help="server URL (default: $REACTOR_URL, the stored sign-in's, "
        "else http://127.0.0.1:8080)",
    )  # fmt: skip
    options.add_argument("--org", help="org to act in (default: $REACTOR_ORG, the stored one)")
    options.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    return common


COMMON = _common()


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {shown!r}") from None


def payload_value(text: str) -> Any:
    """--payload: JSON itself, `@PATH` (a file's JSON) or `-` (stdin's), so a payload of
    any size need not fit on the command line."""
    if text == "-":
        return _json_from(sys.stdin.buffer.read(), "stdin")
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
        return _json_from(data, str(path))
    return json_value(text)


def _json_from(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{where} is not valid JSON ({exc})") from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _leaf(group: Commands, name: str, command: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help, parents=[COMMON])
    parser.set_defaults(command=command, remote=True, subparser=parser)
    return parser


def _group(commands: Commands, name: str, help: str) -> Commands:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    return parser.add_subparsers(metavar="COMMAND", required=True)


def add_remote_commands(commands: Commands) -> None:
    login = _leaf(commands, "login", "login", "sign in to a server and store the tokens")
    login.add_argument("--email", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    _leaf(commands, "logout", "logout", "revoke and forget the stored sign-in")
    _add_functions(_group(commands, "functions", "functions on the server"))
    _add_jobs(_group(commands, "jobs", "jobs on the server: triggers, runs, DLQ, logs"))
    add_invitation_commands(commands)


def add_org_commands(orgs: Commands) -> None:
    """`orgs list|use`, beside the database bootstrap commands `orgs create|add-member`."""
    _leaf(orgs, "list", "orgs list", "the orgs you belong to (from the server)")
    use = _leaf(orgs, "use", "orgs use", "act in this org from now on (stored)")
    use.add_argument("org_name", metavar="NAME")
    invite = _leaf(orgs, "invite", "orgs invite", "invite an email to an org (on the server)")
    invite.add_argument("org_name", metavar="NAME")
    invite.add_argument("--email", required=True)
    invite.add_argument("--role", required=True, choices=("owner", "admin", "member"))


def add_invitation_commands(commands: Commands) -> None:
    """`invitations list|accept|decline`: the signed-in user's invitations to orgs."""
    invitations = _group(commands, "invitations", "your invitations to orgs (on the server)")
    _leaf(invitations, "list", "invitations list", "your pending invitations")
    for verb in ("accept", "decline"):
        leaf = _leaf(invitations, verb, f"invitations {verb}", f"{verb} an invitation")
        leaf.add_argument("invitation_id", metavar="INVITATION_ID")


def _add_functions(functions: Commands) -> None:
    create = _leaf(functions, "create", "functions create", "create a function")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--runtime", choices=("python", "bun"), default="python")
    deploy = _leaf(functions, "deploy", "functions deploy", "upload a folder as a new version")
    deploy.add_argument("name", metavar="NAME")
    deploy.add_argument("--dir", required=True, metavar="DIR", help="function.json and code/")
    promote = _leaf(functions, "promote", "functions promote", "make a version live")
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("--version", type=int, metavar="N", help="default: the latest")
    _leaf(functions, "list", "functions list", "list functions")
    delete = _leaf(functions, "delete", "functions delete", "delete a function (no job uses it)")
    delete.add_argument("name", metavar="NAME")
    _confirm_args(delete)
    versions = _leaf(functions, "versions", "functions versions", "list deployed versions")
    versions.add_argument("name", metavar="NAME")
    check_help = "would a version replay every run in flight? (exit 1 if any diverge)"
    check = _leaf(functions, "check", "functions check", check_help)
    check.add_argument("name", metavar="NAME")
    check.add_argument("--version", type=int, required=True, metavar="N")
    host = functions.add_parser(
        "host", help="run a function-host service for workers ([jobs.functions] url)"
    )
    host.set_defaults(command="functions host")
    host.add_argument("--listen", default="127.0.0.1:8004", metavar="HOST:PORT")


def _add_jobs(jobs: Commands) -> None:
    create = _leaf(jobs, "create", "jobs create", "create a job bound to a function")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--function", required=True, metavar="FN")
    for flag, kind in _POLICY_FLAGS.items():
        create.add_argument(flag, type=kind, metavar="N", help="default: the manifest's")
    create.add_argument("--backoff", choices=("exponential", "linear"))
    update = _leaf(jobs, "update", "jobs update", "change a job's function or policy")
    update.add_argument("name", metavar="NAME")
    update.add_argument("--function", metavar="FN", help="bind the job to another function")
    for flag, kind in _POLICY_FLAGS.items():
        update.add_argument(flag, type=kind, metavar="N")
    update.add_argument("--backoff", choices=("exponential", "linear"))
    update.add_argument(
        "--clear", action="append", default=[], metavar="FIELD", choices=_POLICY_FIELDS,
        help="follow the manifest again for this policy field (e.g. max-attempts; repeatable)",
    )  # fmt: skip
    _leaf(jobs, "list", "jobs list", "list jobs")
    _leaf(jobs, "get", "jobs get", "show a job").add_argument("name", metavar="NAME")
    delete = _leaf(jobs, "delete", "jobs delete", "delete a job and its triggers")
    delete.add_argument("name", metavar="NAME")
    _confirm_args(delete)
    trigger = _leaf(jobs, "trigger", "jobs trigger", "start a run now")
    trigger.add_argument("name", metavar="NAME")
    trigger.add_argument(
        "--payload", type=payload_value, metavar="JSON|@FILE|-",
        help="the run's input: JSON, @FILE to read it from a file, - to read it from stdin",
    )  # fmt: skip
    trigger.add_argument("--idempotency-key", metavar="KEY", help="a repeat returns the first run")
    trigger.add_argument(
        "--wait", action="store_true",
        help="wait for the run to finish and print it; exit 1 unless it completed",
    )  # fmt: skip
    trigger.add_argument(
        "--timeout", type=seconds, metavar="SECONDS",
        help="with --wait: give up after this long (exit 1; the run goes on)",
    )  # fmt: skip
    logs = _leaf(jobs, "logs", "jobs logs", "print the job's log (events and ctx.log lines)")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("--follow", "-f", action="store_true", help="then stream it live (Ctrl-C)")
    logs.add_argument("--last-event-id", metavar="ID", help="start after it (default: all)")
    logs.add_argument("--run", metavar="RUN_ID", help="only this run's events and lines")
    _add_triggers(_group(jobs, "triggers", "a job's triggers"))
    _add_runs(_group(jobs, "runs", "a job's runs"))
    _add_dlq(_group(jobs, "dlq", "a job's dead-letter queue"))
    events = _group(jobs, "events", "events emitted by runs")
    listed = _leaf(events, "list", "jobs events list", "list emitted events, newest first")
    listed.add_argument("--topic")
    listed.add_argument("--unconsumed", action="store_true", help="only those not consumed")
    _page_args(listed)


def _add_triggers(triggers: Commands) -> None:
    create = _leaf(triggers, "create", "jobs triggers create", "add a trigger")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--kind", required=True, choices=("cron", "webhook", "event", "manual"))
    create.add_argument("--schedule", help='cron only, e.g. "0 * * * *"')
    create.add_argument("--timezone", help="cron only (default UTC)")
    create.add_argument(
        "--catch-up", choices=("latest", "skip", "all"),
        help="cron only: after downtime fire the latest missed slot (default), none, or all "
        "(at most 100)",
    )  # fmt: skip
    create.add_argument("--topic", help="event only")
    create.add_argument(
        "--secret-stdin", action="store_true",
        help="webhook only: read a signing secret (one line) from stdin; requests must then "
        "be signed with it",
    )  # fmt: skip
    create.add_argument(
        "--header", action="append", metavar="NAME",
        help="webhook only, repeatable: a request header its runs keep beyond the defaults "
        "(content-type, user-agent, webhook-id, … ; never authorization or cookies)",
    )  # fmt: skip
    listed = _leaf(triggers, "list", "jobs triggers list", "list a job's triggers")
    listed.add_argument("name", metavar="NAME")
    delete = _leaf(triggers, "delete", "jobs triggers delete", "delete a trigger")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("trigger_id", metavar="TRIGGER_ID")
    upcoming = _leaf(triggers, "next", "jobs triggers next", "the next fire times of its crons")
    upcoming.add_argument("name", metavar="NAME")
    upcoming.add_argument("--count", type=int, metavar="N", help="1 to 100 each (default 5)")


def _add_runs(runs: Commands) -> None:
    listed = _leaf(runs, "list", "jobs runs list", "list runs, newest first")
    listed.add_argument("name", metavar="NAME")
    listed.add_argument("--status", help="e.g. failed, or several: queued,running")
    listed.add_argument("--since", metavar="TIME", help="created at or after (RFC 3339)")
    listed.add_argument("--until", metavar="TIME", help="created before (RFC 3339)")
    _page_args(listed)
    actions = {"get": "show a run", "cancel": "cancel a run",
               "retry": "retry a failed or cancelled run",
               "journal": "a run's journal (its events and hash chain)"}  # fmt: skip
    for name, help in actions.items():
        one = _leaf(runs, name, f"jobs runs {name}", help)
        one.add_argument("name", metavar="NAME")
        one.add_argument("run_id", metavar="RUN_ID")
    _add_audit(runs)


def _add_audit(runs: Commands) -> None:
    """`jobs runs replay|state|lineage`: replay check, time travel, the tree of causes."""
    replay_help = "replay-check a run against its journal (exit 1 if it diverges)"
    replay = _leaf(runs, "replay", "jobs runs replay", replay_help)
    state = _leaf(runs, "state", "jobs runs state", "a run's state at a journal position")
    lineage_help = "a run's cause and the runs its events started, as a tree"
    lineage = _leaf(runs, "lineage", "jobs runs lineage", lineage_help)
    for one in (replay, state, lineage):
        one.add_argument("name", metavar="NAME")
        one.add_argument("run_id", metavar="RUN_ID")
    replay.add_argument("--version", type=int, metavar="N", help="default: the run's own")
    when = state.add_mutually_exclusive_group()
    when.add_argument("--at", type=int, metavar="POSITION", help="default: the latest")
    when.add_argument(
        "--diff", type=int, nargs=2, metavar=("A", "B"), help="what changed from position A to B"
    )


def _add_dlq(dlq: Commands) -> None:
    listed = _leaf(dlq, "list", "jobs dlq list", "list dead-lettered runs")
    listed.add_argument("name", metavar="NAME")
    listed.add_argument("--status", choices=("open", "retried"))
    _page_args(listed)
    retry = _leaf(dlq, "retry", "jobs dlq retry", "run a dead-lettered run again")
    retry.add_argument("name", metavar="NAME")
    retry.add_argument("dlq_id", metavar="DLQ_ID")


def add_user_commands(users: Commands, api_keys: Commands) -> None:
    """`users list`, `api-keys list|revoke`: on the server, beside the database bootstrap
    commands `users create` and `api-keys create`."""
    _leaf(users, "list", "users list", "the org's members and their roles (from the server)")
    _leaf(api_keys, "list", "api-keys list", "the org's API keys in use (from the server)")
    revoke = _leaf(api_keys, "revoke", "api-keys revoke", "revoke an API key (on the server)")
    revoke.add_argument("key_id", metavar="KEY_ID")


def _confirm_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes", "-y", action="store_true",
        help="do not ask for confirmation (needed when stdin is not a terminal)",
    )  # fmt: skip


def _page_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, metavar="N", help="page size, 1 to 200")
    parser.add_argument("--cursor", help="the next page (printed after a full page)")


def check_remote_args(args: argparse.Namespace) -> None:
    """What argparse cannot say: which trigger kinds take --schedule, --timezone,
    --catch-up, --topic, --secret-stdin; --timeout only with --wait."""
    if args.command == "jobs trigger" and args.timeout is not None and not args.wait:
        args.subparser.error("--timeout needs --wait")
    if args.command != "jobs triggers create":
        return
    needs = {"cron": "schedule", "event": "topic"}.get(args.kind)
    if needs and getattr(args, needs) is None:
        args.subparser.error(f"--kind {args.kind} needs --{needs}")
    allowed = {"cron": {"schedule", "timezone", "catch_up"}, "event": {"topic"}}.get(
        args.kind, set()
    )
    for option in ("schedule", "timezone", "catch_up", "topic"):
        if getattr(args, option) is not None and option not in allowed:
            flag = option.replace("_", "-")
            args.subparser.error(f"--{flag} does not apply to --kind {args.kind}")
    if args.secret_stdin and args.kind != "webhook":
        args.subparser.error(f"--secret-stdin does not apply to --kind {args.kind}")
    if args.header and args.kind != "webhook":
        args.subparser.error(f"--header does not apply to --kind {args.kind}")
