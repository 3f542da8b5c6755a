"""What the API returns, as frozen msgspec Structs (docs/http-api.md, "Objects"). The objects
the OpenAPI document names are the server's own, from reactor_jobs.wire; here are only the
client's additions (Page, the log stream's events, the session). Unknown fields are ignored,
so a newer server does not break an older client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

import msgspec

from reactor_jobs.wire.auth import ApiKeyListed, Invitation, Member, OrgMembership, User
from reactor_jobs.wire.objects import (
    Backoff,
    Cause,
    CreatedTrigger,
    DlqEntry,
    Event,
    Fire,
    Function,
    FunctionCheck,
    FunctionWithTriggers,
    Job,
    JobWithTriggers,
    JournalEvent,
    LineageRun,
    NextFires,
    Policy,
    ReplayResult,
    Run,
    RunStateAt,
    SleepAt,
    StateChange,
    StateDiff,
    Trigger,
    TriggerChanges,
    TriggerFires,
    Version,
    WebhookAccepted,
)

T = TypeVar("T")
TriggerKind = Literal["cron", "event", "webhook", "manual"]
# What `functions.promote` returns: the function and, when any job is bound to it, what the
# promoted manifest did to their triggers.
PromotedFunction = FunctionWithTriggers
# An org the user belongs to, with the user's role in it.
Membership = OrgMembership
# A service API key in use, as the org's list shows it (never the key itself).
ApiKey = ApiKeyListed

__all__ = [
    "ApiKey",
    "ApiKeyListed",
    "Backoff",
    "Cause",
    "CreatedTrigger",
    "DlqEntry",
    "Event",
    "Fire",
    "Function",
    "FunctionCheck",
    "FunctionWithTriggers",
    "Invitation",
    "Job",
    "JobWithTriggers",
    "JournalEvent",
    "LineageRun",
    "Member",
    "Membership",
    "NextFires",
    "OrgMembership",
    "Policy",
    "PromotedFunction",
    "ReplayResult",
    "Run",
    "RunStateAt",
    "SleepAt",
    "StateChange",
    "StateDiff",
    "Trigger",
    "TriggerChanges",
    "TriggerFires",
    "User",
    "Version",
    "WebhookAccepted",
]


class _Object(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Session(_Object, frozen=True):
    """The tokens of a signed-in client. Its repr hides them."""

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"Session(access_token=***, refresh_token=***, expires_in={self.expires_in})"


class RunEvent(_Object, frozen=True, omit_defaults=True):
    """`event: run` of the log stream: a journal event of one of the job's runs. `id` is the
    stream cursor (pass it back as `last_event_id` to resume after it)."""

    run_id: str
    position: int
    type: str
    recorded_at: datetime
    id: str | None = None
    attempt: int | None = None
    error: Any = None
    name: str | None = None  # a step's or a sleep's name, an emitted event's topic


class LogLine(_Object, frozen=True, omit_defaults=True):
    """`event: log` of the log stream: one `ctx.log` line of a run."""

    run_id: str
    attempt: int
    level: str
    message: str
    at: datetime
    id: str | None = None
    step: str | None = None
    fields: Any = None


LogEvent = RunEvent | LogLine


class Page(Sequence[T]):
    """One page of a list, newest first: a sequence of items plus `next_cursor`, which is
    None on the last page and otherwise goes back as `cursor=` for the next one."""

    __slots__ = ("items", "next_cursor")

    def __init__(self, items: list[T], next_cursor: str | None) -> None:
        self.items, self.next_cursor = items, next_cursor

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __repr__(self) -> str:
        return f"Page({self.items!r}, next_cursor={self.next_cursor!r})"


# Audit: time travel, diffs, lineage, replay checks (docs/http-api.md, "Audit")
