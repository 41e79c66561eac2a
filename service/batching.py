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
- the model runs in a worker thread (``run_in_executor``), one hand-off per *batch*: an item may be a
  ``Prepare`` callable (e.g. "decode these PNGs") that the worker runs next to the model, so image decoding
  costs no extra hop; an item whose preparation fails (a bad image) fails alone, the rest of the batch runs;
- ``inline_max > 0``: when the batcher is idle (no batch running, nothing queued) an item of at most that many
  images runs right on the event loop: a lone small request skips the thread hop and its wake-up (a tenth of a
  millisecond, most of a 32-pixel request's cost); under concurrency items queue and batch as above;
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
# An item's inputs built in the worker thread (decoding its images); a ServiceError fails that item only.
Prepare = Callable[[], Arrays]
TICK_S = 0.005


@dataclass
class BatchInfo:
    """What one request learns about the batch it rode in (for Server-Timing and tests)."""

    queue_s: float
    batch_images: int
    stages: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Item:
    inputs: Arrays | Prepare
    n: int
    deadline: float
    future: asyncio.Future[tuple[Arrays, BatchInfo]] | None
    enqueued: float = field(default_factory=time.monotonic)
    gone: bool = False  # the caller stopped waiting (deadline or disconnect): drop, never compute


# What one batch run returns to the loop: per item its outputs or its error, the stage seconds, images run.
_Done = tuple[list["tuple[Arrays, None] | tuple[None, ServiceError]"], dict[str, float], int]


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
        inline_max: int = 0,
    ) -> None:
        self.name = name
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._executor = executor
        self._metrics = metrics
        # A positive max_wait asks for company: running a lone item at once would defeat it.
        self.inline_max = inline_max if max_wait_s == 0 else 0
        self._pending: deque[_Item] = deque()
        self._images = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._busy = False  # a batch is running (in the worker or inline)
        self._task: asyncio.Task[None] | None = None
        self._batch_s = 0.01  # moving average of one batch's run time, for Retry-After
        if metrics is not None:  # resolve the labelled children once, not per request
            self._m_batch_size = metrics.batch_size.labels(name)
            self._m_batches = metrics.batches.labels(name)
            self._m_images = metrics.batch_images.labels(name)
            self._m_queue_time = metrics.queue_time.labels(name)
            self._m_depth = metrics.queue_depth.labels(name)

    # -- public ------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Images waiting (not yet in a running batch)."""
        return self._images

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def submit(self, inputs: Arrays | Prepare, n: int, deadline: float) -> tuple[Arrays, BatchInfo]:
        """Queue ``n`` rows (leading axis n), or a ``Prepare`` that makes them; wait until ``deadline``."""
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
        if n <= self.inline_max and not self._busy and not self._pending:
            return self._run_inline(_Item(inputs, n, deadline, None, now))
        loop = asyncio.get_running_loop()
        item = _Item(inputs, n, deadline, loop.create_future(), now)
        self._pending.append(item)
        self._set_depth(self._images + n)
        self._wake.set()
        # One timer instead of wait_for(shield(...)): the waiting request gives up exactly at its deadline.
        timer = loop.call_later(deadline - now, self._expire, item)
        try:
            return await item.future  # type: ignore[union-attr]
        finally:
            timer.cancel()
            if not item.future.done():  # type: ignore[union-attr]
                item.gone = True  # cancelled (the caller went away): never compute it
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
                if item.future is not None and not item.future.done():
                    item.future.set_exception(NotReadyError("shut down before this request ran", "draining"))
            self._pending.clear()

    # -- internals ---------------------------------------------------------------------------------------
    def _reject(self, reason: str) -> None:
        if self._metrics:
            self._metrics.rejections.labels(reason).inc()

    def _set_depth(self, images: int) -> None:
        self._images = images
        if self._metrics:
            self._m_depth.set(images)

    def _expire(self, item: _Item) -> None:
        if item.future is None or item.future.done():
            return
        item.gone = True
        self._forget(item)
        self._reject("deadline")
        item.future.set_exception(
            DeadlineExceededError(f"the request deadline passed while in the {self.name} stage")
        )

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

    def _work(self, batch: list[_Item]) -> _Done:
        """Prepare every item, run the model once on the rows of those that prepared, split the outputs."""
        results: list[tuple[Arrays, None] | tuple[None, ServiceError]] = []
        ready: list[tuple[int, Arrays]] = []
        for k, item in enumerate(batch):
            inputs = item.inputs
            if callable(inputs):
                try:
                    inputs = inputs()
                except ServiceError as e:  # this item's bad input: a 4xx for it alone
                    results.append((None, e))
                    continue
            results.append(({}, None))
            ready.append((k, inputs))
        if not ready:
            return results, {}, 0
        feeds = ready[0][1] if len(ready) == 1 else {
            key: np.concatenate([inp[key] for _, inp in ready]) for key in ready[0][1]
        }
        try:
            outputs, stages = self._run(feeds)
        except Exception as e:  # the model failed: every waiting caller learns it (500, a real bug)
            err = e if isinstance(e, ServiceError) else ServiceError(f"inference failed in {self.name}: {e}")
            return [(None, err) if r[1] is None else r for r in results], {}, 0
        at = 0
        total = 0
        for k, inputs in ready:
            n = len(next(iter(inputs.values())))
            results[k] = ({key: v[at : at + n] for key, v in outputs.items()}, None)
            at += n
            total += n
        return results, stages, total

    def _account(self, batch: list[_Item], start: float, elapsed: float, stages: dict[str, float], total: int) -> None:
        self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
        if self._metrics and total:
            self._m_batch_size.observe(total)
            self._m_batches.inc()
            self._m_images.inc(total)
            for i in batch:
                self._m_queue_time.observe(start - i.enqueued)
            for stage, seconds in stages.items():
                self._metrics.inference.labels(stage).observe(seconds)

    def _run_inline(self, item: _Item) -> tuple[Arrays, BatchInfo]:
        self._busy = True
        try:
            start = time.monotonic()
            results, stages, total = self._work([item])
            self._account([item], start, time.monotonic() - start, stages, total)
        finally:
            self._busy = False
        out, err = results[0]
        if err is not None:
            raise err
        assert out is not None
        return out, BatchInfo(start - item.enqueued, total, stages)

    async def _run_batch(self, batch: list[_Item]) -> None:
        start = time.monotonic()
        self._busy = True
        try:
            results, stages, total = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._work, batch
            )
        finally:
            self._busy = False
        self._account(batch, start, time.monotonic() - start, stages, total)
        for item, (out, err) in zip(batch, results, strict=True):
            fut = item.future
            if fut is None or fut.done():
                continue
            if err is not None:
                fut.set_exception(err)
                fut.exception()  # mark retrieved: a caller that left must not trigger a warning
            else:
                assert out is not None
                fut.set_result((out, BatchInfo(start - item.enqueued, total, stages)))
