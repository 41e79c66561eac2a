"""Structured logging: one JSON object per line on stderr (``DAE_LOG_JSON=false`` for plain text).

Fields: ``ts``, ``level``, ``logger``, ``message`` and any ``extra={...}`` given at the call site
(``request_id``, ``endpoint``, ``status``, ``seconds``, ``providers`` ...).

The per-request access lines (``service.access``, message ``request``, queued with ``defer``) are written in bulk:
they wait in memory for at most ``ACCESS_FLUSH_S`` (or until ``ACCESS_BUFFER`` of them are waiting), and are made,
formatted and written by a small flusher thread, so a request costs no LogRecord, no formatting and no write
system call on the event loop (together ~15 % of the loop's time per /encode request at 16 connections, py-spy).
Any other line flushes the waiting ones first and is written at once, so the order of lines is kept; exit
flushes everything.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from typing import Any

import orjson

# Record attributes that are not fields of a line: logging's own, and uvicorn's ``color_message`` (the message
# again with ANSI colour codes, for terminals).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record (orjson: the access log writes one per request)."""

    _second = -1
    _stamp = ""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = fields or {}  # on every line (``worker`` under DAE_WORKERS > 1)

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once per second, not per line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        out: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.fields,
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


ACCESS_FLUSH_S = 0.1
ACCESS_BUFFER = 512
_Deferred = tuple[float, logging.Logger, str, dict[str, Any]]


class BulkHandler(logging.Handler):
    """Writes to ``target``'s stream: lines queued with :meth:`defer` wait at most ``interval`` seconds (or until
    ``capacity`` wait); every line logged the usual way is written at once, after the waiting ones (so lines
    stay in order)."""

    def __init__(
        self, target: logging.StreamHandler[Any], capacity: int = ACCESS_BUFFER, interval: float = ACCESS_FLUSH_S
    ):
        super().__init__()
        self.target, self.capacity = target, capacity
        self._writing = threading.Lock()  # taken after self.lock, never before: one order, no deadlock
        self._pending: list[_Deferred] = []
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._every, args=(interval,), name="log-flush", daemon=True)
        self._flusher.start()

    def defer(self, logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
        """An INFO line that may wait, queued as (time, logger, message, fields): its LogRecord is made when it
        is written, by the flusher thread, not on the caller's (the event loop's) time."""
        self._pending.append((time.time(), logger, msg, fields))  # list.append: atomic under the GIL
        if len(self._pending) >= self.capacity:
            self.flush()

    @staticmethod
    def _record(item: _Deferred) -> logging.LogRecord:
        t, logger, msg, fields = item
        record = logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None, extra=fields)
        record.created, record.msecs = t, int((t - int(t)) * 1000) + 0.0
        return record

    def emit(self, record: logging.LogRecord) -> None:
        self._write(record)

    def flush(self) -> None:
        self._write(None)

    def _write(self, record: logging.LogRecord | None) -> None:
        """The waiting lines (and ``record``) formatted and written with one write and one flush.

        The queue is taken under the handler's lock, the writing lock is taken before that lock is let go
        (so batches are written in the order they were taken), and the formatting and the write happen under
        the writing lock alone: the event loop's next deferred line does not wait for them."""
        assert self.lock is not None  # created by Handler.__init__
        self.lock.acquire()
        try:
            pending, self._pending = self._pending, []  # appends racing this swap land in one list or the other
            self._writing.acquire()
        finally:
            self.lock.release()
        records = [] if record is None else [record]
        try:
            if pending:  # older than ``record`` as a rule: merged by time, so the order holds either way
                records = sorted([*map(self._record, pending), *records], key=lambda r: r.created)
            if records:
                target = self.target
                target.stream.write("".join(target.format(r) + target.terminator for r in records))
                target.flush()
        except Exception:  # a closed or broken stderr: logging's own policy (report once, carry on)
            if records:
                self.handleError(records[-1])
        finally:
            self._writing.release()

    def _every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self._pending:  # a racy peek is enough: _write takes the lock
                self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


def defer(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)``, made and written later when the logger's lines reach a BulkHandler
    (the per-request access line: no LogRecord on the event loop); otherwise at once, as logging does. A
    deferred line goes to that BulkHandler alone (not to handlers beside it, such as pytest's log capture,
    which it attaches to every logger that does not propagate)."""
    lg: logging.Logger | None = logger
    while lg is not None:
        if lg.handlers:
            bulk = next((h for h in lg.handlers if isinstance(h, BulkHandler)), None)
            if bulk is not None:
                bulk.defer(logger, msg, fields)
                return
            break
        if not lg.propagate:
            break
        lg = lg.parent
    logger.info(msg, extra=fields)


def configure(level: str, json_lines: bool, worker: int | None = None) -> None:
    """Route the service's and uvicorn's loggers to one stderr handler (our access log replaces uvicorn's).

    ``worker``: this process's index under ``DAE_WORKERS`` > 1, a ``worker`` field on every line."""
    stream = logging.StreamHandler(sys.stderr)
    tag = "" if worker is None else f"[worker {worker}] "
    stream.setFormatter(
        JsonFormatter(None if worker is None else {"worker": worker})
        if json_lines
        else logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
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
