"""The service under load: throughput and latency percentiles by endpoint, clients, batching, images/request.

    python -m bench.service_bench --clients 1 4 16 32 64 --seconds 5 --memory-seconds 120

For each batching mode (on: the service defaults, ``DAE_MAX_BATCH=32 DAE_MAX_WAIT_MS=2``; off:
``DAE_MAX_BATCH=1 DAE_MAX_WAIT_MS=0``) one real server is started (:func:`harness.server.launch`), and
every (endpoint, images per request, clients) cell is driven by its own ``python -m bench.loadgen`` process
for at most ``seconds`` and ``max_requests``. The average batch formed in a cell is the change in the server's
``dae_batch_images_total / dae_batches_total`` across it. Then a sustained run samples the server's RSS
every second (:class:`harness.memory.RssSampler`) to show whether memory grows under load.

Endpoints: ``/encode`` (JSON latents) and ``/reconstruct?outputs=reconstruction&format=npz`` (the same four
graphs as the in-process "reconstruct" path, exact arrays out, no pictures rendered), plus, at one load level,
the default ``/reconstruct`` (JSON with every picture) to show what rendering costs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.metrics import parse_batches, parse_histogram
from bench.timing import percentile
from harness.memory import RssSampler
from harness.server import Server, launch

REPO = Path(__file__).resolve().parent.parent
ENDPOINTS: dict[str, str] = {
    "encode": "/encode",
    "reconstruct": "/reconstruct?outputs=reconstruction&format=npz",
}
RENDERED = ("reconstruct (default JSON, all pictures)", "/reconstruct")
# (DAE_MAX_BATCH, DAE_MAX_WAIT_MS): the defaults; no batching; batching without waiting for company (a batch
# starts as soon as the previous one is done, so batches form only while the model is busy).
MODES: dict[str, tuple[int, float]] = {"on": (32, 0.0), "off": (1, 0.0), "on-wait2": (32, 2.0)}


@dataclass(frozen=True)
class ServiceRow:
    endpoint: str
    batching: str
    clients: int
    images_per_request: int
    requests: int
    requests_per_s: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_batch: dict[str, float]  # by queue (encode, decode)
    server_ms: float  # mean request duration inside the server (its own histogram)
    queue_ms: float  # mean time an item waited in the batcher queues, summed over the queues it passed
    model_ms: dict[str, float]  # mean model time per batch, by stage
    model_busy: float  # model-seconds per wall-second (can exceed 1 with several inference workers)
    non_2xx: dict[str, int]
    loadgen_cpu_s: float
    wall_s: float


def mnist_dir() -> Path:
    return Path(os.environ.get("MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


def write_payloads(folder: Path, image_size: int, count: int = 64) -> str:
    """``count`` PNGs of ``image_size``²: MNIST test digits when available (the service's use), else noise.

    Returns where they came from. Digits are resized here, so the server's resize is a no-op, as for a
    client that sends the model's size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from training.mnist import load_mnist

        digits, _ = load_mnist(mnist_dir(), "test")
        arrays = [
            np.asarray(Image.fromarray(d).resize((image_size, image_size), Image.Resampling.BILINEAR))
            for d in digits[:count]
        ]
        source = f"MNIST test digits 0-{count - 1} ({mnist_dir()}), resized to {image_size}x{image_size}"
    except (ImportError, OSError, ValueError):
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 256, (image_size, image_size), dtype=np.uint8) for _ in range(count)]
        source = f"uniform noise {image_size}x{image_size} (MNIST not found at {mnist_dir()})"
    for i, a in enumerate(arrays):
        buf = io.BytesIO()
        Image.fromarray(a, mode="L").save(buf, format="PNG")
        (folder / f"{i:03d}.png").write_bytes(buf.getvalue())
    return source


@contextmanager
def service(bundle: Path, log: Path, mode: str, sample_s: float) -> Iterator[tuple[Server, RssSampler]]:
    """The real service in batching ``mode`` (see MODES), its RSS sampled every ``sample_s`` from ready on."""
    max_batch, max_wait = MODES[mode]
    srv = launch(
        bundle,
        log,
        ready_timeout=120,
        max_batch=max_batch,
        max_wait_ms=max_wait,
        log_level="warning",
        queue_size=4096,
        deadline_s=60,
    )
    rss = RssSampler(srv.pid, sample_s).start()
    try:
        yield srv, rss
    finally:
        rss.stop()
        srv.stop()


