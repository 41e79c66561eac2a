"""Drive a server with ``wrk`` (Debian's C load generator) posting one raw ``image/png`` body, and parse its report.

    run = wrk(url, body=png_bytes, connections=16, seconds=5)     # Run(rps, p50_ms, p99_ms, requests, non_2xx, ...)
    ensure_wrk()                                                  # apt-get install -y wrk when it is missing

A Lua script posts the body and, in ``done()``, prints one JSON line with the latency percentiles and the
status counts, so nothing is scraped from wrk's human-readable table. ``cores`` is the CPU time the server
process used during the run divided by the run's wall time (from /proc/<pid>/stat: user + system).
wrk retries at once: it never reads ``Retry-After``, so it is also the storm generator (clients that retry at
once), and ``good_rps`` counts only 2xx answers (goodput).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
-- no response() callback: it would make wrk parse every answer in Lua, on the cores the server needs
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Run:
    connections: int
    seconds: float
    requests: int
    rps: float
    good_rps: float
    non_2xx: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cores: float | None
    # wrk's own CPU (user + system cores over the run): with the server's, whether the machine's cores were full
    load_cores: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's ``wrk`` package when it is missing (needs root, as in CI images)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    subprocess.run([*apt, "install", "-y", "-q", "wrk"], check=False, capture_output=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and `apt-get install -y wrk` failed: install Debian's wrk package")
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process and its threads (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    *,
    body: bytes,
    connections: int,
    seconds: float,
    pid: int | None = None,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> Run:
    """One wrk run posting ``body`` to ``url`` for ``seconds`` (whole seconds: wrk's unit); ``pid``: the server
    whose CPU use to report."""
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script, payload = Path(tmp) / "post.lua", Path(tmp) / "body.bin"
        script.write_text(LUA)
        payload.write_bytes(body)
        cmd = [
            binary,
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "-s",
            str(script),
            url,
        ]
        cpu0, t0 = (cpu_seconds(pid) if pid else None), time.perf_counter()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "WRK_BODY": str(payload)},
            timeout=seconds + 60,
            check=False,
        )
        wall = time.perf_counter() - t0
        cpu1 = cpu_seconds(pid) if pid else None
        # Children reaped meanwhile: wrk (the servers are children too, but they stay up through the run).
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-1000:]} {done.stdout[-1000:]}")
    r = json.loads(line)
    secs = max(r["seconds"], 1e-9)
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return Run(
        connections=connections,
        seconds=round(secs, 3),
        requests=r["requests"],
        rps=r["requests"] / secs,
        good_rps=(r["requests"] - r["non_2xx"]) / secs,
        non_2xx=r["non_2xx"],
        errors=errors,
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        cores=None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / wall,
        load_cores=(kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / wall,
    )
