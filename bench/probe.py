"""In-process probes: the bench bundles record timings here.

The worker runs in the bench's own process, so a bundle finds this module in sys.modules
(it never imports it, so a bundle deployed elsewhere just records nothing). Times are
time.perf_counter() seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Called with (run_id, perf_counter) when a noop function body starts, if set.
on_start: Callable[[str, float], None] | None = None
# Durations of ctx.step calls that were cache misses (each one appends StepCompleted).
step_seconds: list[float] = []


def started(run_id: str) -> None:
    if on_start is not None:
        on_start(run_id, time.perf_counter())


def reset() -> None:
    global on_start
    on_start = None
    step_seconds.clear()
