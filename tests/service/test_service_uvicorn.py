"""Against a real ``python -m service`` (uvicorn on loopback): batching across concurrent requests, the queue
bound, the deadline, SIGTERM drain, start-up refusal, structured logs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.service.service_helpers import digit_png, files, npz, refused_before_body


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


def test_concurrent_requests_form_batches(
    serve: Callable[..., Any], tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    server = serve(tiny("dae").bundle, max_wait_ms=150, max_batch=32)
    blobs = [digit_png(mnist_digits, i) for i in range(8)]
    before = httpx.get(f"{server.url}/metrics").text

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/encode", files=files(b)) for b in blobs))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.headers["x-request-id"] for r in responses}) == 8
    after = httpx.get(f"{server.url}/metrics").text
    images = metric(after, "dae_batch_images_total", queue="encode") - metric(
        before, "dae_batch_images_total", queue="encode"
    )
    batches = metric(after, "dae_batches_total", queue="encode") - metric(before, "dae_batches_total", queue="encode")
    assert images == 8 and batches < 8, (images, batches)  # eight requests rode in fewer model calls
    assert metric(after, "dae_request_duration_seconds_count", endpoint="/encode", method="POST", status="200") >= 8

    # every format over real HTTP, once
    code = responses[0].json()["items"][0]["code"]
    end = responses[1].json()["items"][0]["code"]
    r = httpx.post(f"{server.url}/reconstruct?format=npz", files=files(blobs[0]), timeout=30)
    assert r.status_code == 200 and npz(r.content)["reconstruction"].shape == (1, 1, 32, 32)
    g = httpx.get(f"{server.url}/interpolate", params={"start": code, "end": end, "steps": 3, "format": "gif"})
    assert g.status_code == 200 and g.content[:6] == b"GIF89a"
    m = httpx.get(f"{server.url}/v2/models/tiny-dae").json()
    assert m["providers"]["decoder"] == ["CPUExecutionProvider"]


def test_queue_bound_gives_429_and_the_deadline_504(
    serve: Callable[..., Any], tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    server = serve(
        tiny("dae").bundle, queue_size=4, max_images_per_request=4, max_wait_ms=1500, max_batch=64, deadline_s=0.5
    )
    blob = digit_png(mnist_digits, 0)
    slow: dict[str, Any] = {}

    def first() -> None:
        t0 = time.monotonic()
        slow["r"] = httpx.post(f"{server.url}/encode", files=files(blob, blob, blob), timeout=30)
        slow["s"] = time.monotonic() - t0

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.2)  # the three images now wait in the encode queue for company (max_wait 1.5 s)
    t0 = time.monotonic()
    full = httpx.post(f"{server.url}/encode", files=files(blob, blob), timeout=30)
    assert time.monotonic() - t0 < 1.0  # refused at once, not after the 1.5 s batch wait
    assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
    assert int(full.headers["retry-after"]) >= 1
    t.join()
    assert slow["r"].status_code == 504 and slow["r"].json()["error"]["code"] == "deadline_exceeded"
    assert 0.4 < slow["s"] < 1.4  # at the deadline, not when the batch forms (1.5 s)
    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "dae_rejections_total", reason="queue_full") == 1
    assert metric(text, "dae_rejections_total", reason="deadline") == 1
    assert metric(text, "dae_queue_depth", queue="encode") == 0


def test_sigterm_turns_unready_refuses_new_work_and_finishes_accepted(
    tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray], tmp_path: Path, launch: Callable[..., Any]
) -> None:
    server = launch(tiny("dae").bundle, tmp_path / "drain.log", max_wait_ms=1000, shutdown_delay_s=0.8)
    blob = digit_png(mnist_digits, 0)
    accepted: dict[str, httpx.Response] = {}
    t = threading.Thread(
        target=lambda: accepted.update(r=httpx.post(f"{server.url}/encode", files=files(blob), timeout=30))
    )
    t.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    refused = httpx.post(f"{server.url}/encode", files=files(blob))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "draining"
    t.join()
    assert accepted["r"].status_code == 200  # the request accepted before SIGTERM completed
    assert server.proc.wait(20) == 0
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert any(rec["message"] == "draining" for rec in lines)
    access = [rec for rec in lines if rec["logger"] == "service.access"]
    assert access and all({"request_id", "status", "seconds", "endpoint"} <= set(rec) for rec in access)
    assert any(rec["message"] == "ready" and rec["providers"]["encoder"] == ["CPUExecutionProvider"] for rec in lines)


def test_a_broken_bundle_refuses_to_start_with_a_clear_message(tmp_path: Path, launch: Callable[..., Any]) -> None:
    server = launch(tmp_path / "no-such-bundle", tmp_path / "broken.log", wait_ready=False)
    assert server.proc.wait(60) != 0
    assert "does not exist" in server.logs()


def test_inflight_limit_refuses_before_reading_the_body(
    serve: Callable[..., Any], tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    server = serve(tiny("dae").bundle, max_inflight=2, max_wait_ms=1500, max_batch=64)
    blob = digit_png(mnist_digits, 0)
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(httpx.post(f"{server.url}/encode", files=files(blob), timeout=30).status_code)
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(0.4)  # both wait in the encode queue for company (1.5 s): two requests in flight
    # Headers that announce a body which never comes: only an answer given before reading it can arrive.
    seconds, raw = refused_before_body(server.url)
    assert seconds < 1.0
    head = raw.decode("latin-1")
    assert head.startswith("HTTP/1.1 429") and "retry-after: 1" in head.lower() and '"queue_full"' in head
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200  # non-product routes are not limited
    for t in threads:
        t.join()
    assert results == [200, 200]  # the admitted requests were answered
    assert metric(httpx.get(f"{server.url}/metrics").text, "dae_rejections_total", reason="inflight") == 1
