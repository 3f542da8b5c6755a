"""Audit over HTTP: a run's state at any journal position and the diff between two, its
lineage, and replay checks of one run or of a function version against every run in flight.

State, diff and lineage only read the journal, so members may call them like the journal
route. A replay check runs the function's code (everything but its steps) inside the API
process, so it needs the admin role, like deploy and promote. None of them appends.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.events import RecordedEvent
from reactor_jobs.domain.replay import RunState
from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http import query
from reactor_jobs.http.bodies import decode_json, json_response
from reactor_jobs.http.functions_routes import FUNCTION, registry
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import (
    Cause,
    FunctionCheck,
    FunctionCheckRequest,
    LineageRun,
    ReplayRequest,
    ReplayResult,
    RunStateAt,
    SleepAt,
    StateChange,
    StateDiff,
)
from reactor_jobs.http.routes import Route, authed, param
from reactor_jobs.http.runs_routes import RUN, job_run
from reactor_jobs.projections.auditor import Auditor
from reactor_jobs.projections.lineage import Emitter, Node, emitters, lineage
from reactor_jobs.projections.replay_check import ReplayReport, diff, state_at

_POSITION = re.compile(r"[0-9]{1,18}")


def auditor(request: web.Request) -> Auditor:
    node = request.app[NODE]
    return Auditor(node.journal, node.registry, node.hosts)


async def run_records(request: web.Request, org: str) -> list[RecordedEvent]:
    """The journal of the run at {id}, if it belongs to the job at {name} in `org`."""
    run = await job_run(request, org)
    return await request.app[NODE].journal.read_stream(run.id)


def position(request: web.Request, name: str, head: int, default: int | None = None) -> int:
    """A journal position from the query: 1 (the Triggered event) to the run's head."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise InvalidField(name, "required: a journal position")
        return default
    if not _POSITION.fullmatch(raw) or int(raw) < 1:
        raise InvalidField(name, f"must be a journal position (an integer from 1), got {raw!r}")
    value = int(raw)
    if value > head:
        raise InvalidField(name, f"position {value} is past the run's head (position {head})")
    return value


def state_view(state: RunState, head: int) -> RunStateAt:
    return RunStateAt(
        run_id=state.run_id, job=state.job, function=state.function,
        function_version=state.function_version, position=state.position, head=head,
        status=state.status, attempt=state.attempt,
        trigger_kind=state.trigger.kind if state.trigger else None,
        steps=state.steps, state=state.state,
        sleeps={k: SleepAt(wake_at=s.wake_at, done=s.done) for k, s in state.sleeps.items()},
        emitted=state.emitted, last_error=state.last_error, output=state.output,
        dlq_id=state.dlq_id, created_at=state.created_at, started_at=state.started_at,
        finished_at=state.finished_at, available_at=state.available_at,
        updated_at=state.updated_at, hash=state.last_hash.hex(),
    )  # fmt: skip


def cause_view(node: Node, found: dict[str, Emitter]) -> Cause:
    trigger = node.trigger
    emitter = found.get(trigger.event_id) if trigger.event_id else None
    return Cause(
        kind=trigger.kind, source=trigger.source, event_id=trigger.event_id,
        topic=emitter.topic if emitter else None,
        run_id=emitter.run_id if emitter else trigger.causation_run_id,
        job=emitter.job if emitter else None, scheduled_for=trigger.scheduled_for,
    )  # fmt: skip


def lineage_view(node: Node, found: dict[str, Emitter]) -> LineageRun:
    return LineageRun(
        run_id=node.run_id,
        job=node.job,
        status=node.status,
        cause=cause_view(node, found),
        caused=[lineage_view(child, found) for child in node.caused],
        more=node.more,
    )


def replay_view(report: ReplayReport) -> ReplayResult:
    return ReplayResult(
        run_id=report.run_id, job=report.job, version=report.version,
        outcome="same" if report.ok else "diverges", checked=report.checked,
        recorded=report.recorded, events=report.events, divergence=report.divergence,
        position=report.position, note=report.note,
    )  # fmt: skip


