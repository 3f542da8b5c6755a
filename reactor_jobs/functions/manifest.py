"""The function manifest (`function.json`) and the job policy it yields.

Pure domain: parsing, range checks and policy resolution; no database. The wire format is
camelCase; errors name the field by its JSON path (`$.job.retry.maxAttempts`).
"""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

import msgspec

from reactor_jobs.domain.cron import check_cron, check_timezone
from reactor_jobs.functions.errors import InvalidField, InvalidManifest, InvalidPolicy
from reactor_jobs.triggers.declared import CronTrigger, EventTrigger, Trigger

# The policy (with the spec's defaults) and its enums are part of the API: defined in wire.
from reactor_jobs.wire.objects import (
    DEFAULT_BACKOFF,
    DEFAULT_INITIAL_DELAY_MS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_DELAY_MS,
    DEFAULT_TIMEOUT_MS,
    Backoff,
    Policy,
    Runtime,
)

CatchUp: TypeAlias = Literal["latest", "skip", "all"]

BACKOFFS: tuple[str, ...] = ("exponential", "linear")
# Function and job names: lowercase, digits and dashes; they appear in URLs and paths.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

MAX_TIMEOUT_MS = 3_600_000
MAX_ATTEMPTS_LIMIT = 100
# The longest IANA name is 32 characters; longer is a typo or an attack.
# Policy columns are Postgres `integer`.
INT32_MAX = 2_147_483_647


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class RetryPolicy(_Wire, frozen=True):
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = DEFAULT_BACKOFF
    initial_delay_ms: int = DEFAULT_INITIAL_DELAY_MS
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS


class JobManifest(_Wire, frozen=True):
    """The manifest's `job` block. A missing maxConcurrency or timeoutMs means the server's
    default (min(10, cap) and `default_timeout_ms`), decided when the policy is resolved."""

    triggers: list[Trigger] = []
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    max_concurrency: int | None = None
    timeout_ms: int | None = None


class Manifest(_Wire, frozen=True):
    name: str | None = None
    runtime: Runtime | None = None
    job: JobManifest | None = None


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Server-side bounds on job policy (the `[jobs]` configuration)."""

    default_timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_timeout_ms: int = MAX_TIMEOUT_MS
    max_concurrency_cap: int = DEFAULT_MAX_CONCURRENCY

    def bounds(self, field: str) -> tuple[int, int]:
        return {
            "max_attempts": (1, MAX_ATTEMPTS_LIMIT),
            "initial_delay_ms": (0, INT32_MAX),
            "max_delay_ms": (0, INT32_MAX),
            "max_concurrency": (1, self.max_concurrency_cap),
            "timeout_ms": (1, self.max_timeout_ms),
        }[field]


class PolicyOverrides(msgspec.Struct, frozen=True, kw_only=True):
    """A job's explicit settings; None means "take the manifest's value"."""

    max_attempts: int | None = None
    backoff: Backoff | None = None
    initial_delay_ms: int | None = None
    max_delay_ms: int | None = None
    max_concurrency: int | None = None
    timeout_ms: int | None = None


# Policy field → where the manifest spells it.
MANIFEST_PATHS = {
    "max_attempts": "$.job.retry.maxAttempts",
    "backoff": "$.job.retry.backoff",
    "initial_delay_ms": "$.job.retry.initialDelayMs",
    "max_delay_ms": "$.job.retry.maxDelayMs",
    "max_concurrency": "$.job.maxConcurrency",
    "timeout_ms": "$.job.timeoutMs",
}
_AT_PATH = re.compile(r"^(?P<reason>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")


def parse_manifest(
    raw: bytes,
    *,
    max_timeout_ms: int = MAX_TIMEOUT_MS,
    max_concurrency_cap: int = DEFAULT_MAX_CONCURRENCY,
) -> Manifest:
    """Decode and check a function.json; InvalidManifest names the offending field."""
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidManifest(f"not valid JSON ({exc})") from None
    limits = Limits(max_timeout_ms=max_timeout_ms, max_concurrency_cap=max_concurrency_cap)
    if manifest.name is not None and not is_valid_name(manifest.name):
        raise InvalidManifest(f"must match {NAME_PATTERN.pattern}, got {manifest.name!r}", "$.name")
    if manifest.job is not None:
        _check_job(manifest.job, limits)
    return manifest


def is_valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def check_name(name: str, field: str = "name") -> None:
    if not is_valid_name(name):
        raise InvalidField(field, f"must match {NAME_PATTERN.pattern}, got {name!r}")


