"""Dynamic batching across concurrent requests, counted in images, with a bounded queue and deadlines.

One ``Batcher`` per queue (the service has two: ``encode`` for images, ``decode`` for latent rows). A request
``submit``s its rows as one item; items are never split, so an interpolation's frames are one decoder batch.

- a batch starts when ``max_batch`` images are waiting or the oldest item has waited ``max_wait``;
  each queue runs up to ``loops`` batches at once (one worker thread each), so with the default
  ``max_wait = 0`` a lone request starts at once and requests that arrive while every loop is busy form the
  next batch (batching that costs no latency at low load); a positive ``max_wait`` trades latency for bigger
  batches. More than one loop pays on CPU: onnxruntime releases the GIL, and two concurrent single-batch runs
  of a small graph use two cores far better than one run split over two intra-op threads;
- the batch loop runs in the queue's worker thread, not on the event loop: it takes the next batch the moment
  the last one ends, so the model is never idle waiting for a busy event loop (a storm of refusals used to
  starve it: the loop's batcher task ran once per loop iteration, after every pending socket), and the loop
  only appends items and receives one callback per batch with every caller's result;
- a request that is alone (nothing else submitted, queued or computed in this queue, checked again after one
  pass of the event loop) and small (``INLINE_MAX_ROWS``) runs its batch of one on the event loop itself, as a
  minimal server would: no hand-off to a worker and back (``inline``; under load nothing is alone and
  everything batches; a big item would hold the loop too long and always goes to a worker);
- an item may be a ``Prepare`` callable (e.g. "decode these PNGs") that the worker runs next to the model, so
  image decoding costs no hop of its own; an item whose preparation fails (a bad image) fails alone;
- an item may go on to a ``Then`` (another queue, and how its outputs become that queue's inputs): the worker
  hands it over itself (encode → decode for /reconstruct and /swap) and the caller is woken once, with both
  stages' arrays, instead of once per stage;
- admission is refused at once when the queue would exceed ``queue_size`` images → ``QueueFullError``
  (429) with ``Retry-After`` estimated from recent batch times;
- every request has a deadline: the waiting request gives up exactly at it (504, a timer on the event loop)
  and leaves the queue, and the worker drops expired items before each batch, so no batch computes for a
  caller who has gone;
- ``stop()`` refuses new items (``draining``, 503) and finishes every item already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
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
# A lone item runs on the event loop only up to this many rows: a big one (an interpolation's 64 frames, a
# request of many images) would hold the loop for up to a hundred milliseconds; it goes to a worker.
INLINE_MAX_ROWS = 4
log = logging.getLogger("service.batching")
# Per item: its outputs, or the error it gets.
Outcome = tuple[Arrays, None] | tuple[None, ServiceError]
_FORWARDED = ServiceError("handed to the next queue")  # a marker, never raised


@dataclass
class BatchInfo:
    """What one request learns about the batch it rode in (for Server-Timing and tests)."""

    queue_s: float
    batch_images: int
    stages: dict[str, float] = field(default_factory=dict)
    before: BatchInfo | None = None  # the earlier stage's, for an item that went on with ``Then``


@dataclass(frozen=True)
class Then:
    """Where an item goes after this queue: ``batcher``, fed ``feeds(outputs)`` (run in the worker thread)."""

    batcher: Batcher
    feeds: Callable[[Arrays], Arrays]


@dataclass(eq=False, slots=True)
class _Item:
    inputs: Arrays | Prepare
    n: int
    deadline: float
    future: asyncio.Future[tuple[Arrays, BatchInfo]]
    enqueued: float = field(default_factory=time.monotonic)
    gone: bool = False  # the caller stopped waiting (deadline or disconnect): drop, never compute
    then: Then | None = None
    carry: Arrays | None = None  # an earlier stage's arrays, returned with this stage's
    before: BatchInfo | None = None


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
        loops: int = 1,
        inline: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._executor = executor
        self.loops = loops
        self._metrics = metrics
        self._pending: deque[_Item] = deque()
        self._images = 0
        self._cv = threading.Condition()  # guards _pending, _images, _closing (loop thread and worker thread)
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Future[list[None]] | None = None
        self._batch_s = 0.01  # moving average of one batch's run time, for Retry-After
        self.inline = inline and max_wait_s == 0  # a positive wait asks every request to wait for company
        self._submitting = 0  # submit() calls in progress (event loop only)
        self._running = 0  # batches being computed (workers and the loop's inline run; under the lock)
        if metrics is not None:  # resolve the labelled children once, not per request
            self._m_batch_size = metrics.batch_size.labels(name)
            self._m_batches = metrics.batches.labels(name)
            self._m_images = metrics.batch_images.labels(name)
            self._m_queue_time = metrics.queue_time.labels(name)
            self._m_depth = metrics.queue_depth.labels(name)

    # -- public (event loop) -----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Images waiting (not yet in a running batch)."""
        return self._images

    def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        loops = [asyncio.wrap_future(self._executor.submit(self._work_loop), loop=loop) for _ in range(self.loops)]
        self._worker = asyncio.gather(*loops)

    async def submit(
        self, inputs: Arrays | Prepare, n: int, deadline: float, then: Then | None = None
    ) -> tuple[Arrays, BatchInfo]:
        """Queue ``n`` rows (leading axis n), or a ``Prepare`` that makes them; wait until ``deadline``.

        With ``then``, the result is the last stage's: its outputs merged with the arrays fed to it, and its
        ``BatchInfo`` with ``before`` = this stage's."""
        if self._closing or self._worker is None:
            self._reject("draining")
            raise NotReadyError("the service is shutting down: not accepting new work", "draining")
        self._submitting += 1
        try:
            if n <= INLINE_MAX_ROWS and self._alone():
                await asyncio.sleep(0)  # one pass of the loop: requests that arrived with this one get here too
                if self._alone() and time.monotonic() < deadline:
                    return await self._here(inputs, n, deadline, then, time.monotonic())
            return await self._queued(inputs, n, deadline, then)
        finally:
            self._submitting -= 1

    async def _queued(
        self, inputs: Arrays | Prepare, n: int, deadline: float, then: Then | None
    ) -> tuple[Arrays, BatchInfo]:
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        item = _Item(inputs, n, deadline, loop.create_future(), now, then=then)
        with self._cv:
            if self._images + n > self.queue_size:
                full = self._images
            else:
                full = -1
                if now < deadline:
                    self._pending.append(item)
                    self._set_depth(self._images + n)
                    self._cv.notify()
        if full >= 0:
            self._reject("queue_full")
            raise QueueFullError(
                f"the {self.name} queue is full ({full} of {self.queue_size} waiting); retry later",
                headers={"Retry-After": str(self.retry_after())},
            )
        if now >= deadline:
            self._reject("deadline")
            raise DeadlineExceededError("the request deadline passed before it could be queued")
        # One timer instead of wait_for(shield(...)): the waiting request gives up exactly at its deadline.
        timer = loop.call_later(deadline - now, self._expire, item)
        try:
            return await item.future
        finally:
            timer.cancel()
            if not item.future.done():  # cancelled (the caller went away): never compute it
                item.gone = True
                self._forget(item)

    def retry_after(self) -> int:
        """Seconds until the current queue has likely drained (at least 1)."""
        batches = math.ceil(max(self._images, 1) / self.max_batch / self.loops)
        return max(1, min(60, math.ceil(batches * self._batch_s + self.max_wait_s)))

    async def stop(self, timeout_s: float) -> None:
        """Stop admitting, finish what was accepted (up to ``timeout_s``), then end the worker's loop."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), timeout=timeout_s)
        except TimeoutError:
            with self._cv:
                left = list(self._pending)
                self._pending.clear()
                self._set_depth(0)
            for item in left:
                if not item.future.done():
                    item.future.set_exception(NotReadyError("shut down before this request ran", "draining"))

    # -- bookkeeping (either thread) ---------------------------------------------------------------------
    def _reject(self, reason: str) -> None:
        if self._metrics:
            self._metrics.rejections.labels(reason).inc()

    def _set_depth(self, images: int) -> None:  # with the lock held
        self._images = images
        if self._metrics:
            self._m_depth.set(images)

    def _expire(self, item: _Item) -> None:  # loop thread: the deadline timer
        if item.future.done():
            return
        item.gone = True
        self._forget(item)
        self._reject("deadline")
        item.future.set_exception(DeadlineExceededError(f"the request deadline passed while in the {self.name} stage"))

    def _forget(self, item: _Item) -> None:
        with self._cv:
            try:
                self._pending.remove(item)
            except ValueError:
                return  # already taken into a batch
            self._set_depth(self._images - item.n)

    # -- the worker thread -------------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            except Exception as e:  # a bug in the batch plumbing: fail this batch's callers, keep the queue alive
                log.exception("batch failed", extra={"queue": self.name})
                for item in batch:
                    self._fail_later(item, ServiceError(f"batch failed in {self.name}: {e}"))

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is due (full, or the oldest item waited ``max_wait``); None once drained."""
        with self._cv:
            while True:
                now = time.monotonic()
                for item in [i for i in self._pending if i.gone or now >= i.deadline or i.future.done()]:
                    self._pending.remove(item)
                    self._set_depth(self._images - item.n)
                if not self._pending:
                    if self._closing:
                        return None
                    self._cv.wait(0.25)
                    continue
                wait_until = self._pending[0].enqueued + self.max_wait_s
                if self._images >= self.max_batch or now >= wait_until or self._closing:
                    break
                self._cv.wait(min(wait_until - now, TICK_S))  # new items, the wait's end, or deadlines
            batch: list[_Item] = []
            total = 0
            while self._pending and (not batch or total + self._pending[0].n <= self.max_batch):
                item = self._pending.popleft()
                batch.append(item)
                total += item.n
            self._set_depth(self._images - total)
            self._running += 1
            return batch

    def _compute(self, batch: list[_Item]) -> tuple[list[Outcome], dict[str, float], int, float]:
        """Prepare every item, run the model once on the rows of those that prepared; each item's outcome, the
        stage seconds, the rows run and the start time (metrics accounted)."""
        start = time.monotonic()
        results: list[Outcome] = []
        ready: list[tuple[int, Arrays]] = []
        prepare_s = 0.0
        for k, item in enumerate(batch):
            inputs = item.inputs
            if callable(inputs):
                t0 = time.perf_counter()
                try:
                    inputs = inputs()
                except ServiceError as e:  # this item's bad input: a 4xx for it alone
                    results.append((None, e))
                    continue
                finally:
                    prepare_s += time.perf_counter() - t0
            results.append(({}, None))
            ready.append((k, inputs))
        stages: dict[str, float] = {}
        total = 0
        if ready:
            feeds = (
                ready[0][1]
                if len(ready) == 1
                else {key: np.concatenate([inp[key] for _, inp in ready]) for key in ready[0][1]}
            )
            try:
                outputs, stages = self._run(feeds)
            except Exception as e:  # the model failed: every waiting caller learns it (500, a real bug)
                err = e if isinstance(e, ServiceError) else ServiceError(f"inference failed in {self.name}: {e}")
                results = [(None, err) if r[1] is None else r for r in results]
            else:
                if len(ready) == 1:  # a batch of one keeps its arrays whole
                    results[ready[0][0]] = (outputs, None)
                    total = len(next(iter(ready[0][1].values())))
                else:
                    for k, inputs in ready:
                        n = len(next(iter(inputs.values())))
                        results[k] = ({key: v[total : total + n] for key, v in outputs.items()}, None)
                        total += n
        elapsed = time.monotonic() - start
        self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
        self._account(batch, start, stages, total)
        if prepare_s:
            stages = {"images": prepare_s, **stages}  # Server-Timing only (image decoding is not inference)
        return results, stages, total, start

    def _run_batch(self, batch: list[_Item]) -> None:
        """Compute a batch in the worker thread; forward the items that go on; wake every caller at once."""
        try:
            results, stages, total, start = self._compute(batch)
        finally:
            with self._cv:
                self._running -= 1
        for k, item in enumerate(batch):  # items that go on: handed to the next queue from here
            out = results[k][0]
            if item.then is not None and out is not None:
                results[k] = (None, _FORWARDED) if self._forward(item, out, start, stages, total) else results[k]
        loop = self._loop
        assert loop is not None
        # One callback per batch: the event loop hands every caller its result. A RuntimeError means the loop
        # has closed (shut down mid-batch): nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, batch, results, stages, total, start)

    # -- a lone request, on the event loop -----------------------------------------------------------------
    def _alone(self) -> bool:
        """Nothing else is being submitted, queued or computed here: a hand-off would buy no company."""
        return self.inline and self._submitting == 1 and not self._pending and self._running == 0

    async def _here(
        self, inputs: Arrays | Prepare, n: int, deadline: float, then: Then | None, enqueued: float
    ) -> tuple[Arrays, BatchInfo]:
        """Run a lone request's batch of one on the event loop (what a minimal server does for every request):
        no worker wake-up and no wake-up of the loop, about 0.05 ms per stage on 2 idle cores. Only when the
        request is alone (``_alone``, checked again after one pass of the loop, so that requests that arrived
        together see each other first): under load every request goes to the workers and batches."""
        loop = asyncio.get_running_loop()
        item = _Item(inputs, n, deadline, loop.create_future(), enqueued)
        with self._cv:  # the workers change the count too
            self._running += 1
        try:
            results, stages, total, start = self._compute([item])
        finally:
            with self._cv:
                self._running -= 1
        out, err = results[0]
        if err is not None:
            raise err
        assert out is not None
        info = BatchInfo(start - enqueued, total, stages)
        if then is None:
            return out, info
        try:
            feeds = then.feeds(out)
        except ServiceError:
            raise
        except Exception as e:  # a bug, as in the worker's hand-over: a 500 for this caller
            raise ServiceError(f"{self.name} → next: {e}") from e
        rows = len(next(iter(feeds.values())))
        nxt, nxt_info = await then.batcher.submit(feeds, rows, deadline)
        return {**feeds, **nxt}, BatchInfo(nxt_info.queue_s, nxt_info.batch_images, nxt_info.stages, info)

    def _forward(self, item: _Item, out: Arrays, start: float, stages: dict[str, float], total: int) -> bool:
        """Put ``item`` into its next queue (worker thread); False (and an error for the caller) if it cannot."""
        then = item.then
        assert then is not None
        try:
            feeds = then.feeds(out)
        except Exception as e:  # a ServiceError for the caller; anything else is a bug (500), never the thread's end
            self._fail_later(item, e if isinstance(e, ServiceError) else ServiceError(f"{self.name} → next: {e}"))
            return True
        n = len(next(iter(feeds.values())))
        nxt = _Item(
            feeds,
            n,
            item.deadline,
            item.future,
            time.monotonic(),
            carry=feeds,
            before=BatchInfo(start - item.enqueued, total, stages),
        )
        return then.batcher._accept(nxt, self)

    def _accept(self, item: _Item, source: Batcher) -> bool:
        """An item handed over by another queue's worker: queued, or refused as ``submit`` would refuse it."""
        with self._cv:
            if not self._closing and self._images + item.n <= self.queue_size:
                self._pending.append(item)
                self._set_depth(self._images + item.n)
                self._cv.notify()
                return True
            closing, waiting = self._closing, self._images
        if closing:
            self._reject("draining")
            source._fail_later(item, NotReadyError("the service is shutting down: not accepting new work", "draining"))
        else:
            self._reject("queue_full")
            source._fail_later(
                item,
                QueueFullError(
                    f"the {self.name} queue is full ({waiting} of {self.queue_size} waiting); retry later",
                    headers={"Retry-After": str(self.retry_after())},
                ),
            )
        return True

    def _fail_later(self, item: _Item, err: ServiceError) -> None:
        def fail() -> None:
            if not item.future.done():
                item.future.set_exception(err)
                item.future.exception()

        assert self._loop is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fail)

    def _account(self, batch: list[_Item], start: float, stages: dict[str, float], total: int) -> None:
        if not self._metrics or not total:
            return
        self._m_batch_size.observe(total)
        self._m_batches.inc()
        self._m_images.inc(total)
        for i in batch:
            self._m_queue_time.observe(start - i.enqueued)
        for stage, seconds in stages.items():
            self._metrics.inference.labels(stage).observe(seconds)

    @staticmethod
    def _deliver(
        batch: list[_Item], results: list[Outcome], stages: dict[str, float], total: int, start: float
    ) -> None:
        for item, (out, err) in zip(batch, results, strict=True):
            fut = item.future
            if fut.done() or err is _FORWARDED:
                continue
            if err is not None:
                fut.set_exception(err)
                fut.exception()  # mark retrieved: a caller that left must not trigger a warning
            else:
                assert out is not None
                if item.carry is not None:
                    out = {**item.carry, **out}
                fut.set_result((out, BatchInfo(start - item.enqueued, total, stages, item.before)))
