"""The auditor's commands, through the Python client: `reactor jobs runs replay|state|lineage`
and `reactor functions check`. A replay or a check that finds a divergence exits 1, so a
script (or CI before a promote) can stop on it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from reactor_jobs.cli.output import Column, cell
from reactor_jobs.cli.remote import Handler, Remote
from reactor_jobs.client import Cause, LineageRun, ReplayResult, RunStateAt

EXIT_SAME, EXIT_DIVERGES = 0, 1
CHANGE_COLUMNS: list[Column] = [("FIELD", "field"), ("BEFORE", "before"), ("AFTER", "after")]


def describe_replay(result: ReplayResult) -> list[str]:
    counts = f"{result.checked} of {result.recorded} decisions, {result.events} events"
    where = f"run {result.run_id} on version {result.version}"
    if result.ok:
        lines = [f"same: {where} reproduces its journal ({counts})"]
    else:
        lines = [f"diverges: {where} ({counts} matched before it)",
                 f"first divergence: {result.divergence}"]  # fmt: skip
    if result.note:
        lines.append(f"note: {result.note}")
    return lines


def state_lines(state: RunStateAt) -> Iterator[tuple[str, str]]:
    """(label, text) pairs; a map gives one line per key under one label."""
    yield "run", f"{state.run_id} (job {state.job})"
    yield "function", f"{state.function} v{state.function_version}"
    yield "position", f"{state.position} of {state.head}"
    yield "status", state.status
    yield "attempt", str(state.attempt)
    yield "trigger", cell(state.trigger_kind)
    yield from _map("steps", {k: cell(v, None) for k, v in state.steps.items()})
    yield from _map("state", {k: cell(v, None) for k, v in state.state.items()})
    sleeps = {k: f"wake {cell(s.wake_at)}" + (", done" if s.done else "")
              for k, s in state.sleeps.items()}  # fmt: skip
    yield from _map("sleeps", sleeps)
    yield "emitted", ", ".join(state.emitted) or "-"
    yield "output", cell(state.output, None)
    yield "last_error", cell(state.last_error, None)
    yield "recorded_at", cell(state.updated_at)
    yield "hash", state.hash


def _map(label: str, values: dict[str, str]) -> Iterator[tuple[str, str]]:
    if not values:
        yield label, "-"
    for n, (key, text) in enumerate(values.items()):
        yield (label if n == 0 else ""), f"{key} = {text}"


def describe_cause(cause: Cause, root: bool) -> str:
    if cause.kind == "event":
        text = f"event {cause.topic or '?'} ({cause.event_id})"
        # Below the root the emitting run is the parent line; say it only at the top.
        return f"{text} from run {cause.run_id} (job {cause.job})" if root else text
    if cause.kind == "cron":
        return f"cron {cause.source} slot {cell(cause.scheduled_for)}"
    return f"{cause.kind} {cause.source}" if cause.source else cause.kind


def tree_lines(node: LineageRun, depth: int = 0) -> Iterator[str]:
    indent = "   " * (depth - 1) + "└─ " if depth else ""
    cause = describe_cause(node.cause, depth == 0)
    yield f"{indent}{node.run_id}  {node.job}  {node.status}  ← {cause}"
    for child in node.caused:
        yield from tree_lines(child, depth + 1)
    if node.more:
        yield "   " * depth + "└─ … (more below the depth limit: ask for the lineage of "
        f"{node.run_id})"


async def replay(args: argparse.Namespace, remote: Remote) -> int:
    runs = remote.client.jobs.runs
    result = await runs.replay(args.name, args.run_id, version=args.version)
    if remote.out.json_mode:
        remote.out.document(result)
    else:
        for line in describe_replay(result):
            remote.out.line(line)
    return EXIT_SAME if result.ok else EXIT_DIVERGES


async def state(args: argparse.Namespace, remote: Remote) -> int:
    runs = remote.client.jobs.runs
    if args.diff is not None:
        changes = await runs.diff(args.name, args.run_id, *args.diff)
        if remote.out.json_mode:
            remote.out.document(changes)
            return 0
        remote.out.line(f"run {changes.run_id}: position {changes.from_} → {changes.to}")
        remote.out.table(changes.changes, CHANGE_COLUMNS, "no changes")
        return 0
    found = await runs.state(args.name, args.run_id, at=args.at)
    if remote.out.json_mode:
        remote.out.document(found)
        return 0
    lines = list(state_lines(found))
    width = max(len(label) for label, _ in lines)
    for label, text in lines:
        remote.out.line(f"{label.ljust(width)}  {text}")
    return 0


async def lineage(args: argparse.Namespace, remote: Remote) -> int:
    tree = await remote.client.jobs.runs.lineage(args.name, args.run_id)
    if remote.out.json_mode:
        remote.out.document(tree)
        return 0
    for line in tree_lines(tree):
        remote.out.line(line)
    return 0


async def check(args: argparse.Namespace, remote: Remote) -> int:
    summary = await remote.client.functions.check(args.name, version=args.version)
    if remote.out.json_mode:
        remote.out.document(summary)
    else:
        remote.out.line(
            f"function {summary.function} version {summary.version} against "
            f"{summary.runs} runs in flight"
        )
        remote.out.line(f"safe      {summary.safe}")
        remote.out.line(f"diverges  {summary.diverges}")
        for result in summary.diverging:
            remote.out.line(f"  {result.run_id} (job {result.job}): {result.divergence}")
    return EXIT_DIVERGES if summary.diverges else EXIT_SAME


COMMANDS: dict[str, Handler] = {
    "jobs runs replay": replay,
    "jobs runs state": state,
    "jobs runs lineage": lineage,
    "functions check": check,
}
