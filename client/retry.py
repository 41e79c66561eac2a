"""When and how long to retry: 429 and 503 (and connection failures), exponential backoff, ``Retry-After``.

    RetryPolicy()                       # 4 tries, 0.2 s · 2^n backoff with jitter, at most 10 s per wait
    RetryPolicy(attempts=1)             # never retry
    RetryPolicy(attempts=8, max_delay_s=2)

Every endpoint is a pure function of its input, so a repeated POST is safe. A ``Retry-After`` from the server
is a floor for the wait (the service computes it from its queue), capped by ``max_delay_s`` so a caller's
latency stays bounded. Timeouts are not retried: the server may still be working on that request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all (1 = no retry)
    backoff_s: float = 0.2  # first wait; doubles each retry
    max_delay_s: float = 10.0  # no single wait is longer
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    retry_connect_errors: bool = True  # refused / reset before an answer (the request did nothing)
    jitter: float = 0.25  # +0..25 % so many clients do not retry in step

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_delay_s < 0 or self.jitter < 0:
            raise ValueError("backoff_s, max_delay_s and jitter must be >= 0")

    def should_retry(self, attempt: int, status: int | None) -> bool:
        """After try number ``attempt`` (0-based) failed with ``status`` (None: a connection failure)."""
        if attempt + 1 >= self.attempts:
            return False
        return self.retry_connect_errors if status is None else status in self.statuses

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: backoff with jitter, at least ``Retry-After``, capped."""
        backoff = self.backoff_s * (2.0**attempt) * (1.0 + self.jitter * random.random())
        wait = backoff if retry_after is None else max(backoff, retry_after)
        return min(self.max_delay_s, wait)
