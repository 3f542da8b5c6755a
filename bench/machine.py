"""Where the machine's CPU went during a figure: this process, its function hosts (every
process descended from this one), Postgres, everything else.

Linux only (/proc); elsewhere Meter.read() returns None. Postgres processes are counted while they
live, so stop the meter before closing a pool whose backends did the work. Other processes
using CPU during a figure (tests running beside the bench) make its numbers noisy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Usage:
    """CPU-seconds over `wall` seconds on `cores` cores: this process, its descendants (the
    function hosts, with their bubblewrap parents), the bench database's Postgres backends
    (with the WAL writer, checkpointer and background writer), the rest."""

    wall: float
    cores: int
    me: float
    hosts: float
    postgres: float
    other: float

    @property
    def idle(self) -> float:
        used = self.me + self.hosts + self.postgres + self.other
        return max(self.wall * self.cores - used, 0.0)


_SHARED = ("walwriter", "checkpointer", "background writer", "wal writer")


def _postgres_seconds(database: str) -> dict[int, float]:
    """CPU-seconds so far of the server's processes for `database`, and its WAL writers."""
    seen: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres") and (
            f" {database} " in title or any(s in title for s in _SHARED)
        ):
            fields = stat[stat.rindex(")") + 2 :].split()
            seen[int(proc.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return seen


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, theirs, …), by /proc/<pid>/task/*/children."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def process_seconds(pid: int) -> float:
    """CPU-seconds so far of one process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _descendant_seconds() -> dict[int, float]:
    return {pid: process_seconds(pid) for pid in descendants(os.getpid())}


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK  # all but idle and iowait


class Meter:
    """Started on creation; read() any number of times."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.available = Path("/proc/stat").exists()
        if self.available:
            self._wall = os.times().elapsed
            self._me = _own_seconds()
            self._kids = _descendant_seconds()
            self._pg = _postgres_seconds(database)
            self._busy = _busy_seconds()

    def read(self) -> Usage | None:
        if not self.available:
            return None
        pg_now = _postgres_seconds(self.database)
        postgres = sum(v - self._pg.get(pid, 0.0) for pid, v in pg_now.items())
        me = _own_seconds() - self._me
        kids = _descendant_seconds()
        hosts = sum(v - self._kids.get(pid, 0.0) for pid, v in kids.items())
        busy = _busy_seconds() - self._busy
        return Usage(
            wall=os.times().elapsed - self._wall,
            cores=os.cpu_count() or 1,
            me=me,
            hosts=hosts,
            postgres=postgres,
            other=max(busy - me - hosts - postgres, 0.0),
        )


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system  # not children_*: those count reaped children only
