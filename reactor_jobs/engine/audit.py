"""Replay check and time travel for auditors.

A replay check runs a run's function again against its journal, with no side effects:
steps return their recorded outputs and are never called, emits and sleeps are compared
and nothing is appended. The code's decisions (steps, emits, sleeps, in order, and the
final output) must match the recording; the first that does not is reported with its
journal position: "position 7: recorded step `charge`, code asked for `refund`".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec

from reactor_jobs.engine import events as ev
from reactor_jobs.engine.context import DataClientUnavailable, parse_duration, to_json_value
from reactor_jobs.engine.journal import RecordedEvent
from reactor_jobs.engine.replay import RunState, fold
from reactor_jobs.functions.runtime import Handler, Request, to_output

T = TypeVar("T")


class Decision(msgspec.Struct, frozen=True):
    kind: str  # step | emit | sleep
    name: str  # step or sleep key, or the emit's topic
    position: int
    value: Any = None  # the step's output, the emit's payload


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    version: int
    ok: bool
    checked: int  # decisions that matched
    job: str = ""
    recorded: int = 0  # decisions in the recording (steps, emits, sleeps)
    events: int = 0  # journal events replayed
    divergence: str | None = None
    position: int | None = None
    note: str | None = None  # where the recording ends, when it ends before the code


class _Diverged(BaseException):
    """Stops the code at the first difference."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.message, self.position = message, position


class _RecordingEnds(BaseException):
    """The recorded run has not got further than this."""


def decisions(records: Sequence[RecordedEvent]) -> list[Decision]:
    """What the code decided, in order: each step's first completion, emits, sleeps."""
    out: list[Decision] = []
    seen_steps: set[str] = set()
    for rec in records:
        e = rec.event
        if isinstance(e, ev.StepCompleted) and e.name not in seen_steps:
            seen_steps.add(e.name)
            out.append(Decision("step", e.name, rec.position, e.output))
        elif isinstance(e, ev.Emitted):
            out.append(Decision("emit", e.topic, rec.position, e.payload))
        elif isinstance(e, ev.SleepScheduled):
            out.append(Decision("sleep", e.name, rec.position))
    return out


class _State(Mapping[str, Any]):
    def __init__(self, ctx: ReplayContext) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        return self._ctx.state_now[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ctx.state_now)

    def __len__(self) -> int:
        return len(self._ctx.state_now)

    async def set(self, key: str, value: Any) -> None:
        self._ctx.state_now[key] = to_json_value(value, f"state {key!r}")

    async def delete(self, key: str) -> None:
        self._ctx.state_now.pop(key, None)


class _Log:
    def _ignore(self, message: str, **fields: Any) -> None:
        pass

    debug = info = warning = error = _ignore


class ReplayContext:
    """The JobContext's interface, answering from the recording."""

    def __init__(self, final: RunState, recorded: list[Decision], slept: set[str]) -> None:
        self.run_id, self.org, self.job = final.run_id, final.org, final.job
        self.attempt, self.trigger, self.payload = final.attempt, final.trigger, final.payload
        self.state_now: dict[str, Any] = {}
        self.state = _State(self)
        self.log = _Log()
        self._recorded, self._slept = recorded, slept
        self.checked = 0
        self._uses: dict[str, int] = {}

    @property
    def data(self) -> Any:
        raise DataClientUnavailable()

    def _key(self, name: str, kind: str) -> str:
        n = self._uses[f"{kind}:{name}"] = self._uses.get(f"{kind}:{name}", 0) + 1
        return name if n == 1 else f"{name}#{n}"

    def _next(self, kind: str, name: str) -> Decision:
        if self.checked >= len(self._recorded):
            raise _RecordingEnds()
        recorded = self._recorded[self.checked]
        if (recorded.kind, recorded.name) != (kind, name):
            raise _Diverged(
                f"position {recorded.position}: recorded {recorded.kind} `{recorded.name}`, "
                f"code asked for {kind} `{name}`",
                recorded.position,
            )
        self.checked += 1
        return recorded

    async def step(self, name: str, fn: Callable[[], T | Awaitable[T]]) -> T:
        recorded = self._next("step", self._key(name, "step"))
        value: T = recorded.value
        return value

    async def emit(self, topic: str, payload: Any = None) -> str:
        recorded = self._next("emit", topic)
        if to_json_value(payload, "payload") != recorded.value:
            raise _Diverged(
                f"position {recorded.position}: emit `{topic}` with a different "
                "payload than recorded",
                recorded.position,
            )
        return f"replay@{recorded.position}"

    async def sleep(self, name: str, duration: str | float | timedelta) -> None:
        parse_duration(duration)
        await self._sleep(self._key(name, "sleep"))

    async def sleep_until(self, name: str, when: datetime) -> None:
        await self._sleep(self._key(name, "sleep"))

    async def _sleep(self, key: str) -> None:
        self._next("sleep", key)
        if key not in self._slept:
            raise _RecordingEnds()  # still asleep in the recording


