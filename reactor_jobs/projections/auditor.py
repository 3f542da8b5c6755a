"""The auditor's API on the read side: replay checks (replay_check.py) on the pinned or another
version, the check of a version against every in-flight run, time travel — all org-scoped."""

from __future__ import annotations

import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import ReactorError, RunNotFound
from reactor_jobs.domain.events import RecordedEvent
from reactor_jobs.domain.replay import RunState
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.functions.registry import Registry
from reactor_jobs.projections.replay_check import ReplayReport, replay_check, state_at
from reactor_jobs.statements import load

SQL = load("reactor_jobs.projections", "read.sql")

_CHECK_BATCH = 200


class FunctionCheck(msgspec.Struct, frozen=True, kw_only=True):
    function: str
    version: int
    safe: int
    diverges: int
    reports: list[ReplayReport]


class Auditor:
    def __init__(
        self, journal: Journal, registry: Registry, hosts: HostPool, *, code_jobs: bool = False
    ) -> None:
        self.journal, self.registry, self.hosts = journal, registry, hosts
        self.code_jobs = code_jobs  # an App auditing its own code jobs: their code is here

    def _checkable(self, function: str) -> str:
        """The function, if its code can be loaded here: a code job's (app:…) is in its app."""
        if function.startswith("app:") and not self.code_jobs:
            raise CodeJobAudit()
        return function

    async def records(self, org: str, run_id: str) -> list[RecordedEvent]:
        if await self.journal.pool.fetchval(SQL.run_owned, org, run_id) is None:
            raise RunNotFound(run_id)
        return await self.journal.read_stream(run_id)

    async def replay(self, org: str, run_id: str, version: int | None = None) -> ReplayReport:
        """Re-execute the run's function against its journal (the pinned version by default)."""
        records = await self.records(org, run_id)
        first = records[0].event
        assert isinstance(first, ev.Triggered), "every stream starts with Triggered"
        chosen = first.function_version if version is None else version
        fv = await self.registry.get_version(org, self._checkable(first.function), chosen)
        host = await self.hosts.host(org, fv.runtime)
        return await replay_check(records, host, fv, version=chosen)

    async def check_function(self, org: str, function: str, version: int) -> FunctionCheck:
        """Would promoting `version` be safe for the runs in flight on this function?"""
        fv = await self.registry.get_version(org, self._checkable(function), version)
        in_flight = [
            r["run_id"]
            for r in await self.journal.pool.fetch(SQL.runs_in_flight_of_function, org, function)
        ]
        reports = []
        for start in range(0, len(in_flight), _CHECK_BATCH):  # one read per batch of runs
            chunk = in_flight[start : start + _CHECK_BATCH]
            streams = await self.journal.read_streams(chunk)
            for run_id in chunk:
                host = await self.hosts.host(org, fv.runtime)
                reports.append(await replay_check(streams[run_id], host, fv, version=version))
        diverging = sum(not r.ok for r in reports)
        return FunctionCheck(
            function=function,
            version=version,
            safe=len(reports) - diverging,
            diverges=diverging,
            reports=reports,
        )

    async def state_at(self, org: str, run_id: str, position: int) -> RunState:
        return state_at(await self.records(org, run_id), position)


class CodeJobAudit(ReactorError):
    """A code job's code lives in its app: replay and check it there (App.replay, App.check)."""

    code = "invalid_state"
