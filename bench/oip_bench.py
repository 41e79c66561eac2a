"""The Open Inference Protocol beside the REST API: the same model, the same digits, the same answer.

    python -m bench.oip_bench --clients 1 8 --images-per-request 1 8 --seconds 5     # prints a markdown table
    python -m bench --only oip                                                      # as part of the report

Three ways to ask one real server (:func:`harness.server.launch`, the service's defaults) for the
reconstructions of N digits:

- ``rest-png``: ``POST /reconstruct?outputs=reconstruction&format=npz``, the digits as PNG files in a multipart
  body (the service decodes and resizes them), exact float32 arrays back;
- ``oip-binary``: ``POST /v2/models/{name}/infer`` with the preprocessed tensor as a binary input and the
  ``reconstruction`` output binary (Triton's binary tensor extension);
- ``oip-json``: the same request with JSON numbers in and out.

Each (protocol, images per request, clients) cell is a closed loop of ``clients`` keep-alive connections
(pre-built request bytes, ``harness.rawhttp``: the client costs the shared cores little), at most ``seconds``
and ``max_requests``, run as ``rounds`` slices interleaved with the other protocols' (order rotating), so that
load from elsewhere on the shared cores hits all three alike.

Triton's perf_analyzer would be the reference client for OIP; PyPI's ``perf-analyzer`` is a placeholder package
without the program (checked: 0.1.0, "Placeholder"), and tritonclient's wheel ships none, so it is not run here.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.timing import percentile
from harness.rawhttp import build, multipart, read_response
from harness.server import Server, launch

PROTOCOLS = ("rest-png", "oip-binary", "oip-json")


@dataclass(frozen=True)
class OipSettings:
    clients: tuple[int, ...] = (1, 8)
    images_per_request: tuple[int, ...] = (1, 8)
    seconds: float = 5.0  # per cell and protocol, in ``rounds`` interleaved slices
    max_requests: int = 5000
    rounds: int = 5


@dataclass(frozen=True)
class OipRow:
    protocol: str
    clients: int
    images_per_request: int
    request_bytes: int
    response_bytes: int
    requests: int
    requests_per_s: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    non_2xx: int


def digits(image_size: int, count: int = 64) -> np.ndarray:
    """``count`` reproducible digit-like uint8 images (smooth blobs: the bench needs no data set)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size
    out = np.zeros((count, image_size, image_size), np.uint8)
    for i in range(count):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        ring = np.exp(-(((np.hypot(xx - cx, yy - cy) - r) / 0.06) ** 2))
        out[i] = (255 * ring).astype(np.uint8)
    return out


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def requests_for(protocol: str, model: str, batch: np.ndarray) -> bytes:
    """The complete keep-alive HTTP request asking for the reconstructions of ``batch`` (uint8 (B, N, N))."""
    if protocol == "rest-png":
        body, ctype = multipart([("image", f"{i}.png", png(a), "image/png") for i, a in enumerate(batch)])
        return build(
            "POST", "/reconstruct?outputs=reconstruction&format=npz", body=body, content_type=ctype, keep_alive=True
        )
    x = (batch.astype(np.float32) / np.float32(255.0))[:, None]
    tensor: dict[str, Any] = {"name": "image", "datatype": "FP32", "shape": list(x.shape)}
    path = f"/v2/models/{model}/infer"
    if protocol == "oip-json":
        doc = {"inputs": [{**tensor, "data": x.ravel().tolist()}], "outputs": [{"name": "reconstruction"}]}
        return build("POST", path, body=json.dumps(doc).encode(), content_type="application/json", keep_alive=True)
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}],
            "outputs": [{"name": "reconstruction", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return build(
        "POST",
        path,
        body=head + x.tobytes(),
        content_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
        keep_alive=True,
    )


async def closed_loop(
    host: str, port: int, reqs: list[bytes], clients: int, max_requests: int, seconds: float
) -> tuple[list[float], int, float]:
    """(latencies of 2xx answers, other answers, wall seconds) of ``clients`` keep-alive loops."""
    latencies: list[float] = []
    bad = 0
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def one(k: int) -> None:
        nonlocal sent, bad
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while sent < max_requests and time.perf_counter() < deadline:
                raw = reqs[(sent + k) % len(reqs)]
                sent += 1
                t0 = time.perf_counter()
                writer.write(raw)
                await writer.drain()
                status = await read_response(reader)
                if 200 <= status < 300:
                    latencies.append(time.perf_counter() - t0)
                else:
                    bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(k) for k in range(clients)))
    return latencies, bad, time.perf_counter() - start


def response_size(srv: Server, raw: bytes) -> int:
    """Bytes of one answer's body (what each protocol sends back for the same reconstructions)."""
    from harness.rawhttp import request

    host, port = srv.url.removeprefix("http://").split(":")
    reply = asyncio.run(request(host, int(port), raw.replace(b"Connection: keep-alive", b"Connection: close", 1)))
    if reply.status != 200:
        raise RuntimeError(f"{reply.status}: {reply.body[:300]!r}")
    return len(reply.body)


