"""The API's objects as msgspec Structs, defined once for the server and the client.

The server decodes requests into the `_In` ones (unknown fields refused), encodes responses
from the `_Out` ones and generates the OpenAPI document's schemas from both; the client
decodes responses into the same `_Out` Structs, which ignore unknown fields, so an older
client survives a newer server. Nothing here imports the rest of reactor_jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

Backoff: TypeAlias = Literal["exponential", "linear"]
Runtime: TypeAlias = Literal["python", "bun"]
# Versions, attempts and delays are int32 columns: past that range Postgres would refuse them.
INT32_MAX = 2**31 - 1

# The spec's policy defaults (Configuration, Limits and quotas).
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF: Backoff = "exponential"
DEFAULT_INITIAL_DELAY_MS = 1_000
DEFAULT_MAX_DELAY_MS = 60_000
DEFAULT_MAX_CONCURRENCY = 10
DEFAULT_TIMEOUT_MS = 600_000


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class _Out(msgspec.Struct, frozen=True, kw_only=True):
    pass


# Requests

VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
Int32 = Annotated[int, msgspec.Meta(ge=-INT32_MAX - 1, le=INT32_MAX)]


class JobCreate(_In, frozen=True):
    name: str
    function_name: str
    max_attempts: Int32 | None = None
    backoff: Backoff | None = None
    initial_delay_ms: Int32 | None = None
    max_delay_ms: Int32 | None = None
    max_concurrency: Int32 | None = None
    timeout_ms: Int32 | None = None


class JobUpdate(_In, frozen=True):
    """Only the fields sent change; null clears a policy field back to the manifest's."""

    function_name: str | UnsetType = UNSET
    max_attempts: Int32 | UnsetType | None = UNSET
    backoff: Backoff | UnsetType | None = UNSET
    initial_delay_ms: Int32 | UnsetType | None = UNSET
    max_delay_ms: Int32 | UnsetType | None = UNSET
    max_concurrency: Int32 | UnsetType | None = UNSET
    timeout_ms: Int32 | UnsetType | None = UNSET


class ManualTrigger(_In, frozen=True):
    payload: Any = None


class FunctionCreate(_In, frozen=True):
    name: str
    runtime: Runtime = "python"


class Promote(_In, frozen=True):
    version: VersionNumber | None = None


# Responses


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """The effective retry, concurrency and timeout settings of a job."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = DEFAULT_BACKOFF
    initial_delay_ms: int = DEFAULT_INITIAL_DELAY_MS
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    timeout_ms: int = DEFAULT_TIMEOUT_MS


class Run(_Out, frozen=True):
    id: str
    job: str
    status: str
    attempt: int
    function: str
    function_version: int
    trigger_kind: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    available_at: datetime | None
    last_error: Any
    output: Any
    dlq_id: str | None
    idempotency_key: str | None


class Job(_Out, frozen=True):
    name: str
    function_name: str
    max_attempts: int | None
    backoff: Backoff | None
    initial_delay_ms: int | None
    max_delay_ms: int | None
    max_concurrency: int | None
    timeout_ms: int | None
    created_at: datetime
    updated_at: datetime
    policy: Policy | None  # the effective policy; null while the function has no live version


class Trigger(_Out, frozen=True):
    id: str
    job: str
    kind: Literal["cron", "event", "webhook", "manual"]
    schedule: str | None
    timezone: str | None
    catch_up: Literal["latest", "skip", "all"] | None
    topic: str | None
    source: Literal["api", "manifest"]
    created_at: datetime
    # Webhooks: request headers kept beyond the defaults (null: the defaults only).
    headers: list[str] | None = None


class CreatedTrigger(Trigger, frozen=True, omit_defaults=True):
    """A trigger as its creation returns it: a webhook's ingress URL is shown only here,
    with `signed`: whether its requests must be signed (its own secret, or the server's
    webhook_secret). Both fields are absent for other kinds; the secret is never returned."""

    url: str | None = None
    signed: bool | None = None


class DlqEntry(_Out, frozen=True):
    id: str
    run_id: str
    job: str
    attempts: int
    error: Any
    status: Literal["open", "retried"]
    created_at: datetime
    retried_at: datetime | None


class Event(_Out, frozen=True):
    id: str
    topic: str
    payload: Any
    run_id: str
    job: str
    emitted_at: datetime
    consumed_at: datetime | None
    fanout: int


class JournalEvent(_Out, frozen=True):
    """A journal row as `reactor journal dump` exports it; `data` is the event itself."""

    global_position: int
    run_id: str
    position: int
    org: str
    type: str
    version: int
    recorded_at: datetime
    prev_hash: str
    hash: str
    data: Any


class Function(_Out, frozen=True):
    name: str
    runtime: Runtime
    live_version: int | None
    created_at: datetime
    updated_at: datetime


class Version(_Out, frozen=True):
    name: str
    version: int
    sha256: str
    size: int
    live: bool
    created_at: datetime


class WebhookAccepted(_Out, frozen=True):
    """`duplicate`: the webhook-id was delivered before; `run_id` is that first run's."""

    run_id: str
    status: str
    duplicate: bool = False


class HostsHealth(_Out, frozen=True):
    """Where job code runs: the isolation in force and the function hosts running."""

    isolation: str
    multi_tenant: bool
    hosts: int
    started: int


