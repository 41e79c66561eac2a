"""The batcher on its own: batches across callers counted in images, the queue bound, deadlines, draining."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.batching import Batcher
from service.errors import DeadlineExceededError, NotReadyError, QueueFullError
from service.metrics import Metrics


class Model:
    """A real numpy function standing in for a graph: doubles its input, records each batch, can be slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[float]] = []
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        self.batches.append(inputs["x"][:, 0].tolist())
        return {"y": inputs["x"] * 2}, {"double": self.delay_s}


def batcher(model: Model, loops: int = 1, inline: bool = False, **kw: float) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    opts = {"max_batch": 8, "max_wait_s": 0.05, "queue_size": 32, **kw}
    pool = ThreadPoolExecutor(loops, thread_name_prefix="infer")
    b = Batcher("test", model, executor=pool, loops=loops, inline=inline, metrics=metrics, **opts)  # type: ignore[arg-type]
    return b, metrics


def rows(start: int, n: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(start, start + n, dtype=np.float32)[:, None]}


def test_concurrent_callers_share_batches_and_get_their_own_rows() -> None:
    model = Model()

    async def main() -> list[np.ndarray]:
        b, metrics = batcher(model)
        b.start()
        far = time.monotonic() + 10
        results = await asyncio.gather(*(b.submit(rows(10 * i, 2), 2, far) for i in range(6)))
        await b.stop(5)
        assert metrics.batches.labels("test")._value.get() == len(model.batches)
        return [r[0]["y"][:, 0] for r in results]

    outs = asyncio.run(main())
    for i, y in enumerate(outs):  # every caller gets exactly its rows back, doubled
        assert y.tolist() == [20.0 * i, 20.0 * i + 2]
    sizes = [len(b) for b in model.batches]
    assert sum(sizes) == 12 and max(sizes) <= 8 and len(sizes) == 2  # 6 requests of 2 images → 8 + 4
    assert model.threads and all(t.startswith("infer") for t in model.threads)  # never on the loop thread


def test_an_item_larger_than_max_batch_runs_alone_and_is_never_split() -> None:
    model = Model()

    async def main() -> np.ndarray:
        b, _ = batcher(model, max_batch=4)
        b.start()
        out, info = await b.submit(rows(0, 6), 6, time.monotonic() + 10)
        await b.stop(5)
        assert info.batch_images == 6
        return out["y"]

    assert asyncio.run(main()).shape == (6, 1)
    assert [len(b) for b in model.batches] == [6]


def test_full_queue_refuses_at_once_with_retry_after() -> None:
    model = Model()

    async def main() -> None:
        b, metrics = batcher(model, queue_size=4, max_wait_s=0.5, max_batch=64)
        b.start()
        first = asyncio.ensure_future(b.submit(rows(0, 3), 3, time.monotonic() + 10))
        await asyncio.sleep(0.01)
        assert b.depth == 3
        t0 = time.monotonic()
        with pytest.raises(QueueFullError) as info:
            await b.submit(rows(3, 2), 2, time.monotonic() + 10)
        assert time.monotonic() - t0 < 0.05
        assert int(info.value.headers["Retry-After"]) >= 1
        assert metrics.rejections.labels("queue_full")._value.get() == 1
        await b.submit(rows(3, 1), 1, time.monotonic() + 10)  # one more image still fits
        await first
        await b.stop(5)

    asyncio.run(main())


def test_deadline_in_the_queue_gives_504_and_the_item_is_never_computed() -> None:
    model = Model()

    async def main() -> None:
        b, metrics = batcher(model, max_wait_s=0.3, max_batch=64)
        b.start()
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await b.submit(rows(0, 1), 1, t0 + 0.05)
        assert 0.04 < time.monotonic() - t0 < 0.2  # gave up at the deadline, not when a batch formed
        assert b.depth == 0  # and left the queue at once
        await asyncio.sleep(0.4)
        await b.stop(5)
        assert metrics.rejections.labels("deadline")._value.get() == 1

    asyncio.run(main())
    assert model.batches == []