def bench_oip(bundle: Path, work: Path, s: OipSettings, progress: bool = True) -> dict[str, Any]:
    """Every (protocol, images per request, clients) cell against one server on ``bundle``."""
    work.mkdir(parents=True, exist_ok=True)
    srv = launch(
        bundle, work / "oip-server.log", ready_timeout=120, log_level="warning", queue_size=4096, deadline_s=60
    )
    rows: list[OipRow] = []
    try:
        meta = json.loads(srv.get("/v2")[1])
        model = meta["models"][0]
        size = json.loads(srv.get(f"/v2/models/{model}")[1])["image_size"]
        images = digits(size)
        host, port = srv.url.removeprefix("http://").split(":")
        for n in s.images_per_request:
            reqs = {
                p: [requests_for(p, model, images[(i * n + np.arange(n)) % len(images)]) for i in range(8)]
                for p in PROTOCOLS
            }
            answers = {p: response_size(srv, r[0]) for p, r in reqs.items()}
            for r in reqs.values():  # warm each path and its connection
                asyncio.run(closed_loop(host, int(port), r, 1, 20, 2.0))
            for clients in s.clients:
                # Interleaved slices (the order rotating each round) so that a change in the machine's load
                # (the cores are shared) falls on every protocol alike: the ratios are what this measures.
                got: dict[str, tuple[list[float], int, float]] = {p: ([], 0, 0.0) for p in PROTOCOLS}
                for k in range(s.rounds):
                    order = PROTOCOLS[k % len(PROTOCOLS) :] + PROTOCOLS[: k % len(PROTOCOLS)]
                    for p in order:
                        lat, bad, wall = asyncio.run(
                            closed_loop(
                                host,
                                int(port),
                                reqs[p],
                                clients,
                                max(1, s.max_requests // s.rounds),
                                s.seconds / s.rounds,
                            )
                        )
                        a, b, w = got[p]
                        got[p] = (a + lat, b + bad, w + wall)
                for p in PROTOCOLS:
                    lat, bad, wall = got[p]
                    ms = [x * 1000 for x in lat]
                    row = OipRow(
                        p,
                        clients,
                        n,
                        len(reqs[p][0]),
                        answers[p],
                        len(lat),
                        len(lat) / wall,
                        len(lat) * n / wall,
                        percentile(ms, 50),
                        percentile(ms, 95),
                        bad,
                    )
                    rows.append(row)
                    if progress:
                        print(
                            f"[bench] oip {p:10s} {n} img x {clients:2d} clients: "
                            f"{row.images_per_s:7.1f} img/s p50 {row.p50_ms:6.2f} ms",
                            flush=True,
                        )
    finally:
        srv.stop()
    return {"rows": [asdict(r) for r in rows], "settings": asdict(s), "model": model, "image_size": size}


def section(result: dict[str, Any]) -> list[str]:
    """The report's section (markdown lines)."""
    rows = result["rows"]
    by = {(r["protocol"], r["images_per_request"], r["clients"]): r for r in rows}
    lines = [
        "## Open Inference Protocol beside the REST API",
        "",
        f"The same reconstructions of the same digits ({result['image_size']}x{result['image_size']}, model "
        f"`{result['model']}`) asked three ways of one server with its default settings: `rest-png` is "
        "`POST /reconstruct?outputs=reconstruction&format=npz` with PNG uploads (decoded and resized by the "
        "service); `oip-binary` is `POST /v2/models/{name}/infer` with the preprocessed tensor and the output as "
        "binary tensors; `oip-json` the same in JSON numbers. Closed loops of keep-alive clients on loopback "
        "(bench/oip_bench.py). `vs rest` is images/s relative to `rest-png` in the same cell.",
        "",
        "| protocol | images/request | clients | request bytes | response bytes | img/s | p50 ms | p95 ms | vs rest |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rest = by.get(("rest-png", r["images_per_request"], r["clients"]))
        ratio = f"{r['images_per_s'] / rest['images_per_s']:.2f}x" if rest and rest["images_per_s"] else "-"
        lines.append(
            f"| {r['protocol']} | {r['images_per_request']} | {r['clients']} | {r['request_bytes']} | "
            f"{r['response_bytes']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {ratio} |"
        )
    bad = sum(r["non_2xx"] for r in rows)
    lines += [
        "",
        f"Non-2xx answers: {bad}. Triton's perf_analyzer, the usual OIP load tool, is not run: PyPI's "
        "`perf-analyzer` is a placeholder package (0.1.0) without the program and tritonclient's wheel ships none.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=Path("models/mnist"))
    ap.add_argument("--work", type=Path, default=Path("build/bench-oip"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--images-per-request", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-requests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved slices per cell (default: 5)")
    ap.add_argument("--json", type=Path, help="also write the raw result here")
    args = ap.parse_args(argv)
    s = OipSettings(tuple(args.clients), tuple(args.images_per_request), args.seconds, args.max_requests, args.rounds)
    result = bench_oip(args.bundle, args.work, s)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("\n".join(section(result)))


if __name__ == "__main__":
    main()
