"""The service's log lines: per-request access lines are written in bulk, every other line at once, in order."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from service.logs import ACCESS_FLUSH_S, BulkHandler, JsonFormatter, defer

Bulk = tuple[logging.Logger, logging.Logger, io.StringIO, BulkHandler]


@pytest.fixture
def bulk() -> Iterator[Bulk]:
    out = io.StringIO()
    stream = logging.StreamHandler(out)
    stream.setFormatter(JsonFormatter())
    handler = BulkHandler(stream, capacity=4)
    access, other = logging.getLogger("service.access"), logging.getLogger("service.test-logs")
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in (access, other)]
    for logger in (access, other):
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    yield access, other, out, handler
    handler.close()
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_request_lines_wait_at_most_the_flush_interval(bulk: Bulk) -> None:
    access, _, out, _ = bulk
    defer(access, "request", {"request_id": "a"})
    assert out.getvalue() == ""  # held: no write per request
    deadline = time.monotonic() + 20 * ACCESS_FLUSH_S
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(ACCESS_FLUSH_S / 10)
    assert [r["request_id"] for r in _lines(out)] == ["a"]


def test_other_lines_are_written_at_once_after_the_waiting_ones(bulk: Bulk) -> None:
    access, other, out, _ = bulk
    defer(access, "request", {"request_id": "a"})
    access.info("request", extra={"request_id": "b"})  # logged the usual way: not deferred
    defer(access, "request", {"request_id": "c"})
    other.info("ready")
    assert [r.get("request_id", r["message"]) for r in _lines(out)] == ["a", "b", "c", "ready"]


def test_a_full_buffer_and_close_write_everything(bulk: Bulk) -> None:
    access, _, out, handler = bulk
    for i in range(4):  # capacity 4: the fourth line writes all four
        defer(access, "request", {"request_id": str(i)})
    assert len(_lines(out)) == 4
    defer(access, "request", {"request_id": "last"})
    handler.close()  # what exit does (atexit): nothing is lost
    assert [r["request_id"] for r in _lines(out)] == ["0", "1", "2", "3", "last"]


def test_deferred_lines_are_made_later_with_their_own_time_and_in_order(bulk: Bulk) -> None:
    access, other, out, handler = bulk
    defer(access, "request", {"request_id": "a", "status": 200})  # what the middleware calls per request
    time.sleep(0.01)
    other.info("ready")  # writes "a" first: it is older
    defer(access, "request", {"request_id": "b", "status": 404})
    handler.flush()
    lines = _lines(out)
    assert [r.get("request_id", r["message"]) for r in lines] == ["a", "ready", "b"]
    assert lines[0]["logger"] == "service.access" and lines[0]["status"] == 200 and lines[0]["level"] == "info"
    assert str(lines[0]["ts"]) < str(lines[1]["ts"])  # stamped when deferred, not when written


def test_defer_without_a_bulk_handler_logs_at_once() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test.defer.plain")
    stream = logging.StreamHandler(out)
    stream.setFormatter(JsonFormatter())
    logger.handlers[:], logger.propagate = [stream], False
    logger.setLevel(logging.INFO)
    defer(logger, "request", {"request_id": "x"})
    assert [r["request_id"] for r in _lines(out)] == ["x"]
