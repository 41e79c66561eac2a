"""Paced admission refusals: a storm of clients that retry at once cannot turn the event loop into a refusal loop.

A 429 costs the event loop a parsed request and a written answer (about as much as the HTTP floor's whole
request). Clients that ignore ``Retry-After`` (wrk, a naive retry loop) send the next request the moment the 429
arrives, so at 10x the admission limit in connections the loop spent most of its time refusing and goodput fell
to about half of capacity (`make bench`, 0.51). The pacer answers at most ``rate`` refusals per second at once;
each one beyond waits its turn (a timer, no work), at most ``max_wait`` seconds, so the refusal rate, and the
loop time it takes, stays bounded whatever the clients do. Clients below the rate see no change.

The schedule is a virtual clock (the generic cell rate algorithm without a burst allowance): every refusal takes
the next free slot ``1 / rate`` after the previous one. The debt is capped at ``max_wait``: after a storm the
next refusals are answered at once again within ``max_wait``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RefusalPacer:
    """``delay()``: how long this refusal waits before it is sent (0 when the rate is not exceeded)."""

    def __init__(self, rate: float, max_wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or max_wait < 0:
            raise ValueError(f"rate and max_wait must be >= 0, got {rate} and {max_wait}")
        self.interval = 1.0 / rate if rate > 0 else 0.0  # 0: pacing off, every refusal at once
        self.max_wait = max_wait
        self.clock = clock
        self._next = 0.0  # the next free slot on the clock

    def delay(self) -> float:
        if self.interval == 0.0:
            return 0.0
        now = self.clock()
        slot = min(max(now, self._next), now + self.max_wait)
        self._next = slot + self.interval
        return slot - now
