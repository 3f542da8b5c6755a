"""The sign-in throttle: failures per email and per address in a sliding window."""

from __future__ import annotations

import pytest

from reactor_jobs.auth.throttle import SignInThrottle, TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_email_is_refused_after_its_failures_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_email=3, per_address=100, window_s=60, clock=clock)
    for _ in range(3):
        throttle.check("a@x", "1.1.1.1")
        throttle.failed("a@x", "1.1.1.1")
        clock.now += 10
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("a@x", "2.2.2.2")  # another address: the email is what is guessed
    assert refused.value.retry_after == 30
    throttle.check("b@x", "1.1.1.1")  # another email from the same address still may
    clock.now += 30
    throttle.check("a@x", "1.1.1.1")


def test_an_address_is_refused_after_its_failures_across_emails() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_email=100, per_address=5, window_s=60, clock=clock)
    for n in range(5):
        throttle.failed(f"user{n}@x", "9.9.9.9")
    with pytest.raises(TooManyRequests):
        throttle.check("new@x", "9.9.9.9")
    throttle.check("new@x", "8.8.8.8")


def test_a_success_clears_the_email_but_not_the_address() -> None:
    throttle = SignInThrottle(per_email=2, per_address=3, window_s=60, clock=Clock())
    throttle.failed("a@x", "1.1.1.1")
    throttle.failed("a@x", "1.1.1.1")
    throttle.succeeded("a@x")
    throttle.check("a@x", "2.2.2.2")
    throttle.failed("b@x", "1.1.1.1")
    with pytest.raises(TooManyRequests):
        throttle.check("c@x", "1.1.1.1")
