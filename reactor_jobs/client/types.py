"""What the API returns, as frozen msgspec Structs (docs/http-api.md, "Objects"). Unknown
fields are ignored, so a newer server does not break an older client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

import msgspec

T = TypeVar("T")
Backoff = Literal["exponential", "linear"]
TriggerKind = Literal["cron", "event", "webhook", "manual"]


class _Object(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Run(_Object, frozen=True):
    id: str
    job: str
    status: str
    attempt: int
    function: str
    function_version: int
    trigger_kind: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    available_at: datetime | None = None
    last_error: Any = None
    output: Any = None
    dlq_id: str | None = None
    idempotency_key: str | None = None


class Policy(_Object, frozen=True):
    """A job's effective retry, concurrency and timeout settings."""

    max_attempts: int
    backoff: Backoff
    initial_delay_ms: int
    max_delay_ms: int
    max_concurrency: int
    timeout_ms: int


class Job(_Object, frozen=True):
    """Policy fields that are None follow the function's manifest; `policy` is the effective
    policy (None while the function has no live version)."""

    name: str
    function_name: str
    created_at: datetime
    updated_at: datetime
    max_attempts: int | None = None
    backoff: Backoff | None = None
    initial_delay_ms: int | None = None
    max_delay_ms: int | None = None
    max_concurrency: int | None = None
    timeout_ms: int | None = None
    policy: Policy | None = None


class Trigger(_Object, frozen=True):
    """`url` (the webhook ingress path, `/jobs/v1/webhooks/whk_…`) is set only on the trigger
    that `triggers.create` returns for a webhook: the server shows it once."""

    id: str
    job: str
    kind: TriggerKind
    source: str
    created_at: datetime
    schedule: str | None = None
    timezone: str | None = None
    catch_up: str | None = None
    topic: str | None = None
    url: str | None = None


class DlqEntry(_Object, frozen=True):
    id: str
    run_id: str
    job: str
    attempts: int
    status: Literal["open", "retried"]
    created_at: datetime
    error: Any = None
    retried_at: datetime | None = None


class Event(_Object, frozen=True):
    """An event a run emitted (`ctx.emit`); `fanout` is how many runs it started."""

    id: str
    topic: str
    run_id: str
    job: str
    emitted_at: datetime
    fanout: int
    payload: Any = None
    consumed_at: datetime | None = None


class JournalEvent(_Object, frozen=True):
    """One journal row as `reactor journal dump` exports it; `data` is the event itself."""

    global_position: int
    run_id: str
    position: int
    org: str
    type: str
    version: int
    recorded_at: datetime
    prev_hash: str
    hash: str
    data: Any = None


class Function(_Object, frozen=True):
    name: str
    runtime: str
    created_at: datetime
    updated_at: datetime
    live_version: int | None = None


class Version(_Object, frozen=True):
    name: str
    version: int
    sha256: str
    size: int
    live: bool
    created_at: datetime


class WebhookAccepted(_Object, frozen=True):
    run_id: str
    status: str


class Membership(_Object, frozen=True):
    name: str
    role: str


class User(_Object, frozen=True):
    id: str
    email: str
    orgs: list[Membership]


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
