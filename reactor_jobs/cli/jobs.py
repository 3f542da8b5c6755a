"""`reactor jobs …`: jobs, their triggers, manual triggering, runs, the DLQ and emitted
events, through the Python client. The live log (`reactor jobs logs`) is in cli/logs.py."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from reactor_jobs.cli.logs import follow_logs, print_history
from reactor_jobs.cli.output import Column, cell
from reactor_jobs.cli.remote import Handler, Remote, confirm
from reactor_jobs.client import Job, Run
from reactor_jobs.client.types import CreatedTrigger, NextFires, Trigger, TriggerChanges

FINISHED = ("completed", "failed", "cancelled")
POLICY = ("max_attempts", "backoff", "initial_delay_ms", "max_delay_ms", "max_concurrency",
          "timeout_ms")  # fmt: skip
JOB_FIELDS = ("name", "function_name", *POLICY, "created_at", "updated_at")
RUN_FIELDS = ("id", "job", "status", "attempt", "function", "function_version", "trigger_kind",
              "created_at", "started_at", "finished_at", "available_at", "last_error", "output",
              "dlq_id", "idempotency_key")  # fmt: skip
RUN_COLUMNS: list[Column] = [("ID", "id"), ("STATUS", "status"), ("ATTEMPT", "attempt"),
                             ("TRIGGER", "trigger_kind"), ("VERSION", "function_version"),
                             ("CREATED", "created_at"), ("FINISHED", "finished_at"),
                             ("ERROR", "last_error")]  # fmt: skip


def show_job(remote: Remote, job: Job) -> None:
    if remote.out.json_mode:
        remote.out.document(job)
        return
    remote.out.record(job, JOB_FIELDS)
    if job.policy is not None:  # what applies, the manifest's values filled in
        remote.out.line("effective  " + ", ".join(f"{f}={getattr(job.policy, f)}" for f in POLICY))


def show_run(remote: Remote, run: Run) -> None:
    if remote.out.json_mode:
        remote.out.document(run)
    else:
        remote.out.record(run, RUN_FIELDS)


def show_trigger_changes(remote: Remote, changes: TriggerChanges | None) -> None:
    """What a manifest did to the jobs' triggers, one line each; a new webhook's URL is
    printed here because the server shows it only once."""
    if changes is None or remote.out.json_mode:
        return
    groups: dict[str, Sequence[Trigger]] = {"added": changes.added, "changed": changes.changed,
              "removed": changes.removed, "unchanged": changes.unchanged}  # fmt: skip
    remote.out.line("manifest triggers: " + ", ".join(f"{len(g)} {k}" for k, g in groups.items()))
    for what, triggers in groups.items():
        for t in triggers:
            said = t.schedule or t.topic or ""
            remote.out.line(f"  {what:<9}  {t.id}  {t.job}  {t.kind:<7}  {said}".rstrip())
            if isinstance(t, CreatedTrigger) and t.url is not None:
                remote.out.line(f"  Returns ingress URL: {remote.url}{t.url}")
    if any(t.url is not None for t in changes.added):
        remote.out.note("webhook URLs are shown only now; the token in the URL is the auth")


async def create(args: argparse.Namespace, remote: Remote) -> int:
    policy = {field: getattr(args, field) for field in POLICY}
    job = await remote.client.jobs.create(name=args.name, function_name=args.function, **policy)
    show_job(remote, job)
    show_trigger_changes(remote, job.triggers)
    return 0


async def list_jobs(args: argparse.Namespace, remote: Remote) -> int:
    jobs = await remote.client.jobs.list()
    columns = [("NAME", "name"), ("FUNCTION", "function_name"), ("CREATED", "created_at")]
    remote.out.listing("jobs", jobs, columns, "no jobs")
    return 0


async def get(args: argparse.Namespace, remote: Remote) -> int:
    show_job(remote, await remote.client.jobs.get(args.name))
    return 0


async def update(args: argparse.Namespace, remote: Remote) -> int:
    changes: dict[str, Any] = {f: getattr(args, f) for f in POLICY if getattr(args, f) is not None}
    for flag in args.clear:
        field = flag.replace("-", "_")
        if field in changes:
            args.subparser.error(f"--clear {flag} and --{flag} contradict each other")
        changes[field] = None
    if args.function is not None:
        changes["function_name"] = args.function
    if not changes:
        args.subparser.error("nothing to change: give --function, a policy option or --clear")
    job = await remote.client.jobs.update(args.name, **changes)
    show_job(remote, job)
    show_trigger_changes(remote, job.triggers)
    return 0


async def delete(args: argparse.Namespace, remote: Remote) -> int:
    confirm(args, f"Delete job {args.name} and its triggers?")
    await remote.client.jobs.delete(args.name)
    remote.out.done({"deleted": args.name}, f"deleted job {args.name}")
    return 0


async def create_trigger(args: argparse.Namespace, remote: Remote) -> int:
    secret = sys.stdin.readline().rstrip("\r\n") if args.secret_stdin else None
    trigger = await remote.client.jobs.triggers.create(
        args.name, kind=args.kind, schedule=args.schedule, timezone=args.timezone,
        catch_up=args.catch_up, topic=args.topic, secret=secret, headers=args.header,
    )  # fmt: skip
    if remote.out.json_mode:
        remote.out.document(trigger)
        return 0
    fields = ["id", "job", "kind", "schedule", "timezone", "catch_up", "topic", "signed",
              "headers", "created_at"]  # fmt: skip
    remote.out.record(trigger, [f for f in fields if getattr(trigger, f) is not None])
    if trigger.url is not None:
        remote.out.line(f"Returns ingress URL: {remote.url}{trigger.url}")
        remote.out.note("POST to it from anywhere; shown only now, the token in it is the auth")
    return 0


async def list_triggers(args: argparse.Namespace, remote: Remote) -> int:
    triggers = await remote.client.jobs.triggers.list(args.name)
    columns = [("ID", "id"), ("KIND", "kind"), ("SCHEDULE", "schedule"), ("TOPIC", "topic"),
               ("SOURCE", "source"), ("CREATED", "created_at")]  # fmt: skip
    remote.out.listing("triggers", triggers, columns, f"job {args.name} has no triggers")
    return 0


async def delete_trigger(args: argparse.Namespace, remote: Remote) -> int:
    await remote.client.jobs.triggers.delete(args.name, args.trigger_id)
    message = f"deleted trigger {args.trigger_id} of job {args.name}"
    remote.out.done({"deleted": args.trigger_id}, message)
    return 0


class FireRow(NamedTuple):
    trigger: str
    schedule: str
    at: datetime
    local: str


def fire_rows(preview: NextFires) -> list[FireRow]:
    rows = []
    for t in preview.triggers:
        zone = ZoneInfo(t.timezone)
        for fire in t.fires:
            local = "-"
            if fire.local is not None:
                at = fire.at.astimezone(zone)
                local = f"{at:%Y-%m-%d %H:%M:%S} {at.tzname()} ({t.timezone})"
            rows.append(FireRow(t.id, t.schedule, fire.at, local))
    return rows


async def next_fires(args: argparse.Namespace, remote: Remote) -> int:
    preview = await remote.client.jobs.triggers.next(args.name, count=args.count)
    if remote.out.json_mode:
        remote.out.document(preview)
        return 0
    columns = [("TRIGGER", "trigger"), ("SCHEDULE", "schedule"), ("AT (UTC)", "at"),
               ("LOCAL", "local")]  # fmt: skip
    remote.out.table(fire_rows(preview), columns, f"job {args.name} has no cron triggers")
    remote.out.note(f"from {cell(preview.now)} (the database clock)")
    return 0


async def trigger(args: argparse.Namespace, remote: Remote) -> int:
    run = await remote.client.jobs.trigger(
        args.name, payload=args.payload, idempotency_key=args.idempotency_key
    )
    if not args.wait:
        show_run(remote, run)
        return 0
    try:
        async with asyncio.timeout(args.timeout):
            run = await wait_finished(remote, args.name, run)
    except TimeoutError:
        remote.out.note(
            f"error: run {run.id} has not finished after {args.timeout:g} s (it goes on; "
            f"`reactor jobs runs get {args.name} {run.id}`)"
        )
        return 1
    show_run(remote, run)
    if run.status != "completed":
        remote.out.note(f"error: run {run.id} {run.status}")
        return 1
    return 0


async def wait_finished(remote: Remote, name: str, run: Run) -> Run:
    """Poll the run until it is completed, failed or cancelled (backing off to 1 s)."""
    pause = 0.05
    while run.status not in FINISHED:
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
        run = await remote.client.jobs.runs.get(name, run.id)
    return run


async def list_runs(args: argparse.Namespace, remote: Remote) -> int:
    page = await remote.client.jobs.runs.list(
        args.name, status=args.status, since=args.since, until=args.until,
        limit=args.limit, cursor=args.cursor,
    )  # fmt: skip
    remote.out.page("runs", page, RUN_COLUMNS, "no runs")
    return 0


async def get_run(args: argparse.Namespace, remote: Remote) -> int:
    show_run(remote, await remote.client.jobs.runs.get(args.name, args.run_id))
    return 0


async def cancel_run(args: argparse.Namespace, remote: Remote) -> int:
    show_run(remote, await remote.client.jobs.runs.cancel(args.name, args.run_id))
    return 0


async def retry_run(args: argparse.Namespace, remote: Remote) -> int:
    show_run(remote, await remote.client.jobs.runs.retry(args.name, args.run_id))
    return 0


async def run_journal(args: argparse.Namespace, remote: Remote) -> int:
    events = await remote.client.jobs.runs.journal(args.name, args.run_id)
    columns = [("POSITION", "position"), ("TYPE", "type"), ("RECORDED", "recorded_at"),
               ("DATA", "data")]  # fmt: skip
    remote.out.listing("events", events, columns, "no events")
    return 0


async def list_dlq(args: argparse.Namespace, remote: Remote) -> int:
    page = await remote.client.jobs.dlq.list(
        args.name, status=args.status, limit=args.limit, cursor=args.cursor
    )
    columns = [("ID", "id"), ("RUN", "run_id"), ("ATTEMPTS", "attempts"), ("STATUS", "status"),
               ("CREATED", "created_at"), ("ERROR", "error")]  # fmt: skip
    remote.out.page("entries", page, columns, f"the DLQ of job {args.name} is empty")
    return 0


async def retry_dlq(args: argparse.Namespace, remote: Remote) -> int:
    show_run(remote, await remote.client.jobs.dlq.retry(args.name, args.dlq_id))
    return 0


async def list_events(args: argparse.Namespace, remote: Remote) -> int:
    page = await remote.client.events.list(
        topic=args.topic, unconsumed=args.unconsumed, limit=args.limit, cursor=args.cursor
    )
    columns = [("ID", "id"), ("TOPIC", "topic"), ("JOB", "job"), ("RUN", "run_id"),
               ("EMITTED", "emitted_at"), ("CONSUMED", "consumed_at"), ("FANOUT", "fanout"),
               ("PAYLOAD", "payload")]  # fmt: skip
    remote.out.page("events", page, columns, "no events")
    return 0


async def logs(args: argparse.Namespace, remote: Remote) -> int:
    if args.follow:
        return await follow_logs(remote, args.name, args.last_event_id, args.run)
    await print_history(remote, args.name, args.last_event_id, args.run)
    return 0


COMMANDS: dict[str, Handler] = {
    "jobs create": create,
    "jobs list": list_jobs,
    "jobs get": get,
    "jobs update": update,
    "jobs delete": delete,
    "jobs triggers create": create_trigger,
    "jobs triggers list": list_triggers,
    "jobs triggers delete": delete_trigger,
    "jobs triggers next": next_fires,
    "jobs trigger": trigger,
    "jobs runs list": list_runs,
    "jobs runs get": get_run,
    "jobs runs cancel": cancel_run,
    "jobs runs retry": retry_run,
    "jobs runs journal": run_journal,
    "jobs dlq list": list_dlq,
    "jobs dlq retry": retry_dlq,
    "jobs events list": list_events,
    "jobs logs": logs,
}