REPLAY_TIMEOUT_S = 10.0


async def replay_check(
    records: Sequence[RecordedEvent],
    handler: Handler,
    *,
    version: int,
    timeout_s: float = REPLAY_TIMEOUT_S,
) -> ReplayReport:
    """Run `handler` against the recorded history; report whether it decides the same.

    A replay never waits (steps return recorded outputs, sleeps return at once), so code
    still running after `timeout_s` is waiting on something outside its steps: that is
    reported as a divergence at the next recorded decision, and the code is cancelled."""
    final = fold(records)
    recorded = decisions(records)
    slept = {e.event.name for e in records if isinstance(e.event, ev.SleepCompleted)}
    ctx = ReplayContext(final, recorded, slept)
    request = Request.from_payload(
        final.payload, headers=final.headers, content_type=final.content_type
    )

    def report(
        ok: bool, problem: str | None = None, position: int | None = None, note: str | None = None
    ) -> ReplayReport:
        return ReplayReport(
            run_id=final.run_id,
            version=version,
            ok=ok,
            checked=ctx.checked,
            job=final.job,
            recorded=len(recorded),
            events=len(records),
            divergence=problem,
            position=position,
            note=note,
        )

    try:
        async with asyncio.timeout(timeout_s):
            result = await handler(request, {}, ctx)
    except TimeoutError:
        left = recorded[ctx.checked] if ctx.checked < len(recorded) else None
        where = f"position {left.position}: " if left else ""
        wanted = f"recorded {left.kind} `{left.name}`, but " if left else ""
        return report(
            False,
            f"{where}{wanted}the code was still running after {timeout_s:g} s of replay "
            "(it awaits something outside its steps)",
            left.position if left else None,
        )
    except _Diverged as d:
        return report(False, d.message, d.position)
    except _RecordingEnds:
        return report(
            True,
            note=f"the recording ends at position {final.position} (the run is {final.status})",
        )
    except Exception as exc:
        if ctx.checked < len(recorded):  # the recording got further than the code does
            left = recorded[ctx.checked]
            return report(
                False,
                f"position {left.position}: recorded {left.kind} `{left.name}`, "
                f"but the code raised {type(exc).__name__}: {exc}",
                left.position,
            )
        if final.status == "completed":
            return report(
                False, f"code raised {type(exc).__name__}: {exc}; the recorded run completed"
            )
        return report(True, note=f"code raised {type(exc).__name__}; the run is {final.status}")
    if ctx.checked < len(recorded):
        left = recorded[ctx.checked]
        return report(
            False,
            f"position {left.position}: recorded {left.kind} `{left.name}`, "
            "but the code finished without it",
            left.position,
        )
    if final.status == "completed" and to_json_value(to_output(result), "output") != final.output:
        return report(
            False,
            f"position {final.position}: the code returned a different output than recorded",
            final.position,
        )
    return report(True, note=None if final.status == "completed" else f"the run is {final.status}")


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
