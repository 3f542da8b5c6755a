"""Token buckets per key (a webhook trigger's id), held in this process: each `reactor serve`
process limits on its own, so N processes behind a balancer admit up to N times the rate.
A limit, not a correctness rule, so keeping it in memory is acceptable (DESIGN invariant 7)."""

from __future__ import annotations

import math
import time

from reactor_jobs.domain.errors import ReactorError

# Past this many buckets, full ones (idle keys, deleted triggers) are dropped.
_PRUNE_ABOVE = 10_000


class RateLimited(ReactorError):
    """Too many requests: slow down and retry after the Retry-After header's seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many requests for this webhook; retry in {self.retry_after} s")


class TokenBuckets:
    """`rate` tokens per second up to `burst` per key; a request takes one. rate 0: no limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at monotonic)

    def take(self, key: str) -> None:
        """Take a token for `key`, or raise RateLimited saying when one will be there."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens = self._tokens(key, now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited((1 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > _PRUNE_ABOVE:
            self._prune(now)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _prune(self, now: float) -> None:
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
