"""Paced admission refusals (service/pacing.py): the schedule on a fake clock, then a real service under a
burst of refused requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from service.pacing import RefusalPacer
from tests.service.service_helpers import digit_png, files, refused_before_body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_below_the_rate_every_refusal_goes_at_once() -> None:
    clock = Clock()
    pacer = RefusalPacer(rate=10, max_wait=1.0, clock=clock)
    for _ in range(5):
        assert pacer.delay() == 0.0
        clock.now += 0.1  # exactly the rate


def test_a_burst_is_spaced_one_interval_apart_and_capped_at_max_wait() -> None:
    clock = Clock()
    pacer = RefusalPacer(rate=4, max_wait=1.0, clock=clock)
    delays = [pacer.delay() for _ in range(8)]
    assert delays[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert delays[5:] == pytest.approx([1.0, 1.0, 1.0])  # never longer than max_wait, however many wait


def test_the_debt_is_capped_so_a_storm_is_forgotten_within_max_wait() -> None:
    clock = Clock()
    pacer = RefusalPacer(rate=4, max_wait=1.0, clock=clock)
    for _ in range(1000):  # a long storm at one instant
        pacer.delay()
    clock.now += 1.3  # the storm is over: max_wait plus one interval later
    assert pacer.delay() == 0.0


def test_rate_zero_turns_pacing_off() -> None:
    pacer = RefusalPacer(rate=0, max_wait=1.0, clock=Clock())
    assert [pacer.delay() for _ in range(100)] == [0.0] * 100
    with pytest.raises(ValueError):
        RefusalPacer(rate=-1, max_wait=1.0)


def _refused_after(url: str) -> float:
    """Seconds until a 429 arrives for a request refused before its body is read."""
    seconds, raw = refused_before_body(url)
    assert raw.startswith(b"HTTP/1.1 429") and b'"queue_full"' in raw
    return seconds


def test_a_service_spaces_refusals_beyond_its_rate(
    serve: Callable[..., Any], tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    # An admitted request waits 1.5 s in the encode queue for company, so every other one is refused meanwhile.
    server = serve(tiny("dae").bundle, max_inflight=1, max_wait_ms=1500, max_batch=64, refusal_rate=2)
    blob = digit_png(mnist_digits, 0)
    held: list[int] = []

    def hold() -> threading.Thread:
        t = threading.Thread(
            target=lambda: held.append(httpx.post(f"{server.url}/encode", files=files(blob), timeout=30).status_code)
        )
        t.start()
        time.sleep(0.3)  # now in flight
        return t

    admitted = hold()
    waits: list[float] = []
    burst = [threading.Thread(target=lambda: waits.append(_refused_after(server.url))) for _ in range(4)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    admitted.join()
    waits.sort()
    # At 2 per second: one at once, then one every 0.5 s, none later than 1 s (the Retry-After it carries).
    assert waits[0] < 0.3
    assert 0.3 < waits[1] < 0.8
    assert 0.8 < waits[2] < 1.4 and 0.8 < waits[3] < 1.4
    # The burst is forgotten: the next refusal, seconds later, goes at once again.
    admitted = hold()
    assert _refused_after(server.url) < 0.3
    admitted.join()
    assert held == [200, 200]
    time.sleep(1.3)  # the summary line comes a second after its window's first refusal
    lines = [json.loads(x) for x in server.logs().splitlines() if x.startswith("{")]
    refused = [r for r in lines if r["message"] == "refused"]
    # One summary line per window of a second: every refusal counted, the three that waited their turn too.
    assert sum(r["count"] for r in refused) == 5 and sum(r["paced"] for r in refused) == 3
    assert all(r["status"] == 429 and r["endpoint"] == "/encode" and r["seconds"] <= 1.5 for r in refused)
