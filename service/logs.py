"""Structured logging: one JSON object per line on stderr (``DAE_LOG_JSON=false`` for plain text).

Fields: ``ts``, ``level``, ``logger``, ``message`` and any ``extra={...}`` given at the call site
(``request_id``, ``endpoint``, ``status``, ``seconds``, ``providers`` ...).

The per-request access lines (``service.access``, message ``request``) are written in bulk: they wait in memory
for at most ``ACCESS_FLUSH_S`` (or until ``ACCESS_BUFFER`` of them are waiting), and are formatted and written
from a small flusher thread, so a request costs no write system call and no formatting on the event loop
(together ~15 % of the loop's time per /encode request at 16 connections, py-spy). Any other line flushes the
waiting ones first and is written at once, so the order of lines is kept; exit flushes everything.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import sys
import threading
import time
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record (orjson: the access log writes one per request)."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once per second, not per line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        out: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


ACCESS_FLUSH_S = 0.1
ACCESS_BUFFER = 512
_DEFERRED = "request"  # the access log's per-request message: the only lines that may wait


class BulkHandler(logging.handlers.MemoryHandler):
    """Holds per-request access lines for at most ``interval`` seconds; any other line is written at once,
    after the ones waiting (so lines stay in order)."""

    def __init__(self, target: logging.Handler, capacity: int = ACCESS_BUFFER, interval: float = ACCESS_FLUSH_S):
        super().__init__(capacity, flushLevel=logging.WARNING, target=target, flushOnClose=True)
        self._writing = threading.Lock()  # taken after self.lock, never before: one order, no deadlock
        self._pending: list[tuple[float, logging.Logger, str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._every, args=(interval,), name="log-flush", daemon=True)
        self._flusher.start()

    def shouldFlush(self, record: logging.LogRecord) -> bool:  # noqa: N802 (MemoryHandler's name)
        deferred = record.name == "service.access" and record.msg == _DEFERRED
        return not deferred or len(self.buffer) >= self.capacity

    def defer(self, logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
        """An INFO line that may wait, queued as (time, logger, message, fields): its LogRecord is made when it
        is written, by the flusher thread, not on the caller's (the event loop's) time."""
        self._pending.append((time.time(), logger, msg, fields))  # list.append: atomic under the GIL
        if len(self._pending) >= self.capacity:
            self.flush()

    @staticmethod
    def _record(item: tuple[float, logging.Logger, str, dict[str, Any]]) -> logging.LogRecord:
        t, logger, msg, fields = item
        record = logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None, extra=fields)
        record.created, record.msecs = t, int((t - int(t)) * 1000) + 0.0
        return record

    def flush(self) -> None:
        """Format what waits and write it with one write and one flush (MemoryHandler writes each record).

        The buffer is taken under the handler's lock, the writing lock is taken before that lock is let go
        (so batches are written in the order they were taken), and the formatting and the write happen under
        the writing lock alone: the event loop's next access line does not wait for them."""
        assert self.lock is not None  # created by Handler.__init__
        self.lock.acquire()
        try:
            pending, self._pending = self._pending, []  # appends racing this swap land in one list or the other
            records, self.buffer = self.buffer, []
            target = self.target
            self._writing.acquire()
        finally:
            self.lock.release()
        try:
            if pending:  # older than the record that made this flush, if any: merged by time, order kept
                records = sorted([*map(self._record, pending), *records], key=lambda r: r.created)
            if records and isinstance(target, logging.StreamHandler):
                target.stream.write("".join(target.format(r) + target.terminator for r in records))
                target.flush()
        except Exception:  # a closed or broken stderr: logging's own policy (report once, carry on)
            if records and target is not None:
                target.handleError(records[-1])
        finally:
            self._writing.release()

    def _every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.buffer or self._pending:  # a racy peek is enough: flush() takes the lock
                self.flush()

    def close(self) -> None:
        self._stop.set()
        super().close()


def defer(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)``, made and written later when the logger's lines reach a BulkHandler
    (the per-request access line: no LogRecord on the event loop); otherwise at once, as logging does."""
    lg: logging.Logger | None = logger
    while lg is not None:
        if lg.handlers:
            if isinstance(lg.handlers[0], BulkHandler) and len(lg.handlers) == 1:
                lg.handlers[0].defer(logger, msg, fields)
                return
            break
        if not lg.propagate:
            break
        lg = lg.parent
    logger.info(msg, extra=fields)


def configure(level: str, json_lines: bool) -> None:
    """Route the service's and uvicorn's loggers to one stderr handler (our access log replaces uvicorn's)."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler = BulkHandler(stream)
    atexit.register(handler.close)  # logging.shutdown only flushes handlers still attached at exit
    for name in ("service", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in logger.handlers:
            if isinstance(old, BulkHandler):  # an earlier configure()'s: flush what it holds, stop its thread
                old.close()
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    # Fields no line of ours prints, and the most expensive to collect (findCaller walks the stack per record).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
