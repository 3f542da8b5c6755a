"""The webhook rate limit's token buckets (real, short durations) and the webhook config keys:
defaults, validation naming the key, and a global secret checked without being quoted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reactor_jobs.config import ConfigError, load_config
from reactor_jobs.http.ratelimit import RateLimited, TokenBuckets


def test_a_bucket_admits_its_burst_then_refuses_with_a_retry_after() -> None:
    buckets = TokenBuckets(rate=1, burst=2)
    buckets.take("trg_a")
    buckets.take("trg_a")
    with pytest.raises(RateLimited) as raised:
        buckets.take("trg_a")
    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after == 1  # whole seconds, at least 1
    buckets.take("trg_b")  # each key has its own bucket


def test_a_bucket_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=20, burst=1)
    buckets.take("trg_a")
    deadline = time.monotonic() + 5
    while True:  # refused until 1/20 s has passed, then admitted again
        try:
            buckets.take("trg_a")
            break
        except RateLimited:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_slow_rate_says_how_long_to_wait() -> None:
    buckets = TokenBuckets(rate=0.1, burst=1)
    buckets.take("trg_a")
    with pytest.raises(RateLimited) as raised:
        buckets.take("trg_a")
    assert 9 <= raised.value.retry_after <= 10


def test_rate_zero_turns_the_limit_off() -> None:
    buckets = TokenBuckets(rate=0, burst=1)
    for _ in range(1000):
        buckets.take("trg_a")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reactor.toml"
    path.write_text(text)
    return str(path)


def test_webhook_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    http = load_config(env={}).jobs.http
    assert (http.webhook_rate_per_second, http.webhook_burst) == (50.0, 100)
    custom = "[jobs.http]\nwebhook_rate_per_second = 2\nwebhook_burst = 5\n"
    http = load_config(write(tmp_path, custom), env={}).jobs.http
    assert (http.webhook_rate_per_second, http.webhook_burst) == (2.0, 5)
    secret = "whsec_" + "c2VjcmV0IGJ5dGVz"
    jobs = load_config(env={"REACTOR_WEBHOOK_SECRET": secret}).jobs
    assert jobs.webhook_secret == secret and secret not in repr(jobs)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[jobs.http]\nwebhook_rate_per_second = -1\n",
         "config error: jobs.http.webhook_rate_per_second: must be >= 0"),
        ("[jobs.http]\nwebhook_rate_per_second = 'fast'\n",
         "config error: jobs.http.webhook_rate_per_second: Expected float, got str"),
        ("[jobs.http]\nwebhook_rate_per_second = nan\n",
         "config error: jobs.http.webhook_rate_per_second: must be >= 0"),
        ("[jobs.http]\nwebhook_burst = 0\n", "config error: jobs.http.webhook_burst: must be >= 1"),
        ("[jobs]\nwebhook_secret = 'whsec_not base64!'\n",
         "config error: jobs.webhook_secret: a whsec_… secret must be base64"),
        ("[jobs]\nwebhook_secret = ''\n", "config error: jobs.webhook_secret: must not be empty"),
    ],
)  # fmt: skip
def test_bad_webhook_keys_fail_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, toml), env={})
    assert str(raised.value).startswith(message)
    assert "not base64!" not in str(raised.value)
