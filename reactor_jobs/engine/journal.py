"""The run journal: append (group-committed, fenced), stream and global reads, verification."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.engine import append_sql, chain
from reactor_jobs.engine import events as ev
from reactor_jobs.engine.errors import (
    ConcurrencyError,
    FenceError,
    InvalidEvent,
    ReactorError,
)
from reactor_jobs.engine.group_commit import GroupCommitter
from reactor_jobs.projections.handlers import Changes, project


class Fence(msgspec.Struct, frozen=True, kw_only=True):
    """What must still hold for an executing attempt to write: it still owns the run."""

    attempt: int | None = None
    status: str | None = "running"
    lease_owner: str | None = None


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    events: Sequence[ev.Event]
    expected_position: int
    fence: Fence | None = None


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the journal holds it, with its envelope."""

    global_position: int
    run_id: str
    position: int
    org: str
    type: str
    version: int
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes
    payload: bytes
    event: ev.Event


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    events: int
    ok: bool
    first_bad_position: int | None = None
    reason: str | None = None


AppendOutcome = int | ReactorError

_COLUMNS = (
    "global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash, payload"
)
_READ_STREAM = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.journal
 WHERE run_id = $1 AND position > $2 ORDER BY position
"""
# Rows of transactions older than every running one are final: no event can still commit
# among them, so walking (tx_id, global_position) below that horizon never skips one.
_READ_ALL = f"""
WITH cursor AS (
    SELECT coalesce((SELECT tx_id FROM _reactor_jobs.journal WHERE global_position = $1),
                    '0'::xid8) AS tx
)
SELECT {_COLUMNS} FROM _reactor_jobs.journal AS j, cursor
 WHERE (j.tx_id, j.global_position) > (cursor.tx, $1::bigint)
   AND j.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY j.tx_id, j.global_position
 LIMIT $2
"""
_VERIFY_STREAM = f"""
SELECT {_COLUMNS}, data = convert_from(payload, 'UTF8')::jsonb AS data_matches
  FROM _reactor_jobs.journal WHERE run_id = $1 ORDER BY position
"""
_VERIFY_ALL = f"""
SELECT {_COLUMNS}, data = convert_from(payload, 'UTF8')::jsonb AS data_matches
  FROM _reactor_jobs.journal ORDER BY run_id, position
"""

_json = msgspec.json.Encoder()


def _jsonb(value: Any) -> str:
    """asyncpg's default jsonb codec takes text."""
    return _json.encode(value).decode()


