"""A closed-loop HTTP load generator, run as its own process, loopback only, bounded in count and in time.

    python -m bench.loadgen --url http://127.0.0.1:8000/encode --images build/bench/payload \\
        --concurrency 16 --images-per-request 1 --max-requests 2000 --max-seconds 10 --out result.json

``concurrency`` clients each hold one keep-alive connection and send the next request as soon as the last
answer arrived (closed loop: offered load follows the server's speed, so latency percentiles mean "at this
many clients"). It stops at ``max-requests`` sent or ``max-seconds`` elapsed, whichever comes first.

Why not httpx: on a 2-core machine the client shares the cores with the server. httpx's client costs about a
millisecond of CPU per request; this one writes pre-built request bytes and parses only the status line and
the length (``harness.rawhttp``), so almost all the CPU goes to the server being measured. Its own CPU time is
reported.

Output (JSON): latencies of the successful requests (seconds), status counts, wall time, CPU seconds used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness.rawhttp import build, multipart, read_response

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class LoadResult:
    url: str
    concurrency: int
    images_per_request: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)  # successful (2xx) requests only
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # first few transport errors, for the report

    @property
    def ok(self) -> int:
        return len(self.latencies_s)


def multipart_request(path: str, images: list[bytes]) -> bytes:
    """The complete keep-alive HTTP/1.1 request: multipart/form-data with one ``image`` part per PNG."""
    body, content_type = multipart(
        [("image", f"{i}.png", png, "image/png") for i, png in enumerate(images)], boundary=uuid.uuid4().hex
    )
    return build("POST", path, body=body, content_type=content_type, keep_alive=True)


async def run_load(
    url: str,
    payloads: list[bytes],
    concurrency: int,
    images_per_request: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only targets loopback, got host {host!r}")
    if not payloads:
        raise ValueError("no payload images")
    requests = [
        multipart_request(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            [payloads[(i + j) % len(payloads)] for j in range(images_per_request)],
        )
        for i in range(min(len(payloads), 64))
    ]
    result = LoadResult(url, concurrency, images_per_request)
    sent = 0
    start = time.perf_counter()
    deadline = start + max_seconds

    async def client(k: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while sent < max_requests and time.perf_counter() < deadline:
                req = requests[sent % len(requests)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    writer.write(req)
                    await writer.drain()
                    status = await asyncio.wait_for(read_response(reader), timeout=max(deadline - t0, 0) + 30)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                    result.statuses["error"] = result.statuses.get("error", 0) + 1
                    if len(result.errors) < 5:
                        result.errors.append(f"client {k}: {type(e).__name__}: {e}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
                if 200 <= status < 300:
                    result.latencies_s.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    result.wall_s = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_s = usage.ru_utime + usage.ru_stime
    return result


def load_payloads(folder: Path) -> list[bytes]:
    files = sorted(folder.glob("*.png"))
    if not files:
        raise ValueError(f"no *.png payload images in {folder}")
    return [f.read_bytes() for f in files]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="endpoint on loopback, e.g. http://127.0.0.1:8000/encode")
    p.add_argument("--images", type=Path, required=True, help="folder of *.png payload images")
    p.add_argument("--concurrency", type=int, default=1, help="closed-loop clients (default: 1)")
    p.add_argument("--images-per-request", type=int, default=1, help="image parts per request (default: 1)")
    p.add_argument("--max-requests", type=int, default=1000, help="stop after this many requests (default: 1000)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="stop after this long (default: 10)")
    p.add_argument("--out", type=Path, help="write the JSON result here (default: stdout)")
    args = p.parse_args(argv)
    if args.concurrency < 1 or args.images_per_request < 1 or args.max_requests < 1 or args.max_seconds <= 0:
        p.error("concurrency, images-per-request and max-requests must be >= 1, max-seconds > 0")
    try:
        result = asyncio.run(
            run_load(
                args.url,
                load_payloads(args.images),
                args.concurrency,
                args.images_per_request,
                args.max_requests,
                args.max_seconds,
            )
        )
    except (ValueError, OSError) as e:
        print(f"loadgen: {e}", file=sys.stderr)
        return 2
    text = json.dumps(asdict(result))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
