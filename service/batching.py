"""Dynamic batching across concurrent requests, counted in images, with a bounded queue and deadlines.

One ``Batcher`` per queue (the service has two: ``encode`` for images, ``decode`` for latent rows). A request
``submit``s its rows as one item; items are never split, so an interpolation's frames are one decoder batch.

- a batch starts when ``max_batch`` images are waiting or the oldest item has waited ``max_wait``;
  batches run one at a time per queue, so with the default ``max_wait = 0`` a lone request starts at once and
  requests that arrive while a batch runs form the next one (batching that costs no latency at low load);
  a positive ``max_wait`` trades latency for bigger batches;
- admission is refused at once when the queue would exceed ``queue_size`` images → ``QueueFullError``
  (429) with ``Retry-After`` estimated from recent batch times;
- every request has a deadline: the waiting request gives up exactly at it (504) and leaves the queue, and the
  batcher also drops expired items on every tick, so no batch computes for a caller who has gone;
- the model runs in a worker thread (``run_in_executor``): the event loop never blocks on inference;
- ``stop()`` refuses new items (``draining``, 503) and finishes every item already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from bundle.layout import Arrays
from service.errors import DeadlineExceededError, NotReadyError, QueueFullError, ServiceError
from service.metrics import Metrics

# (inputs with a leading batch axis) → (outputs with the same leading axis, seconds per model stage)
RunFn = Callable[[Arrays], tuple[Arrays, dict[str, float]]]
TICK_S = 0.005


@dataclass
class BatchInfo:
    """What one request learns about the batch it rode in (for Server-Timing and tests)."""

    queue_s: float
    batch_images: int
    stages: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class _Item:
    inputs: Arrays
    n: int
    deadline: float
    future: asyncio.Future[tuple[Arrays, BatchInfo]]
    enqueued: float = field(default_factory=time.monotonic)
    gone: bool = False  # the caller stopped waiting (deadline or disconnect): drop, never compute


class Batcher:
    def __init__(
        self,
        name: str,
        run: RunFn,
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        executor: Executor,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._executor = executor
        self._metrics = metrics
        self._pending: deque[_Item] = deque()
        self._images = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._batch_s = 0.01  # moving average of one batch's run time, for Retry-After

    # -- public ------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Images waiting (not yet in a running batch)."""
        return self._images

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def submit(self, inputs: Arrays, n: int, deadline: float) -> tuple[Arrays, BatchInfo]:
        """Queue ``n`` rows (leading axis n); wait for their outputs until ``deadline``."""
        if self._closing or self._task is None:
            self._reject("draining")
            raise NotReadyError("the service is shutting down: not accepting new work", "draining")
        if self._images + n > self.queue_size:
            self._reject("queue_full")
            raise QueueFullError(
                f"the {self.name} queue is full ({self._images} of {self.queue_size} waiting); retry later",
                headers={"Retry-After": str(self.retry_after())},
            )
        now = time.monotonic()
        if now >= deadline:
            self._reject("deadline")
            raise DeadlineExceededError("the request deadline passed before it could be queued")
        item = _Item(inputs, n, deadline, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._set_depth(self._images + n)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout=deadline - now)
        except TimeoutError:
            self._reject("deadline")
            raise DeadlineExceededError(
                f"the request deadline passed while in the {self.name} stage"
            ) from None
        finally:
            if not item.future.done():
                item.gone = True
                self._forget(item)

    def retry_after(self) -> int:
        """Seconds until the current queue has likely drained (at least 1)."""
        batches = math.ceil(max(self._images, 1) / self.max_batch)
        return max(1, min(60, math.ceil(batches * self._batch_s + self.max_wait_s)))

    async def stop(self, timeout_s: float) -> None:
        """Stop admitting, finish what was accepted (up to ``timeout_s``), then end the loop."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
        except TimeoutError:
            self._task.cancel()
            for item in self._pending:
                if not item.future.done():
                    item.future.set_exception(NotReadyError("shut down before this request ran", "draining"))
            self._pending.clear()

    # -- internals ---------------------------------------------------------------------------------------
    def _reject(self, reason: str) -> None:
        if self._metrics:
            self._metrics.rejections.labels(reason).inc()

    def _set_depth(self, images: int) -> None:
        self._images = images
        if self._metrics:
            self._metrics.queue_depth.labels(self.name).set(images)

    def _forget(self, item: _Item) -> None:
        try:
            self._pending.remove(item)
        except ValueError:
            return  # already taken into a batch
        self._set_depth(self._images - item.n)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for item in [i for i in self._pending if i.gone or now >= i.deadline]:
            self._forget(item)

    async def _loop(self) -> None:
        while True:
            self._drop_expired()
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.25)
                continue
            now = time.monotonic()
            wait_until = self._pending[0].enqueued + self.max_wait_s
            if self._images < self.max_batch and now < wait_until and not self._closing:
                self._wake.clear()
                # wake on new items, or on the tick (deadlines), or when the wait is over
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(wait_until - now, TICK_S))
                continue
            await self._run_batch(self._take())

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        total = 0
        while self._pending and (not batch or total + self._pending[0].n <= self.max_batch):
            item = self._pending.popleft()
            batch.append(item)
            total += item.n
        self._set_depth(self._images - total)
        return batch

    async def _run_batch(self, batch: list[_Item]) -> None:
        start = time.monotonic()
        total = sum(i.n for i in batch)
        inputs = {k: np.concatenate([i.inputs[k] for i in batch]) for k in batch[0].inputs}
        if self._metrics:
            m = self._metrics
            m.batch_size.labels(self.name).observe(total)
            m.batches.labels(self.name).inc()
            m.batch_images.labels(self.name).inc(total)
            for i in batch:
                m.queue_time.labels(self.name).observe(start - i.enqueued)
        try:
            outputs, stages = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, inputs
            )
        except Exception as e:  # the model failed: every waiting caller learns it (500, a real bug)
            err = e if isinstance(e, ServiceError) else ServiceError(f"inference failed in {self.name}: {e}")
            for i in batch:
                if not i.future.done():
                    i.future.set_exception(err)
                    i.future.exception()  # mark retrieved: a caller that left must not trigger a warning
            return
        elapsed = time.monotonic() - start
        self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
        if self._metrics:
            for stage, seconds in stages.items():
                self._metrics.inference.labels(stage).observe(seconds)
        at = 0
        for i in batch:
            part = {k: v[at : at + i.n] for k, v in outputs.items()}
            at += i.n
            if not i.future.done():
                i.future.set_result((part, BatchInfo(start - i.enqueued, total, stages)))
