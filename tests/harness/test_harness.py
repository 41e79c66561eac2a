"""The shared harness on its own: ports, the memory sampler, the raw HTTP client's parser, a child process's stop."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

from harness.memory import RssSampler, open_fds, rss_bytes
from harness.ports import free_port
from harness.rawhttp import build, multipart, parse, read_response
from harness.server import Process, StopTimeoutError, service_env


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_memory_of_this_process() -> None:
    assert rss_bytes(os.getpid()) > 10 * 2**20
    assert open_fds(os.getpid()) >= 3
    with RssSampler(os.getpid(), interval=0.01) as rss:
        junk = bytearray(50 * 2**20)  # touched below, so it is resident
        for i in range(0, len(junk), 4096):
            junk[i] = 1
        asyncio.run(asyncio.sleep(0.05))
    assert len(rss.samples) >= 2 and rss.peak_mb >= rss.first_mb > 0
    assert rss_bytes(2**22 + 1) == 0  # no such process: 0, not an error


def test_raw_http_builds_and_parses() -> None:
    body, ctype = multipart([("image", "a.png", b"PNG", "image/png")], boundary="b")
    raw = build("POST", "/encode", body=body, content_type=ctype, keep_alive=True)
    assert raw.startswith(b"POST /encode HTTP/1.1\r\n") and b"Connection: keep-alive" in raw
    assert raw.endswith(b'filename="a.png"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n')
    reply = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert (reply.status, reply.body) == (200, b"abcde")
    with pytest.raises(ValueError, match="truncated"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async def kept_alive() -> list[int]:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 429 Too Many\r\nContent-Length: 2\r\n\r\nno"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
        )
        reader.feed_eof()
        return [await read_response(reader), await read_response(reader)]

    assert asyncio.run(kept_alive()) == [429, 200]


def test_service_env_drops_the_callers_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAE_MAX_BATCH", "999")
    env = service_env(1234, Path("b"), {"max_wait_ms": 5})
    assert env["DAE_PORT"] == "1234" and env["DAE_MAX_WAIT_MS"] == "5" and "DAE_MAX_BATCH" not in env
    assert Path(env["DAE_BUNDLE"]).is_absolute()


def test_process_stop_returns_the_code_or_kills_after_the_grace(tmp_path: Path) -> None:
    polite = Process(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        env=dict(os.environ),
        log=tmp_path / "polite.log",
    )
    polite.wait_until(lambda: "up" in polite.logs(), 30)
    assert polite.stop(10) == -15  # SIGTERM's default action
    stubborn = Process(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(60)",
        ],
        env=dict(os.environ),
        log=tmp_path / "s.log",
    )
    stubborn.wait_until(lambda: "up" in stubborn.logs(), 30)
    with pytest.raises(StopTimeoutError, match="after SIGTERM"):
        stubborn.stop(0.5)
    assert not stubborn.alive()
    gone = Process([sys.executable, "-c", "raise SystemExit(3)"], env=dict(os.environ), log=tmp_path / "g.log")
    with pytest.raises(RuntimeError, match="exited with 3"):
        gone.wait_until(lambda: False, 30)


def test_a_process_group_stops_with_its_forked_workers(tmp_path: Path) -> None:
    # A parent that starts a worker which ignores SIGTERM, as LitServe's worker processes outlived the bench.
    code = (
        "import subprocess, sys, time; "
        "w = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
        "print('worker', w.pid, flush=True); time.sleep(60)"
    )
    parent = Process([sys.executable, "-c", code], env=dict(os.environ), log=tmp_path / "p.log", group=True)
    parent.wait_until(lambda: "worker" in parent.logs(), 30)
    worker = int(parent.logs().split()[1])
    assert parent.stop(10) == -15
    try:  # killed: gone once the kernel delivers it (a zombie until init reaps it, which counts as gone)
        psutil.Process(worker).wait(5)
    except psutil.TimeoutExpired:
        raise AssertionError(f"worker {worker} outlived its group's stop()") from None
    except psutil.NoSuchProcess:
        pass
