"""``DAE_WORKERS=2`` against a real ``python -m service``: two processes serve one port, /metrics counts both
from either, SIGTERM drains both, a dead worker is replaced, a broken bundle stops them all, and a supervisor
killed outright leaves no worker behind."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from harness.server import Server
from tests.service.service_helpers import digit_png, files


def records(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout:g} s")


def ready_workers(server: Server) -> dict[int, int]:
    """worker index → pid of its latest start, for the workers whose latest start has reported ready."""
    started: dict[int, int] = {}
    ready: set[int] = set()
    for rec in records(server):
        if rec["message"] == "worker started":
            started[rec["worker"]] = rec["pid"]
            ready.discard(rec["worker"])
        elif rec["message"] == "ready" and "worker" in rec:
            ready.add(rec["worker"])
    return {w: pid for w, pid in started.items() if w in ready}


def both_ready(server: Server) -> dict[int, int]:
    wait_for(lambda: len(ready_workers(server)) == 2, 60, "both workers ready")
    return ready_workers(server)


def encode_count(server: Server) -> float:
    m = re.search(r'dae_request_duration_seconds_count\{endpoint="/encode",method="POST",status="200"\} (\S+)',
                  server.metrics())  # fmt: skip
    return float(m.group(1)) if m else 0.0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0) until its parent reaps it; its state says it is dead
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] == "Z"


def test_two_workers_share_the_port_and_metrics_count_both(
    tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, launch: Callable[..., Any]
) -> None:
    server: Server = launch(tiny("dae").bundle, tmp_path / "w.log", workers=2)
    try:
        pids = both_ready(server)
        assert len(set(pids.values()) | {server.pid}) == 3  # two worker processes beside the supervisor
        blob = digit_png(mnist_digits, 0)

        def one(_: int) -> int:  # a fresh connection each: the kernel picks the accepting worker per connection
            return httpx.post(f"{server.url}/encode", files=files(blob), timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(80))) == [200] * 80
        time.sleep(0.5)  # access lines are written in bulk, within 0.1 s
        lines = records(server)
        served = {rec["worker"] for rec in lines if rec["logger"] == "service.access"}
        assert served == {0, 1}
        # every line a worker wrote says which (the supervisor's own lines do not), none carries ANSI colours
        started = [rec for rec in lines if rec["message"].startswith("Started server process")]
        assert sorted(rec["worker"] for rec in started) == [0, 1]
        assert not any("color_message" in rec for rec in lines)
        # whichever worker answers the scrape, it counts the requests of both
        assert [encode_count(server) for _ in range(6)] == [80.0] * 6
        text = server.metrics()
        assert re.search(r"^dae_model_info\{.*\} 1\.0$", text, re.M)  # max over the live workers, not 2
        assert re.search(r'^dae_queue_depth\{queue="encode"\} 0\.0$', text, re.M)
    finally:
        assert server.stop() == 0


def test_sigterm_drains_every_worker_then_the_supervisor_exits_0(
    tiny: Callable[[str], Any], tmp_path: Path, launch: Callable[..., Any]
) -> None:
    server: Server = launch(tiny("dae").bundle, tmp_path / "drain.log", workers=2, shutdown_delay_s=1.0)
    pids = both_ready(server)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # during the delay every worker still answers, and says it is draining
    for _ in range(6):
        r = httpx.get(f"{server.url}/v2/health/ready", headers={"Connection": "close"})
        assert r.status_code == 503 and r.json()["status"] == "draining"
    assert server.proc.wait(30) == 0
    assert all(gone(pid) for pid in pids.values())
    lines = records(server)
    assert {rec["worker"] for rec in lines if rec["message"] == "draining"} == {0, 1}
    assert any(rec["message"] == "workers stopped" and rec["exit_code"] == 0 for rec in lines)
    assert not any("Traceback" in line for line in server.logs().splitlines())


def test_a_worker_that_dies_is_replaced_and_its_counts_kept(
    tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, launch: Callable[..., Any]
) -> None:
    server: Server = launch(tiny("dae").bundle, tmp_path / "die.log", workers=2)
    try:
        pids = both_ready(server)
        blob = digit_png(mnist_digits, 1)
        for _ in range(10):
            assert httpx.post(f"{server.url}/encode", files=files(blob), timeout=30).status_code == 200
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: ready_workers(server).get(0, pids[0]) != pids[0], 60, "worker 0 replaced")
        assert server.alive()
        died = [rec for rec in records(server) if rec["message"] == "worker died: replacing it"]
        assert len(died) == 1 and died[0]["pid"] == pids[0] and died[0]["exit_code"] == -signal.SIGKILL
        for _ in range(10):
            assert httpx.post(f"{server.url}/encode", files=files(blob), timeout=30).status_code == 200
        assert encode_count(server) == 20.0  # the dead worker's counts stay in the sums
    finally:
        assert server.stop() == 0


def test_a_broken_bundle_stops_every_worker_with_exit_3(tmp_path: Path, launch: Callable[..., Any]) -> None:
    server: Server = launch(tmp_path / "no-such-bundle", tmp_path / "broken.log", wait_ready=False, workers=2)
    assert server.proc.wait(60) == 3  # once, not a restart loop
    lines = records(server)
    assert any(rec["message"] == "worker could not start: stopping" for rec in lines)
    assert "does not exist" in server.logs()
    assert sum(rec["message"] == "worker started" for rec in lines) == 2


def test_a_killed_supervisor_leaves_no_worker_behind(
    tiny: Callable[[str], Any], tmp_path: Path, launch: Callable[..., Any]
) -> None:
    server: Server = launch(tiny("dae").bundle, tmp_path / "orphans.log", workers=2)
    pids = both_ready(server)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    wait_for(lambda: all(gone(pid) for pid in pids.values()), 30, "every worker gone")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/health/live", timeout=2)
