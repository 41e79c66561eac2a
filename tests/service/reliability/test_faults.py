"""Faults against real ``python -m service`` processes: SIGTERM under load, broken bundles, clients that hang
up mid-upload or mid-response.

    .venv/bin/python -m pytest tests/service/reliability/test_faults.py -q

(tests/service/test_service_uvicorn.py already drains one request on SIGTERM and refuses a missing bundle
directory; here: many requests in flight, and the three bundle faults of the issue, each by process exit.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.memory import open_fds, rss_bytes
from harness.rawhttp import build, multipart, request
from tests.service.reliability.helpers import metric, ready, wait_until

REPO = Path(__file__).resolve().parents[3]


def port_of(server: Any) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_sigterm_under_load_finishes_accepted_refuses_new_and_exits_in_time(
    serve: Callable[..., Any], tiny: Callable[[str], Any], digit: bytes
) -> None:
    server = serve(
        tiny("dae").bundle, max_wait_ms=300, max_batch=64, drain_timeout_s=10, shutdown_delay_s=0.5, log_level="warning"
    )
    port = port_of(server)
    raw = build("POST", "/encode", body=digit, content_type="image/png")

    async def run() -> tuple[list[Any], list[Any], float]:
        async def one() -> Any:
            try:
                return await request("127.0.0.1", port, raw, 30)
            except OSError as e:  # after the listener closes: connection refused, a clean refusal
                return e

        in_flight = [asyncio.create_task(one()) for _ in range(24)]
        await asyncio.sleep(0.15)  # all 24 are now waiting in the batcher (max_wait 300 ms)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        late = [await one() for _ in range(5)]
        return list(await asyncio.gather(*in_flight)), late, t0

    accepted, late, t0 = asyncio.run(run())
    assert [getattr(r, "status", r) for r in accepted] == [200] * 24  # every accepted request answered
    assert all(json.loads(r.body)["items"][0]["code"] for r in accepted)
    for r in late:  # refused cleanly: 503 draining while the listener is open, refused connection after
        assert isinstance(r, OSError) or (r.status == 503 and json.loads(r.body)["error"]["code"] == "draining")
    assert server.proc.wait(15) == 0
    assert time.monotonic() - t0 < 10 + 0.5 + 3  # within drain_timeout + shutdown delay (+ process exit)


def _break(bundle: Path, fault: str) -> str:
    """Damage a copied bundle one way; the text the refusal must name."""
    if fault == "wrong checksum":
        (
            bundle / "decoder_texture.onnx" if (bundle / "decoder_texture.onnx").exists() else bundle / "warp.onnx"
        ).write_bytes(b"\0" * 64)
        return "checksum mismatch"
    if fault == "missing file":
        (bundle / "warp.onnx").unlink()
        return "warp.onnx is missing"
    m = json.loads((bundle / "manifest.json").read_text())  # manifest disagrees with its graph
    m["graphs"]["encoder"]["outputs"][0]["shape"] = ["batch", 99]
    (bundle / "manifest.json").write_text(json.dumps(m))
    return "manifest says"


@pytest.mark.parametrize("fault", ["wrong checksum", "missing file", "manifest disagrees with its graphs"])
def test_broken_bundle_refuses_to_start_naming_the_problem(
    tiny: Callable[[str], Any], tmp_path: Path, fault: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny("dae").bundle, bundle)
    want = _break(bundle, fault)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAE_")}
    env.update({"DAE_BUNDLE": str(bundle), "DAE_PORT": "0", "DAE_LOG_JSON": "false", "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-m", "service"], cwd=REPO, env=env, capture_output=True, timeout=60)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 3, out[-2000:]
    assert want in out, out[-2000:]


def test_clients_that_hang_up_leak_nothing_and_stick_no_batch(
    serve: Callable[..., Any], tiny: Callable[[str], Any], digit: bytes
) -> None:
    server = serve(tiny("dae").bundle, max_images_per_request=8, log_level="warning")
    port, pid = port_of(server), server.proc.pid
    body, ctype = multipart([("images", f"{i}.png", digit, "image/png") for i in range(8)])
    full = build("POST", "/reconstruct?format=json&arrays=both", body=body, content_type=ctype)

    async def mid_upload() -> None:  # promise 1 MB, send the headers and a tenth of the body, hang up
        _, w = await asyncio.open_connection("127.0.0.1", port)
        head = build("POST", "/encode", content_type=ctype, body=b"")
        w.write(head.replace(b"Content-Length: 0", b"Content-Length: 1000000") + body[: len(body) // 10])
        await w.drain()
        w.close()

    async def mid_response() -> None:  # send a whole request for a large answer, read a little, hang up
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(full)
        await w.drain()
        await r.read(100)
        w.close()

    async def rounds(n: int) -> None:
        for _ in range(n):
            await asyncio.gather(*(mid_upload() for _ in range(5)), *(mid_response() for _ in range(5)))

    asyncio.run(rounds(2))  # warm every code path before taking the baseline
    assert wait_until(lambda: metric(httpx.get(f"{server.url}/metrics").text, "dae_queue_depth", queue="decode") == 0)
    fds, rss = open_fds(pid), rss_bytes(pid)
    asyncio.run(rounds(20))
    ok = asyncio.run(request("127.0.0.1", port, full, 30))
    assert ok.status == 200 and len(json.loads(ok.body)["items"]) == 8
    assert ready(server.url)
    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "dae_queue_depth", queue="encode") == 0
    assert metric(text, "dae_queue_depth", queue="decode") == 0
    assert wait_until(lambda: open_fds(pid) <= fds + 3, timeout=10), (fds, open_fds(pid))
    assert rss_bytes(pid) - rss < 40 * 2**20, (rss, rss_bytes(pid))  # 200 hang-ups later
