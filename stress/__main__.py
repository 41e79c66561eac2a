"""``python -m stress``: overload bursts and a soak against a real ``python -m service``; writes the figures.

    make stress                                             # --profile full --out docs   (about 5 minutes)
    .venv/bin/python -m stress --profile quick --out build/stress-quick   # seconds

Steps: start the service (queue 64), measure closed-loop capacity C for POST /encode of one MNIST-sized PNG,
fire bursts of 10 x C requests at once (RSS sampled every 0.1 s), wait for recovery, then a soak: open-loop
arrivals at 0.7 x C for the soak time with RSS sampled every second. Writes <out>/reliability.md and
<out>/figures/reliability_soak.png, and <work>/reliability.json with every number.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from harness.memory import RssSampler
from harness.rawhttp import build, request
from harness.server import StopTimeoutError, launch
from stress.bundle import choose
from stress.load import Target, burst, capacity, recovery, server_side_s, soak
from stress.report import write_report

PROFILES = {
    "full": {"capacity_s": 5.0, "bursts": 3, "max_burst": 3000, "soak_s": 180, "soak_load": 0.7},
    "quick": {"capacity_s": 1.0, "bursts": 1, "max_burst": 300, "soak_s": 5, "soak_load": 0.5},
}
SERVER: dict[str, Any] = {"queue_size": 64, "max_batch": 32, "log_level": "warning", "intra_op_threads": 1}


def digit_png() -> bytes:
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


async def run(port: int, pid: int, url: str, p: dict[str, float]) -> dict[str, object]:
    png = digit_png()
    ref = await request("127.0.0.1", port, build("POST", "/encode", body=png, content_type="image/png"))
    target = Target.encode(port, png, ref)
    rate = await capacity(target, p["capacity_s"], concurrency=8)
    n = min(int(10 * rate), int(p["max_burst"]))
    bursts = []
    for _ in range(int(p["bursts"])):
        with RssSampler(pid, 0.1) as rss:
            stats = await burst(target, n)
        rec = await recovery(target)
        bursts.append(
            {
                **stats.as_dict(),
                "rss_before_mb": round(rss.first_mb, 1),
                "rss_peak_mb": round(rss.peak_mb, 1),
                "recovered_s": round(rec, 3),
            }
        )
    text = httpx.get(f"{url}/metrics").text
    server_429 = {f"p{int(q * 100)}": server_side_s(text, "/encode", 429, q)[1] for q in (0.5, 0.9, 1.0)}
    server_200 = {f"p{int(q * 100)}": server_side_s(text, "/encode", 200, q)[1] for q in (0.5, 0.9, 1.0)}
    total, series = await soak(target, max(1.0, p["soak_load"] * rate), p["soak_s"], pid)
    return {
        "capacity_rps": round(rate, 1),
        "burst_size": n,
        "bursts": bursts,
        "server_seconds_429": server_429,
        "server_seconds_200": server_200,
        "soak": {**total.as_dict(), "rate_rps": round(p["soak_load"] * rate, 1), "seconds": p["soak_s"]},
        "soak_series": [asdict(s) for s in series],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--out", type=Path, default=Path("build/stress"))
    ap.add_argument("--work", type=Path, default=Path("build/stress-work"))
    ap.add_argument("--bundle", type=Path, default=None)
    args = ap.parse_args()
    bundle = choose(args.bundle, args.work)
    server = launch(bundle, args.work / "server.log", **SERVER)
    t0 = time.monotonic()
    try:
        figures = asyncio.run(run(server.port, server.proc.pid, server.url, PROFILES[args.profile]))
        alive = server.proc.poll() is None
    finally:
        try:
            code: int | str = server.stop()
        except StopTimeoutError:
            code = "killed: still running 30 s after SIGTERM"
    figures.update(
        {
            "profile": args.profile,
            "bundle": str(bundle),
            "server_settings": SERVER,
            "alive_after": alive,
            "exit_code": code,
            "wall_s": round(time.monotonic() - t0, 1),
        }
    )
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "reliability.json").write_text(json.dumps(figures, indent=1))
    path = write_report(figures, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