class Health(_Out, frozen=True):
    status: str  # ok | degraded (the database is unreachable; the process keeps retrying)
    detail: str | None = None
    function_hosts: HostsHealth | None = None


# Lists


class RunList(_Out, frozen=True):
    runs: list[Run]
    next_cursor: str | None


class JobList(_Out, frozen=True):
    jobs: list[Job]


class TriggerList(_Out, frozen=True):
    triggers: list[Trigger]


class DlqList(_Out, frozen=True):
    entries: list[DlqEntry]
    next_cursor: str | None


class EventList(_Out, frozen=True):
    events: list[Event]
    next_cursor: str | None


class JournalEvents(_Out, frozen=True):
    events: list[JournalEvent]


class FunctionList(_Out, frozen=True):
    functions: list[Function]


class VersionList(_Out, frozen=True):
    versions: list[Version]


# Audit (http/audit_routes.py): time travel, diffs, lineage, replay checks


class ReplayRequest(_In, frozen=True):
    """The version to replay on; default the run's own (pinned) version."""

    version: VersionNumber | None = None


class FunctionCheckRequest(_In, frozen=True):
    version: VersionNumber


class SleepAt(_Out, frozen=True):
    wake_at: datetime
    done: bool


class RunStateAt(_Out, frozen=True):
    """A run folded from its journal up to `position` (`head`: its latest position)."""

    run_id: str
    job: str
    function: str
    function_version: int
    position: int
    head: int
    status: str
    attempt: int
    trigger_kind: str | None
    steps: dict[str, Any]  # step key -> recorded output
    state: dict[str, Any]
    sleeps: dict[str, SleepAt]
    emitted: list[str]  # event ids, in order
    last_error: Any
    output: Any
    dlq_id: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    available_at: datetime | None
    updated_at: datetime | None  # when the event at `position` was recorded
    hash: str  # the hash chain's value at `position`, hex


class StateChange(_Out, frozen=True):
    """One field that differs: a RunStateAt field, or `steps.<key>`, `state.<key>`,
    `sleeps.<key>` for one key of those maps (null: absent on that side)."""

    field: str
    before: Any
    after: Any


class StateDiff(_Out, frozen=True):
    run_id: str
    from_: int = msgspec.field(name="from")
    to: int
    changes: list[StateChange]


class Cause(_Out, frozen=True):
    """What started a run: the trigger kind and id (`source`); for an event trigger the
    event, its topic and the run (and job) that emitted it; for cron the slot."""

    kind: str
    source: str | None
    event_id: str | None
    topic: str | None
    run_id: str | None
    job: str | None
    scheduled_for: datetime | None


class LineageRun(_Out, frozen=True):
    run_id: str
    job: str
    status: str
    cause: Cause
    caused: list[LineageRun]  # the runs its emitted events started, in order
    more: bool  # true: it caused runs below the depth limit (10 levels), not listed


class ReplayResult(_Out, frozen=True):
    """A replay check: `same` when the code makes the recorded decisions (steps, emits,
    sleeps, in order, and the final output); else the first divergence and its position."""

    run_id: str
    job: str
    version: int
    outcome: Literal["same", "diverges"]
    checked: int  # recorded decisions the code made again
    recorded: int  # decisions in the recording
    events: int  # journal events replayed
    divergence: str | None
    position: int | None
    note: str | None

    @property
    def ok(self) -> bool:
        return self.outcome == "same"


class FunctionCheck(_Out, frozen=True):
    """A version replayed against every run in flight (queued, running, sleeping, retrying)
    of the function: how many it reproduces, and each diverging run's first divergence."""

    function: str
    version: int
    runs: int
    safe: int
    diverges: int
    diverging: list[ReplayResult]


# Manifest triggers (applied on promote and job create) and cron previews


class TriggerChanges(_Out, frozen=True):
    """What a function version's manifest `job.triggers` did to the triggers with source
    "manifest" of the jobs bound to it (each trigger names its job). A webhook in `added`
    carries its ingress `url` (and `signed`): shown only here, never again."""

    added: list[CreatedTrigger]
    changed: list[Trigger]
    removed: list[Trigger]
    unchanged: list[Trigger]


class JobWithTriggers(Job, frozen=True, omit_defaults=True):
    """A created job, or one bound to another function: `triggers` is present when its
    function's live manifest names any trigger or the job had manifest triggers."""

    triggers: TriggerChanges | None = None


class FunctionWithTriggers(Function, frozen=True, omit_defaults=True):
    """A promoted function: `triggers` is present when a job bound to it has or gets
    manifest triggers."""

    triggers: TriggerChanges | None = None


class Fire(_Out, frozen=True):
    at: datetime  # UTC
    local: datetime | None  # the same instant in the trigger's timezone; null when UTC


class TriggerFires(_Out, frozen=True):
    id: str
    schedule: str
    timezone: str
    catch_up: Literal["latest", "skip", "all"]
    source: Literal["api", "manifest"]
    fires: list[Fire]


class NextFires(_Out, frozen=True):
    """The next fire times of each cron trigger of a job, from the database clock's `now`."""

    job: str
    now: datetime
    triggers: list[TriggerFires]
