"""The determinism guard: each decision a run's code proposes (step, emit, sleep) is matched
against what the run recorded at the same place in its call order.

One implementation for the live guard (a worker appending an attempt's decisions) and for
audit replays (`runs replay`, `functions check`): a difference fails the attempt with a
non-retryable `nondeterministic` error naming both sides, e.g. "position 7: recorded step
`charge`, code asked for step `refund`" (the position is the recorded event's place in the
journal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reactor_jobs.domain.errors import Nondeterministic
from reactor_jobs.domain.replay import Decision


class ProtocolViolation(Exception):
    """A host sent what no SDK following the protocol sends."""


class Guard:
    def __init__(self, recorded: Sequence[Decision]) -> None:
        self.recorded = {d.pos: d for d in recorded}
        self.proposed: set[int] = set()
        self.matched = 0

    def check(self, kind: str, name: Any, pos: Any) -> Decision | None:
        """The recorded decision at `pos` if the code made the same call there; None for a
        place past the recording; Nondeterministic for a different call."""
        if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0 or pos > 10_000_000:
            raise ProtocolViolation(f"a {kind} proposal has no valid position")
        if not isinstance(name, str):
            raise ProtocolViolation(f"a {kind} proposal has no name")
        if pos in self.proposed:
            raise ProtocolViolation(f"position {pos} was proposed twice")
        self.proposed.add(pos)
        recorded = self.recorded.get(pos)
        if recorded is None:
            return None
        if (recorded.kind, recorded.name) != (kind, name):
            raise Nondeterministic(
                f"position {recorded.position}: recorded {recorded.kind} `{recorded.name}`, "
                f"code asked for {kind} `{name}`",
                recorded.position,
            )
        self.matched += 1
        return recorded

    def next_unmatched(self) -> Decision | None:
        """The first recorded decision the code has not made (yet)."""
        for pos in sorted(self.recorded):
            if pos not in self.proposed:
                return self.recorded[pos]
        return None
