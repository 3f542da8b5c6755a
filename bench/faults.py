"""Fault figures: the scenarios of tests/faults (real processes; a Postgres of their own,
embedded in a temp dir, which they restart), one figure line per measurement."""

from __future__ import annotations

import asyncio

from tests.faults.rig import Cluster
from tests.faults.scenarios import SCENARIOS, run_scenario

Row = tuple[str, ...]

# What each figure must be (the fault suite asserts the same); others are measurements.
ZERO = ("lost", "stuck", "completed steps re-run", "stale appends", "overlaps",
        "slots missing", "slots fired twice", "charged lease losses")  # fmt: skip


def _row(scenario: str, name: str, value: float, unit: str) -> Row:
    shown = f"{value:.3f} {unit}" if isinstance(value, float) else f"{value} {unit}"
    if name in ZERO:
        return (f"faults: {scenario}: {name}", shown, "0", "yes" if value == 0 else "NO")
    return (f"faults: {scenario}: {name}", shown)


async def fault_figures() -> list[Row]:
    cluster = await asyncio.to_thread(Cluster)
    rows: list[Row] = []
    try:
        for scenario in SCENARIOS:
            figures = await run_scenario(cluster, scenario)
            rows += [_row(scenario, name, v, unit) for name, (v, unit) in figures.items()]
    finally:
        await asyncio.to_thread(cluster.stop)
    return rows
