"""The function manifest: the spec's defaults and example, errors that name the field by its
JSON path, and policy resolution (job settings over the manifest over the defaults)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from reactor_jobs.functions.errors import InvalidField, InvalidManifest, InvalidPolicy
from reactor_jobs.functions.manifest import (
    JobManifest,
    Limits,
    Manifest,
    PolicyOverrides,
    RetryPolicy,
    check_name,
    check_overrides,
    parse_manifest,
    resolve_policy,
)
from reactor_jobs.triggers.declared import CronTrigger, EventTrigger, WebhookTrigger
from reactor_jobs.wire.objects import Policy

BUNDLES = Path(__file__).resolve().parent.parent / "bundles"

# The spec's "Job manifest fields" example, verbatim.
SPEC_EXAMPLE = b"""{
  "job": {
    "triggers": [
      { "kind": "cron", "schedule": "0 */6 * * *" },
      { "kind": "event", "topic": "order.created" },
      { "kind": "webhook" }
    ],
    "retry": {
      "maxAttempts": 3,
      "backoff": "exponential",
      "initialDelayMs": 1000,
      "maxDelayMs": 60000
    },
    "maxConcurrency": 5,
    "timeoutMs": 600000
  }
}"""


def manifest_error(raw: bytes, **caps: int) -> InvalidManifest:
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(raw, **caps)
    return info.value


def test_the_specs_example_parses() -> None:
    job = parse_manifest(SPEC_EXAMPLE).job
    assert job is not None
    assert job.triggers == [
        CronTrigger(schedule="0 */6 * * *"),
        EventTrigger(topic="order.created"),
        WebhookTrigger(),
    ]
    assert job.retry == RetryPolicy(
        max_attempts=3, backoff="exponential", initial_delay_ms=1000, max_delay_ms=60000
    )
    assert (job.max_concurrency, job.timeout_ms) == (5, 600_000)


def test_defaults_are_the_specs() -> None:
    expected = Policy(
        max_attempts=3,
        backoff="exponential",
        initial_delay_ms=1000,
        max_delay_ms=60_000,
        max_concurrency=10,
        timeout_ms=600_000,
    )
    assert Policy() == expected
    assert resolve_policy(parse_manifest(b'{"job": {}}').job) == expected
    assert resolve_policy(parse_manifest(b"{}").job) == expected
    assert parse_manifest(b"{}") == Manifest()
    cron = parse_manifest(b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 * * * *"}]}}')
    assert cron.job is not None
    assert cron.job.triggers == [
        CronTrigger(schedule="0 * * * *", timezone="UTC", catch_up="latest")
    ]


def test_server_defaults_follow_the_configuration() -> None:
    limits = Limits(default_timeout_ms=120_000, max_concurrency_cap=4)
    policy = resolve_policy(JobManifest(), None, limits)
    assert (policy.timeout_ms, policy.max_concurrency) == (120_000, 4)


def test_the_quickstart_bundle_manifest_parses() -> None:
    manifest = parse_manifest((BUNDLES / "process-order" / "function.json").read_bytes())
    assert (manifest.name, manifest.runtime) == ("process-order", "python")


def test_all_trigger_kinds_and_cron_options() -> None:
    raw = b"""{"job": {"triggers": [
        {"kind": "cron", "schedule": "*/15 * * * *", "timezone": "Europe/Paris", "catchUp": "all"},
        {"kind": "cron", "schedule": "0 0 9 * * 1-5"},
        {"kind": "event", "topic": "order.created"},
        {"kind": "webhook"}, {"kind": "manual"}]}}"""
    job = parse_manifest(raw).job
    assert job is not None
    assert job.triggers[0] == CronTrigger(
        schedule="*/15 * * * *", timezone="Europe/Paris", catch_up="all"
    )
    assert [type(t).__name__ for t in job.triggers] == [
        "CronTrigger",
        "CronTrigger",
        "EventTrigger",
        "WebhookTrigger",
        "ManualTrigger",
    ]


def test_encoding_round_trips_in_camel_case() -> None:
    manifest = parse_manifest(SPEC_EXAMPLE)
    encoded = msgspec.json.encode(manifest)
    assert b'"maxAttempts":3' in encoded and b'"catchUp":"latest"' in encoded
    assert parse_manifest(encoded) == manifest


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (b'{"job": {"retry": {"maxAttempt": 3}}}', "$.job.retry.maxAttempt", "unknown field"),
        (b'{"jobs": {}}', "$.jobs", "unknown field"),
        (b'{"job": {"timeoutMs": "10m"}}', "$.job.timeoutMs", "Expected int | null, got str"),
        (b'{"job": {"retry": {"maxAttempts": true}}}', "$.job.retry.maxAttempts", "Expected int"),
        (b'{"job": {"retry": {"maxAttempts": 0}}}', "$.job.retry.maxAttempts", "between 1 and 100"),
        (b'{"job": {"retry": {"maxAttempts": 101}}}', "$.job.retry.maxAttempts", "got 101"),
        (b'{"job": {"retry": {"backoff": "fibonacci"}}}', "$.job.retry.backoff", "Invalid enum"),
        (
            b'{"job": {"retry": {"initialDelayMs": -1}}}',
            "$.job.retry.initialDelayMs",
            ">= 0, got -1",
        ),
        (
            b'{"job": {"retry": {"initialDelayMs": 5000, "maxDelayMs": 100}}}',
            "$.job.retry.initialDelayMs",
            "must be <= maxDelayMs (5000 > 100)",
        ),
        (b'{"job": {"timeoutMs": 3600001}}', "$.job.timeoutMs", "between 1 and 3600000"),
        (b'{"job": {"timeoutMs": 0}}', "$.job.timeoutMs", "between 1 and 3600000"),
        (b'{"job": {"maxConcurrency": 11}}', "$.job.maxConcurrency", "between 1 and 10"),
        (b'{"job": {"maxConcurrency": 0}}', "$.job.maxConcurrency", "between 1 and 10"),
        (
            b'{"job": {"triggers": [{"kind": "cron", "schedule": "every hour"}]}}',
            "$.job.triggers[0].schedule",
            "expected 5 fields",
        ),
        (
            b'{"job": {"triggers": [{"kind": "cron", "schedule": "61 * * * *"}]}}',
            "$.job.triggers[0].schedule",
            "not a valid cron schedule",
        ),
        (
            b'{"job": {"triggers": [{"kind": "webhook"}, {"kind": "cron"}]}}',
            "$.job.triggers[1]",
            "missing required field schedule",
        ),
        (
            b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 * * * *", "timezone": "X"}]}}',
            "$.job.triggers[0].timezone",
            "unknown time zone",
        ),
        (
            b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 * * * *", "catchUp": "x"}]}}',
            "$.job.triggers[0].catchUp",
            "Invalid enum value",
        ),
        (
            b'{"job": {"triggers": [{"kind": "event", "topic": " "}]}}',
            "$.job.triggers[0].topic",
            "must not be empty",
        ),
        (b'{"job": {"triggers": [{"kind": "sms"}]}}', "$.job.triggers[0].kind", "Invalid value"),
        (b'{"name": "Process_Order"}', "$.name", "must match"),
        (b'{"runtime": "node"}', "$.runtime", "Invalid enum value"),
        (b"[]", "$", "Expected object, got array"),
    ],
)
def test_bad_manifests_name_the_field(raw: bytes, path: str, reason: str) -> None:
    error = manifest_error(raw)
    assert error.path == path
    assert reason in error.reason
    assert f"at {path}:" in error.message
    assert error.code == "invalid_manifest"


def test_caps_are_the_servers() -> None:
    assert manifest_error(b'{"job": {"timeoutMs": 60001}}', max_timeout_ms=60_000).path == (
        "$.job.timeoutMs"
    )
    assert manifest_error(b'{"job": {"maxConcurrency": 3}}', max_concurrency_cap=2).path == (
        "$.job.maxConcurrency"
    )
    assert parse_manifest(b'{"job": {"maxConcurrency": 50}}', max_concurrency_cap=50).job


def test_not_json_is_invalid() -> None:
    error = manifest_error(b'{"job": ')
    assert "not valid JSON" in error.message
    assert error.path is None


def test_six_field_cron_is_accepted_and_seven_refused() -> None:
    six = b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 0 * * * 30"}]}}'
    assert parse_manifest(six).job is not None
    seven = b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 0 * * * * 2030"}]}}'
    assert "got 7" in manifest_error(seven).reason


def test_a_cron_schedule_that_never_fires_is_refused() -> None:
    never = b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 0 31 2 *"}]}}'
    assert "never fires" in manifest_error(never).reason
    leap_day = b'{"job": {"triggers": [{"kind": "cron", "schedule": "0 0 29 2 *"}]}}'
    assert parse_manifest(leap_day).job is not None  # rare, but it fires


def test_resolve_policy_takes_the_manifest_then_the_job() -> None:
    job = parse_manifest(SPEC_EXAMPLE.replace(b'"maxAttempts": 3', b'"maxAttempts": 7')).job
    from_manifest = resolve_policy(job)
    assert (from_manifest.max_attempts, from_manifest.max_concurrency) == (7, 5)
    overrides = PolicyOverrides(max_attempts=2, backoff="linear", timeout_ms=30_000)
    policy = resolve_policy(job, overrides)
    assert policy == Policy(
        max_attempts=2,
        backoff="linear",
        initial_delay_ms=1000,
        max_delay_ms=60_000,
        max_concurrency=5,
        timeout_ms=30_000,
    )


def test_resolve_policy_refuses_inconsistent_or_capped_combinations() -> None:
    job = JobManifest(retry=RetryPolicy(max_delay_ms=2000))
    with pytest.raises(InvalidPolicy) as info:
        resolve_policy(job, PolicyOverrides(initial_delay_ms=5000))
    assert info.value.field == "initial_delay_ms"
    with pytest.raises(InvalidPolicy) as info:
        resolve_policy(JobManifest(timeout_ms=600_000), None, Limits(max_timeout_ms=60_000))
    assert info.value.field == "timeout_ms"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (PolicyOverrides(max_attempts=0), "max_attempts"),
        (PolicyOverrides(max_attempts=101), "max_attempts"),
        (PolicyOverrides(backoff="fibonacci"), "backoff"),  # type: ignore[arg-type]
        (PolicyOverrides(initial_delay_ms=-5), "initial_delay_ms"),
        (PolicyOverrides(max_delay_ms=2**31), "max_delay_ms"),
        (PolicyOverrides(initial_delay_ms=10, max_delay_ms=5), "initial_delay_ms"),
        (PolicyOverrides(max_concurrency=11), "max_concurrency"),
        (PolicyOverrides(timeout_ms=3_600_001), "timeout_ms"),
        (PolicyOverrides(timeout_ms=0), "timeout_ms"),
    ],
)
def test_bad_job_settings_name_the_field(overrides: PolicyOverrides, field: str) -> None:
    with pytest.raises(InvalidPolicy) as info:
        check_overrides(overrides, Limits())
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}: ")
    assert info.value.code == "invalid_field"


def test_names() -> None:
    for good in ("process-order", "a", "0day", "x" * 63):
        check_name(good)
    for bad in ("", "-x", "Process", "a_b", "x" * 64, "a\n", "a/b"):
        with pytest.raises(InvalidField):
            check_name(bad)
