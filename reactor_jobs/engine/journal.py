"""The run journal: append (group-committed, fenced), stream and global reads, verification."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.database import is_disconnect
from reactor_jobs.domain import chain
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import (
    ConcurrencyError,
    FenceError,
    IdempotencyConflict,
    InvalidEvent,
    ReactorError,
)
from reactor_jobs.domain.events import RecordedEvent, to_recorded
from reactor_jobs.domain.projection import project
from reactor_jobs.engine import append_sql
from reactor_jobs.engine.group_commit import GroupCommitter


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
    # A new run that exists only if the request for run `after` in the same statement lands.
    after: str | None = None


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    events: int
    ok: bool
    first_bad_position: int | None = None
    reason: str | None = None


AppendOutcome = int | ReactorError

# Public names: the plan tests and the claim read streams with these statements.
READ_STREAM = append_sql.WRITE.journal_read_stream
READ_STREAMS = append_sql.WRITE.journal_read_streams
READ_ALL = append_sql.WRITE.journal_read_all
HEAD = append_sql.WRITE.journal_head
VERIFY_STREAM = append_sql.WRITE.journal_verify_stream
VERIFY_ALL = append_sql.WRITE.journal_verify_all

_json = msgspec.json.Encoder()


def _jsonb(value: Any) -> str:
    """asyncpg's default jsonb codec takes text."""
    return _json.encode(value).decode()


def export_line(rec: RecordedEvent) -> bytes:
    """One NDJSON line: the envelope, the hashes in hex, and the event's canonical data."""
    return _json.encode(
        {
            "global_position": rec.global_position,
            "run_id": rec.run_id,
            "position": rec.position,
            "org": rec.org,
            "type": rec.type,
            "version": rec.version,
            "recorded_at": rec.recorded_at,
            "prev_hash": rec.prev_hash.hex(),
            "hash": rec.hash.hex(),
            "data": msgspec.Raw(rec.payload),
        }
    )


class _Prepared(msgspec.Struct, frozen=True):
    """A checked request with its events' canonical bytes, encoded once, and the new runs
    it spawns (which exist only if it lands)."""

    request: AppendRequest
    payloads: list[bytes]
    spawned: list[tuple[AppendRequest, list[bytes]]] = []

    @property
    def run_ids(self) -> frozenset[str]:
        return frozenset([self.request.run_id, *(r.run_id for r, _ in self.spawned)])


def _prepared(req: AppendRequest, spawn: Sequence[AppendRequest] = ()) -> _Prepared:
    for child in spawn:
        if child.expected_position != 0:
            raise InvalidEvent(f"run {child.run_id}: only new runs can be spawned")
    spawned = [(msgspec.structs.replace(c, after=req.run_id), _validated(c)) for c in spawn]
    return _Prepared(req, _validated(req), spawned)


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


def _key(req: AppendRequest) -> tuple[str | None, str | None, str | None]:
    """A new run's (org, job, idempotency key), or Nones: what journal_refusals looks up."""
    first = req.events[0]
    if req.expected_position == 0 and isinstance(first, ev.Triggered):
        return first.org, first.job, first.idempotency_key
    return None, None, None


