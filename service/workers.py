"""``DAE_WORKERS=N`` (N > 1): N service processes on one listening socket, under a small supervisor.

    DAE_WORKERS=2 python -m service

Why: one process runs every request's Python (HTTP parsing, routing, decoding, rendering) on one event loop
and shares the GIL with its batch threads, so at 16 connections on a 2-core machine it uses ~1.2 cores and a
core sits idle (docs/benchmarks.md). Two processes on the same port served /encode ~1.5x faster there.

The supervisor (this process) binds the port, then starts N workers (``multiprocessing`` spawn: each a fresh
interpreter that loads the bundle and runs service/server.py's ``serve`` on the inherited socket; the kernel
hands each new connection to a worker that is accepting, so a worker still loading takes none). It never loads
a model itself. Then:

- SIGTERM / SIGINT go to every worker, and each drains as a single process does (readiness 503, new product
  requests refused, accepted ones finished); the supervisor exits 0 once all have, or 1 if one did not exit 0.
- A worker that could not start (bundle or provider problem, exit 3) stops all of them: the supervisor exits 3,
  not a restart loop. A worker that dies while serving is logged and replaced; one that keeps dying within
  ``QUICK_DEATH_S`` of its start ``MAX_QUICK_DEATHS`` times in a row stops the supervisor (exit 1).
- A worker whose supervisor is gone (killed with SIGKILL) drains and exits on its own, so no orphan keeps the
  port.
- Metrics: prometheus_client's multiprocess mode, in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory
  unless set; its ``*.db`` files are cleared at start), so ``/metrics`` from any worker counts all of them.

The admission limit, the refusal rate and the CPU cores stay the service's, shared out between the workers
(``Settings.worker_inflight``, ``worker_refusal_rate``, ``threads``); each worker has its own queues.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from service.config import Settings
from service.logs import configure
from service.metrics import MULTIPROC_ENV
from service.server import STARTUP_FAILURE, serve, uvicorn_config

log = logging.getLogger("service.workers")
QUICK_DEATH_S = 10.0
MAX_QUICK_DEATHS = 5
ORPHAN_CHECK_S = 1.0


def _exit_with(parent: int) -> None:
    """SIGTERM this worker (a normal drain) once its supervisor is gone: the process is re-parented then."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def worker(index: int, sock: socket.socket, parent: int) -> None:
    """A worker process's body (spawned: settings and logging are made again from the inherited environment)."""
    settings = Settings()
    configure(settings.log_level, settings.log_json, worker=index)
    _exit_with(parent)
    sys.exit(serve(settings, [sock]))


def _metrics_dir() -> Path | None:
    """The multiprocess metrics directory, emptied; a new temporary one (returned, to remove) unless set."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):  # a previous run's values would be summed with ours
            old.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="dae-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)  # inherited by the workers, which read it when they import the client
    return made


class Supervisor:
    """Starts, watches, replaces and stops the worker processes (see the module's docstring)."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings, self.sock = settings, sock
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.started_at: list[float] = []
        self.quick_deaths = [0] * settings.workers
        self.signals: list[int] = []
        self.stopping = False
        self.code = 0

    def _start(self, index: int) -> BaseProcess:
        process = self.context.Process(
            target=worker, args=(index, self.sock, os.getpid()), name=f"dae-worker-{index}", daemon=False
        )
        process.start()
        log.info("worker started", extra={"worker": index, "pid": process.pid})
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)  # handled by the loop, not here (a signal may land anywhere)

    def _stop_all(self, sig: int) -> None:
        self.stopping = True
        for process in self.workers:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, sig)

    def _reap(self, index: int, process: BaseProcess) -> None:
        """A worker has exited: account for it, then replace it, or stop everything."""
        code, pid = process.exitcode, process.pid
        if pid is not None:
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # its live gauges leave the sums
        if self.stopping:
            # a worker signalled before its server took the signals over dies by them: stopped, not failed
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.warning("worker exited", extra={"worker": index, "pid": pid, "exit_code": code})
                self.code = self.code or (STARTUP_FAILURE if code == STARTUP_FAILURE else 1)
            return
        if code == STARTUP_FAILURE:
            log.error("worker could not start: stopping", extra={"worker": index, "pid": pid})
            self.code = STARTUP_FAILURE
            self._stop_all(signal.SIGTERM)
            return
        lived = time.monotonic() - self.started_at[index]
        self.quick_deaths[index] = self.quick_deaths[index] + 1 if lived < QUICK_DEATH_S else 0
        if self.quick_deaths[index] >= MAX_QUICK_DEATHS:
            log.error(
                "worker keeps dying: stopping",
                extra={"worker": index, "pid": pid, "exit_code": code, "deaths": self.quick_deaths[index]},
            )
            self.code = 1
            self._stop_all(signal.SIGTERM)
            return
        log.error(
            "worker died: replacing it",
            extra={"worker": index, "pid": pid, "exit_code": code, "seconds": round(lived, 1)},
        )
        self.workers[index] = self._start(index)
        self.started_at[index] = time.monotonic()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for index in range(self.settings.workers):
            self.workers.append(self._start(index))
            self.started_at.append(time.monotonic())
        exited: set[int] = set()
        while len(exited) < len(self.workers):
            # wakes when a worker exits; the timeout bounds how long a signal waits to be handled
            multiprocessing.connection.wait([p.sentinel for p in self.workers], timeout=0.2)
            while self.signals:
                received = self.signals.pop(0)
                log.info("stopping workers", extra={"signal": received})
                self._stop_all(received)  # a second signal reaches them too: they stop without the delay
            for index, process in enumerate(self.workers):
                if index not in exited and process.exitcode is not None:
                    self._reap(index, process)
                    if self.workers[index] is process:  # not replaced
                        exited.add(index)
        log.info("workers stopped", extra={"exit_code": self.code})
        return self.code


def supervise(settings: Settings) -> int:
    """Bind the port, run ``settings.workers`` workers on it until stopped; the exit code."""
    config = uvicorn_config("service.app:create_app", settings)
    try:
        sock = config.bind_socket()  # uvicorn's: SO_REUSEADDR, IPv6 hosts; it logs the address
    except SystemExit:  # uvicorn has logged why (port in use ...)
        return STARTUP_FAILURE
    made = _metrics_dir()
    try:
        return Supervisor(settings, sock).run()
    finally:
        sock.close()
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
