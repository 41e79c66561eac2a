"""Load shapes against a running service: closed-loop capacity, an instantaneous burst, an open-loop soak,
with the server's resident memory sampled (``harness.memory``) while they run.

Every request is accounted for: ``accepted`` (200 and a correct answer), ``wrong`` (200 but not the reference
answer), ``rejected`` (429), ``other`` (any other status, by status) and ``lost`` (no HTTP answer at all:
reset, timeout). The reliability claim is ``lost == wrong == 0`` and ``other`` empty.

    target = Target.encode(port, png_bytes)           # POST /encode, raw image/png; checks the latents
    rate = asyncio.run(capacity(target, seconds=3, concurrency=8))
    with RssSampler(pid) as rss:                      # harness.memory
        stats = asyncio.run(burst(target, n=int(10 * rate)))
    stats.as_dict(), rss.peak_mb
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.memory import rss_bytes
from harness.rawhttp import Reply, build, request

HOST = "127.0.0.1"


@dataclass
class Target:
    """One request to repeat, and how to tell a correct answer from a wrong one."""

    port: int
    raw: bytes
    check: Callable[[Reply], bool]

    @classmethod
    def encode(cls, port: int, png: bytes, reference: Reply | None = None) -> Target:
        """POST /encode with ``png`` as a raw body; correct = the same latents as ``reference`` (1e-5)."""
        raw = build("POST", "/encode", body=png, content_type="image/png")

        def latents(r: Reply) -> np.ndarray:
            item = json.loads(r.body)["items"][0]
            return np.asarray(item["shape"] + item["appearance"], dtype=np.float64)

        want = latents(reference) if reference is not None else None

        def check(r: Reply) -> bool:
            try:
                return want is None or bool(np.allclose(latents(r), want, atol=1e-5, rtol=0))
            except (ValueError, KeyError, IndexError):
                return False

        return cls(port, raw, check)


@dataclass
class Outcome:
    status: int | None  # None: lost (no HTTP answer)
    seconds: float
    correct: bool = False
    retry_after: str | None = None


async def one(target: Target, timeout: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        r = await request(HOST, target.port, target.raw, timeout)
    except (TimeoutError, OSError, ValueError):
        return Outcome(None, time.perf_counter() - t0)
    return Outcome(r.status, r.seconds, r.status == 200 and target.check(r), r.headers.get("retry-after"))


async def capacity(target: Target, seconds: float = 3.0, concurrency: int = 8) -> float:
    """Closed loop (``concurrency`` callers, each sending the next request when the last is answered):
    correct answers per second. This is the service's sustainable throughput for this request."""
    stop = time.perf_counter() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            o = await one(target, 30.0)
            done += o.correct

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    wrong: int = 0
    lost: int = 0
    other: dict[str, int] = field(default_factory=dict)
    rejected_without_retry_after: int = 0
    accepted_p50_s: float = 0.0
    accepted_max_s: float = 0.0
    rejected_p50_s: float = 0.0
    rejected_max_s: float = 0.0
    seconds: float = 0.0

    @classmethod
    def of(cls, outcomes: list[Outcome], seconds: float) -> Tally:
        t = cls(sent=len(outcomes), seconds=round(seconds, 3))
        ok = [o.seconds for o in outcomes if o.status == 200 and o.correct]
        busy = [o.seconds for o in outcomes if o.status == 429]
        t.accepted, t.rejected = len(ok), len(busy)
        t.wrong = sum(o.status == 200 and not o.correct for o in outcomes)
        t.lost = sum(o.status is None for o in outcomes)
        for o in outcomes:
            if o.status not in (None, 200, 429):
                t.other[str(o.status)] = t.other.get(str(o.status), 0) + 1
        t.rejected_without_retry_after = sum(o.status == 429 and not (o.retry_after or "").isdigit() for o in outcomes)
        if ok:
            t.accepted_p50_s, t.accepted_max_s = round(statistics.median(ok), 4), round(max(ok), 4)
        if busy:
            t.rejected_p50_s, t.rejected_max_s = round(statistics.median(busy), 4), round(max(busy), 4)
        return t

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def burst(target: Target, n: int, timeout: float = 60.0) -> Tally:
    """``n`` requests at the same instant (all connections opened together)."""
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one(target, timeout) for _ in range(n)))
    return Tally.of(list(outcomes), time.perf_counter() - t0)


async def recovery(target: Target, timeout: float = 30.0) -> float:
    """Seconds until readiness is 200 *and* a request is answered correctly again."""
    t0 = time.perf_counter()
    ready = build("GET", "/v2/health/ready")
    while time.perf_counter() - t0 < timeout:
        try:
            r = await request(HOST, target.port, ready, 5.0)
            if r.status == 200 and (await one(target, 5.0)).correct:
                return time.perf_counter() - t0
        except (TimeoutError, OSError, ValueError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the service did not recover within {timeout} s")


@dataclass
class SoakSecond:
    t: int
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # wrong + lost + other
    p50_s: float = 0.0
    rss_mb: float = 0.0


async def soak(
    target: Target, rate: float, seconds: float, pid: int, max_in_flight: int = 256
) -> tuple[Tally, list[SoakSecond]]:
    """Open loop at ``rate`` requests/s for ``seconds`` (arrivals do not wait for answers, as real clients
    do not); per second: counts, median latency and the server's RSS."""
    outcomes: list[tuple[int, Outcome]] = []
    tasks: set[asyncio.Task[None]] = set()
    rss: dict[int, float] = {}
    t0 = time.perf_counter()

    async def fire(second: int) -> None:
        outcomes.append((second, await one(target, 60.0)))

    i = 0
    while (now := time.perf_counter() - t0) < seconds:
        second = int(now)
        if second not in rss:
            rss[second] = rss_bytes(pid) / 2**20
        due = int(now * rate) + 1
        while i < due and len(tasks) < max_in_flight:
            task = asyncio.create_task(fire(second))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(min(0.01, 1 / rate))
    if tasks:
        await asyncio.gather(*tasks)
    total = Tally.of([o for _, o in outcomes], time.perf_counter() - t0)
    series = []
    for s in range(int(seconds)):
        mine = [o for sec, o in outcomes if sec == s]
        lat = [o.seconds for o in mine if o.correct]
        series.append(
            SoakSecond(
                s,
                len(mine),
                sum(o.correct for o in mine),
                sum(o.status == 429 for o in mine),
                sum(not o.correct and o.status != 429 for o in mine),
                round(statistics.median(lat), 4) if lat else 0.0,
                round(rss.get(s, 0.0), 1),
            )
        )
    return total, series


def server_side_s(metrics_text: str, endpoint: str, status: int, q: float = 1.0) -> tuple[int, float]:
    """From /metrics: (count, upper bound of the smallest histogram bucket holding a fraction ``q`` of the
    requests) of ``dae_request_duration_seconds`` for this endpoint and status. This is the time the server itself took,
    from the first byte it handled to its answer — not the client's wait in the kernel's accept queue."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if (
            line.startswith("dae_request_duration_seconds_bucket{")
            and f'endpoint="{endpoint}"' in line
            and f'status="{status}"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    if not buckets:
        return 0, 0.0
    buckets.sort()
    total = buckets[-1][1]
    return int(total), next(le for le, n in buckets if n >= q * total)