def run_loadgen(
    url: str, payloads: Path, clients: int, images_per_request: int, max_requests: int, seconds: float
) -> dict[str, Any]:
    """One ``python -m bench.loadgen`` process; its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            url,
            "--images",
            str(payloads),
            "--concurrency",
            str(clients),
            "--images-per-request",
            str(images_per_request),
            "--max-requests",
            str(max_requests),
            "--max-seconds",
            str(seconds),
            "--out",
            str(out),
        ]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _avg_batch(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    out = {}
    for queue, (batches, images) in after.items():
        b0, i0 = before.get(queue, (0.0, 0.0))
        if batches > b0:
            out[queue] = (images - i0) / (batches - b0)
    return out


def _delta(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    return {k: (s - before.get(k, (0.0, 0.0))[0], c - before.get(k, (0.0, 0.0))[1]) for k, (s, c) in after.items()}


def _mean_ms(pair: tuple[float, float] | None) -> float:
    return pair[0] / pair[1] * 1e3 if pair and pair[1] > 0 else float("nan")


def measure_cell(
    srv: Server,
    label: str,
    path: str,
    mode: str,
    payloads: Path,
    clients: int,
    images_per_request: int,
    seconds: float,
    max_requests: int,
) -> ServiceRow:
    """One load level against a running server, with the server's own view of where the time went."""
    before = srv.metrics()
    r = run_loadgen(srv.url + path, payloads, clients, images_per_request, max_requests, seconds)
    after = srv.metrics()
    lat = r["latencies_s"]
    ok = len(lat)
    hist = {
        name: _delta(parse_histogram(before, name), parse_histogram(after, name))
        for name in ("dae_request_duration_seconds", "dae_queue_time_seconds", "dae_inference_seconds")
    }
    queues = hist["dae_queue_time_seconds"]
    stages = hist["dae_inference_seconds"]
    return ServiceRow(
        endpoint=label,
        batching=mode,
        clients=clients,
        images_per_request=images_per_request,
        requests=ok,
        requests_per_s=ok / r["wall_s"],
        images_per_s=ok * images_per_request / r["wall_s"],
        p50_ms=percentile(lat, 50) * 1e3,
        p95_ms=percentile(lat, 95) * 1e3,
        p99_ms=percentile(lat, 99) * 1e3,
        avg_batch=_avg_batch(parse_batches(before), parse_batches(after)),
        server_ms=_mean_ms(hist["dae_request_duration_seconds"].get(path.split("?")[0])),
        queue_ms=sum(_mean_ms(v) for v in queues.values() if v[1] > 0),
        model_ms={k: _mean_ms(v) for k, v in stages.items() if v[1] > 0},
        model_busy=sum(v[0] for v in stages.values()) / r["wall_s"],
        non_2xx={k: v for k, v in r["statuses"].items() if not k.startswith("2")},
        loadgen_cpu_s=r["cpu_s"],
        wall_s=r["wall_s"],
    )


@dataclass(frozen=True)
class ServiceSettings:
    clients: tuple[int, ...] = (1, 4, 16, 32, 64)
    images_per_request: tuple[int, ...] = (1, 8)
    seconds: float = 5.0
    max_requests: int = 50_000
    memory_seconds: float = 120.0
    memory_clients: int = 16
    rendered_clients: int = 16
    modes: tuple[str, ...] = ("on", "off", "on-wait2")


