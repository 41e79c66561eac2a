"""A process's resident memory and open descriptors, read from outside it (psutil), once or in a thread.

    with RssSampler(server.pid, interval=0.1) as rss:
        ...                                   # load
    rss.first_mb, rss.peak_mb, rss.samples    # samples: [(seconds since start, bytes)]

The sampler runs in the *calling* process, so the server pays nothing for being watched. The peak is the
highest sample, so it can miss a spike shorter than ``interval``.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psutil


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``; 0 once the process is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:  # NoSuchProcess, ZombieProcess, AccessDenied: nothing left to measure
        return 0


def open_fds(pid: int) -> int:
    """Open file descriptors of ``pid`` (sockets included): a leak shows up here first."""
    return int(psutil.Process(pid).num_fds())


class RssSampler:
    """RSS of one process every ``interval`` seconds in a daemon thread: ``samples`` = [(t, bytes)]."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._proc = None

    def _rss(self) -> int:
        if self._proc is None:
            return 0
        try:
            return int(self._proc.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._t0, self._rss()))
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.samples.append((time.monotonic() - self._t0, self._rss()))

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def samples_mib(self) -> list[tuple[float, float]]:
        """The samples with RSS in MiB, gone-process zeros left out."""
        return [(t, b / 2**20) for t, b in self.samples if b]

    @property
    def peak_mb(self) -> float:
        return max((b for _, b in self.samples), default=0) / 2**20

    @property
    def first_mb(self) -> float:
        return self.samples[0][1] / 2**20 if self.samples else 0.0