def _refusal(req: AppendRequest, head: asyncpg.Record) -> ReactorError:
    if head["last_position"] is None and head["key_holder"] is not None:
        first = req.events[0]
        assert isinstance(first, ev.Triggered) and first.idempotency_key is not None
        return IdempotencyConflict(
            req.run_id, first.org, first.job, first.idempotency_key, head["key_holder"]
        )
    if head["last_position"] != req.expected_position:
        actual = head["last_position"]
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
            self._commit_batch, max_batch=max_batch, max_in_flight=max_in_flight
        )
        # The committer keeps its connections: a pool release costs a reset round trip.
        self._idle: list[asyncpg.pool.PoolConnectionProxy] = []
        self._held: list[asyncpg.pool.PoolConnectionProxy] = []

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Give the committer's connections back to the pool."""
        held, self._held, self._idle = self._held, [], []
        for conn in held:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("RESET plan_cache_mode")  # pools may skip their reset
            await self._pool.release(conn)

    async def _commit_batch(self, batch: Sequence[_Prepared]) -> list[AppendOutcome]:
        conn, reused = await self._connection()
        try:
            outcomes = await self._append_prepared(batch, conn)
        except Exception as exc:
            if not is_disconnect(exc) and not conn.is_closed():
                self._idle.append(conn)
                raise
            await self._discard(conn)
            if not reused:
                raise
            # A held connection died while idle (server restart, killed backend): nothing
            # was sent on it, so one try on a fresh connection is safe. Should the first
            # have committed after all, the retry is refused by its expected position.
            conn, _ = await self._connection(fresh=True)
            try:
                outcomes = await self._append_prepared(batch, conn)
            except Exception:
                await self._discard(conn)
                raise
        self._idle.append(conn)
        return outcomes

    async def _connection(self, *, fresh: bool = False) -> tuple[asyncpg.Connection, bool]:
        """A held connection (and whether it was used before), dropping any that closed."""
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn, True
            await self._discard(conn)
        conn = await self._pool.acquire()
        try:
            # The append statement's plan never depends on its arrays' contents; planning
            # it per call costs more than executing it.
            await conn.execute("SET plan_cache_mode = force_generic_plan")
        except BaseException:
            await self._pool.release(conn)
            raise
        self._held.append(conn)
        return conn, False

    async def _discard(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(ValueError):
            self._held.remove(conn)
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await self._pool.release(conn, timeout=5)

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
        spawn: Sequence[AppendRequest] = (),
    ) -> int:
        """Append at expected_position + 1 onwards; return the stream's new position.

        `spawn`: new runs (their Triggered) created in the same transaction, only if this
        append lands; one that already exists (same idempotency key) is left as it is.
        """
        request = AppendRequest(
            run_id=run_id, events=list(events), expected_position=expected_position, fence=fence
        )
        # Checked and encoded here: bad input fails its caller alone, before it joins a batch.
        return await self._committer.submit(_prepared(request, spawn))

    async def append_many(
        self, requests: Sequence[AppendRequest], conn: asyncpg.Connection | None = None
    ) -> list[AppendOutcome]:
        """Append for many runs in one transaction; each request succeeds or fails alone."""
        prepared = [_prepared(req) for req in requests]
        if conn is None:
            async with self._pool.acquire() as acquired:
                return await self._append_prepared(prepared, acquired)
        return await self._append_prepared(prepared, conn)

    async def _append_prepared(
        self, batch: Sequence[_Prepared], conn: asyncpg.Connection
    ) -> list[AppendOutcome]:
        if len(frozenset().union(*(p.run_ids for p in batch))) != sum(
            len(p.run_ids) for p in batch
        ):
            raise InvalidEvent("one append statement cannot hold two requests for one run")
        args = append_sql.AppendArgs()
        for p in batch:  # each request before the runs it spawns: journal order is cause first
            for req, payloads in [(p.request, p.payloads), *p.spawned]:
                changes = project(req.run_id, req.expected_position + 1, list(req.events))
                fence = req.fence or Fence(status=None)
                events = [
                    (ev.event_type(e), ev.event_version(e), payload)
                    for e, payload in zip(req.events, payloads, strict=True)
                ]
                args.add(
                    req.run_id,
                    req.expected_position,
                    (fence.status, fence.attempt, fence.lease_owner),
                    changes,
                    events,
                    req.after,
                )
        return await self._execute(conn, [p.request for p in batch], args)

    async def _execute(
        self,
        conn: asyncpg.Connection,
        requests: Sequence[AppendRequest],
        args: append_sql.AppendArgs,
    ) -> list[AppendOutcome]:
        statement, values = args.statement()
        row = await conn.fetchrow(statement, *values)
        assert row is not None
        ok = set(row["ok_runs"])
        refused = [r for r in requests if r.run_id not in ok]
        heads = {}
        if refused:
            keys = [_key(r) for r in refused]
            rows = await conn.fetch(
                append_sql.REFUSALS,
                [r.run_id for r in refused],
                *(list(column) for column in zip(*keys, strict=True)),
            )
            heads = {h["run_id"]: h for h in rows}
        return [
            r.expected_position + len(r.events) if r.run_id in ok else _refusal(r, heads[r.run_id])
            for r in requests
        ]

    async def read_stream(self, run_id: str, after: int = 0) -> list[RecordedEvent]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(READ_STREAM, run_id, after)
        return to_recorded(rows)

    async def read_streams(self, run_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Whole streams of these runs in one read, by run (a run with none is absent)."""
        streams: dict[str, list[RecordedEvent]] = {}
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(READ_STREAMS, list(run_ids))
        for rec in to_recorded(rows):
            streams.setdefault(rec.run_id, []).append(rec)
        return streams

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events after global position `after` (one this returned), in commit-safe order.

        Order is by writing transaction, then global position: within a run it is stream
        order; across runs nothing committed later can appear behind the cursor.
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(READ_ALL, after, limit)
        return to_recorded(rows)

    async def head(self, run_id: str) -> int:
        """The stream's last position (0 when there is no such stream)."""
        async with self._pool.acquire() as conn:
            value = await conn.fetchval(HEAD, run_id)
        return int(value or 0)

    async def verify(self, run_id: str) -> VerifyResult:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(VERIFY_STREAM, run_id)
        return verify_rows(run_id, rows)

    async def verify_all(self, batch: int = 5000) -> AsyncIterator[VerifyResult]:
        """Verify every stream, one result per run, streaming the journal through a cursor."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            current: list[asyncpg.Record] = []
            async for row in conn.cursor(VERIFY_ALL, prefetch=batch):
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
            return VerifyResult(
                run_id=run_id,
                events=len(rows),
                ok=False,
                first_bad_position=row["position"],
                reason=reason,
            )
        prev = bytes(row["hash"])
    return VerifyResult(run_id=run_id, events=len(rows), ok=True)


def _link_problem(row: Any, expected_position: int, prev: bytes) -> str | None:
    if row["position"] != expected_position:
        return f"expected position {expected_position}, found {row['position']}"
    if bytes(row["prev_hash"]) != prev:
        return "prev_hash does not match the previous event's hash"
    computed = chain.link_hash(
        prev,
        run_id=row["run_id"],
        position=row["position"],
        org=row["org"],
        type_name=row["type"],
        version=row["version"],
        recorded_at=row["recorded_at"],
        payload=bytes(row["payload"]),
    )
    if computed != bytes(row["hash"]):
        return "hash does not match the event's contents"
    if row.get("data_matches", True) is False:
        return "data differs from the hashed payload"
    return None
