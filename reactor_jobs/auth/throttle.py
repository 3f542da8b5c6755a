"""Brute-force protection for sign-in, and argon2 off the default thread pool.

SignInThrottle counts failed sign-ins per email and per client address in a sliding window,
in this process (like the webhook rate limit: N processes allow N times as many guesses;
a limit, not a correctness rule). Past the limit a sign-in is refused with 429 before any
password is checked, so a flood costs the server nothing but the lookup.

PasswordHashers runs argon2 on its own small executor with a bounded queue: a flood of
sign-ins waits there or is refused (503), and never takes the default thread pool that
sync `ctx.step` functions and asyncio.to_thread use."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from reactor_jobs.domain.errors import ReactorError

T = TypeVar("T")
# Past this many keys, those with no failure left in the window are dropped.
_PRUNE_ABOVE = 10_000


class TooManyRequests(ReactorError):
    """Too many failed sign-ins: wait for the Retry-After header's seconds."""

    code = "too_many_requests"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed sign-ins; retry in {self.retry_after} s")


class ServerBusy(ReactorError):
    """The server is busy checking passwords; retry in a moment."""

    code = "server_busy"
    retry_after = 1


class SignInThrottle:
    """At most `per_email` failures per email and `per_address` per client address within
    `window_s` seconds; `clock` is injectable for tests."""

    def __init__(
        self,
        per_email: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"email": per_email, "address": per_address}
        self._window_s, self._clock = window_s, clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def check(self, email: str, address: str) -> None:
        """Raise TooManyRequests if either key is at its limit."""
        now = self._clock()
        waits = [self._wait(("email", email), now), self._wait(("address", address), now)]
        if max(waits) > 0:
            raise TooManyRequests(max(waits))

    def failed(self, email: str, address: str) -> None:
        now = self._clock()
        for key in (("email", email), ("address", address)):
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > _PRUNE_ABOVE:
            self._prune(now)

    def succeeded(self, email: str) -> None:
        """A right password clears its email's failures (not its address's)."""
        self._failures.pop(("email", email), None)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if len(times) < self._limits[key[0]]:
            return 0.0
        return times[0] + self._window_s - now

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._failures.items() if not t or t[-1] <= now - self._window_s]
        for key in stale:
            del self._failures[key]


class PasswordHashers:
    """`threads` argon2 workers; at most `queue` calls wait for one, the rest get ServerBusy."""

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="reactor-argon2")
        self._capacity = threads + queue
        self._in_flight = 0

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_flight >= self._capacity:
            raise ServerBusy()
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
