"""Retries on a real server: 429 queue_full and 503 honour Retry-After; refused connections back off; the
policy's arithmetic on known answers."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from client import APIError, AsyncClient, Client, RetryPolicy
from client.errors import parse_retry_after


def rejections(url: str, reason: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(rf'^dae_rejections_total\{{reason="{reason}"\}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture(scope="module")
def small_queue(tiny: Any, serve: Any) -> Any:
    # room for one 2-image request, which then waits 0.6 s for company: a second concurrent one gets 429
    return serve(tiny("class-aware").bundle, queue_size=2, max_images_per_request=2, max_batch=64, max_wait_ms=600)


def burst(url: str, files: list[Path], retry: RetryPolicy) -> tuple[list[Any], float]:
    async def go() -> list[Any]:
        async with AsyncClient(url, retry=retry) as dae:
            return list(await asyncio.gather(*(dae.encode_batch(files[:2]) for _ in range(3)), return_exceptions=True))

    t0 = time.monotonic()
    out = asyncio.run(go())
    return out, time.monotonic() - t0


def test_429_without_retries_is_raised_with_retry_after(small_queue: Any, digit_files: list[Path]) -> None:
    out, _ = burst(small_queue.url, digit_files, RetryPolicy(attempts=1))
    errors = [e for e in out if isinstance(e, Exception)]
    assert errors and len(errors) < 3, out
    for e in errors:
        assert isinstance(e, APIError) and (e.status, e.code) == (429, "queue_full")
        assert e.retry_after is not None and e.retry_after >= 1


def test_429_is_retried_after_retry_after(small_queue: Any, digit_files: list[Path]) -> None:
    before = rejections(small_queue.url, "queue_full")
    out, elapsed = burst(small_queue.url, digit_files, RetryPolicy(attempts=6, backoff_s=0.05))
    assert all(isinstance(r, list) and len(r) == 2 for r in out), out
    assert rejections(small_queue.url, "queue_full") > before  # the server did refuse, and the client came back
    # the backoff alone (0.05 s, doubling) would be back within ~0.2 s; the server's Retry-After (1 s) is the floor
    assert elapsed >= 1.0


def test_503_draining_is_retried_honouring_retry_after(tiny: Any, spawn: Any, digit_files: list[Path]) -> None:
    url, proc = spawn(tiny("class-aware").bundle, shutdown_delay_s=4)
    with Client(url, retry=RetryPolicy(attempts=60, backoff_s=0.05, max_delay_s=0.2)) as dae:
        assert dae.encode(digit_files[0]).code  # started before it listens: refused connections are retried
    proc.send_signal(signal.SIGTERM)  # draining: 503 + Retry-After: 1 while the listener stays open 4 s
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/v2/health/ready", timeout=5).status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    with Client(url, retry=RetryPolicy(attempts=1)) as dae:
        t0 = time.monotonic()
        with pytest.raises(APIError) as once:
            dae.encode(digit_files[0])
        assert time.monotonic() - t0 < 0.9
    assert (once.value.status, once.value.code, once.value.retry_after) == (503, "draining", 1.0)
    with Client(url, retry=RetryPolicy(attempts=3, backoff_s=0.01)) as dae:
        t0 = time.monotonic()
        with pytest.raises(APIError) as after:
            dae.encode(digit_files[0])
        waited = time.monotonic() - t0
    assert after.value.code == "draining"
    assert 2.0 <= waited < 3.5  # two waits of Retry-After (1 s), not the 0.01 s backoff
    assert proc.wait(30) == 0


def test_policy_arithmetic() -> None:
    p = RetryPolicy(attempts=4, backoff_s=0.5, max_delay_s=3.0, jitter=0.0)
    assert [p.delay(k) for k in range(4)] == [0.5, 1.0, 2.0, 3.0]  # doubling, capped
    assert p.delay(0, retry_after=2.0) == 2.0  # Retry-After is a floor
    assert p.delay(2, retry_after=0.1) == 2.0  # ... not a ceiling
    assert p.delay(0, retry_after=30.0) == 3.0  # but the cap holds
    assert [p.should_retry(k, 429) for k in range(4)] == [True, True, True, False]
    assert p.should_retry(0, 503) and p.should_retry(0, None)
    assert not p.should_retry(0, 500) and not p.should_retry(0, 400)
    assert not RetryPolicy(retry_connect_errors=False).should_retry(0, None)
    jittered = RetryPolicy(backoff_s=1.0, jitter=0.25)
    assert all(1.0 <= jittered.delay(0) <= 1.25 for _ in range(50))
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-4") == 0.0
    future = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert future is not None and 25 <= future <= 31
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0
