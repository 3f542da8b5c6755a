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
    that `triggers.create` returns for a webhook: the server shows it once. So is `signed`:
    whether the webhook's requests must be signed (its own secret or the server's)."""

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
    signed: bool | None = None
    headers: list[str] | None = None  # webhooks: request headers kept beyond the defaults


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
    """`duplicate`: the webhook-id was delivered before; `run_id` is the first run's."""

    run_id: str
    status: str
    duplicate: bool = False


class Membership(_Object, frozen=True):
    name: str
    role: str


class Invitation(_Object, frozen=True):
    """An invitation to join `org` with `role`, addressed to `email`."""

    id: str
    org: str
    email: str
    role: str
    expires_at: datetime


class Member(_Object, frozen=True):
    """A user's membership of the org, as the org's member list shows it."""

    user_id: str
    email: str
    role: str


class ApiKey(_Object, frozen=True):
    """A service API key in use (never the key itself: only its hash is kept)."""

    id: str
    name: str
    role: str
    created_at: datetime


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


class SleepAt(_Object, frozen=True):
    wake_at: datetime
    done: bool = False


class RunStateAt(_Object, frozen=True):
    """A run's state folded from its journal up to `position`; `head` is its latest."""

    run_id: str
    job: str
    function: str
    function_version: int
    position: int
    head: int
    status: str
    attempt: int
    hash: str
    trigger_kind: str | None = None
    steps: dict[str, Any] = {}
    state: dict[str, Any] = {}
    sleeps: dict[str, SleepAt] = {}
    emitted: list[str] = []
    last_error: Any = None
    output: Any = None
    dlq_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    available_at: datetime | None = None
    updated_at: datetime | None = None


class StateChange(_Object, frozen=True):
    """A field that differs (`steps.<key>`, `state.<key>`, `sleeps.<key>` for map keys);
    None where the key is absent on that side."""

    field: str
    before: Any = None
    after: Any = None


class StateDiff(_Object, frozen=True):
    run_id: str
    from_: int = msgspec.field(name="from")
    to: int
    changes: list[StateChange]


class Cause(_Object, frozen=True):
    """What started a run: trigger kind and id; for an event trigger the event, its topic
    and the emitting run and job; for cron the slot."""

    kind: str
    source: str | None = None
    event_id: str | None = None
    topic: str | None = None
    run_id: str | None = None
    job: str | None = None
    scheduled_for: datetime | None = None


class LineageRun(_Object, frozen=True):
    """A run, its cause, and the runs its emitted events started (a tree)."""

    run_id: str
    job: str
    status: str
    cause: Cause
    caused: list[LineageRun] = []
    more: bool = False  # it caused runs below the server's depth limit, not listed


class ReplayResult(_Object, frozen=True):
    """A replay check: `outcome` is "same" or "diverges" (then `divergence` is the first
    difference, at journal `position`)."""

    run_id: str
    job: str
    version: int
    outcome: Literal["same", "diverges"]
    checked: int
    recorded: int
    events: int
    divergence: str | None = None
    position: int | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "same"


class FunctionCheck(_Object, frozen=True):
    """A version replay-checked against the function's runs in flight."""

    function: str
    version: int
    runs: int
    safe: int
    diverges: int
    diverging: list[ReplayResult] = []


class TriggerChanges(_Object, frozen=True):
    """What a function version's manifest `job.triggers` did to the triggers with source
    "manifest" (each names its job). A webhook in `added` has its ingress `url`: shown
    only here."""

    added: list[Trigger] = []
    changed: list[Trigger] = []
    removed: list[Trigger] = []
    unchanged: list[Trigger] = []


class PromotedFunction(Function, frozen=True):
    """What `functions.promote` returns: the function and, when any job is bound to it,
    what the promoted manifest did to their triggers."""

    triggers: TriggerChanges | None = None


class JobWithTriggers(Job, frozen=True):
    """What `jobs.create` and `jobs.update` return: the job and, when its function's live
    manifest gave it triggers (or took some away), what changed."""

    triggers: TriggerChanges | None = None


class Fire(_Object, frozen=True):
    at: datetime  # UTC
    local: datetime | None = None  # in the trigger's timezone; None when that is UTC


class TriggerFires(_Object, frozen=True):
    id: str
    schedule: str
    timezone: str
    catch_up: str
    source: str
    fires: list[Fire]


class NextFires(_Object, frozen=True):
    """The next fire times of each cron trigger of a job, from the database clock's `now`."""

    job: str
    now: datetime
    triggers: list[TriggerFires]
