"""Replay check and time travel for auditors.

A replay check runs a run's function again against its journal, in its org's function host,
with no side effects: steps return their recorded outputs and are never called, emits and
sleeps are compared and nothing is appended. The code's decisions (steps, emits, sleeps,
in call order, and the final output) must match the recording; the first that does not is
reported with its journal position: "position 7: recorded step `charge`, code asked for `refund`".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from reactor_jobs.domain.errors import Nondeterministic
from reactor_jobs.domain.events import RecordedEvent
from reactor_jobs.domain.guard import Guard
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.replay import Decision, RunState, fold
from reactor_jobs.engine.attempt import function_key, invocation, stop_attempt
from reactor_jobs.engine.hosts import Channel, Host, HostDied
from reactor_jobs.functions.values import to_json_value

T = TypeVar("T")


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    version: int
    ok: bool
    checked: int  # decisions that matched
    job: str = ""
    recorded: int = 0  # decisions in the recording (steps, emits, sleeps, data calls)
    events: int = 0  # journal events replayed
    divergence: str | None = None
    position: int | None = None
    note: str | None = None  # where the recording ends, when it ends before the code


class _Report(Exception):
    """The replay is decided."""

    def __init__(
        self,
        ok: bool,
        problem: str | None = None,
        position: int | None = None,
        note: str | None = None,
    ) -> None:
        self.ok, self.problem, self.position, self.note = ok, problem, position, note


REPLAY_TIMEOUT_S = 10.0


class _Replay:
    """The auditor's half of a replay: every call the code makes is a proposal, answered
    from the recording by the same guard a live attempt uses; nothing is appended."""

    def __init__(self, records: Sequence[RecordedEvent], channel: Channel) -> None:
        self.final = fold(records)
        self.guard = Guard(self.final.recorded())
        self.channel = channel

    def _ends(self) -> _Report:
        final = self.final
        return _Report(
            True,
            note=f"the recording ends at position {final.position} (the run is {final.status})",
        )

    def _check(self, kind: str, m: dict[str, Any]) -> Decision:
        try:
            recorded = self.guard.check(kind, m.get("name"), m.get("pos"))
        except Nondeterministic as exc:
            raise _Report(False, exc.message, exc.position) from None
        if recorded is None or (kind == "step" and recorded.failed):
            raise self._ends()
        return recorded

    def _answer(self, m: dict[str, Any]) -> dict[str, Any]:
        kind = m["t"]
        if kind == "state":
            return {}
        recorded = self._check(kind, m)
        if kind == "step":
            return {"output": recorded.output}
        if kind == "data":  # the recorded rows: what the run read or wrote
            return {"data": recorded.output, "count": recorded.count}
        if kind == "emit":
            if to_json_value(m.get("payload"), "payload") != recorded.output:
                raise _Report(
                    False,
                    f"position {recorded.position}: emit `{recorded.name}` with a different "
                    "payload than recorded",
                    recorded.position,
                )
            return {"event_id": f"replay@{recorded.position}"}
        slept = self.final.sleeps.get(recorded.name)
        if slept is None or not slept.done:
            raise self._ends()  # still asleep in the recording
        return {"resume": True}

    async def run(self) -> dict[str, Any]:
        """Answer until the code ends; its `done` message."""
        while True:
            m = await self.channel.receive()
            if m["t"] == "done":
                return m
            if m["t"] == "data" and m.get("in_step"):  # steps never run in a replay
                self.channel.send({"t": "ack", "req": m.get("req"), "data": None, "count": 0})
            elif m["t"] in ("step", "emit", "sleep", "state", "data"):
                self.channel.send({"t": "ack", "req": m.get("req"), **self._answer(m)})

    def judge(self, done: dict[str, Any]) -> _Report:
        final, left = self.final, self.guard.next_unmatched()
        if done.get("outcome") == "failed":
            error = done.get("error") or {}
            raised = f"{error.get('type', 'Error')}: {error.get('message', '')}"
            if left is not None:  # the recording got further than the code does
                return _Report(
                    False,
                    f"position {left.position}: recorded {left.kind} `{left.name}`, "
                    f"but the code raised {raised}",
                    left.position,
                )
            if final.status == "completed":
                return _Report(False, f"code raised {raised}; the recorded run completed")
            return _Report(True, note=f"code raised {error.get('type')}; the run is {final.status}")
        if left is not None:
            return _Report(
                False,
                f"position {left.position}: recorded {left.kind} `{left.name}`, "
                "but the code finished without it",
                left.position,
            )
        if final.status == "completed" and done.get("output") != final.output:
            return _Report(
                False,
                f"position {final.position}: the code returned a different output than recorded",
                final.position,
            )
        return _Report(
            True, note=None if final.status == "completed" else f"the run is {final.status}"
        )

    def timed_out(self, timeout_s: float) -> _Report:
        left = self.guard.next_unmatched()
        where = f"position {left.position}: " if left else ""
        wanted = f"recorded {left.kind} `{left.name}`, but " if left else ""
        return _Report(
            False,
            f"{where}{wanted}the code was still running after {timeout_s:g} s of replay "
            "(it awaits something outside its steps)",
            left.position if left else None,
        )


async def replay_check(
    records: Sequence[RecordedEvent],
    host: Host,
    fv: Any,
    *,
    version: int,
    timeout_s: float = REPLAY_TIMEOUT_S,
) -> ReplayReport:
    """Run the version's code in its function host against the recorded history; report
    whether it decides the same.

    A replay never waits (steps return recorded outputs, sleeps return at once), so code
    still running after `timeout_s` is waiting on something outside its steps: that is
    reported as a divergence at the next recorded decision, and the code is cancelled."""
    await host.load(function_key(fv), fv)
    channel = host.open(new_id("replay"))
    replay = _Replay(records, channel)
    final = replay.final
    message = invocation(final, fv, env={})
    message.update(replay=True, recorded=[], state={})
    channel.send(message)
    finished = False
    try:
        async with asyncio.timeout(timeout_s):
            try:
                done = await replay.run()
                finished = True
                verdict = replay.judge(done)
            except _Report as decided:
                verdict = decided
    except TimeoutError:
        verdict = replay.timed_out(timeout_s)
    except HostDied as died:
        verdict = _Report(False, f"the function host died during the replay: {died.reason}")
    finally:
        if not finished:
            await stop_attempt(channel)
        host.close(channel.id)
    return ReplayReport(
        run_id=final.run_id,
        version=version,
        ok=verdict.ok,
        checked=replay.guard.matched,
        job=final.job,
        recorded=len(replay.guard.recorded),
        events=len(records),
        divergence=verdict.problem,
        position=verdict.position,
        note=verdict.note,
    )


def state_at(records: Sequence[RecordedEvent], position: int) -> RunState:
    """Time travel: the run's folded state as of `position`."""
    return fold(r for r in records if r.position <= position)


def diff(a: msgspec.Struct, b: msgspec.Struct) -> dict[str, tuple[Any, Any]]:
    """What changed between two states (RunStates, or two views of one type), field by
    field; dicts are compared key by key."""
    assert type(a) is type(b), "diff compares two states of one type"
    changes: dict[str, tuple[Any, Any]] = {}
    for field in a.__struct_fields__:
        before, after = getattr(a, field), getattr(b, field)
        if isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after), key=str):
                if before.get(key) != after.get(key):
                    changes[f"{field}.{key}"] = (before.get(key), after.get(key))
        elif before != after:
            changes[field] = (before, after)
    return changes
