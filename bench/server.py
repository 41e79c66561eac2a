"""Start the real service (``python -m service``) as a child process on loopback, watch its memory, stop it.

    with ServiceProcess(bundle, max_batch=32, max_wait_ms=0.0) as srv:
        srv.url("/encode"); srv.metrics(); srv.memory.samples

Memory is read from ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the peak) by a sampler thread, once per
``sample_s``; the sampler and the metrics scrape run in *this* process, so the server pays nothing for them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

READY_PATHS = ("/readyz", "/v2/health/ready")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_status_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in KiB (empty once the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


@dataclass
class MemorySampler:
    """RSS of one process every ``sample_s`` seconds, as (seconds since start, RSS MiB); plus the peak."""

    pid: int
    sample_s: float = 1.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    peak_mib: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            st = read_status_kib(self.pid)
            if st:
                self.samples.append((time.perf_counter() - t0, st.get("VmRSS", 0) / 1024))
                self.peak_mib = max(self.peak_mib, st.get("VmHWM", 0) / 1024)
            self._stop.wait(self.sample_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def parse_batches(metrics_text: str) -> dict[str, tuple[float, float]]:
    """``{queue: (batches, images)}`` from ``dae_batches_total`` and ``dae_batch_images_total``."""
    out: dict[str, list[float]] = {}
    for name, idx in (("dae_batches_total", 0), ("dae_batch_images_total", 1)):
        for m in re.finditer(rf'^{name}\{{queue="([^"]+)"\}} ([0-9.eE+-]+)$', metrics_text, re.MULTILINE):
            out.setdefault(m.group(1), [0.0, 0.0])[idx] = float(m.group(2))
    return {q: (v[0], v[1]) for q, v in out.items()}


def parse_histogram(metrics_text: str, name: str) -> dict[str, tuple[float, float]]:
    """``{label value: (sum, count)}`` of a one-label histogram such as ``dae_inference_seconds{stage}``."""
    out: dict[str, list[float]] = {}
    for suffix, idx in (("_sum", 0), ("_count", 1)):
        pattern = rf'^{name}{suffix}\{{[a-z_]+="([^"]+)"[^}}]*\}} ([0-9.eE+-]+)$'
        for m in re.finditer(pattern, metrics_text, re.MULTILINE):
            out.setdefault(m.group(1), [0.0, 0.0])[idx] += float(m.group(2))
    return {k: (v[0], v[1]) for k, v in out.items()}


class ServiceProcess:
    """The service under test; ``env`` adds ``DAE_*`` settings (``max_batch=1, max_wait_ms=0``: unbatched)."""

    def __init__(
        self,
        bundle: Path,
        *,
        max_batch: int,
        max_wait_ms: float,
        sample_s: float = 1.0,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        start_timeout_s: float = 120.0,
    ) -> None:
        self.port = free_port()
        self.env = (
            os.environ
            | {
                "DAE_HOST": "127.0.0.1",
                "DAE_PORT": str(self.port),
                "DAE_BUNDLE": str(Path(bundle).resolve()),
                "DAE_MAX_BATCH": str(max_batch),
                "DAE_MAX_WAIT_MS": str(max_wait_ms),
                "DAE_LOG_LEVEL": "warning",
                "DAE_QUEUE_SIZE": "4096",
                "DAE_DEADLINE_S": "60",
            }
            | (env or {})
        )
        self.sample_s = sample_s
        self.log_path = log
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.memory: MemorySampler | None = None
        self._log: IO[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def start(self) -> ServiceProcess:
        # The log stays open for the child's lifetime; stop() closes it.
        self._log = open(self.log_path, "wb") if self.log_path else None  # noqa: SIM115
        log: IO[bytes] | int = self._log if self._log is not None else subprocess.DEVNULL
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=root, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the service exited with code {self.proc.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            for path in READY_PATHS:
                try:
                    if self._get(path, timeout=2.0)[0] == 200:
                        self.memory = MemorySampler(self.proc.pid, self.sample_s)
                        self.memory.start()
                        return self
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the service was not ready within {self.start_timeout_s:.0f} s")

    def metrics(self) -> str:
        status, body = self._get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()

    def batches(self) -> dict[str, tuple[float, float]]:
        return parse_batches(self.metrics())

    def rss_mib(self) -> float:
        return read_status_kib(self.proc.pid).get("VmRSS", 0) / 1024 if self.proc else 0.0

    def stop(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
