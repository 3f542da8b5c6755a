"""Lineage: what caused a run (its trigger, and for event triggers the emitting run and
event) and every run its events caused, as a tree. Read from the runs' Triggered events."""

from __future__ import annotations

import asyncpg
import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import RunNotFound
from reactor_jobs.statements import load

SQL = load("reactor_jobs.projections", "read.sql")


class Emitter(msgspec.Struct, frozen=True, kw_only=True):
    """The emitted event behind an event-triggered run: its topic and the emitting run."""

    event_id: str
    topic: str
    run_id: str
    job: str


class Node(msgspec.Struct, kw_only=True):
    run_id: str
    job: str
    status: str
    trigger: ev.TriggerInfo
    caused: list[Node] = msgspec.field(default_factory=list)
    more: bool = False  # it caused runs below the depth limit, not listed


async def lineage(pool: asyncpg.Pool, org: str, run_id: str, *, depth: int = 10) -> Node:
    """The run with its cause (trigger) and, level by level, the runs its events caused."""
    root = (await _nodes(pool, org, [run_id])).get(run_id)
    if root is None:
        raise RunNotFound(run_id)
    level = [root]
    for level_no in range(depth + 1):
        ids = [r[0] for r in await pool.fetch(SQL.lineage_caused, org, [n.run_id for n in level])]
        if not ids:
            break
        if level_no == depth:  # the tree stops here; say which leaves have more below
            parents = {r["causation"] for r in await pool.fetch(SQL.lineage_parents, org, ids)}
            for node in level:
                node.more = node.run_id in parents
            break
        children = await _nodes(pool, org, ids)
        by_parent = {n.run_id: n for n in level}
        for child_id in ids:
            child = children[child_id]
            by_parent[child.trigger.causation_run_id or ""].caused.append(child)
        level = [children[i] for i in ids]
    return root


async def _nodes(pool: asyncpg.Pool, org: str, run_ids: list[str]) -> dict[str, Node]:
    nodes = {}
    for row in await pool.fetch(SQL.lineage_first_events, org, run_ids):
        first = ev.decode(row["payload"])
        assert isinstance(first, ev.Triggered)
        nodes[row["run_id"]] = Node(
            run_id=row["run_id"], job=row["job"], status=row["status"], trigger=first.trigger
        )
    return nodes


async def emitters(pool: asyncpg.Pool, org: str, tree: Node) -> dict[str, Emitter]:
    """The events that caused the tree's event-triggered runs, by event id."""
    ids, pending = [], [tree]
    while pending:
        node = pending.pop()
        if node.trigger.event_id is not None:
            ids.append(node.trigger.event_id)
        pending.extend(node.caused)
    if not ids:
        return {}
    rows = await pool.fetch(SQL.lineage_emitters, org, ids)
    return {row["event_id"]: Emitter(**dict(row)) for row in rows}