def bench_service(
    bundle: Path, work: Path, s: ServiceSettings = ServiceSettings(), progress: bool = False
) -> dict[str, Any]:
    """Every cell in both batching modes, then the sustained memory run; a JSON-able dict."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    payloads = work / "payload"
    source = write_payloads(payloads, int(manifest["image_size"]))
    rows: list[ServiceRow] = []
    peaks: dict[str, float] = {}
    for mode in s.modes:
        with service(bundle, work / f"service-batching-{mode}.log", mode, sample_s=0.25) as (srv, rss):
            run_loadgen(srv.url + ENDPOINTS["reconstruct"], payloads, 4, 1, 200, min(1.0, s.seconds))  # warm
            for label, path in ENDPOINTS.items():
                for ipr in s.images_per_request:
                    for clients in s.clients:
                        row = measure_cell(srv, label, path, mode, payloads, clients, ipr, s.seconds, s.max_requests)
                        rows.append(row)
                        if progress:
                            print(
                                f"[bench] service {label} batching={mode} clients={clients} ipr={ipr}: "
                                f"{row.images_per_s:.0f} img/s p50 {row.p50_ms:.1f} ms",
                                flush=True,
                            )
            rows.append(
                measure_cell(
                    srv,
                    RENDERED[0],
                    RENDERED[1],
                    mode,
                    payloads,
                    s.rendered_clients,
                    1,
                    s.seconds,
                    s.max_requests,
                )
            )
            peaks[mode] = rss.peak_mb
    memory = sustained_memory(bundle, work, payloads, s)
    return {
        "payload": source,
        "image_size": manifest["image_size"],
        "bundle": manifest["name"],
        "rows": [asdict(r) for r in rows],
        "peak_rss_mib": peaks,
        "memory": memory,
        "settings": asdict(s),
    }


def sustained_memory(bundle: Path, work: Path, payloads: Path, s: ServiceSettings) -> dict[str, Any]:
    """RSS every second during ``memory_seconds`` of /reconstruct load (batching on, 4 images/request)."""
    with service(bundle, work / "service-memory.log", "on", sample_s=1.0) as (srv, rss):
        t0 = time.perf_counter()
        r = run_loadgen(srv.url + ENDPOINTS["reconstruct"], payloads, s.memory_clients, 4, 10**7, s.memory_seconds)
        samples = [(t, mib) for t, mib in rss.samples_mib if t <= time.perf_counter() - t0 + 1]
        peak = rss.peak_mb
    return {
        "clients": s.memory_clients,
        "images_per_request": 4,
        "seconds": s.memory_seconds,
        "requests": len(r["latencies_s"]),
        "non_2xx": {k: v for k, v in r["statuses"].items() if k[0] != "2"},
        "samples": samples,
        "peak_mib": peak,
    } | memory_growth(samples)


def memory_growth(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Growth from the first to the last quarter of the run (after a 10 % warm-up), and the fitted slope."""
    if len(samples) < 4:
        return {
            "first_quarter_mib": float("nan"),
            "last_quarter_mib": float("nan"),
            "growth_mib": float("nan"),
            "slope_mib_per_min": float("nan"),
        }
    rss = [m for _, m in samples]
    ts = [t for t, _ in samples]
    skip = len(rss) // 10
    body, tbody = rss[skip:], ts[skip:]
    q = max(1, len(body) // 4)
    first, last = float(np.mean(body[:q])), float(np.mean(body[-q:]))
    slope = float(np.polyfit(tbody, body, 1)[0]) * 60 if len(body) >= 2 else float("nan")
    return {
        "first_quarter_mib": first,
        "last_quarter_mib": last,
        "growth_mib": last - first,
        "slope_mib_per_min": slope,
    }


def main(argv: list[str] | None = None) -> None:
    from bench.bundles import bundle_for

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 32, 64], help="(default: 1 4 16 32 64)")
    p.add_argument("--seconds", type=float, default=5.0, help="per cell (default: 5)")
    p.add_argument("--memory-seconds", type=float, default=120.0, help="sustained run (default: 120)")
    p.add_argument("--work", type=Path, default=Path("build/bench"), help="(default: build/bench)")
    args = p.parse_args(argv)
    settings = ServiceSettings(clients=tuple(args.clients), seconds=args.seconds, memory_seconds=args.memory_seconds)
    result = bench_service(bundle_for(32, args.work / "bundles"), args.work, settings, progress=True)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "memory"}
            | {"memory": {k: v for k, v in result["memory"].items() if k != "samples"}},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