async def run_state(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("at",))
    records = await run_records(request, principal.org)
    head = records[-1].position
    at = position(request, "at", head, default=head)
    return json_response(state_view(state_at(records, at), head))


async def run_state_diff(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("from", "to"))
    records = await run_records(request, principal.org)
    head = records[-1].position
    a, b = position(request, "from", head), position(request, "to", head)
    before = state_view(state_at(records, a), head)
    after = state_view(state_at(records, b), head)
    changes = [StateChange(field=field, before=old, after=new)
               for field, (old, new) in diff(before, after).items()]  # fmt: skip
    return json_response(StateDiff(run_id=records[0].run_id, from_=a, to=b, changes=changes))


async def run_lineage(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    run = await job_run(request, principal.org)
    pool = request.app[NODE].pool
    tree = await lineage(pool, principal.org, run.id)
    return json_response(lineage_view(tree, await emitters(pool, principal.org, tree)))


async def replay_run(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    run = await job_run(request, principal.org)  # 404 before reading the body
    body = await decode_json(request, ReplayRequest, empty=b"{}")
    report = await auditor(request).replay(principal.org, run.id, body.version)
    return json_response(replay_view(report))


async def check_function(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    name = request.match_info["name"]
    await registry(request).get_function(principal.org, name)  # 404 before reading the body
    body = await decode_json(request, FunctionCheckRequest)
    check = await auditor(request).check_function(principal.org, name, body.version)
    diverging = [replay_view(r) for r in check.reports if not r.ok]
    summary = FunctionCheck(
        function=check.function, version=check.version, runs=len(check.reports),
        safe=check.safe, diverges=check.diverges, diverging=diverging,
    )  # fmt: skip
    return json_response(summary)


_POSITION_DOC: dict[str, Any] = {"kind": "integer", "minimum": 1}
_REPLAY_NOTE = (
    "Re-executes the run's function against its journal with no side effects: steps return "
    "their recorded outputs and are not called, nothing is appended. `same` when the code "
    "makes the recorded decisions (steps, emits, sleeps in order, and the final output); "
    'otherwise `divergence` is the first difference, e.g. "position 7: recorded step '
    '`charge`, code asked for step `refund`". Code still running after 10 s of replay (it '
    "awaits something outside its steps) is cut off and reported as a divergence. Needs "
    "admin: it runs the function's code."
)

ROUTES: list[Route] = [
    authed(
        "GET", RUN + "/state", "member", run_state,
        summary="Time travel: the run's state folded up to a journal position", tag="audit",
        response=RunStateAt, errors=(404, 422),
        params=(param("at", "Journal position, 1 to the run's head (default: the head).",
                      **_POSITION_DOC),),
        note="422 invalid_field when `at` is not a position of the run (below 1 or past "
        "its head).",
    ),
    authed(
        "GET", RUN + "/state/diff", "member", run_state_diff,
        summary="What changed in the run's state between two journal positions", tag="audit",
        response=StateDiff, errors=(404, 422),
        params=(param("from", "Journal position (required).", **_POSITION_DOC),
                param("to", "Journal position (required).", **_POSITION_DOC)),
    ),
    authed(
        "GET", RUN + "/lineage", "member", run_lineage,
        summary="The run's cause and the tree of runs its emitted events started",
        tag="audit", response=LineageRun, errors=(404,),
        note="Descends at most 10 levels of event-triggered runs.",
    ),
    authed(
        "POST", RUN + "/replay", "admin", replay_run,
        summary="Replay check: does the run's function (or another version) reproduce it?",
        tag="audit", body=ReplayRequest, body_required=False, response=ReplayResult,
        errors=(404, 422), note=_REPLAY_NOTE + " An unknown version is 404.",
    ),
    authed(
        "POST", FUNCTION + "/check", "admin", check_function,
        summary="Would promoting a version be safe for the runs in flight?", tag="audit",
        body=FunctionCheckRequest, response=FunctionCheck, errors=(404, 422),
        note="Replay-checks the version against every queued, running, sleeping or "
        "retrying run of the function. An unknown function or version is 404.",
    ),
]  # fmt: skip