def check_overrides(overrides: PolicyOverrides, limits: Limits) -> None:
    """Range-check a job's explicit settings; InvalidPolicy names the field."""
    if overrides.backoff is not None and overrides.backoff not in BACKOFFS:
        raise InvalidPolicy("backoff", f"must be one of {', '.join(BACKOFFS)}")
    for field in MANIFEST_PATHS:
        value = getattr(overrides, field)
        if isinstance(value, int) and (problem := _range_problem(value, limits.bounds(field))):
            raise InvalidPolicy(field, problem)
    initial, maximum = overrides.initial_delay_ms, overrides.max_delay_ms
    if initial is not None and maximum is not None and initial > maximum:
        raise InvalidPolicy("initial_delay_ms", f"must be <= max_delay_ms ({initial} > {maximum})")


def resolve_policy(
    job: JobManifest | None,
    overrides: PolicyOverrides | None = None,
    limits: Limits | None = None,
) -> Policy:
    """The job's effective policy: its explicit settings over the manifest's over the defaults.

    Raises InvalidPolicy when the combination is inconsistent or exceeds the server's caps
    (which may have been lowered since the version was deployed).
    """
    limits = limits or Limits()
    job = job or JobManifest()
    values = {
        "max_attempts": job.retry.max_attempts,
        "backoff": job.retry.backoff,
        "initial_delay_ms": job.retry.initial_delay_ms,
        "max_delay_ms": job.retry.max_delay_ms,
        "max_concurrency": _first(
            job.max_concurrency, min(DEFAULT_MAX_CONCURRENCY, limits.max_concurrency_cap)
        ),
        "timeout_ms": _first(job.timeout_ms, limits.default_timeout_ms),
    }
    if overrides is not None:
        explicit = msgspec.structs.asdict(overrides)
        values.update({k: v for k, v in explicit.items() if v is not None})
    policy = msgspec.convert(values, Policy)
    _check_resolved(policy, limits)
    return policy


def _first(value: int | None, default: int) -> int:
    return default if value is None else value


def _check_resolved(policy: Policy, limits: Limits) -> None:
    for field in ("max_concurrency", "timeout_ms"):
        problem = _range_problem(getattr(policy, field), limits.bounds(field))
        if problem:
            raise InvalidPolicy(field, f"{problem} (server cap)")
    if policy.initial_delay_ms > policy.max_delay_ms:
        raise InvalidPolicy(
            "initial_delay_ms",
            f"{policy.initial_delay_ms} exceeds max_delay_ms {policy.max_delay_ms} "
            "(job settings combined with the function manifest)",
        )


def _check_job(job: JobManifest, limits: Limits) -> None:
    for index, trigger in enumerate(job.triggers):
        _check_trigger(trigger, f"$.job.triggers[{index}]")
    retry = job.retry
    values = {
        "max_attempts": retry.max_attempts,
        "initial_delay_ms": retry.initial_delay_ms,
        "max_delay_ms": retry.max_delay_ms,
        "max_concurrency": job.max_concurrency,
        "timeout_ms": job.timeout_ms,
    }
    for field, value in values.items():
        if value is not None and (problem := _range_problem(value, limits.bounds(field))):
            raise InvalidManifest(problem, MANIFEST_PATHS[field])
    if retry.initial_delay_ms > retry.max_delay_ms:
        raise InvalidManifest(
            f"must be <= maxDelayMs ({retry.initial_delay_ms} > {retry.max_delay_ms})",
            MANIFEST_PATHS["initial_delay_ms"],
        )


def _check_trigger(trigger: Trigger, path: str) -> None:
    if isinstance(trigger, CronTrigger):
        if problem := check_cron(trigger.schedule):
            raise InvalidManifest(problem, f"{path}.schedule")
        if problem := check_timezone(trigger.timezone):
            raise InvalidManifest(problem, f"{path}.timezone")
    elif isinstance(trigger, EventTrigger) and not trigger.topic.strip():
        raise InvalidManifest("must not be empty", f"{path}.topic")


def _range_problem(value: int, bounds: tuple[int, int]) -> str | None:
    low, high = bounds
    if low <= value <= high:
        return None
    if high == INT32_MAX and value < low:
        return f"must be >= {low}, got {value}"
    return f"must be between {low} and {high}, got {value}"


def _invalid(error: str) -> InvalidManifest:
    """msgspec's "Expected `int`, got `str` - at `$.job.x`" as InvalidManifest(reason, path)."""
    match = _AT_PATH.match(error)
    reason, path = (match["reason"], match["path"]) if match else (error, "$")
    if unknown := _UNKNOWN.match(reason):
        path, reason = f"{path}.{unknown['key']}", "unknown field"
    return InvalidManifest(reason.replace("`", ""), path)