def to_recorded(rows: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    """Build RecordedEvents, decoding all current-version payloads in one call."""
    if all(r["version"] == ev.EVENT_TYPES[r["type"]].VERSION for r in rows):
        decoded = ev.decode_many(r["payload"] for r in rows)
    else:
        decoded = [ev.decode(r["payload"], r["type"], r["version"]) for r in rows]
    return [
        RecordedEvent(
            global_position=r[0], run_id=r[1], position=r[2], org=r[3], type=r[4],
            version=r[5], recorded_at=r[6], prev_hash=r[7], hash=r[8], payload=r[9],
            event=event,
        )  # fmt: skip
        for r, event in zip(rows, decoded, strict=True)
    ]


def export_line(rec: RecordedEvent) -> bytes:
    """One NDJSON line: the envelope, the hashes in hex, and the event's canonical data."""
    return _json.encode({
        "global_position": rec.global_position, "run_id": rec.run_id,
        "position": rec.position, "org": rec.org, "type": rec.type, "version": rec.version,
        "recorded_at": rec.recorded_at, "prev_hash": rec.prev_hash.hex(),
        "hash": rec.hash.hex(), "data": msgspec.Raw(rec.payload),
    })  # fmt: skip


class _StatementInput:
    """The append statement's array parameters, filled request by request."""

    def __init__(self) -> None:
        self.req: list[list[Any]] = [[] for _ in range(7)]
        self.new_runs: list[str] = []
        self.ev: list[list[Any]] = [[] for _ in range(5)]
        self.dlq_opened: list[str] = []
        self.dlq_retried: tuple[list[str], list[str]] = ([], [])
        self.consumed: tuple[list[str], list[str]] = ([], [])
        self.events_recorded: list[str] = []

    def add(self, req: AppendRequest, changes: Changes, payloads: list[bytes]) -> None:
        fence = req.fence or Fence(status=None)
        patch = None if changes.new_run is not None else _jsonb(changes.run_patch)
        for column, value in zip(self.req, (
            req.run_id, req.expected_position, patch, fence.status, fence.attempt,
            fence.lease_owner, changes.notify,
        ), strict=True):  # fmt: skip
            column.append(value)
        if changes.new_run is not None:
            self.new_runs.append(_jsonb(changes.new_run))
        for offset, (event, payload) in enumerate(zip(req.events, payloads, strict=True)):
            for column, value in zip(self.ev, (
                req.run_id, req.expected_position + 1 + offset, ev.event_type(event),
                ev.event_version(event), payload,
            ), strict=True):  # fmt: skip
                column.append(value)
        self.dlq_opened.extend(_jsonb(row) for row in changes.dlq_opened)
        for dlq_id in changes.dlq_retried:
            self.dlq_retried[0].append(dlq_id)
            self.dlq_retried[1].append(req.run_id)
        for event_id in changes.events_consumed:
            self.consumed[0].append(event_id)
            self.consumed[1].append(req.run_id)
        self.events_recorded.extend(_jsonb(row) for row in changes.events_recorded)

    def args(self) -> list[Any]:
        return [
            *self.req, self.new_runs, *self.ev, self.dlq_opened, *self.dlq_retried,
            *self.consumed, self.events_recorded,
        ]  # fmt: skip


def _validated(req: AppendRequest) -> list[bytes]:
    if not req.events:
        raise InvalidEvent(f"run {req.run_id}: nothing to append")
    starts = isinstance(req.events[0], ev.Triggered)
    if (req.expected_position == 0) != starts:
        raise InvalidEvent(f"run {req.run_id}: a stream starts with Triggered, and only there")
    if any(isinstance(e, ev.Triggered) for e in req.events[1:]):
        raise InvalidEvent(f"run {req.run_id}: Triggered can only be a stream's first event")
    payloads = [ev.encode(e) for e in req.events]
    for payload, event in zip(payloads, req.events, strict=True):
        if b"\\u0000" in payload:  # jsonb cannot hold NUL characters
            raise InvalidEvent(f"run {req.run_id}: {ev.event_type(event)} contains a NUL character")
    return payloads


def _refusal(req: AppendRequest, head: asyncpg.Record | None) -> ReactorError:
    if head is None or head["last_position"] != req.expected_position:
        actual = None if head is None else head["last_position"]
        return ConcurrencyError(req.run_id, req.expected_position, actual)
    fence = req.fence or Fence()
    if fence.status is not None and head["status"] != fence.status:
        return FenceError(req.run_id, f"status is {head['status']}, not {fence.status}")
    if fence.attempt is not None and head["attempt"] != fence.attempt:
        return FenceError(req.run_id, f"attempt {head['attempt']} is current, not {fence.attempt}")
    return FenceError(req.run_id, f"the lease of {fence.lease_owner} is gone")


class Journal:
    """The journal of one database. Appends from concurrent callers share commits."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 512, max_in_flight: int = 2):
        self._pool = pool
        self._committer = GroupCommitter(
            self.append_many, max_batch=max_batch, max_in_flight=max_in_flight
        )

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def append(
        self,
        run_id: str,
        events: Sequence[ev.Event],
        *,
        expected_position: int,
        fence: Fence | None = None,
    ) -> int:
        """Append at expected_position + 1 onwards; return the stream's new position."""
        request = AppendRequest(
            run_id=run_id, events=list(events), expected_position=expected_position, fence=fence
        )
        _validated(request)  # bad input fails its caller alone, before it joins a batch
        return await self._committer.submit(request)

    async def append_many(
        self, requests: Sequence[AppendRequest], conn: asyncpg.Connection | None = None
    ) -> list[AppendOutcome]:
        """Append for many runs in one transaction; each request succeeds or fails alone."""
        if len({r.run_id for r in requests}) != len(requests):
            raise InvalidEvent("one append statement cannot hold two requests for one run")
        statement = _StatementInput()
        for req in requests:
            changes = project(req.run_id, req.expected_position + 1, list(req.events))
            statement.add(req, changes, _validated(req))
        if conn is None:
            async with self._pool.acquire() as acquired:
                return await self._execute(acquired, requests, statement)
        return await self._execute(conn, requests, statement)

    async def _execute(
        self, conn: asyncpg.Connection, requests: Sequence[AppendRequest], st: _StatementInput
    ) -> list[AppendOutcome]:
        row = await conn.fetchrow(append_sql.APPEND, *st.args())
        assert row is not None
        ok = set(row["ok_runs"])
        refused = [r.run_id for r in requests if r.run_id not in ok]
        heads = {}
        if refused:
            heads = {h["run_id"]: h for h in await conn.fetch(append_sql.REFUSED, refused)}
        return [
            r.expected_position + len(r.events) if r.run_id in ok
            else _refusal(r, heads.get(r.run_id))
            for r in requests
        ]  # fmt: skip

    async def read_stream(self, run_id: str, after: int = 0) -> list[RecordedEvent]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_READ_STREAM, run_id, after)
        return to_recorded(rows)

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events after global position `after` (one this returned), in commit-safe order.

        Order is by writing transaction, then global position: within a run it is stream
        order; across runs nothing committed later can appear behind the cursor.
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_READ_ALL, after, limit)
        return to_recorded(rows)

    async def head(self, run_id: str) -> int:
        """The stream's last position (0 when there is no such stream)."""
        async with self._pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT max(position) FROM _reactor_jobs.journal WHERE run_id = $1", run_id
            )
        return int(value or 0)

    async def verify(self, run_id: str) -> VerifyResult:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_VERIFY_STREAM, run_id)
        return verify_rows(run_id, rows)

    async def verify_all(self, batch: int = 5000) -> AsyncIterator[VerifyResult]:
        """Verify every stream, one result per run, streaming the journal through a cursor."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            current: list[asyncpg.Record] = []
            async for row in conn.cursor(_VERIFY_ALL, prefetch=batch):
                if current and current[0]["run_id"] != row["run_id"]:
                    yield verify_rows(current[0]["run_id"], current)
                    current = []
                current.append(row)
            if current:
                yield verify_rows(current[0]["run_id"], current)


def verify_rows(run_id: str, rows: Sequence[Any]) -> VerifyResult:
    """Recompute a stream's chain; report the first event that does not match."""
    prev = chain.GENESIS
    for expected_position, row in enumerate(rows, start=1):
        reason = _link_problem(row, expected_position, prev)
        if reason is not None:
            return VerifyResult(run_id=run_id, events=len(rows), ok=False,
                                first_bad_position=row["position"], reason=reason)  # fmt: skip
        prev = bytes(row["hash"])
    return VerifyResult(run_id=run_id, events=len(rows), ok=True)


def _link_problem(row: Any, expected_position: int, prev: bytes) -> str | None:
    if row["position"] != expected_position:
        return f"expected position {expected_position}, found {row['position']}"
    if bytes(row["prev_hash"]) != prev:
        return "prev_hash does not match the previous event's hash"
    computed = chain.link_hash(
        prev, run_id=row["run_id"], position=row["position"], org=row["org"],
        type_name=row["type"], version=row["version"], recorded_at=row["recorded_at"],
        payload=bytes(row["payload"]),
    )  # fmt: skip
    if computed != bytes(row["hash"]):
        return "hash does not match the event's contents"
    if row.get("data_matches", True) is False:
        return "data differs from the hashed payload"
    return None