def test_deadline_while_the_model_runs_gives_504_and_later_callers_are_fine() -> None:
    model = Model(delay_s=0.2)

    async def main() -> None:
        b, _ = batcher(model, max_wait_s=0.0)
        b.start()
        with pytest.raises(DeadlineExceededError):
            await b.submit(rows(0, 1), 1, time.monotonic() + 0.05)
        out, _ = await b.submit(rows(5, 1), 1, time.monotonic() + 5)
        assert out["y"][0, 0] == 10
        await b.stop(5)

    asyncio.run(main())


def test_stop_finishes_accepted_work_and_refuses_new() -> None:
    model = Model(delay_s=0.05)

    async def main() -> None:
        b, _ = batcher(model, max_wait_s=0.2)
        b.start()
        accepted = [asyncio.ensure_future(b.submit(rows(i, 1), 1, time.monotonic() + 10)) for i in range(3)]
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(b.stop(5))
        await asyncio.sleep(0)
        with pytest.raises(NotReadyError) as info:
            await b.submit(rows(9, 1), 1, time.monotonic() + 10)
        assert info.value.code == "draining"
        results = await asyncio.gather(*accepted)
        await stopping
        assert [r[0]["y"][0, 0] for r in results] == [0, 2, 4]

    asyncio.run(main())


def test_two_loops_run_two_batches_at_once() -> None:
    model = Model(delay_s=0.3)

    async def main() -> float:
        b, _ = batcher(model, loops=2, max_wait_s=0.0, max_batch=1)
        b.start()
        far = time.monotonic() + 10
        t0 = time.monotonic()
        results = await asyncio.gather(*(b.submit(rows(i, 1), 1, far) for i in range(4)))
        elapsed = time.monotonic() - t0
        await b.stop(5)
        assert [r[0]["y"][0, 0] for r in results] == [0.0, 2.0, 4.0, 6.0]
        return elapsed

    elapsed = asyncio.run(main())
    assert len(model.batches) == 4 and len(model.threads) == 2  # four batches of one, on both worker threads
    assert elapsed < 0.3 * 4 * 0.8, elapsed  # about two batch times, not four


def test_a_lone_request_runs_on_the_loop_and_company_goes_to_the_workers() -> None:
    model = Model()

    async def main() -> None:
        b, metrics = batcher(model, inline=True, max_wait_s=0.0)
        b.start()
        far = time.monotonic() + 10
        out, info = await b.submit(rows(5, 1), 1, far)  # alone: computed right here
        assert out["y"][0, 0] == 10.0 and info.batch_images == 1
        assert model.threads == {threading.current_thread().name}
        model.threads.clear()
        results = await asyncio.gather(*(b.submit(rows(i, 1), 1, far) for i in range(6)))  # together: batched
        assert [r[0]["y"][0, 0] for r in results] == [2.0 * i for i in range(6)]
        assert all(name.startswith("infer") for name in model.threads)
        assert metrics.batches.labels("test")._value.get() == len(model.batches)  # inline batches counted too
        await b.stop(5)

    asyncio.run(main())
    assert len(model.batches) < 7  # the six that came together shared batches


def test_a_big_lone_item_goes_to_a_worker_not_the_loop() -> None:
    model = Model()

    async def main() -> None:
        b, _ = batcher(model, inline=True, max_wait_s=0.0)
        b.start()
        out, _ = await b.submit(rows(0, 6), 6, time.monotonic() + 10)  # alone, but more than INLINE_MAX_ROWS
        assert out["y"][:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        await b.stop(5)

    asyncio.run(main())
    assert all(name.startswith("infer") for name in model.threads)


def test_no_inline_run_when_a_wait_for_company_is_configured() -> None:
    model = Model()

    async def main() -> None:
        b, _ = batcher(model, inline=True, max_wait_s=0.01)
        b.start()
        await b.submit(rows(1, 1), 1, time.monotonic() + 10)
        await b.stop(5)

    asyncio.run(main())
    assert all(name.startswith("infer") for name in model.threads)
